"""``make_loader``: the seeded, deterministic ``DataLoader`` every dataset of the kit goes through."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive numpy/random seeds from it
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool | None = None,
) -> DataLoader:
    """A deterministic ``DataLoader``: same ``seed`` -> same batches in the same order.

    ``drop_last`` defaults to ``shuffle`` (drop the ragged batch while training, keep every
    sample when evaluating).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=shuffle if drop_last is None else drop_last,
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=False,
    )
