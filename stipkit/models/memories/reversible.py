"""Reversible predictive module of CrevNet (Yu et al., ICLR 2020, Sec. 3.2)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State


class ReversiblePM(Memory):
    r"""One reversible predictive module: one layer of CrevNet's predictor, at time step t.

    The unit's input is two halves, :math:`x = [x_1, x_2]`, each ``hidden`` channels wide. A
    ConvRNN reads :math:`x_1`, an attention module turns its hidden state into a gate, and the
    gate couples the hidden state into :math:`x_2` (CrevNet Sec. 3.2); the halves then swap, so
    that the unit above updates the other half:

    .. math::
        h_t = \mathrm{ConvRNN}(x_1, h_{t-1}) \qquad
        g_t = \sigma(W_3 * \mathrm{ReLU}(\mathrm{GN}(W_2 * \mathrm{ReLU}(\mathrm{GN}(W_1 * h_t)))))

    .. math::
        \hat{x}_2 = (1 - g_t) \odot x_2 + g_t \odot h_t \qquad x_{out} = [\hat{x}_2, x_1]

    Given the recurrent states, the mapping is invertible (:meth:`inverse`): :math:`x_1` is
    the second half of :math:`x_{out}`, from which :math:`h_t, g_t` are recomputed, and
    :math:`x_2 = (\hat{x}_2 - g_t \odot h_t) / (1 - g_t)`.

    The ConvRNN is the authors' ``STConvLSTMCell``, an ST-LSTM-like cell, with the
    spatiotemporal memory :math:`M` zigzagging through the stack (:math:`M^{k-1}_t` from the unit
    below, the top unit's :math:`M_{t-1}` at the bottom):

    .. math::
        [i_t, f_t, \tilde{c}] = [\sigma, \sigma, \tanh](W_c * [x_1, h_{t-1}, c_{t-1}] + b_c)
        \qquad c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}

    .. math::
        [i'_t, f'_t, \tilde{m}] = [\sigma, \sigma, \tanh](W_m * [x_1, M^{k-1}_t, c_t] + b_m)
        \qquad M^k_t = f'_t \odot M^{k-1}_t + i'_t \odot \tilde{m}

    .. math::
        o_t = \sigma(W_o * [x_1, h_{t-1}, c_t, M^k_t] + b_o) \qquad
        h_t = o_t \odot \tanh(W_{1\times1} * [c_t, M^k_t] + b)

    ``conv_c`` holds :math:`W_c` (output chunks i, f, c~: the authors' ``in_gate``,
    ``remember_gate``, ``cell_gate``), ``conv_m`` :math:`W_m` (``in_gate1``, ``remember_gate1``,
    ``cell_gate1``), ``conv_o`` :math:`W_o` (``out_gate``), ``conv_cm`` the 1x1
    :math:`W_{1\times1}` (``w1``), ``att`` the attention module (:math:`W_1` 1x1, :math:`W_2`
    ``attention_kernel``, :math:`W_3` 1x1; the authors' ``att[i]``, same layer indices). Every
    state and gate has ``hidden`` channels. At hidden 128, kernel 5 (attention 3x3): 9,226,112
    parameters (8.80M; 512 of them GroupNorm affine), 2.20 G multiply-accumulates on 16x16 maps;
    Table VII: 7.08M / 1.77G.

    Authors' code: gnosisyuw/CrevNet-Traffic4cast ``layers.py`` (``STConvLSTMCell``,
    ``zig_rev_predictor``; 2D, PyTorch); tamasino52/CrevNet ``layers_3d.py`` (the 3D variant:
    Conv3d gates, and an attention of one 1x1 convolution and a sigmoid). This module follows
    the 2D code; ``tests/test_mem_reversible.py`` checks it against an export of it
    (``tests/fixtures/authors_crevnet_tiny.pt``) to 1e-5.

    Choices (where the paper is open):

    * Width: each half, and the ConvRNN in it (h, c, M, every gate), has ``hidden`` channels --
      the authors' ``zig_rev_predictor(rnn_size, rnn_size, ...)`` builds its cells at
      ``hidden_size = rnn_size``, the width of *one* half: their i-RevNet encoder's space-to-depth
      (``psi``) and channel split hand it two halves of ``rnn_size`` channels each (512 each for
      Traffic4cast), so the representation between the layers is 2 x rnn_size wide. STIP's
      encoder gives ``hidden`` channels (S_E) and its decoder reads ``hidden``, so the stack
      keeps ``hidden`` at its ends: the bottom unit zero-pads its input to two halves,
      :math:`[x_1, x_2] = [S_E, 0]` (i-RevNet's injective padding, ``injective_pad`` in the
      authors' ``utils.py``: parameter-free and left-invertible), and the top unit returns the
      half it just updated, :math:`\hat{x}_2` (the padding's left inverse, which keeps the first
      channels). Between units the input and output are 2 x hidden wide. (stipkit before
      revision 2 split ``hidden`` into two halves of hidden/2, a quarter of the authors' weights.)
    * The coupling is CrevNet's gated one, :math:`(1 - g) x_2 + g h` (invertible since
      :math:`0 < g < 1`), not i-RevNet's additive :math:`x_2 + F(x_1)` (CrevNet's autoencoder).
    * ConvRNN: the authors' cell (gates convolve concatenations; :math:`c_{t-1}` enters the
      gates, :math:`c_t` the memory's gates); no forget bias, no normalisation (none there);
      every convolution with a bias (PyTorch's default, as there). Gate kernels are
      ``filter_size`` (the authors' ``KERNEL_SIZE``: 3; Table VII's setting: 5).
    * Attention: the authors' three convolutions with GroupNorm(1, C) (a layer normalisation
      over (C, H, W) with a per-channel affine) and ReLU; the paper writes two convolutions
      around a ReLU, :math:`\phi(W_2 * \mathrm{ReLU}(W_1 * h + b_1) + b_2)`. The middle kernel is
      ``ReversibleConfig.attention_kernel`` (the authors' code: 3, a literal apart from
      ``KERNEL_SIZE``; stipkit before revision 2: filter_size).
    * h_0 = c_0 = M_0 = 0, as the authors' ``init_hidden`` and training loop.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h", "c"}``, the
    ConvRNN's hidden and cell states; ``c`` is the temporal state (as ST-LSTM's) that Alg. 1
    line 7 merges T_E into at the bottom unit and the temporal decoder reads at the top.
    :math:`M` is ``ctx.shared["M"]`` (zeros at t = 0). ``x_out`` is :math:`[\hat{x}_2, x_1]`
    (the top unit: :math:`\hat{x}_2`). Maps: the gates i_t, f_t, o_t, i'_t, f'_t and the
    attention g_t (hidden channels each).
    """

    MAPS = {"i_t": "input gate i_t of the cell c (ConvRNN)", "f_t": "forget gate f_t of c",
            "i'_t": "input gate i'_t of the memory M", "f'_t": "forget gate f'_t of M",
            "o_t": "output gate o_t (ConvRNN)",
            "g_t": "attention g_t: how much of x_2 the coupling replaces by h_t"}
    TEMPORAL = "c"
    CITE = "CrevNet Sec. 3.2"
    REVISION = 2
    REVISION_NOTE = ("revision 2 builds the cell as the authors' CrevNet code: hidden-channel halves "
                     "(was hidden/2), the input zero-padded to two halves at the bottom unit and "
                     "the updated half read out at the top, the attention's middle kernel 3 (was "
                     "filter_size), state keys h, c with c temporal (was T = [h, c])")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "Reversible-PM"
    TABLE7_ROW = 6
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("coupling",
         "CrevNet's gated coupling around a ConvRNN and attention",
         ("x̂_2 = (1-g)x_2 + g·h, invertible; each half and the ConvRNN hidden wide (128 at "
          "hidden 128, as the authors' code)"),
         "-"),
        ("stack ends",
         ("CrevNet's i-RevNet encoder hands the predictor two halves; STIP's encoder gives "
          "hidden channels"),
         ("the bottom unit zero-pads S_E to [S_E, 0] (injective padding), the top unit returns "
          "the half it updated"),
         "-"),
        ("attention",
         ("two convolutions around a ReLU (Sec. 3.2); the authors' code: 1×1, 3×3, 1×1 with "
          "GroupNorm and ReLU"),
         "the code's, middle kernel 3",
         "model.memory.attention_kernel"),
    )
    WHY_DIFFERENT = ("the authors' cell (gnosisyuw/CrevNet-Traffic4cast layers.py) at this "
                     "setting (128-channel halves, 5×5 gate kernels for their KERNEL_SIZE, the "
                     "attention's 3×3) has 9,226,112 parameters, as stipkit's (8.80M without "
                     "GroupNorm's 512); their KERNEL_SIZE 3 gives 3.30M. Table VII's 7.08M is not "
                     "rebuilt from that code (it equals the six 5×5 gate convolutions, the 1×1 "
                     "and a 1×1 attention without the output gate, unconfirmed); STRPM's "
                     "re-implementation is not published.")
    AUTHORS_PARAMS_M = (8.7982, "gnosisyuw/CrevNet-Traffic4cast layers.py (golden test)")

    def __init__(self, hidden: int, filter_size: int = 5, attention_kernel: int = 3, *,
                 pad_input: bool = False, read_out: bool = False):
        super().__init__()
        c, k, pad = hidden, filter_size, filter_size // 2
        self.width, self.pad_input, self.read_out = c, pad_input, read_out
        self.conv_c = nn.Conv2d(3 * c, 3 * c, k, padding=pad)  # W_c on [x_1, h, c]
        self.conv_m = nn.Conv2d(3 * c, 3 * c, k, padding=pad)  # W_m on [x_1, M, c_t]
        self.conv_o = nn.Conv2d(4 * c, c, k, padding=pad)      # W_o on [x_1, h, c_t, M_t]
        self.conv_cm = nn.Conv2d(2 * c, c, 1)                  # W_1x1 on [c_t, M_t]
        ak = attention_kernel
        self.att = nn.Sequential(nn.Conv2d(c, c, 1), nn.GroupNorm(1, c), nn.ReLU(),
                                 nn.Conv2d(c, c, ak, padding=ak // 2), nn.GroupNorm(1, c),
                                 nn.ReLU(), nn.Conv2d(c, c, 1), nn.Sigmoid())

    @classmethod
    def from_config(cls, cfg, *, pad_input: bool = True, read_out: bool = True) -> "ReversiblePM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (section: ``ReversibleConfig``);
        by default a whole one-unit stack (it pads its input and reads out one half)."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.attention_kernel,
                   pad_input=pad_input, read_out=read_out)

    @classmethod
    def stack(cls, cfg) -> list["ReversiblePM"]:
        """``cfg.num_layers`` units: the bottom one pads S_E to two halves, the top one returns
        one half; in between, the two halves (2 x hidden channels) go up."""
        n = cfg.num_layers
        return [cls.from_config(cfg, pad_input=k == 0, read_out=k == n - 1) for k in range(n)]

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.width, *x.shape[2:])

    def init_state(self, x: torch.Tensor) -> State:
        """h_0 = c_0 = 0."""
        return {"h": self._zeros(x), "c": self._zeros(x)}

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0 = 0: what the bottom unit reads at the first step."""
        return {"M": self._zeros(x)}

    def cell(self, x1: torch.Tensor, state: State, m: torch.Tensor):
        """The ConvRNN: (h_t, c_t, M_t, gates)."""
        h, c = state["h"], state["c"]
        i, f, g = self.conv_c(torch.cat([x1, h, c], dim=1)).chunk(3, dim=1)
        i, f = torch.sigmoid(i), torch.sigmoid(f)
        c = f * c + i * torch.tanh(g)                                     # c_t
        i2, f2, g2 = self.conv_m(torch.cat([x1, m, c], dim=1)).chunk(3, dim=1)
        i2, f2 = torch.sigmoid(i2), torch.sigmoid(f2)
        m = f2 * m + i2 * torch.tanh(g2)                                  # M_t^k
        o = torch.sigmoid(self.conv_o(torch.cat([x1, h, c, m], dim=1)))   # o_t
        h = o * torch.tanh(self.conv_cm(torch.cat([c, m], dim=1)))        # h_t
        return h, c, m, {"i_t": i, "f_t": f, "i'_t": i2, "f'_t": f2, "o_t": o}

    def _halves(self, x: torch.Tensor):
        if self.pad_input:  # [S_E, 0]: the injective padding
            return x, torch.zeros_like(x)
        return x.chunk(2, dim=1)

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        x1, x2 = self._halves(x)
        h, c, m, gates = self.cell(x1, state, ctx.shared["M"])
        g = self.att(h)                                                   # g_t
        x2 = (1 - g) * x2 + g * h                                         # the coupling
        ctx.shared["M"] = m                                               # up the stack / to t+1
        out = x2 if self.read_out else torch.cat([x2, x1], dim=1)         # swap (top: one half)
        return out, {"h": h, "c": c}, {**gates, "g_t": g}

    def inverse(self, x_out: torch.Tensor, state: State, ctx: Context) -> torch.Tensor:
        """The coupling's inverse: x from the two halves ``x_out`` = :math:`[\\hat{x}_2, x_1]`
        (2 x hidden channels, also for the top unit, whose forward returns only
        :math:`\\hat{x}_2`), given the ``state`` and ``ctx.shared["M"]`` that :meth:`forward`
        read. The bottom unit returns :math:`x_1` (its input; :math:`x_2` was the padding)."""
        x2, x1 = x_out.chunk(2, dim=1)
        h = self.cell(x1, state, ctx.shared["M"])[0]
        g = self.att(h)
        x2 = (x2 - g * h) / (1 - g)
        return x1 if self.pad_input else torch.cat([x1, x2], dim=1)
