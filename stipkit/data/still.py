"""Still windows: a training lever for real video (``TrainConfig.still_every``).

Real clips are mostly small motion, and a model that never sees a scene that does not move
learns to add motion everywhere: given four copies of one frame, its predictions drift and a
still scene "melts". :class:`StillWindows` replaces one training window in ``every`` (the
windows at indices ``every - 1, 2 * every - 1, ...``) by a still one: its frame at
``input_length - 1`` (the last given frame) repeated for the whole window, so that the input is
still and every target equals it. The rest of the data is unchanged and the list stays
deterministic (a given index is always the same window).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class StillWindows(Dataset):
    """``dataset`` with one window in ``every`` made still (the frame at ``frame`` repeated)."""

    def __init__(self, dataset: Dataset, every: int, frame: int):
        if not (isinstance(every, int) and every >= 2):
            raise ValueError(f"every must be an integer >= 2 (one window in `every` made still), "
                             f"got {every!r}")
        if not (isinstance(frame, int) and frame >= 0):
            raise ValueError(f"frame must be the index (>= 0) of the frame repeated, got {frame!r}")
        self.dataset, self.every, self.frame = dataset, every, frame

    def __len__(self) -> int:
        return len(self.dataset)

    def is_still(self, i: int) -> bool:
        return (i + 1) % self.every == 0

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.dataset[i]
        if not self.is_still(i):
            return x
        if self.frame >= x.shape[0]:
            raise ValueError(f"StillWindows(frame={self.frame}): window {i} has only "
                             f"{x.shape[0]} frames")
        return x[self.frame:self.frame + 1].expand_as(x).clone()
