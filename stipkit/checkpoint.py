"""The one checkpoint format of the kit: a dict of tensors and plain values, written atomically
and read with ``torch.load(..., weights_only=True)`` (no arbitrary pickles are ever executed).

Keys: ``format``, ``version``, ``iteration``, ``config`` (plain dict), ``predictor``,
``discriminator``, ``opt_p``, ``opt_d``, ``sched_p``, ``sched_d`` (state dicts or None),
``ema`` (the predictor's weight average when training kept one, else None; absent in older
files) and ``ema_updates``, ``rng`` (torch / numpy / python states as tensors and lists),
``extra`` (plain values).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "stipkit-checkpoint"
VERSION = 1


def sha256_file(path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks (provenance records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, foreign or of another version."""


def rng_state() -> dict:
    """Every global random state, as tensors and plain lists (loadable with weights_only)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": _to_lists(random.getstate())}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path, *, predictor, config=None, discriminator=None, opt_p=None, opt_d=None,
                    sched_p=None, sched_d=None, ema=None, ema_updates: int = 0,
                    iteration: int = 0, rng: dict | None = None, extra: dict | None = None) -> Path:
    """Write one checkpoint (atomically). ``config`` is a :class:`~stipkit.config.Config`."""
    from .config import to_dict
    sd = lambda m: None if m is None else m.state_dict()  # noqa: E731
    return atomic_save({
        "format": FORMAT, "version": VERSION, "iteration": int(iteration),
        "config": None if config is None else to_dict(config),
        "predictor": sd(predictor), "discriminator": sd(discriminator),
        "opt_p": sd(opt_p), "opt_d": sd(opt_d), "sched_p": sd(sched_p), "sched_d": sd(sched_d),
        "ema": sd(ema), "ema_updates": int(ema_updates),
        "rng": rng_state() if rng is None else rng, "extra": extra or {},
    }, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely: it is truncated, corrupt, or holds objects "
            f"other than tensors and plain values (weights_only=True refused it): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and "net_param" in ckpt:
            hint = (" It looks like an official STIPHR checkpoint: use "
                    "stipkit.official.load_stiphr(ckpt['net_param'], official_args).")
        keys = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"checkpoint {path} is not a stipkit checkpoint (found {keys}).{hint}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {ckpt.get('version')}, "
                              f"this stipkit reads version {VERSION}")
    return ckpt


def load_predictor(path):
    """(STIP predictor in eval mode, Config) from a checkpoint: the weight average (``ema``)
    when training kept one (``TrainConfig.ema``), else the trained weights."""
    from .config import from_dict
    from .models import STIP
    ckpt = load_checkpoint(path)
    if ckpt["config"] is None:
        raise CheckpointError(f"checkpoint {path} stores no config; cannot rebuild the model")
    cfg = from_dict(ckpt["config"])
    model = STIP(cfg.model, input_length=cfg.input_length)
    try:
        model.load_state_dict(ckpt["predictor"] if ckpt.get("ema") is None else ckpt["ema"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its config "
                              f"describes (written by another stipkit version?): "
                              f"{str(e).splitlines()[0]}") from e
    return model.eval(), cfg
