"""The one checkpoint format of the kit: a dict of tensors and plain values, written atomically
and read with ``torch.load(..., weights_only=True)`` (no arbitrary pickles are ever executed).

Keys: ``format``, ``version``, ``iteration``, ``config`` (plain dict), ``predictor``,
``discriminator``, ``opt_p``, ``opt_d``, ``sched_p``, ``sched_d`` (state dicts or None),
``ema`` (the predictor's weight average when training kept one, else None; absent in older
files) and ``ema_updates``, ``memory_revision`` (the ``Memory.REVISION`` of the config's memory
when written; absent in older files, which count as revision 1), ``rng`` (torch's global random state; older files also hold numpy's
and python's, which nothing in training draws from), ``extra`` (plain values).

Every way a damaged file makes ``torch.load`` fail -- random bytes, a file cut short, a damaged
zip member, a pickle of anything but tensors and plain values -- becomes a
:class:`CheckpointError` that names the file.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..runtime.files import atomic_write

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
    """A checkpoint file is missing, truncated, corrupt, foreign or of another version."""


class WeightsMismatch(CheckpointError):
    """A checkpoint's weights do not fit the model its config describes (another version)."""


def load_weights(module: torch.nn.Module, state_dict: dict, path, what: str = "weights") -> None:
    """``module.load_state_dict(state_dict)``; :class:`WeightsMismatch` naming ``path`` when
    the names or shapes differ."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as e:
        raise WeightsMismatch(f"checkpoint {path}: its {what} do not fit the model its config "
                              f"describes (written by another stipkit version?): "
                              f"{str(e).splitlines()[0]}") from e


def _memory_of(config: dict | None):
    """(name, class) of the memory a config dict names, or (None, None)."""
    from ..models.memories import MEMORIES
    memory = ((config or {}).get("model") or {}).get("memory")
    name = memory.get("name") if isinstance(memory, dict) else memory
    return name, MEMORIES.get(name)


def check_memory_revision(ckpt: dict, path) -> None:
    """:class:`WeightsMismatch` naming what changed when ``ckpt`` holds a memory cell of another
    revision than this stipkit's (``Memory.REVISION`` / ``REVISION_NOTE``)."""
    name, cls = _memory_of(ckpt.get("config"))
    saved = int(ckpt.get("memory_revision", 1))
    if cls is not None and saved != cls.REVISION:
        raise WeightsMismatch(
            f"checkpoint {path} holds a {name!r} memory of revision {saved}; this stipkit's "
            f"{cls.__name__} is revision {cls.REVISION}: {cls.REVISION_NOTE or 'the cell changed'}. "
            f"Its weights do not fit the new cell: retrain the model.")


def rng_state() -> dict:
    """The global random state that training depends on: torch's (model initialisation).

    Numpy's and python's global generators are not saved: nothing in the kit draws from them
    (datasets draw from their own seeded generators), so what they held was only the
    process's start-up entropy, different in every process.
    """
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`; the numpy and python states of older files too."""
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "python" in state:
        random.setstate(_to_tuples(state["python"]))


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`stipkit.runtime.files.atomic_write` (a temporary file beside
    ``path``, fsync, rename; leftovers of an interrupted earlier write are removed)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(path, *, predictor, config=None, discriminator=None, opt_p=None, opt_d=None,
                    sched_p=None, sched_d=None, ema=None, ema_updates: int = 0,
                    iteration: int = 0, rng: dict | None = None, extra: dict | None = None) -> Path:
    """Write one checkpoint (atomically). ``config`` is a :class:`~stipkit.config.Config`."""
    from ..config import to_dict
    sd = lambda m: None if m is None else m.state_dict()  # noqa: E731
    return atomic_save({
        "format": FORMAT, "version": VERSION, "iteration": int(iteration),
        "config": None if config is None else to_dict(config),
        "predictor": sd(predictor), "discriminator": sd(discriminator),
        "opt_p": sd(opt_p), "opt_d": sd(opt_d), "sched_p": sd(sched_p), "sched_d": sd(sched_d),
        "ema": sd(ema), "ema_updates": int(ema_updates),
        "memory_revision": _revision(config),
        "rng": rng_state() if rng is None else rng, "extra": extra or {},
    }, path)


def _revision(config) -> int:
    if config is None:
        return 1
    from ..config import to_dict
    cls = _memory_of(to_dict(config))[1]
    return 1 if cls is None else cls.REVISION


# What torch.load(..., weights_only=True) raised on damaged files (torch 2.x; random bytes of
# many lengths, real checkpoints cut at every length, bytes flipped inside the zip or its
# data.pkl, members dropped, empty files, foreign pickles): pickle.UnpicklingError,
# RuntimeError (the zip reader), OSError (EINVAL from the zip reader on a cut file), EOFError,
# IndexError, KeyError, TypeError, ValueError, UnicodeDecodeError and struct.error. The list
# is torch's to change, so every Exception is caught (never KeyboardInterrupt / SystemExit).
REQUIRED_KEYS = ("format", "version", "iteration", "config", "predictor", "discriminator",
                 "opt_p", "opt_d", "sched_p", "sched_d", "rng", "extra")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True``; a :class:`CheckpointError` naming the file
    when it is missing, unreadable, damaged in any way, foreign or of another version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:  # the file itself cannot be opened (permissions, I/O error)
        raise CheckpointError(f"checkpoint {path} cannot be opened: {e.strerror or e}") from e
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any of the errors listed above REQUIRED_KEYS
        detail = " ".join(str(e).split())
        detail = detail if len(detail) <= 200 else detail[:200] + " ..."
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely: it is truncated, corrupt, or holds objects "
            f"other than tensors and plain values (weights_only=True refused it): "
            f"{type(e).__name__}{': ' + detail if detail else ''}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and "net_param" in ckpt:
            hint = (" It looks like an official STIPHR checkpoint: use "
                    "stipkit.models.official.load_stiphr(ckpt['net_param'], official_args).")
        keys = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"checkpoint {path} is not a stipkit checkpoint (found {keys}).{hint}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {ckpt.get('version')}, "
                              f"this stipkit reads version {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} is damaged: it lacks {missing}")
    return ckpt


def load_predictor(path, best: bool = True):
    """(predictor in eval mode, Config) from a checkpoint: the model its config names
    (``stipkit.models.MODELS``), with the weights of the best validation score when training
    kept them (``best=True`` and an ``eval_fn``, see :func:`stipkit.training.train.train`), else
    the weight average (``ema``) when training kept one (``TrainConfig.ema``), else the trained
    weights. Configs of older stipkit versions convert
    (:func:`stipkit.config.from_dict`); what cannot is a :class:`CheckpointError` naming the field."""
    from ..config import ConfigError, from_dict
    from ..models import build_predictor
    ckpt = load_checkpoint(path)
    if ckpt["config"] is None:
        raise CheckpointError(f"checkpoint {path} stores no config; cannot rebuild the model")
    try:
        cfg = from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: its config does not fit this stipkit: {e}") from e
    check_memory_revision(ckpt, path)
    model = build_predictor(cfg.model, input_length=cfg.input_length)
    best = (ckpt["extra"] or {}).get("best") if best else None
    weights = best["weights"] if best else ckpt["predictor"] if ckpt.get("ema") is None else ckpt["ema"]
    load_weights(model, weights, path)
    return model.eval(), cfg
