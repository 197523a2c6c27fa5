"""The discriminator of STIP/STRPM (Table I "8 x DL_D, FC"; Table II), used by Eq. 8 and Eq. 10."""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


class Discriminator(nn.Module):
    """D(v): per-frame logit of being real (D's probability is its sigmoid), plus the last layer's
    features D_l(v) (Eq. 8).

    Works on patched frames, like the predictor: PixelUnshuffle(patch), then
    ``cfg.disc_layers`` = floor(log2(H/patch)) blocks of [3x3 conv stride 2, GroupNorm(4),
    LeakyReLU(0.2)], flatten, fully-connected; the sigmoid is left to the losses
    (``binary_cross_entropy_with_logits``: stable, and allowed under mixed precision, where
    CUDA's autocast refuses ``binary_cross_entropy`` on probabilities). *Departure*: the
    official code uses ReLU (``disc_activation="relu"``). The FC input size is computed from the real output size (the
    official code derives it from the width only, which agrees for its three datasets).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.patchify = nn.PixelUnshuffle(cfg.patch)
        act = (lambda: nn.LeakyReLU(0.2)) if cfg.disc_activation == "leaky_relu" else nn.ReLU
        layers, c = [], cfg.frame_channels
        h, w = cfg.height // cfg.patch, cfg.width // cfg.patch
        for _ in range(cfg.disc_layers):
            layers += [nn.Conv2d(c, cfg.disc_hidden, 3, stride=2, padding=1),
                       nn.GroupNorm(4, cfg.disc_hidden), act()]
            c, h, w = cfg.disc_hidden, (h + 1) // 2, (w + 1) // 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * h * w, 1)
        self.to(memory_format=torch.channels_last)  # oneDNN's preferred layout (see STIP)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, T, C, H, W) in [0, 1] -> (logits (B, T), features (B, T, F))."""
        b, t = frames.shape[:2]
        x = self.patchify(frames.flatten(0, 1)).contiguous(memory_format=torch.channels_last)
        f = self.features(x).contiguous().flatten(1)  # (C, H, W) order, as the official code
        return self.fc(f).view(b, t), f.view(b, t, -1)
