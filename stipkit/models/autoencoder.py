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

    def __init__(self, in_channels: int, hidden: int, clip_length: int, num_downsample: int,
                 slope: float = LEAK):
        super().__init__()
        self.slope = slope  # the LeakyReLU's negative slope (0: ReLU, STRPM's code)
        self.clip = nn.Conv2d(in_channels * clip_length, hidden, kernel_size=1)
        self.down = nn.ModuleList(
            nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1) for _ in range(num_downsample))

    @torch.no_grad()
    def init_copy(self, channels: int, gain: float) -> None:
        """Copy-last initialisation (``ModelConfig.init="copy_last"`` with MGIR on, STIP's
        ``"recall"`` route, ``ModelConfig.copy_route``), encoder side (Eq. 1).

        The first ``channels`` maps of e_0 become the clip's last frame v_t (its ``channels``
        patched channels), and the first ``4 * channels`` maps of e_1 its 2x2 space-to-depth,
        times ``gain``: e_1[4c + 2i + j](y, x) = gain * v_t[c](2y + i, 2x + j). Frames are >= 0,
        so the LeakyReLUs pass them unchanged. Every other map keeps PyTorch's initialisation;
        the second downsampling layer reads the scaled maps with its weights divided by ``gain``.
        """
        c4 = 4 * channels
        clip_length = self.clip.in_channels // channels
        self.clip.weight[:channels].zero_()
        self.clip.bias[:channels].zero_()
        for c in range(channels):
            self.clip.weight[c, (clip_length - 1) * channels + c] = 1.0
        down = self.down[0]
        down.weight[:c4].zero_()
        down.bias[:c4].zero_()
        for c, i, j in _blocks(channels):
            down.weight[4 * c + 2 * i + j, c, i + 1, j + 1] = gain
        if len(self.down) > 1:
            self.down[1].weight[:, :c4] /= gain

    def forward(self, clip: list[torch.Tensor]) -> list[torch.Tensor]:
        x = F.leaky_relu_(self.clip(torch.cat(clip, 1)), self.slope)
        levels = [x]
        for layer in self.down:
            x = F.leaky_relu(layer(x), self.slope, inplace=True)
            levels.append(x)
        return levels  # [e_0, e_1, ..., e_N]; e_N is T_E / S_E fed to the memory


class Decoder(nn.Module):
    """Dec_T or Dec_S of Eq. 3: N upsampling layers (3x3 deconvolution, stride 2; Table II UL).

    Eq. 3: ``D^l = Dec^l(D^{l-1} + lambda * E^{-l})`` for l = 1..N, where E^{-l} is the l-th
    encoder level counted from the deepest (E^{-1} = e_N, ..., E^{-N} = e_1).
    *Departures* of the official code: it skips the l = 1 recall (``recall_deepest=False``) and
    has no LeakyReLU after the last layer (``last_act=False``).
    """

    def __init__(self, hidden: int, num_downsample: int, last_act: bool = True,
                 slope: float = LEAK):
        super().__init__()
        self.slope = slope  # the LeakyReLU's negative slope (0: ReLU, STRPM's code)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(hidden, hidden, kernel_size=3, stride=2, padding=1, output_padding=1)
            for _ in range(num_downsample))
        self.last_act = last_act

    @torch.no_grad()
    def init_copy(self, channels: int, weight: float) -> None:
        """Copy-last initialisation (``ModelConfig.init="copy_last"`` with MGIR on, STIP's
        ``"recall"`` route, ``ModelConfig.copy_route``), decoder side (Eq. 3).

        The layer before the last one writes zeros into the first ``4 * channels`` maps
        (weights and biases zeroed there; they still receive gradients), and the last layer
        reads those maps -- now only the recalled lambda * E^{-N} -- as a depth-to-space into its
        first ``channels`` outputs, with nothing else reaching them. With
        :meth:`Encoder.init_copy` at ``gain = 1 / weight`` they carry v_t exactly. The last
        layer's weights from those maps into its other outputs are scaled by ``weight`` so that
        they see the recall at the default scale.
        """
        if len(self.up) < 2:
            raise ValueError("copy-last initialisation needs at least two upsampling layers")
        c4 = 4 * channels
        prev, last = self.up[-2], self.up[-1]  # ConvTranspose2d weights are (in, out, kh, kw)
        prev.weight[:, :c4].zero_()
        prev.bias[:c4].zero_()
        last.weight[:c4] *= weight
        last.weight[:, :channels].zero_()
        last.bias[:channels].zero_()
        for c, i, j in _blocks(channels):
            last.weight[4 * c + 2 * i + j, c, i + 1, j + 1] = 1.0

    def forward(self, x: torch.Tensor, recall: list[torch.Tensor] | None = None,
                weight: float = 0.1, recall_deepest: bool = True) -> torch.Tensor:
        n = len(self.up)
        for l, layer in enumerate(self.up, start=1):
            if recall is not None and (l > 1 or recall_deepest):
                x = torch.add(x, recall[-l], alpha=weight)   # MGIR: + lambda * E^{-l}
            x = layer(x)
            if l < n or self.last_act:
                x = F.leaky_relu(x, self.slope, inplace=True)
        return x


def _blocks(channels: int):
    """(c, i, j) for every channel c and offset (i, j) of a 2x2 block: the 4 * channels maps of a
    space-to-depth. A 3x3 stride-2 convolution with padding 1 reads input (2y + i, 2x + j) at
    kernel tap (i + 1, j + 1) for output (y, x); the matching transposed convolution writes back
    through the same tap."""
    return [(c, i, j) for c in range(channels) for i in range(2) for j in range(2)]
