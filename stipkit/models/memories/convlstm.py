"""ConvLSTM: the convolutional LSTM of Shi et al., NeurIPS 2015 (Eq. 3)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State


class ConvLSTM(Memory):
    r"""One ConvLSTM unit (Shi et al., "Convolutional LSTM network", NeurIPS 2015, Eq. 3).

    From the input :math:`X_t` (the output of the unit below) and the unit's own hidden state
    :math:`H_{t-1}` and cell :math:`C_{t-1}`:

    .. math::
        i_t = \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + W_{ci} \circ C_{t-1} + b_i) \\
        f_t = \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + W_{cf} \circ C_{t-1} + b_f) \\
        C_t = f_t \circ C_{t-1} + i_t \circ \tanh(W_{xc} * X_t + W_{hc} * H_{t-1} + b_c) \\
        o_t = \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} \circ C_t + b_o) \\
        H_t = o_t \circ \tanh(C_t)

    The four ``W_x?`` kernels are one convolution of X with 4*hidden outputs (``conv_x``, which
    holds the biases b), the four ``W_h?`` one convolution of H (``conv_h``, no bias); output
    chunks are ordered (i, f, c, o) in both. The peepholes ``W_c?`` are Hadamard weights, one
    (hidden, H, W) map per gate (``peephole``: (3, hidden, H, W), ordered i, f, o).

    Choices:

    * *Peepholes*: kept, as in Eq. 3 (``ConvLSTMConfig.peephole=True``; ``False`` drops them, as
      PredRNN's and OpenSTL's ConvLSTM baselines do). They start at zero, so an untrained unit is
      the peephole-free ConvLSTM; the paper does not say how they are initialised. Being
      per-position weights, they tie the unit to ``ModelConfig.latent_size`` (as STGRU's layer
      norms do).
    * *Forget bias*: ``ConvLSTMConfig.forget_bias`` (default 1, PredRNN's code) is added inside
      f_t's sigmoid on top of the learned b_f; *departure*: the paper has none (set it to 0).
    * *Biases*: one per gate (b_i, b_f, b_c, b_o), on the input convolution only.
    * *Layer normalisation*: none (the paper has none).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h": H, "c": C}``;
    ``TEMPORAL = "c"``: the cell is what Alg. 1 line 7 merges T_E into at the bottom unit and
    what the temporal decoder reads from the top unit; the output passed up is H_t. Exposed maps:
    the gates i_t, f_t, o_t. Each unit carries its own state over time; no shared state, window
    or lower layers.

    Cost at hidden 128, kernel 5, 16x16 (Table VII's setting; ConvLSTM is not in the table):
    4 x (128 + 128) x 128 x 25 = 3,276,800 conv weights (3.13M) + 512 biases + 98,304
    peepholes, 0.78G MACs.
    """

    MAPS = {"i_t": "input gate i_t (Eq. 3)", "f_t": "forget gate f_t (Eq. 3)",
            "o_t": "output gate o_t (Eq. 3)"}
    TEMPORAL = "c"
    CITE = "Shi et al. 2015, Eq. 3"
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "ConvLSTM"
    TABLE7_ROW = 0.5  # not in STIP's Table VII: the kit adds it first, a classic reference
    CHOICES = (
        ("forget bias",
         "none in Shi et al.'s Eq. 3",
         "+forget_bias inside σ of f_t (1, as PredRNN's code)",
         "model.memory.forget_bias"),
        ("peepholes",
         "Eq. 3 has Hadamard peepholes W_c ∘ C",
         "kept (per-position weights); peephole=False drops them",
         "model.memory.peephole"),
    )
    WHY_DIFFERENT = "not in Table VII (a classic reference)."
    AUTHORS_PARAMS_M = (3.1255, "chengtan9907/OpenSTL openstl/modules/convlstm_modules.py (no "
                                "peepholes)")

    def __init__(self, hidden: int, size: tuple[int, int], filter_size: int = 5,
                 forget_bias: float = 1.0, peephole: bool = True):
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        pad = filter_size // 2
        self.conv_x = nn.Conv2d(hidden, 4 * hidden, filter_size, padding=pad)
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, filter_size, padding=pad, bias=False)
        self.peephole = nn.Parameter(torch.zeros(3, hidden, *size)) if peephole else None

    @classmethod
    def from_config(cls, cfg) -> "ConvLSTM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``ConvLSTMConfig``)."""
        return cls(cfg.hidden, cfg.latent_size, cfg.filter_size, cfg.memory.forget_bias,
                   cfg.memory.peephole)

    def init_state(self, x: torch.Tensor) -> State:
        """H_0 = C_0 = 0 (Alg. 1 line 3)."""
        return {"h": torch.zeros_like(x), "c": torch.zeros_like(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        h, c = state["h"], state["c"]
        x_i, x_f, x_c, x_o = self.conv_x(x).chunk(4, dim=1)   # W_x? * X_t + b_?
        h_i, h_f, h_c, h_o = self.conv_h(h).chunk(4, dim=1)   # W_h? * H_{t-1}
        w_ci, w_cf, w_co = self.peephole if self.peephole is not None else (0.0, 0.0, 0.0)
        i = torch.sigmoid(x_i + h_i + w_ci * c)
        f = torch.sigmoid(x_f + h_f + w_cf * c + self.forget_bias)
        c_new = f * c + i * torch.tanh(x_c + h_c)
        o = torch.sigmoid(x_o + h_o + w_co * c_new)
        h_new = o * torch.tanh(c_new)
        return h_new, {"h": h_new, "c": c_new}, {"i_t": i, "f_t": f, "o_t": o}
