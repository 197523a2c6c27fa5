"""``MovingDigits``: seeded Moving-MNIST-style toy sequences built from scikit-learn's bundled
8x8 digits (no download)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .frames import to_tensor

# Disjoint parts of scikit-learn's 1,797 digit images, as fractions of the list: train the first
# 70 %, val the next 10 %, test the last 20 % (the same test images as before val existed).
IMAGE_SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0), None: (0.0, 1.0)}


class MovingDigits(Dataset):
    """Seeded Moving-MNIST-style toy data from scikit-learn's bundled 8x8 digits (no download).

    Each sequence has ``num_digits`` digits (upscaled to ``digit_size`` px) bouncing off the
    walls of an ``H x W`` canvas for ``total_length`` frames; overlapping digits combine with
    ``max``. Output has C=3 (gray replicated, or one random colour per digit if ``color``).
    Sequence ``i`` is generated on the fly from ``(seed, i)``: same seed -> identical data,
    independent of worker count or access order, so ``num_sequences`` costs nothing until a
    sequence is asked for (a training set can hold one fresh sequence per sample it will ever
    draw). ``split`` picks disjoint digit images (:data:`IMAGE_SPLITS`; "train": the first 70 %
    of the 1,797 images, "val": the next 10 %, "test": the last 20 %, None: all).
    """

    def __init__(
        self,
        num_sequences: int = 1000,
        total_length: int = 10,
        resolution: tuple[int, int] = (64, 64),
        num_digits: int = 2,
        seed: int = 0,
        digit_size: int | None = None,
        color: bool = False,
        split: str | None = None,
    ):
        from sklearn.datasets import load_digits  # ships with scikit-learn, no download

        H, W = resolution
        self.digit_size = digit_size or max(8, round(min(H, W) * 0.375))  # 24 px at 64x64
        if self.digit_size > min(H, W):
            raise ValueError(f"digit_size={self.digit_size} does not fit a {H}x{W} canvas")
        self.num_sequences, self.total_length = num_sequences, total_length
        self.resolution, self.num_digits, self.seed, self.color = (H, W), num_digits, seed, color

        if split not in IMAGE_SPLITS:
            raise ValueError(f"split must be one of {list(IMAGE_SPLITS)}, got {split!r}")
        self.split = split
        images = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
        lo, hi = (int(f * len(images)) for f in IMAGE_SPLITS[split])
        images = images[lo:hi]
        s = self.digit_size
        up = F.interpolate(torch.from_numpy(images)[:, None], size=(s, s), mode="bilinear", align_corners=False)
        self.bank = up[:, 0].clamp(0, 1).numpy()  # (n_images, s, s)

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, i: int) -> np.ndarray:
        """uint8 frames ``(T, H, W, 3)`` of sequence ``i``."""
        if not 0 <= i < self.num_sequences:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        (H, W), s, T = self.resolution, self.digit_size, self.total_length
        canvas = np.zeros((T, H, W, 3), np.float32)
        for _ in range(self.num_digits):
            digit = self.bank[rng.integers(len(self.bank))]
            colour = rng.uniform(0.3, 1.0, 3) if self.color else np.ones(3)
            y, x = rng.uniform(0, H - s), rng.uniform(0, W - s)
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 4.0) * min(H, W) / 64
            vy, vx = speed * np.sin(angle), speed * np.cos(angle)
            for t in range(T):
                yi, xi = int(round(y)), int(round(x))
                patch = digit[:, :, None] * colour[None, None, :]
                np.maximum(canvas[t, yi:yi + s, xi:xi + s], patch, out=canvas[t, yi:yi + s, xi:xi + s])
                y, x = y + vy, x + vx
                # bounce off the walls: mirror the position back inside and flip the velocity
                if y < 0 or y > H - s:
                    y, vy = float(np.clip(-y if y < 0 else 2 * (H - s) - y, 0, H - s)), -vy
                if x < 0 or x > W - s:
                    x, vx = float(np.clip(-x if x < 0 else 2 * (W - s) - x, 0, W - s)), -vx
        return (canvas * 255).round().astype(np.uint8)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_tensor(self.sequence(i))

