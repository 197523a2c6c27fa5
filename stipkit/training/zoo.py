"""Pretrained weights shipped with the kit: ``stipkit.pretrained("study")``.

Each entry of ``stipkit/weights/`` is a pair:

* ``<name>.pt``: a stipkit checkpoint (:mod:`stipkit.training.checkpoint`, the kit's one format) holding
  the predictor's weights in float16, its config and its training history (:func:`history`),
  nothing else;
* ``<name>.json``: its provenance -- the command that made it, iterations, data, training time,
  sha256 and size of the ``.pt``, the stipkit and torch versions, and the scores it had on the
  test split when it was exported.

``make pretrain`` trains and exports ``study`` (:func:`export`), ``make pretrain-digits`` notebook
03's Moving Digits run ``study-digits``; :func:`pretrained` loads them after checking the file
against its provenance.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch

from .checkpoint import (CheckpointError, load_checkpoint, load_predictor, save_checkpoint,
                         sha256_file)
from ..runtime.files import atomic_write

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def available(folder: str | os.PathLike | None = None) -> list[str]:
    """Names of the shipped weights (those with both a ``.pt`` and a ``.json``)."""
    folder = Path(folder) if folder is not None else WEIGHTS
    return sorted(p.stem for p in folder.glob("*.pt") if p.with_suffix(".json").is_file())


def provenance(name: str = "study", folder: str | os.PathLike | None = None) -> dict:
    """The provenance record of ``name`` (see the module docstring)."""
    folder = Path(folder) if folder is not None else WEIGHTS
    path = folder / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"no pretrained weights named {name!r}: {path} does not exist "
                              f"(available: {available(folder) or 'none'}; `make pretrain` makes "
                              "'study')")
    return json.loads(path.read_text())


def _checked_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The ``.pt`` of the weights ``name``, after checking its size and sha256 against its
    provenance (the checks of :func:`pretrained`)."""
    folder = Path(folder) if folder is not None else WEIGHTS
    record = provenance(name, folder)
    path = folder / record["file"]
    if not path.is_file():
        raise CheckpointError(f"{path} is missing though {folder / (name + '.json')} describes it; "
                              "restore it from git or run `make pretrain`")
    size, digest = path.stat().st_size, sha256_file(path)
    if size != record["bytes"] or digest != record["sha256"]:
        raise CheckpointError(
            f"{path} does not match its provenance {folder / (name + '.json')}: sha256 {digest} "
            f"({size:,} bytes), recorded {record['sha256']} ({record['bytes']:,} bytes). Restore "
            "both files from git, or re-make them with `make pretrain`")
    return path


def pretrained(name: str = "study", folder: str | os.PathLike | None = None):
    """``(predictor in eval mode, Config)`` of the shipped weights ``name``, as
    :func:`stipkit.training.checkpoint.load_predictor` returns them (float32 on the CPU).

    Raises :class:`~stipkit.training.checkpoint.CheckpointError` when the weights or their provenance are
    missing, or when the file's size or sha256 differ from what its provenance records (a
    corrupt, truncated or replaced file).
    """
    return load_predictor(_checked_path(name, folder))


def _which_weights(ckpt: dict) -> str:
    """In words: which of a checkpoint's weights :func:`load_predictor` returns (and export ships)."""
    kind = "weight average (TrainConfig.ema)" if ckpt.get("ema") is not None else "trained weights"
    best = (ckpt["extra"] or {}).get("best")
    if best:
        return (f"{kind} at the best validation score ({best['score']:.3f} mean PSNR, iteration "
                f"{best['iteration']}; TrainConfig.patience)")
    return kind


def export(checkpoint: str | os.PathLike, name: str = "study", *, command: str,
           folder: str | os.PathLike | None = None, scores=None) -> dict:
    """Write ``<folder>/<name>.pt`` (the predictor of ``checkpoint`` in float16; its weight
    average when training kept one) and ``<name>.json`` (provenance). ``command`` is what made
    the checkpoint; ``scores`` an optional DataFrame of :func:`stipkit.scoring.evaluate.evaluate` for
    the record. Returns the provenance."""
    from importlib.metadata import version  # the installed stipkit's (pyproject.toml)
    from ..config import to_dict

    folder = Path(folder) if folder is not None else WEIGHTS
    ckpt = load_checkpoint(checkpoint)
    predictor, cfg = load_predictor(checkpoint)
    history = ckpt["extra"].get("history", [])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    save_checkpoint(path, predictor=predictor.half(), config=cfg, iteration=ckpt["iteration"],
                    rng={}, extra={"source": str(checkpoint), "history": history})
    record = {
        "name": name, "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path),
        "dtype": "float16", "weights": _which_weights(ckpt),
        "command": command, "preset": cfg.name, "data": cfg.dataset,
        "iterations": ckpt["iteration"], "batch_size": cfg.train.batch_size,
        "train_minutes": round(sum(r.get("step_s", 0.0) for r in history) / 60, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        # the training's torch threads (CPU kernels repeat bitwise only at equal threads); None
        # for a history recorded before the kit kept them
        "train_threads": sorted({r["threads"] for r in history if "threads" in r}) or None,
        "stipkit_version": version("stipkit"), "torch_version": torch.__version__,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(cfg),
    }
    if scores is not None:
        record["scores"] = scores.round(4).to_dict(orient="records")
    atomic_write(folder / f"{name}.json", json.dumps(record, indent=1) + "\n")
    return record


def history(name: str = "study", folder: str | os.PathLike | None = None) -> list[dict]:
    """The training history (one dict per iteration, the rows of the run's ``history.csv``) that
    :func:`export` kept with the weights ``name``; empty for weights exported without it."""
    return list(load_checkpoint(_checked_path(name, folder))["extra"].get("history", []))


def shipped_run(budget, data: str, folder: str | os.PathLike | None = None):
    """``(predictor, Config, history DataFrame, provenance)`` of the shipped weights of the
    :class:`~stipkit.config.budget.Budget`'s run on ``data`` (``budget.shipped_name(data)``) when
    they are that very run -- their config equals ``budget.run_config(data)``: the same preset,
    data, iterations and seed --, else None."""
    import pandas as pd
    from ..config import ConfigError, from_dict

    name = budget.shipped_name(data)
    if name not in available(folder):
        return None
    record = provenance(name, folder)
    try:
        if from_dict(record["config"]) != budget.run_config(data):
            return None
    except ConfigError:
        return None
    path = _checked_path(name, folder)  # checked once, then read for weights and history
    predictor, cfg = load_predictor(path)
    return predictor, cfg, pd.DataFrame(load_checkpoint(path)["extra"].get("history", [])), record


__all__ = ["WEIGHTS", "available", "provenance", "pretrained", "export", "history", "shipped_run"]
