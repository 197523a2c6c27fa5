"""ST-LSTM: the spatiotemporal LSTM of PredRNN (Wang et al., NeurIPS 2017, Eq. 3; TPAMI 2022), as
the authors' code builds it (thuml/predrnn-pytorch ``core/layers/SpatioTemporalLSTMCell.py``)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State


class STLSTM(Memory):
    r"""One ST-LSTM unit l at time step t (PredRNN, NeurIPS 2017, Eq. 3; Fig. 2 right), as
    ``SpatioTemporalLSTMCell.forward`` of thuml/predrnn-pytorch computes it.

    The input :math:`X_t` is the output of the unit below, :math:`H_t^{l-1}` (the stack's input
    at the bottom). The temporal memory :math:`C` is the unit's own, carried over time:

    .. math::
        i_t = \sigma(W_{xi} * X_t + W_{hi} * H_{t-1}^l) \qquad
        f_t = \sigma(W_{xf} * X_t + W_{hf} * H_{t-1}^l + b_f) \qquad
        g_t = \tanh(W_{xg} * X_t + W_{hg} * H_{t-1}^l)

    .. math::
        C_t^l = f_t \odot C_{t-1}^l + i_t \odot g_t

    The spatiotemporal memory :math:`M` zigzags: unit l reads :math:`M_t^{l-1}` from the unit
    below at the same step, and the bottom unit reads the top unit's :math:`M_{t-1}^L`:

    .. math::
        i'_t = \sigma(W'_{xi} * X_t + W_{mi} * M_t^{l-1}) \qquad
        f'_t = \sigma(W'_{xf} * X_t + W_{mf} * M_t^{l-1} + b_f) \qquad
        g'_t = \tanh(W'_{xg} * X_t + W_{mg} * M_t^{l-1})

    .. math::
        M_t^l = f'_t \odot M_t^{l-1} + i'_t \odot g'_t

    Output:

    .. math::
        o_t = \sigma(W_{xo} * X_t + W_{ho} * H_{t-1}^l + W_{co} * C_t^l + W_{mo} * M_t^l)
        \qquad H_t^l = o_t \odot \tanh(W_{1\times1} * [C_t^l, M_t^l])

    :math:`b_f` is the constant ``forget_bias`` (1, the code's ``_forget_bias``). With
    ``gate_bias=True`` every gate also gets a learned bias (Eq. 3's b), on ``conv_x``.

    Weights, grouped by what they read (a convolution of a concatenation is the sum of the
    convolutions of its parts), with the code's names and chunk order: ``conv_x`` holds the
    seven ``W_x?`` kernels, output chunks (i, f, g, i', f', g', o); ``conv_h`` the ``W_h?``
    (i, f, g, o); ``conv_m`` the ``W_m?`` (i', f', g'); ``conv_o`` is :math:`[W_{co}, W_{mo}]` on
    :math:`[C_t^l, M_t^l]`; ``conv_cm`` the 1x1 :math:`W_{1\times1}` (the code's ``conv_last``).
    A state dict of the code's cell maps onto this one by name alone (``conv_x.0.weight`` ->
    ``conv_x.weight``, ``conv_last`` -> ``conv_cm``; tests/test_mem_stlstm.py checks a 3-layer
    PredRNN against outputs recorded from thuml/predrnn-pytorch). At hidden 128, kernel 5:
    6,586,368 parameters (6,587,264 with ``gate_bias``), 1.57 G multiply-accumulates on 16x16 maps
    (Table VII does not list ST-LSTM).

    Choices (where the paper is open or the code differs from it):

    * ``forget_bias`` (``STLSTMConfig``, default 1) is added inside f_t and f'_t as in the
      code; Eq. 3 has none (``forget_bias=0``).
    * No learned biases (``gate_bias=False``, the code: every convolution has ``bias=False``);
      ``gate_bias=True`` adds one per gate on ``conv_x`` (Eq. 3's b; stipkit's default before
      revision 2). The other convolutions and the 1x1 never have one (neither Eq. 3 nor the code).
    * No layer normalisation: Eq. 3 has none, and every training script of the code (Moving
      MNIST, KTH, BAIR; MotionRNN's Human3.6M) sets ``--layer_norm 0``, though ``run.py``
      defaults to 1 (a LayerNorm over (C, H, W) after each convolution).
    * W_co and W_mo are filter_size convolutions (``*`` in Eq. 3; the code does so),
      not Hadamard peepholes.
    * Zero initial states H_0 = C_0 = M_0 = 0 (the code's ``predrnn.py`` too).
    * PyTorch's default initialisation (the code's too).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h", "c"}``;
    ``c`` (:math:`C`) is the temporal state Alg. 1 line 7 merges T_E into at the bottom unit
    and the temporal decoder reads at the top; ``x_out`` is :math:`H_t^l`. :math:`M` is
    ``ctx.shared["M"]`` (zeros at t = 0, :meth:`init_shared`): the unit reads it and writes
    :math:`M_t^l` back, for the unit above or, from the top unit, the bottom one at t + 1
    (``predrnn.py``'s ``memory``). The exposed maps are the gates i_t, f_t, i'_t, f'_t and o_t.
    """

    MAPS = {"i_t": "input gate i_t (PredRNN Eq. 3)", "f_t": "forget gate f_t (Eq. 3)",
            "i'_t": "spatiotemporal input gate i'_t (Eq. 3)",
            "f'_t": "spatiotemporal forget gate f'_t (Eq. 3)", "o_t": "output gate o_t (Eq. 3)"}
    TEMPORAL = "c"
    CITE = "PredRNN Eq. 3"
    REVISION = 2
    REVISION_NOTE = ("revision 2 (issue 18) follows thuml/predrnn-pytorch: no gate biases by "
                     "default (STLSTMConfig.gate_bias=True adds them back) and the gate chunks in "
                     "the code's order (i, f, g, i', f', g', o)")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "ST-LSTM"
    TABLE7_ROW = 3.5  # not in STIP's Table VII: the kit adds it before PredRNN++'s Causal-LSTM
    CHOICES = (
        ("forget bias, normalisation",
         "none in Eq. 3",
         ("+forget_bias in f_t and f'_t (1, as PredRNN's code); no LayerNorm (the code's "
          "scripts: --layer_norm 0)"),
         "model.memory.forget_bias"),
        ("gate biases",
         "Eq. 3 has a bias b per gate; thuml/predrnn-pytorch has none (bias=False)",
         "none, as the code; gate_bias=True adds one per gate on the input convolution",
         "model.memory.gate_bias"),
    )
    WHY_DIFFERENT = ("not in Table VII (a classic reference); 6,586,368 parameters, as the "
                     "authors' cell (thuml/predrnn-pytorch SpatioTemporalLSTMCell: no biases; "
                     "gate_bias adds 7 × 128).")
    AUTHORS_PARAMS_M = (6.2812, "thuml/predrnn-pytorch core/layers/SpatioTemporalLSTMCell.py "
                                "(golden test)")

    def __init__(self, hidden: int, filter_size: int = 5, forget_bias: float = 1.0,
                 gate_bias: bool = False):
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        k, pad = filter_size, filter_size // 2
        self.conv_x = nn.Conv2d(hidden, 7 * hidden, k, padding=pad, bias=gate_bias)  # W_x?
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, k, padding=pad, bias=False)      # W_h?
        self.conv_m = nn.Conv2d(hidden, 3 * hidden, k, padding=pad, bias=False)      # W_m?
        self.conv_o = nn.Conv2d(2 * hidden, hidden, k, padding=pad, bias=False)      # W_co, W_mo
        self.conv_cm = nn.Conv2d(2 * hidden, hidden, 1, bias=False)                  # W_1x1

    @classmethod
    def from_config(cls, cfg) -> "STLSTM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``STLSTMConfig``)."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.forget_bias, cfg.memory.gate_bias)

    def init_state(self, x: torch.Tensor) -> State:
        """H_0^l = C_0^l = 0."""
        return {"h": torch.zeros_like(x), "c": torch.zeros_like(x)}

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0^L = 0: what the bottom unit reads at the first step."""
        return {"M": torch.zeros_like(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        h, c, m = state["h"], state["c"], ctx.shared["M"]
        x_i, x_f, x_g, x_i2, x_f2, x_g2, x_o = self.conv_x(x).chunk(7, dim=1)
        h_i, h_f, h_g, h_o = self.conv_h(h).chunk(4, dim=1)
        m_i, m_f, m_g = self.conv_m(m).chunk(3, dim=1)
        i = torch.sigmoid(x_i + h_i)                               # i_t
        f = torch.sigmoid(x_f + h_f + self.forget_bias)            # f_t
        g = torch.tanh(x_g + h_g)                                  # g_t
        c = f * c + i * g                                          # C_t^l
        i2 = torch.sigmoid(x_i2 + m_i)                             # i'_t
        f2 = torch.sigmoid(x_f2 + m_f + self.forget_bias)          # f'_t
        g2 = torch.tanh(x_g2 + m_g)                                # g'_t
        m = f2 * m + i2 * g2                                       # M_t^l
        cm = torch.cat([c, m], dim=1)
        o = torch.sigmoid(x_o + h_o + self.conv_o(cm))             # o_t
        h = o * torch.tanh(self.conv_cm(cm))                       # H_t^l
        ctx.shared["M"] = m                                        # up the stack / to t + 1
        return h, {"h": h, "c": c}, {"i_t": i, "f_t": f, "i'_t": i2, "f'_t": f2, "o_t": o}
