"""The datasets of a config and of a budget: the one place the kit builds its train and test data.

Read top to bottom:

1. :func:`default_dataset` -- the ``split`` of a dataset name at a config's size (what the command
   line, the benchmarks and :func:`stipkit.scoring.evaluate.evaluate_checkpoint` use), and
   :func:`default_crop` (SJTU4K is scored at its native :data:`SJTU4K_LINES`);
2. :func:`dataset`, :func:`test_split`, :func:`test_frames` -- the same at a
   :class:`~stipkit.config.budget.Budget`'s say-so (its data, its number of test windows, the
   paper datasets' folders from environment variables): what the notebooks, the study runs and
   the ablation runs train and score on.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import Subset

from ..config import DATASETS, PAPER_DATASETS, Config
from ..config.budget import Budget
from .digits import MovingDigits
from .frames import DataError
from .lists import FrameListDataset
from .video import EmbeddedVideo

SJTU4K_LINES = 2160  # native SJTU4K height; the model runs padded at 2176 (see stipkit.config)

_PAPER_ENV = {"train": "STIPKIT_{}_TRAIN", "test": "STIPKIT_{}_TEST"}


# --------------------------------------------------------------------------- 1. by config
def default_dataset(cfg: Config, split: str = "test", data: str | None = None, list_file=None,
                    root=None, total_length: int | None = None, skip_bad: bool = False,
                    num_sequences: int | None = None):
    """The default ``split`` of dataset ``data`` (default ``cfg.dataset``, one of
    :data:`stipkit.config.DATASETS`) at the model's size.

    * ``embedded``: :class:`~stipkit.data.video.EmbeddedVideo`, windows starting at every frame
      in both splits (test windows overlap each other, never the training frames: 59 test windows
      at 4 -> 6 instead of 7 disjoint ones, for steadier scores); the train split takes
      ``cfg.train.crops`` crop positions, and mirrors (``flips``) and reversed windows
      (``reverse``) when asked for;
    * ``digits``: :class:`~stipkit.data.digits.MovingDigits` (1000 train / 100 test sequences,
      disjoint digit images; the test split has a fixed seed so that runs are comparable);
    * ``ucfsport`` / ``human36m`` / ``sjtu4k``: :class:`~stipkit.data.lists.FrameListDataset` of
      ``list_file`` under ``root`` (both required).

    ``total_length`` defaults to ``cfg.train_length`` (train) or ``cfg.eval_length`` (test).
    """
    data = data or cfg.dataset
    resolution = (cfg.model.height, cfg.model.width)
    if total_length is None:
        total_length = cfg.train_length if split == "train" else cfg.eval_length
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data == "embedded":
        tc = cfg.train
        aug = dict(crops=tc.crops, flips=tc.flips, reverse=tc.reverse) if split == "train" else {}
        return EmbeddedVideo(split, resolution=resolution, total_length=total_length, stride=1, **aug)
    if data == "digits":
        n = num_sequences or (1000 if split == "train" else 100)
        seed = cfg.train.seed if split == "train" else 1
        return MovingDigits(num_sequences=n, total_length=total_length, resolution=resolution,
                            seed=seed, split=split)
    if data in PAPER_DATASETS:
        for value, flag in ((list_file, "--list FILE / list_file"), (root, "--root DIR / root")):
            if value is None:
                raise DataError(f"the {data} dataset needs {flag} (the official list file of the "
                                f"{split} split and the folder holding its frames)")
        return FrameListDataset(list_file, root, fmt=data, total_length=total_length,
                                resolution=resolution, skip_bad=skip_bad)
    raise DataError(f"dataset {data!r} is unknown: valid datasets are {list(DATASETS)}")


def default_crop(cfg: Config) -> tuple[int, int] | None:
    """SJTU4K models run at 2176 lines on frames padded from 2160: score at 2160 lines."""
    if cfg.dataset == "sjtu4k" and cfg.model.height > SJTU4K_LINES:
        return SJTU4K_LINES, cfg.model.width
    return None


# --------------------------------------------------------------------------- 2. by budget
def dataset(cfg: Config, budget: Budget, split: str, data: str | None = None):
    """The ``split`` ("train" | "test") of the budget's data (or ``data``) at the model's size
    (:func:`default_dataset`).

    Paper datasets read their official list file and frame folder from
    ``STIPKIT_<DATA>_TRAIN`` / ``STIPKIT_<DATA>_TEST`` and ``STIPKIT_<DATA>_ROOT``
    (e.g. ``STIPKIT_UCFSPORT_ROOT``); a missing variable is named in the error.
    """
    data = data or budget.data
    kw = {}
    if data in PAPER_DATASETS:
        key = data.upper()
        names = {"list_file": _PAPER_ENV[split].format(key), "root": f"STIPKIT_{key}_ROOT"}
        missing = [v for v in names.values() if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"the {budget.name!r} budget trains on {data}: set "
                               f"{', '.join(missing)} (the official {split} list file and the "
                               "folder holding the frames)")
        kw = {k: os.environ[v] for k, v in names.items()}
    return default_dataset(cfg, split, data=data, **kw)


def test_split(cfg: Config, budget: Budget, data: str | None = None):
    """The budget's test split (of ``data``, default the budget's), limited to its first
    ``budget.eval_windows`` windows if set."""
    ds = dataset(cfg, budget, "test", data)
    if budget.eval_windows is not None and budget.eval_windows < len(ds):
        ds = Subset(ds, range(budget.eval_windows))
    return ds


def test_frames(cfg: Config, budget: Budget, limit: int | None = None,
                data: str | None = None) -> torch.Tensor:
    """The windows of :func:`test_split` (the first ``limit`` of them, if given) stacked:
    (B, eval_length, C, H, W) on the CPU."""
    ds = test_split(cfg, budget, data)
    n = len(ds) if limit is None else min(limit, len(ds))
    return torch.stack([ds[i] for i in range(n)])


__all__ = ["SJTU4K_LINES", "default_dataset", "default_crop", "dataset", "test_split", "test_frames"]
