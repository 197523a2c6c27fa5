"""STGRU: the spatiotemporal gated recurrent unit of STIP (Sec. III-A2, Eq. 5-7, Fig. 2)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State, lerp


class STGRU(Memory):
    r"""One STGRU unit k at time step t. It keeps no hidden state, only T (temporal) and S (spatial).

    Gates (Eq. 5), from the spatial input :math:`S_t^{k-1}` and the temporal state :math:`T_{t-1}^k`:

    .. math::
        R_t = \sigma(W_{sr} * S_t^{k-1} + W_{tr} * T_{t-1}^k) \qquad
        U_t = \sigma(W_{su} * S_t^{k-1} + W_{tu} * T_{t-1}^k)

    Trend information (Eq. 6):

    .. math::
        \mathbb{T}_t^k = \tanh(W_{tt} * T_{t-1}^k + R_t \odot (W_{st} * S_t^{k-1})) \qquad
        \mathbb{S}_t^k = \tanh(W_{ss} * S_t^{k-1} + R_t \odot (W_{ts} * T_{t-1}^k))

    Update (Eq. 7):

    .. math::
        T_t^k = (1 - U_t) \odot \mathbb{T}_t^k + U_t \odot T_{t-1}^k \qquad
        S_t^k = (1 - U_t) \odot \mathbb{S}_t^k + U_t \odot S_t^{k-1}

    The four ``W_t?`` kernels are one convolution of T with 4*hidden outputs (``conv_t``), the four
    ``W_s?`` kernels one convolution of S (``conv_s``), each followed by layer normalisation over
    (C, H, W) as in the official code (Table II "Hidden Layer": 5x5, "Layer Normalization").
    Output chunks are ordered (update, trend, ->T, ->S) in both convolutions.

    Paper notes: Table II lists padding 1 for the 5x5 kernel, which would shrink the state at
    every step; the official code (and stipkit) use padding k//2. *Departure*: the official code
    adds ``update_bias = 1`` inside U_t's sigmoid (a GRU "forget bias"); the paper has none.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"T": T_{t-1}^k}``,
    the temporal state Alg. 1 line 7 merges T_E into and the temporal decoder reads from the top
    unit; the spatial stream is the input/output; the exposed maps are the gates R_t and U_t.
    STGRU needs nothing else from the stack (no shared state, no window, no lower layers).
    """

    MAPS = {"R_t": "trend gate R_t (Eq. 5)", "U_t": "update gate U_t (Eq. 5)"}
    TEMPORAL = "T"
    CITE = "Eq. 5-7"
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "STGRU"
    TABLE7_ROW = 8
    IN_PAPER_TABLE7 = True
    WHY_DIFFERENT = ("within 1 %: Table VII's figure has no normalisation parameters "
                     "(LayerNorm's, listed apart).")
    AUTHORS_PARAMS_M = (3.126, "ZhengChang467/STIPHR core/layers (STGRU), equal to stipkit's "
                               "(golden test)")

    def __init__(self, hidden: int, size: tuple[int, int], filter_size: int = 5,
                 update_bias: float = 0.0):
        super().__init__()
        self.hidden = hidden
        self.update_bias = update_bias
        pad = filter_size // 2
        self.conv_t = nn.Conv2d(hidden, 4 * hidden, filter_size, padding=pad)
        self.conv_s = nn.Conv2d(hidden, 4 * hidden, filter_size, padding=pad)
        self.norm_t = nn.LayerNorm([4 * hidden, *size])
        self.norm_s = nn.LayerNorm([4 * hidden, *size])

    @classmethod
    def from_config(cls, cfg) -> "STGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``STGRUConfig``)."""
        return cls(cfg.hidden, cfg.latent_size, cfg.filter_size, cfg.memory.update_bias)

    def init_state(self, s: torch.Tensor) -> State:
        """T_0^k = 0 (Alg. 1 line 3)."""
        return {"T": torch.zeros_like(s)}

    def forward(self, s: torch.Tensor, state: State, ctx: Context | None = None):
        t = state["T"]
        t_u, t_r, t_t, t_s = self.norm_t(self.conv_t(t)).chunk(4, dim=1)  # W_tu, W_tr, W_tt, W_ts
        s_u, s_r, s_t, s_s = self.norm_s(self.conv_s(s)).chunk(4, dim=1)  # W_su, W_sr, W_st, W_ss
        update = torch.sigmoid(t_u + s_u + self.update_bias)   # U_t  (Eq. 5)
        trend = torch.sigmoid(t_r + s_r)                        # R_t  (Eq. 5)
        t_trend = torch.tanh(t_t + trend * s_t)                 # 𝕋_t^k (Eq. 6)
        s_trend = torch.tanh(s_s + trend * t_s)                 # 𝕊_t^k (Eq. 6)
        t_new = lerp(t_trend, t, update)                  # (1-U)𝕋 + U·T   (Eq. 7)
        s_new = lerp(s_trend, s, update)                  # (1-U)𝕊 + U·S   (Eq. 7)
        return s_new, {"T": t_new}, {"R_t": trend, "U_t": update}
