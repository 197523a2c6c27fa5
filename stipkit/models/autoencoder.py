"""MGST-AE: the multi-grained spatiotemporal auto-encoder of STIP (Sec. III-A1, Eq. 1, 3, 4; Fig. 1).

STIP has two of each: a temporal encoder/decoder (Enc_T, Dec_T) and a spatial one (Enc_S, Dec_S):
that is the STED scheme. MGIR is the decoder adding lambda x the matching encoder level before
each of its layers (Eq. 3).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

LEAK = 0.2  # Table II: LeakyReLU(0.2)


class Encoder(nn.Module):
    """Enc_T or Enc_S of Eq. 1: clip v_{t-L+1:t} -> features at every level.

    Level 0 is a 3D convolution over time with kernel (L, 1, 1) -- which is exactly a 1x1
    convolution over the L frames stacked along channels, oldest first, and is written so here.
    Levels 1..N are Table II's downsampling layers (3x3, stride 2, padding 1, LeakyReLU 0.2).
    """

    def __init__(self, in_channels: int, hidden: int, clip_length: int, num_downsample: int):
        super().__init__()
        self.clip = nn.Conv2d(in_channels * clip_length, hidden, kernel_size=1)
        self.down = nn.ModuleList(
            nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1) for _ in range(num_downsample))

    def forward(self, clip: list[torch.Tensor]) -> list[torch.Tensor]:
        x = F.leaky_relu_(self.clip(torch.cat(clip, 1)), LEAK)
        levels = [x]
        for layer in self.down:
            x = F.leaky_relu(layer(x), LEAK, inplace=True)
            levels.append(x)
        return levels  # [e_0, e_1, ..., e_N]; e_N is T_E / S_E fed to the memory


class Decoder(nn.Module):
    """Dec_T or Dec_S of Eq. 3: N upsampling layers (3x3 deconvolution, stride 2; Table II UL).

    Eq. 3: ``D^l = Dec^l(D^{l-1} + lambda * E^{-l})`` for l = 1..N, where E^{-l} is the l-th
    encoder level counted from the deepest (E^{-1} = e_N, ..., E^{-N} = e_1).
    *Departures* of the official code: it skips the l = 1 recall (``recall_deepest=False``) and
    has no LeakyReLU after the last layer (``last_act=False``).
    """

    def __init__(self, hidden: int, num_downsample: int, last_act: bool = True):
        super().__init__()
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(hidden, hidden, kernel_size=3, stride=2, padding=1, output_padding=1)
            for _ in range(num_downsample))
        self.last_act = last_act

    def forward(self, x: torch.Tensor, recall: list[torch.Tensor] | None = None,
                weight: float = 0.1, recall_deepest: bool = True) -> torch.Tensor:
        n = len(self.up)
        for l, layer in enumerate(self.up, start=1):
            if recall is not None and (l > 1 or recall_deepest):
                x = torch.add(x, recall[-l], alpha=weight)   # MGIR: + lambda * E^{-l}
            x = layer(x)
            if l < n or self.last_act:
                x = F.leaky_relu(x, LEAK, inplace=True)
        return x
