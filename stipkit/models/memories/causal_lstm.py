"""Causal-LSTM and the gradient highway unit of PredRNN++ (Wang et al., ICML 2018, Eq. 1-2)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State, lerp


class CausalLSTM(Memory):
    r"""One causal LSTM unit k at time step t (PredRNN++, ICML 2018, Eq. 1; Fig. 2).

    The two memories are cascaded: the temporal memory :math:`C` first, its new value then
    feeds the spatial memory :math:`M`, which zigzags through the stack as PredRNN's does
    (unit k reads :math:`M_t^{k-1}`; the bottom unit reads the top unit's :math:`M_{t-1}^K`).
    :math:`X_t` is the output of the unit below (of the gradient highway unit for k = 2):

    .. math::
        \begin{pmatrix} g_t \\ i_t \\ f_t \end{pmatrix} =
        \begin{pmatrix} \tanh \\ \sigma \\ \sigma \end{pmatrix}
        W_1 * [X_t, H_{t-1}^k, C_{t-1}^k] \qquad
        C_t^k = f_t \odot C_{t-1}^k + i_t \odot g_t

    .. math::
        \begin{pmatrix} g'_t \\ i'_t \\ f'_t \end{pmatrix} =
        \begin{pmatrix} \tanh \\ \sigma \\ \sigma \end{pmatrix}
        W_2 * [X_t, C_t^k, M_t^{k-1}] \qquad
        M_t^k = f'_t \odot \tanh(W_3 * M_t^{k-1}) + i'_t \odot g'_t

    .. math::
        o_t = \tanh(W_4 * [X_t, C_t^k, M_t^k]) \qquad
        H_t^k = o_t \odot \tanh(W_5 * [C_t^k, M_t^k])

    :math:`W_3` and :math:`W_5` are 1x1 convolutions (the text under Eq. 1), the others
    filter_size wide. Each W is
    split by what it reads (a convolution of a concatenation is the sum of the convolutions of
    its parts): ``conv_x`` is X's part of W_1, W_2 and W_4 with the seven gate biases, output
    chunks (g, i, f, g', i', f', o); ``conv_h`` and ``conv_c`` are H_{t-1}'s and C_{t-1}'s parts
    of W_1 (g, i, f); ``conv_c2`` is C_t's part of W_2 and W_4 (g', i', f', o); ``conv_m``
    M_t^{k-1}'s part of W_2 (g', i', f'); ``conv_mo`` M_t^k's part of W_4; ``conv_m3`` is W_3,
    ``conv_cm`` W_5. At Table VII's setting (hidden 128, kernel 5, 16x16 maps): 8,651,648
    parameters (8.25M) and 2.06G multiply-accumulates, where Table VII lists 7.20M / 1.80G.

    **The authors' cell** (``CausalLSTMConfig.authors_code=True``; github Yunbo426/predrnn-pp
    ``layers/CausalLSTMCell.py``, TensorFlow, and its PyTorch port in chengtan9907/OpenSTL
    ``openstl/modules/predrnnpp_modules.py``) differs from Eq. 1 in three places:

    .. math::
        g'_t = \tanh(W_2^{g'} * [X_t, C_t^k]) \qquad
        M_t^k = f'_t \odot \tanh(W_3 * M_t^{k-1}) + i'_t \odot g'_t \qquad
        o_t = \tanh(W_4 * [X_t, C_t^k, M_t^k, H_{t-1}^k])

    g'_t does not read :math:`M_t^{k-1}` (``conv_m`` has only the chunks i', f'); :math:`W_3`
    is filter_size wide (``conv_m3``), and :math:`o_t` also reads :math:`H_{t-1}^k`
    (``conv_h`` gets a fourth chunk, o). :math:`W_3` and :math:`W_5` carry biases, as every
    convolution of the TensorFlow code does (the others' biases add up to the seven of
    ``conv_x``; the OpenSTL port has no biases at all). Same stack, GHU and forget bias.
    At Table VII's setting: 9,045,120 parameters (8.63M) and 2.16G multiply-accumulates; the
    TensorFlow cell has 9,046,912 (23 x 128 biases, mostly redundant), OpenSTL's port creates
    9,863,168, of which 819,200 (its ``conv_o``) its forward never uses. ``tests/test_mem_causal_lstm.py``
    checks a 3-layer stack with the GHU against OpenSTL's port (a recorded golden output).

    Which one the tables use: the paper's (the default). STRPM Table 3 (131.35M for 16 units
    and a GHU; RPM 108.29M with the same encoder and decoder) implies about 8.1M a unit, near
    Eq. 1's 8.25M and not the authors' 8.63M; Table VII's 7.20M matches neither.

    Choices (where the paper is open):

    * Eq. 1 as written by default, not the official code (above). o_t is a tanh in both (not
      ST-LSTM's σ).
    * ``forget_bias`` (``CausalLSTMConfig``, default 1) is added inside f_t and f'_t as in the
      official code; Eq. 1 has none (``forget_bias=0`` is the paper's cell).
    * Biases: one per gate, on ``conv_x``; Eq. 1 writes none (the official code biases every
      convolution; see above for the authors' cell).
    * No layer normalisation: Eq. 1 has none (the official code's ``tln`` option adds it, on by
      default in its ``train.py``; not part of ``authors_code``).
    * PyTorch's default initialisation (the official code draws weights from U(-0.001, 0.001));
      not part of ``authors_code`` either.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h", "c"}``;
    ``c`` (:math:`C`) is the temporal state Alg. 1 line 7 merges T_E into at the bottom unit
    and the temporal decoder reads at the top; ``x_out`` is :math:`H_t^k`. :math:`M` is
    ``ctx.shared["M"]`` (zeros at t = 0): read, then overwritten with :math:`M_t^k`. The
    exposed maps are the gates i_t, f_t, i'_t, f'_t and o_t. :meth:`stack` puts a
    :class:`GHU` between the first and the second unit (``CausalLSTMConfig.highway``).
    """

    MAPS = {"i_t": "input gate i_t (PredRNN++ Eq. 1)", "f_t": "forget gate f_t (Eq. 1)",
            "i'_t": "spatial input gate i'_t (Eq. 1)", "f'_t": "spatial forget gate f'_t (Eq. 1)",
            "o_t": "output gate o_t (Eq. 1, tanh)"}
    TEMPORAL = "c"
    CITE = "PredRNN++ Eq. 1"
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "Causal-LSTM"
    TABLE7_ROW = 4
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("Eq. 1 or the authors' cell",
         ("Eq. 1: W_3, W_5 1×1, g'_t reads M_t^{k-1}, o_t does not read H_{t-1}; the authors' "
          "code (Yunbo426/predrnn-pp layers/CausalLSTMCell.py; OpenSTL predrnnpp_modules) makes "
          "W_3 filter_size wide, drops M from g'_t and lets o_t read H_{t-1}"),
         ("Eq. 1 as written, which the tables use (STRPM Table 3's count fits it: ~8.1M a unit "
          "vs 8.25M; the code's cell has 8.63M); authors_code=True is the code's cell, equal to "
          "OpenSTL's port (golden test)"),
         "model.memory.authors_code"),
        ("gradient highway unit",
         "between the first two layers (Eq. 2)",
         "one GHU between layers 1 and 2, its own state Z",
         "model.memory.highway"),
    )
    WHY_DIFFERENT = ("the three figures disagree: Eq. 1 (stipkit's default) needs 21 5×5 "
                     "convolutions of 128 -> 128 channels (8.20M weights; 8.25M with its 1×1 W_3, "
                     "W_5 and gate biases), the authors' cell (Yunbo426/predrnn-pp, "
                     "authors_code=True) 8.63M / 2.16G, and STRPM Table 3 (131.35M for 16 units, "
                     "a GHU and the encoder/decoder its RPM model has at 108.29M) implies about "
                     "8.1M a unit, near Eq. 1; Table VII's 7.20M matches none of them.")
    AUTHORS_PARAMS_M = (8.6262, "Yunbo426/predrnn-pp layers/CausalLSTMCell.py (authors_code=True)")

    def __init__(self, hidden: int, filter_size: int = 5, forget_bias: float = 1.0,
                 authors_code: bool = False):
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        self.authors_code = authors_code
        a = authors_code  # the authors' cell (see the class docstring)
        k, pad = filter_size, filter_size // 2
        conv = lambda n: nn.Conv2d(hidden, n * hidden, k, padding=pad, bias=False)  # noqa: E731
        self.conv_x = nn.Conv2d(hidden, 7 * hidden, k, padding=pad)  # X: W_1, W_2, W_4; biases
        self.conv_h = conv(4 if a else 3)  # H_{t-1}: W_1 (authors: and W_4's o)
        self.conv_c = conv(3)              # C_{t-1}: W_1
        self.conv_c2 = conv(4)             # C_t: W_2, W_4
        self.conv_m = conv(2 if a else 3)  # M_t^{k-1}: W_2 (authors: i', f' only)
        self.conv_mo = conv(1)             # M_t^k: W_4
        k3 = k if a else 1                 # W_3: 1x1 in Eq. 1, filter_size in the code
        self.conv_m3 = nn.Conv2d(hidden, hidden, k3, padding=k3 // 2, bias=a)  # W_3
        self.conv_cm = nn.Conv2d(2 * hidden, hidden, 1, bias=a)               # W_5

    @classmethod
    def from_config(cls, cfg) -> "CausalLSTM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (section: ``CausalLSTMConfig``)."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.forget_bias, cfg.memory.authors_code)

    @classmethod
    def stack(cls, cfg) -> list[Memory]:
        """``cfg.num_layers`` causal LSTMs, bottom first, with a :class:`GHU` between the first
        two when ``cfg.memory.highway`` (PredRNN++ Fig. 3; a one-layer stack has no "between",
        so no GHU)."""
        units: list[Memory] = [cls.from_config(cfg) for _ in range(cfg.num_layers)]
        if cfg.memory.highway and len(units) > 1:
            units.insert(1, GHU.from_config(cfg))
        return units

    def init_state(self, x: torch.Tensor) -> State:
        """H_0^k = C_0^k = 0."""
        return {"h": torch.zeros_like(x), "c": torch.zeros_like(x)}

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0^K = 0: what the bottom unit reads at the first step."""
        return {"M": torch.zeros_like(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        h, c, m = state["h"], state["c"], ctx.shared["M"]
        a = self.authors_code
        x_g, x_i, x_f, x_g2, x_i2, x_f2, x_o = self.conv_x(x).chunk(7, dim=1)
        h_g, h_i, h_f, *h_o = self.conv_h(h).chunk(4 if a else 3, dim=1)  # authors: + o
        c_g, c_i, c_f = self.conv_c(c).chunk(3, dim=1)
        g = torch.tanh(x_g + h_g + c_g)                                 # g_t
        i = torch.sigmoid(x_i + h_i + c_i)                              # i_t
        f = torch.sigmoid(x_f + h_f + c_f + self.forget_bias)           # f_t
        c = f * c + i * g                                               # C_t^k
        c_g2, c_i2, c_f2, c_o = self.conv_c2(c).chunk(4, dim=1)
        if a:                                                           # authors: g' without M
            m_i, m_f = self.conv_m(m).chunk(2, dim=1)
            g2 = torch.tanh(x_g2 + c_g2)                                # g'_t
        else:
            m_g, m_i, m_f = self.conv_m(m).chunk(3, dim=1)
            g2 = torch.tanh(x_g2 + c_g2 + m_g)                          # g'_t
        i2 = torch.sigmoid(x_i2 + c_i2 + m_i)                           # i'_t
        f2 = torch.sigmoid(x_f2 + c_f2 + m_f + self.forget_bias)        # f'_t
        m = f2 * torch.tanh(self.conv_m3(m)) + i2 * g2                  # M_t^k
        o = x_o + c_o + self.conv_mo(m)
        o = torch.tanh(o + h_o[0] if a else o)                          # o_t (authors: + H_{t-1})
        h = o * torch.tanh(self.conv_cm(torch.cat([c, m], dim=1)))      # H_t^k
        ctx.shared["M"] = m                                             # up / to t + 1
        return h, {"h": h, "c": c}, {"i_t": i, "f_t": f, "i'_t": i2, "f'_t": f2, "o_t": o}


class GHU(Memory):
    r"""The gradient highway unit of PredRNN++ (ICML 2018, Eq. 2; Fig. 3), between the first
    and the second causal LSTM. It reads :math:`X_t = H_t^1` and its own state :math:`Z_{t-1}`:

    .. math::
        P_t = \tanh(W_{px} * X_t + W_{pz} * Z_{t-1}) \qquad
        S_t = \sigma(W_{sx} * X_t + W_{sz} * Z_{t-1})

    .. math::
        Z_t = S_t \odot P_t + (1 - S_t) \odot Z_{t-1}

    and passes :math:`Z_t` up as the second causal LSTM's input. ``conv_x`` holds
    :math:`W_{px}, W_{sx}` (chunks P, S) and their biases, ``conv_z`` :math:`W_{pz}, W_{sz}`.
    At hidden 128, kernel 5: 1,638,656 parameters, 0.39 G multiply-accumulates on 16x16 maps.

    Choices: biases on ``conv_x`` only (Eq. 2 writes none; the official code biases both, which
    add up to the same two); no layer normalisation (Eq. 2 has none); PyTorch's default
    initialisation. Eq. 2 and the authors' code agree (github Yunbo426/predrnn-pp
    ``layers/GradientHighwayUnit.py``; OpenSTL ``predrnnpp_modules.GHU``, whose convolutions
    have no biases): ``authors_code`` leaves the GHU as it is, and the golden-output test of
    ``tests/test_mem_causal_lstm.py`` runs it against OpenSTL's.

    Memory interface: the state is ``{"Z"}``, carried over time; ``TEMPORAL`` is None (a GHU is
    never the bottom or top unit: STIP merges T_E into and decodes from the causal LSTMs). It
    leaves ``ctx.shared["M"]`` alone, so the second causal LSTM reads the first one's M. The
    exposed map is the switch gate S_t.
    """

    MAPS = {"S_t": "gradient highway switch gate S_t (PredRNN++ Eq. 2)"}
    TEMPORAL = None
    CITE = "PredRNN++ Eq. 2"

    def __init__(self, hidden: int, filter_size: int = 5):
        super().__init__()
        k, pad = filter_size, filter_size // 2
        self.conv_x = nn.Conv2d(hidden, 2 * hidden, k, padding=pad)              # W_px, W_sx
        self.conv_z = nn.Conv2d(hidden, 2 * hidden, k, padding=pad, bias=False)  # W_pz, W_sz

    @classmethod
    def from_config(cls, cfg) -> "GHU":
        return cls(cfg.hidden, cfg.filter_size)

    def init_state(self, x: torch.Tensor) -> State:
        """Z_0 = 0."""
        return {"Z": torch.zeros_like(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        z = state["Z"]
        x_p, x_s = self.conv_x(x).chunk(2, dim=1)
        z_p, z_s = self.conv_z(z).chunk(2, dim=1)
        p = torch.tanh(x_p + z_p)                # P_t
        s = torch.sigmoid(x_s + z_s)             # S_t
        z = lerp(z, p, s)                  # S_t P_t + (1 - S_t) Z_{t-1}
        return z, {"Z": z}, {"S_t": s}
