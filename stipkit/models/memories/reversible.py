"""Reversible predictive module of CrevNet (Yu et al., ICLR 2020, Sec. 3.2)."""
from __future__ import annotations

import torch
from torch import nn

from ...config import ConfigError
from .base import Context, Memory, State


class ReversiblePM(Memory):
    r"""One reversible predictive module: one layer of CrevNet's predictor, at time step t.

    The input is split channel-wise into halves, :math:`x = [x_1, x_2]`. A ConvRNN reads
    :math:`x_1`, an attention module turns its hidden state into a gate, and the gate couples
    the hidden state into :math:`x_2` (CrevNet Sec. 3.2); the halves then swap, so that the
    unit above updates the other half:

    .. math::
        h_t = \mathrm{ConvRNN}(x_1, h_{t-1}) \qquad
        g_t = \sigma(W_3 * \mathrm{ReLU}(\mathrm{GN}(W_2 * \mathrm{ReLU}(\mathrm{GN}(W_1 * h_t)))))

    .. math::
        \hat{x}_2 = (1 - g_t) \odot x_2 + g_t \odot h_t \qquad x_{out} = [\hat{x}_2, x_1]

    Given the recurrent states, the mapping is invertible (:meth:`inverse`): :math:`x_1` is
    the second half of :math:`x_{out}`, from which :math:`h_t, g_t` are recomputed, and
    :math:`x_2 = (\hat{x}_2 - g_t \odot h_t) / (1 - g_t)`.

    The ConvRNN is CrevNet's ST-LSTM-like cell (official code), with the spatiotemporal memory
    :math:`M` zigzagging through the stack (:math:`M^{k-1}_t` from the unit below, the top
    unit's :math:`M_{t-1}` at the bottom):

    .. math::
        [i_t, f_t, \tilde{c}] = [\sigma, \sigma, \tanh](W_c * [x_1, h_{t-1}, c_{t-1}] + b_c)
        \qquad c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}

    .. math::
        [i'_t, f'_t, \tilde{m}] = [\sigma, \sigma, \tanh](W_m * [x_1, M^{k-1}_t, c_t] + b_m)
        \qquad M^k_t = f'_t \odot M^{k-1}_t + i'_t \odot \tilde{m}

    .. math::
        o_t = \sigma(W_o * [x_1, h_{t-1}, c_t, M^k_t] + b_o) \qquad
        h_t = o_t \odot \tanh(W_{1\times1} * [c_t, M^k_t] + b)

    ``conv_c`` holds :math:`W_c` (output chunks i, f, c~), ``conv_m`` :math:`W_m` (i', f', m~),
    ``conv_o`` :math:`W_o`, ``conv_cm`` the 1x1 :math:`W_{1\times1}`, ``att`` the attention
    module (:math:`W_1` 1x1, :math:`W_2` filter_size, :math:`W_3` 1x1). Every state and gate has
    hidden/2 channels. At hidden 128, kernel 5 (64-channel halves): 2,372,544 parameters,
    0.57 G multiply-accumulates on 16x16 maps; Table VII: 7.08M / 1.77G (see below).

    Choices (where the paper is open):

    * One unit is one layer of CrevNet's predictor (one coupling, then the swap), so a stack
      of K units is CrevNet's predictor with K layers; the ConvRNN works on hidden/2 channels,
      as CrevNet's works on the width of one half. STIP's memory input has hidden channels, so
      at Table VII's setting the halves have 64 and every convolution a quarter of the weights
      it has with 128-channel halves (this cell there: 9.05M / 2.26G). Table VII's 7.08M is
      close to the cell's six gate convolutions alone at 128-channel halves (7.03M): STRPM's
      re-implementation is not published.
    * The coupling is CrevNet's gated one, :math:`(1 - g) x_2 + g h` (invertible since
      :math:`0 < g < 1`), not i-RevNet's additive :math:`x_2 + F(x_1)` (CrevNet's autoencoder).
    * ConvRNN: the official code's cell (gates convolve concatenations; :math:`c_{t-1}` enters
      the gates, :math:`c_t` the memory's gates); no forget bias, no normalisation (none there);
      every convolution with a bias (PyTorch's default, as there); filter_size kernels (the
      official code: 3).
    * Attention: the official code's three convolutions with GroupNorm(1, C) (a layer
      normalisation over (C, H, W) with a per-channel affine) and ReLU; the paper writes two
      convolutions around a ReLU, :math:`\phi(W_2 * \mathrm{ReLU}(W_1 * h + b_1) + b_2)`. The
      middle kernel is filter_size (official: 3).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"T": [h, c]}``,
    the ConvRNN's hidden and cell states concatenated (hidden channels): the temporal state
    Alg. 1 line 7 merges T_E into at the bottom unit and the temporal decoder reads at the top.
    :math:`M` is ``ctx.shared["M"]`` (hidden/2 channels; zeros at t = 0). ``x_out`` is
    :math:`[\hat{x}_2, x_1]`. Maps: the gates i_t, f_t, o_t, i'_t, f'_t and the attention g_t
    (hidden/2 channels each).
    """

    MAPS = {"i_t": "input gate i_t of the cell c (ConvRNN)", "f_t": "forget gate f_t of c",
            "i'_t": "input gate i'_t of the memory M", "f'_t": "forget gate f'_t of M",
            "o_t": "output gate o_t (ConvRNN)",
            "g_t": "attention g_t: how much of x_2 the coupling replaces by h_t"}
    TEMPORAL = "T"
    CITE = "CrevNet Sec. 3.2"

    def __init__(self, hidden: int, filter_size: int = 5):
        super().__init__()
        if hidden % 2:
            raise ConfigError(f"ModelConfig.hidden={hidden!r} is invalid: the reversible "
                              "memory splits it into two halves, so it must be even")
        c, k, pad = hidden // 2, filter_size, filter_size // 2
        self.half = c
        self.conv_c = nn.Conv2d(3 * c, 3 * c, k, padding=pad)  # W_c on [x_1, h, c]
        self.conv_m = nn.Conv2d(3 * c, 3 * c, k, padding=pad)  # W_m on [x_1, M, c_t]
        self.conv_o = nn.Conv2d(4 * c, c, k, padding=pad)      # W_o on [x_1, h, c_t, M_t]
        self.conv_cm = nn.Conv2d(2 * c, c, 1)                  # W_1x1 on [c_t, M_t]
        self.att = nn.Sequential(nn.Conv2d(c, c, 1), nn.GroupNorm(1, c), nn.ReLU(),
                                 nn.Conv2d(c, c, k, padding=pad), nn.GroupNorm(1, c), nn.ReLU(),
                                 nn.Conv2d(c, c, 1), nn.Sigmoid())

    @classmethod
    def from_config(cls, cfg) -> "ReversiblePM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (section: ``ReversibleConfig``)."""
        return cls(cfg.hidden, cfg.filter_size)

    def init_state(self, x: torch.Tensor) -> State:
        """h_0 = c_0 = 0."""
        return {"T": torch.zeros_like(x)}

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0 = 0: what the bottom unit reads at the first step."""
        return {"M": x.new_zeros(x.shape[0], self.half, *x.shape[2:])}

    def cell(self, x1: torch.Tensor, state: State, m: torch.Tensor):
        """The ConvRNN: (h_t, c_t, M_t, gates)."""
        h, c = state["T"].chunk(2, dim=1)
        i, f, g = self.conv_c(torch.cat([x1, h, c], dim=1)).chunk(3, dim=1)
        i, f = torch.sigmoid(i), torch.sigmoid(f)
        c = f * c + i * torch.tanh(g)                                     # c_t
        i2, f2, g2 = self.conv_m(torch.cat([x1, m, c], dim=1)).chunk(3, dim=1)
        i2, f2 = torch.sigmoid(i2), torch.sigmoid(f2)
        m = f2 * m + i2 * torch.tanh(g2)                                  # M_t^k
        o = torch.sigmoid(self.conv_o(torch.cat([x1, h, c, m], dim=1)))   # o_t
        h = o * torch.tanh(self.conv_cm(torch.cat([c, m], dim=1)))        # h_t
        return h, c, m, {"i_t": i, "f_t": f, "i'_t": i2, "f'_t": f2, "o_t": o}

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        x1, x2 = x.chunk(2, dim=1)
        h, c, m, gates = self.cell(x1, state, ctx.shared["M"])
        g = self.att(h)                                                   # g_t
        x2 = (1 - g) * x2 + g * h                                         # the coupling
        ctx.shared["M"] = m                                               # up the stack / to t+1
        return torch.cat([x2, x1], dim=1), {"T": torch.cat([h, c], dim=1)}, {**gates, "g_t": g}

    def inverse(self, x_out: torch.Tensor, state: State, ctx: Context) -> torch.Tensor:
        """x from x_out, given the ``state`` and ``ctx.shared["M"]`` that :meth:`forward` read."""
        x2, x1 = x_out.chunk(2, dim=1)
        h = self.cell(x1, state, ctx.shared["M"])[0]
        g = self.att(h)
        return torch.cat([x1, (x2 - g * h) / (1 - g)], dim=1)
