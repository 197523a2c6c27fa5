"""The datasets of a config and of a budget: the one place the kit builds its train, val and
test data.

Three splits, never sharing a frame (embedded clips) or a digit image (Moving Digits): "train"
to fit on, "val" to choose on (learning rates, iterations, early stopping), "test" to report, and
nothing else. The embedded test split is whole clips never trained on
(:data:`stipkit.data.video.TEST_CLIPS`).

Read top to bottom:

1. :func:`default_dataset` -- the ``split`` of a dataset name at a config's size (what the command
   line, the benchmarks and :func:`stipkit.scoring.evaluate.evaluate_checkpoint` use), and
   :func:`default_crop` (SJTU4K is scored at its native :data:`SJTU4K_LINES`);
2. :func:`dataset`, :func:`val_split`, :func:`test_split`, :func:`test_frames` -- the same at a
   :class:`~stipkit.config.budget.Budget`'s say-so (its data, its number of evaluation windows, the
   paper datasets' folders from environment variables): what the notebooks, the study runs and
   the ablation runs train, choose and score on.
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
from .still import StillWindows
from .video import SPLITS, TEST_CLIPS, TRAIN_CLIPS, EmbeddedVideo, embedded_clips

SJTU4K_LINES = 2160  # native SJTU4K height; the model runs padded at 2176 (see stipkit.config)
# Moving Digits' fixed evaluation sets: 100 sequences each, their own seeds (runs comparable)
DIGITS_EVAL = {"val": (100, 2), "test": (100, 1)}

_PAPER_ENV = {"train": "STIPKIT_{}_TRAIN", "val": "STIPKIT_{}_VAL", "test": "STIPKIT_{}_TEST"}


# --------------------------------------------------------------------------- 1. by config
def default_dataset(cfg: Config, split: str = "test", data: str | None = None, list_file=None,
                    root=None, total_length: int | None = None, skip_bad: bool = False,
                    num_sequences: int | None = None, held_out: tuple[str, ...] = (),
                    extra_clips: dict | None = None):
    """The default ``split`` of dataset ``data`` (default ``cfg.dataset``, one of
    :data:`stipkit.config.DATASETS`) at the model's size.

    ``split`` is "train", "val" or "test":

    * ``embedded``: :class:`~stipkit.data.video.EmbeddedVideo` (``split_by="heldout"``: test =
      the whole clips of :data:`~stipkit.data.video.TEST_CLIPS`, train / val = the first 80 % /
      the last 20 % less a gap of every other clip), windows starting at every frame in every
      split (evaluation windows overlap each other, never another split's frames: 319 test
      windows at 4 -> 6 instead of 33 disjoint ones, for steadier scores); the train split takes
      ``cfg.train.crops`` crop positions, and mirrors (``flips``) and reversed windows
      (``reverse``) when asked for;
    * ``digits``: :class:`~stipkit.data.digits.MovingDigits` on disjoint digit images. Train:
      ``cfg.train.iterations * cfg.train.batch_size`` sequences, times ``$WORLD_SIZE`` under
      torchrun (unless ``num_sequences``), seeded by ``cfg.train.seed``: the training loop
      draws each index once per epoch, so every sample of the run is a fresh sequence;
      val / test: 100 fixed sequences (seeds 2 / 1, :data:`DIGITS_EVAL`) so that runs are
      comparable;
    * ``ucfsport`` / ``human36m`` / ``sjtu4k``: :class:`~stipkit.data.lists.FrameListDataset` of
      ``list_file`` under ``root`` (both required). These datasets have official train and test
      lists only: "val" needs a list file of your own (e.g. clips held out of the train list).

    ``total_length`` defaults to ``cfg.train_length`` (train) or ``cfg.eval_length`` (val, test).

    ``held_out`` (embedded only): train clips held out *whole* for validation, the
    leave-one-clip-out split that asks what the default "val" (the late windows of the training
    clips) cannot -- how a choice does on a scene never trained on: "train" leaves them out and
    "val" is those clips, every frame; "test" is unchanged.

    ``extra_clips`` (embedded only): more training clips, ``{name: path}`` (a data lever tried
    before a clip is shipped: ``benchmarks/bench_levers.py --extra-clip``), cut like the training
    clips (their first 80 % join "train", their last 20 % "val"; never "test").
    """
    data = data or cfg.dataset
    resolution = (cfg.model.height, cfg.model.width)
    if total_length is None:
        total_length = cfg.train_length if split == "train" else cfg.eval_length
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if (held_out or extra_clips) and data != "embedded":
        raise DataError(f"held_out / extra_clips are for the embedded clips; dataset {data!r} has none")
    if data == "embedded":
        tc = cfg.train
        aug = dict(crops=tc.crops, flips=tc.flips, reverse=tc.reverse) if split == "train" else {}
        if held_out:
            bad = [c for c in held_out if c not in TRAIN_CLIPS]
            if bad or len(held_out) >= len(TRAIN_CLIPS):
                raise DataError(f"held_out={list(held_out)} is invalid: give some, not all, of the "
                                f"train clips {list(TRAIN_CLIPS)} (the test clips {list(TEST_CLIPS)} are "
                                "held out already)")
            if split != "test":  # val: the held-out clips whole; train: the others' train part
                aug["test_clips"] = tuple(held_out) if split == "val" else (*TEST_CLIPS, *held_out)
                split = "test" if split == "val" else split
        if extra_clips:
            shipped = embedded_clips()
            clash = sorted(set(extra_clips) & set(shipped))
            if clash:
                raise DataError(f"extra_clips {clash} are embedded clips already: give new names")
            if split != "test":  # "test" (and a held-out "val") stays the shipped clips'
                aug["clips"] = {**shipped, **extra_clips}
        ds = EmbeddedVideo(split, resolution=resolution, total_length=total_length, stride=1, **aug)
        if split == "train" and tc.still_every:   # one window in still_every made still
            ds = StillWindows(ds, tc.still_every, cfg.input_length - 1)
        return ds
    if data == "digits":
        if split == "train":  # one sequence per sample of the run's global batches
            world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's processes
            n, seed = cfg.train.iterations * cfg.train.batch_size * world, cfg.train.seed
        else:
            n, seed = DIGITS_EVAL[split]
        return MovingDigits(num_sequences=num_sequences or n, total_length=total_length,
                            resolution=resolution, seed=seed, split=split)
    if data in PAPER_DATASETS:
        if split == "val" and list_file is None:
            raise DataError(f"the {data} dataset has no official validation list: pass a list "
                            "file of your own (--list FILE / list_file, e.g. clips held out of the "
                            "official train list and left out of training), or choose on the "
                            "embedded or digits data")
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
    """The ``split`` ("train" | "val" | "test") of the budget's data (or ``data``) at the model's
    size (:func:`default_dataset`).

    Paper datasets read their official list file and frame folder from
    ``STIPKIT_<DATA>_TRAIN`` / ``STIPKIT_<DATA>_TEST`` and ``STIPKIT_<DATA>_ROOT``
    (e.g. ``STIPKIT_UCFSPORT_ROOT``); a missing variable is named in the error. They have no
    official validation list: "val" reads a list file of your own from ``STIPKIT_<DATA>_VAL``.
    """
    data = data or budget.data
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kw = {}
    if data in PAPER_DATASETS:
        key = data.upper()
        names = {"list_file": _PAPER_ENV[split].format(key), "root": f"STIPKIT_{key}_ROOT"}
        if split == "val" and not os.environ.get(names["list_file"]):
            raise DataError(f"the {data} dataset has no official validation list: set "
                            f"{names['list_file']} to a list file of your own (e.g. clips held "
                            "out of the official train list and left out of training)")
        missing = [v for v in names.values() if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"the {budget.name!r} budget trains on {data}: set "
                               f"{', '.join(missing)} (the official {split} list file and the "
                               "folder holding the frames)")
        kw = {k: os.environ[v] for k, v in names.items()}
    return default_dataset(cfg, split, data=data, **kw)


def _limited(cfg: Config, budget: Budget, split: str, data: str | None):
    return spread(dataset(cfg, budget, split, data), budget.eval_windows)


def spread(ds, n: int | None):
    """``n`` windows of ``ds`` evenly spaced over it (every clip contributes), or all of it."""
    if n is None or n >= len(ds):
        return ds
    return Subset(ds, [i * len(ds) // n for i in range(n)])


def val_split(cfg: Config, budget: Budget, data: str | None = None):
    """The budget's validation split (of ``data``, default the budget's), limited to
    ``budget.eval_windows`` evenly spaced windows if set (:func:`spread`): what to choose learning rates, iterations and early
    stopping on (never the test split)."""
    return _limited(cfg, budget, "val", data)


def test_split(cfg: Config, budget: Budget, data: str | None = None):
    """The budget's test split (of ``data``, default the budget's), limited to
    ``budget.eval_windows`` evenly spaced windows if set (:func:`spread`)."""
    return _limited(cfg, budget, "test", data)


def disjoint(ds):
    """The windows of ``ds`` that share no frame (in each clip, the first, then the next that
    starts after it ends, ...): what statistics over windows read (overlapping windows are for
    pictures). A ``Subset`` of the windows kept; ``ds`` itself when its samples have no frame
    ranges (Moving Digits' sequences are independent)."""
    base, index = (ds.dataset, list(ds.indices)) if isinstance(ds, Subset) else (ds, range(len(ds)))
    return Subset(base, [index[k] for k in disjoint_positions(ds)]) \
        if hasattr(base, "frame_indices") else ds


def disjoint_positions(ds) -> list[int]:
    """The positions in ``ds`` (0 .. len(ds) - 1) of :func:`disjoint`'s windows: every one when
    its samples have no frame ranges."""
    base, index = (ds.dataset, list(ds.indices)) if isinstance(ds, Subset) else (ds, range(len(ds)))
    if not hasattr(base, "frame_indices"):
        return list(range(len(ds)))
    keep, end = [], {}
    for k, i in enumerate(index):
        name, frames = base.frame_indices(i)
        if frames.start >= end.get(name, frames.start):
            keep.append(k)
            end[name] = frames.stop
    return keep


def test_frames(cfg: Config, budget: Budget, limit: int | None = None,
                data: str | None = None) -> torch.Tensor:
    """The windows of :func:`test_split` (the first ``limit`` of them, if given) stacked:
    (B, eval_length, C, H, W) on the CPU."""
    ds = test_split(cfg, budget, data)
    n = len(ds) if limit is None else min(limit, len(ds))
    return torch.stack([ds[i] for i in range(n)])


__all__ = ["spread", "SJTU4K_LINES", "DIGITS_EVAL", "default_dataset", "default_crop", "dataset", "val_split",
           "test_split", "test_frames", "disjoint"]
