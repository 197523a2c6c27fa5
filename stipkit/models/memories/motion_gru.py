"""MotionRNN (Wu et al., CVPR 2021): MotionGRU units between PredRNN's ST-LSTM layers, and the
motion highway.

The paper is not on disk: its equations below are as remembered (numbers included) and checked
against the structure of the authors' public code (thuml/MotionRNN), which is read, not copied.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Memory, State, lerp
from .stlstm import STLSTM


def neighbour_warp(x: torch.Tensor, flow: torch.Tensor, k: int) -> torch.Tensor:
    r"""Bilinear samples of ``x`` (B, C, h, w) at the k x k neighbours of every position, each
    moved by its own offset: sample n at p is :math:`x(p + p_n + F_n(p))`.

    ``flow`` is (B, 2k², h, w): channels [0, k²) the vertical offsets (rows), [k², 2k²) the
    horizontal ones (columns), in pixels; neighbour n = i k + j (row-major) sits at
    :math:`p_n = (i - k//2, j - k//2)`. Positions outside the map read zero (bilinear weights
    onto the outside pixels are lost). Returns (B, k², C, h, w); zero flow and k = 1 give ``x``.
    """
    b, c, h, w = x.shape
    n, r = k * k, k // 2
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
    grid = torch.arange(k, device=x.device) - r
    dy = grid.repeat_interleave(k).to(x.dtype).view(1, n, 1, 1)    # p_n, rows
    dx = grid.repeat(k).to(x.dtype).view(1, n, 1, 1)               # p_n, columns
    y = rows + dy + flow[:, :n]                                    # (B, N, h, w), pixel units
    xx = cols + dx + flow[:, n:]
    # pixel centre -> [-1, 1] (align_corners=False: pixel i covers [i, i + 1) of the map)
    g = torch.stack([(2 * xx + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    src = x.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
    out = F.grid_sample(src, g.reshape(b * n, h, w, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.view(b, n, c, h, w)


class MotionGRU(Memory):
    r"""The MotionGRU unit between ST-LSTM layers l and l+1 (MotionRNN Sec. 3.2, Eq. 2-5 as
    remembered). It reads :math:`H_t^l` (the layer below's output) and its own motion states
    :math:`F_{t-1}^l` (motion filter) and :math:`D_{t-1}^l` (motion trend), carried over time.
    Enc is a stride-2 convolution to a quarter of the hidden width (:math:`E = Enc(H_t^l)`).

    Transient variation, a ConvGRU on the motion filter (Eq. 2):

    .. math::
        u_t = \sigma(W_u * [E, F_{t-1}^l]) \qquad r_t = \sigma(W_r * [E, F_{t-1}^l]) \qquad
        z_t = \tanh(W_z * [E, r_t \odot F_{t-1}^l])

    .. math::
        F'^l_t = u_t \odot z_t + (1 - u_t) \odot F_{t-1}^l

    Trending momentum (Eq. 3), with step :math:`\alpha` (``momentum``, 0.5), and the motion
    filter as their sum (Eq. 4):

    .. math::
        D_t^l = D_{t-1}^l + \alpha (F_{t-1}^l - D_{t-1}^l) \qquad F_t^l = F'^l_t + D_t^l

    Motion-based transition, output gate and merge (Eq. 5):

    .. math::
        m_t = \sigma(W_{m} * E) \qquad
        H'_t = \mathrm{Warp}(E, F_t^l, m_t) = \textstyle\sum_n W_n \,
        m_{t,n} \odot E(p + p_n + F_{t,n}^l)

    .. math::
        g_t = \sigma(W_g * [Dec(H'_t), H_t^l]) \qquad
        X_t^l = g_t \odot Dec(H'_t) + (1 - g_t) \odot H_t^l

    :math:`X_t^l` goes up as layer l+1's input. The warp samples E bilinearly
    (:func:`neighbour_warp`, ``F.grid_sample``) at the k x k neighbours :math:`p_n` of every
    position, each moved by its own offset: :math:`F_t^l` has 2k² channels (k = ``neighbourhood``,
    3), the mask :math:`m_t` one per neighbour, and the W_n (``conv_warp``, a 1x1 convolution of
    the k² masked samples stacked on channels) mix them back to E's width: a deformable k x k
    convolution. Dec is a 4x4 stride-2 transposed convolution back to the hidden width.

    Weights: ``enc`` (filter_size, stride 2, hidden -> C' = max(1, hidden // 4)); ``conv_ur``
    (3x3, [E, F] -> u, r chunks) and ``conv_z`` (3x3); ``conv_m`` (3x3, E -> k² masks);
    ``conv_warp`` (1x1, k² C' -> C', no bias); ``dec``; ``conv_g`` (filter_size, [Dec(H'), H]
    -> g). At hidden 16, kernel 5, k = 3: 26,683 parameters; at hidden 128: 1,023,595.

    Choices (where the paper is open or the official code differs):

    * Enc/Dec as the official code: a filter_size convolution of stride 2 to hidden // 4
      channels, and a 4x4 transposed convolution of stride 2; on an odd map the decoder's extra
      row/column is cropped (the official code needs even maps).
    * The GRU's and the mask's kernels are 3x3 (official); g_t's is filter_size (official; the
      paper's W may be 1x1, as remembered). Every convolution has a bias but ``conv_warp``.
    * Warp: a k x k neighbourhood of offsets per position (official; the paper's Warp is
      bilinear sampling, as remembered), bilinear ``grid_sample`` at pixel centres with zeros
      outside (the official code clamps coordinates to a one-pixel zero border).
    * F_0 = D_0 = 0 (Alg. 1 line 3; the official code draws them from a Xavier normal).
    * PyTorch's default initialisation (the official code zeroes the GRU's and the mask's
      weights and registers a backward hook meant to scale their gradients by 0.1, which
      has no effect).

    Memory interface: the state is ``{"F", "D"}`` (:math:`F_t^l, D_t^l`, 2k² channels at half
    the map size), carried over time; ``TEMPORAL`` is None (a MotionGRU is never the bottom or
    top unit). It leaves ``ctx.shared["M"]`` alone: the ST-LSTM above reads the one below's M.
    Exposed maps: the gate g_t and the motion filter's length per neighbour, |F_t^l|.
    """

    MAPS = {"g_t": "MotionGRU output gate g_t (MotionRNN Eq. 5)",
            "|F_t|": "motion filter length |F_t| per neighbour, in pixels (MotionRNN Eq. 4)"}
    TEMPORAL = None
    CITE = "MotionRNN (Wu et al., 2021) Eq. 2-5"

    def __init__(self, hidden: int, filter_size: int = 5, neighbourhood: int = 3,
                 momentum: float = 0.5):
        super().__init__()
        k, pad = filter_size, filter_size // 2
        self.hidden, self.neighbourhood, self.momentum = hidden, neighbourhood, momentum
        n = neighbourhood * neighbourhood
        self.width = c = max(1, hidden // 4)          # C': Enc's width
        self.motion = 2 * n                           # F's and D's channels
        self.enc = nn.Conv2d(hidden, c, k, stride=2, padding=pad)              # Enc
        self.conv_ur = nn.Conv2d(c + self.motion, 2 * self.motion, 3, padding=1)  # W_u, W_r
        self.conv_z = nn.Conv2d(c + self.motion, self.motion, 3, padding=1)       # W_z
        self.conv_m = nn.Conv2d(c, n, 3, padding=1)                               # W_m
        self.conv_warp = nn.Conv2d(n * c, c, 1, bias=False)                       # W_n
        self.dec = nn.ConvTranspose2d(c, hidden, 4, stride=2, padding=1)          # Dec
        self.conv_g = nn.Conv2d(2 * hidden, hidden, k, padding=pad)               # W_g

    @classmethod
    def from_config(cls, cfg) -> "MotionGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (section: ``MotionRNNConfig``)."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.neighbourhood, cfg.memory.momentum)

    def init_state(self, x: torch.Tensor) -> State:
        """F_0 = D_0 = 0, at Enc's (half) map size."""
        b, _, h, w = x.shape
        zeros = x.new_zeros(b, self.motion, (h + 1) // 2, (w + 1) // 2)
        return {"F": zeros, "D": zeros}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        f_prev, d_prev = state["F"], state["D"]
        e = self.enc(x)                                                  # Enc(H_t^l)
        u, r = torch.sigmoid(self.conv_ur(torch.cat([e, f_prev], 1))).chunk(2, dim=1)
        z = torch.tanh(self.conv_z(torch.cat([e, r * f_prev], 1)))
        f_trans = lerp(f_prev, z, u)                               # F'_t (Eq. 2)
        d = lerp(d_prev, f_prev, self.momentum)                    # D_t (Eq. 3)
        f = f_trans + d                                                  # F_t (Eq. 4)
        m = torch.sigmoid(self.conv_m(e))                                # m_t
        samples = neighbour_warp(e, f, self.neighbourhood) * m.unsqueeze(2)
        warped = self.conv_warp(samples.flatten(1, 2))                   # H'_t
        dec = self.dec(warped)[..., :x.shape[-2], :x.shape[-1]]          # Dec(H'_t)
        g = torch.sigmoid(self.conv_g(torch.cat([dec, x], 1)))           # g_t
        out = lerp(x, dec, g)                                      # X_t^l (Eq. 5)
        n = self.neighbourhood ** 2
        length = torch.sqrt(f[:, :n].square() + f[:, n:].square())
        return out, {"F": f, "D": d}, {"g_t": g, "|F_t|": length}


class MotionRNN(STLSTM):
    r"""MotionRNN on PredRNN (Wu et al., CVPR 2021, Sec. 3.1, Eq. 1 as remembered): a stack of
    ST-LSTM layers (:class:`~stipkit.models.memories.stlstm.STLSTM`, PredRNN Eq. 3, unchanged)
    with a :class:`MotionGRU` between every two consecutive layers, and the motion highway:

    .. math::
        X_t^l, F_t^l, D_t^l = \mathrm{MotionGRU}(H_t^l, F_{t-1}^l, D_{t-1}^l) \qquad
        H_t^{l+1}, C_t^{l+1}, M_t^{l+1} = \mathrm{ST\text{-}LSTM}(X_t^l, H_{t-1}^{l+1},
        C_{t-1}^{l+1}, M_t^l)

    .. math::
        H_t^{l+1} \leftarrow H_t^{l+1} + (1 - o_t) \odot H_t^l

    where :math:`o_t` is layer l+1's own output gate: the highway bypasses the MotionGRU and
    brings back the content the warp did not move. This class is one such ST-LSTM layer; its
    ``stack(cfg)`` is the whole memory: ST-LSTM, MotionGRU, ST-LSTM, ..., ST-LSTM (L ST-LSTMs,
    L - 1 MotionGRUs).

    Choices:

    * MotionGRUs between *every* two consecutive layers (the paper's Fig. 2 and the official
      code), none above the top layer; a one-layer stack is a plain ST-LSTM (with highway).
    * The highway also on the bottom layer, from the stack's input (STIP's S_E, at the hidden
      width), as the official code does from a 1x1 projection of the frame; Eq. 1 writes it
      for the layers above a MotionGRU. ``MotionRNNConfig.highway=False`` drops it everywhere.
    * The highway reads the output of the ST-LSTM below through ``ctx.below`` (``below`` = 2:
      the ST-LSTM's and the MotionGRU's outputs; 1 at the bottom: the stack's input).
    * The ST-LSTM keeps its own H_t^l (with highway) as H_{t-1}^l of the next step, the
      paper's "original state transition flow"; the official code overwrites it with the
      MotionGRU's output X_t^l.
    * ST-LSTM choices as :class:`STLSTM` (``forget_bias``, 1 as PredRNN's code; no LayerNorm).

    Memory interface: as :class:`STLSTM` (state ``{"h", "c"}``, ``c`` temporal; M zigzags in
    ``ctx.shared["M"]`` through the MotionGRUs untouched); the maps are ST-LSTM's gates.
    """

    CITE = "MotionRNN (Wu et al., 2021) Eq. 1 on PredRNN Eq. 3"

    def __init__(self, hidden: int, filter_size: int = 5, forget_bias: float = 1.0,
                 highway: bool = True, below: int = 1):
        super().__init__(hidden, filter_size, forget_bias)
        self.highway = highway
        self.below = below if highway else 0   # ctx.below[0]: the highway's source

    @classmethod
    def from_config(cls, cfg, below: int = 1) -> "MotionRNN":
        """One ST-LSTM layer (section: ``MotionRNNConfig``); ``below`` = 1 at the bottom."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.forget_bias, cfg.memory.highway, below)

    @classmethod
    def stack(cls, cfg) -> list[Memory]:
        """``cfg.num_layers`` ST-LSTM layers, bottom first, a :class:`MotionGRU` between two."""
        units: list[Memory] = [cls.from_config(cfg, below=1)]
        for _ in range(cfg.num_layers - 1):
            units += [MotionGRU.from_config(cfg), cls.from_config(cfg, below=2)]
        return units

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        h, state, maps = super().forward(x, state, ctx)                  # PredRNN Eq. 3
        if self.highway:
            h = h + (1 - maps["o_t"]) * ctx.below[0]                     # Eq. 1, motion highway
            state = {**state, "h": h}
        return h, state, maps
