"""dGRU: the double-mapping GRU of Folded Recurrent Neural Networks (Oliu et al., ECCV 2018)."""
from __future__ import annotations

import torch

from .base import Context, Memory, State
from .convgru import ConvGRU


class DGRU(Memory):
    r"""One dGRU unit (Oliu, Selva and Escalera, "Folded recurrent neural networks for future
    video prediction", ECCV 2018, Sec. 3: the double-mapping GRU).

    A dGRU is a pair of convolutional GRUs between two representations of a layer, its input
    :math:`x` (the representation below) and its state :math:`h`: a forward (encoder) mapping
    :math:`f_f` updates the state from the input, a backward (decoder) mapping :math:`f_b`
    updates the input-side representation from the state. Each is the ConvGRU map of
    :class:`~stipkit.models.memories.convgru.ConvGRU`, with its own weights
    (:math:`\mathrm{GRU}(\text{input}, \text{state})`):

    .. math::
        h_t = f_f(x_t, h_{t-1}) = \mathrm{GRU}_f(x_t, h_{t-1}) \\
        \hat x_t = f_b(h_t, x_t) = \mathrm{GRU}_b(h_t, x_t)

    i.e. for each mapping m in {f, b}, with input a and updated state s:
    :math:`z^m = \sigma(W^m_z * a + U^m_z * s)`, :math:`r^m = \sigma(W^m_r * a + U^m_r * s)`,
    :math:`s' = (1 - z^m) \odot s + z^m \odot \tanh(W^m * a + U^m * (r^m \odot s))`.
    The unit passes :math:`\hat x_t` up.

    Choices:

    * *A bottom-up unit*: FRNN runs f_f only while encoding observed frames (bottom-up) and f_b
      only while predicting (top-down: f_b of layer l reads layer l's new state and updates the
      representation below it, which goes down to f_b of layer l-1). STIP's stack runs bottom-up
      at every step, so here both mappings run at every step, f_f then f_b, and f_b's result --
      FRNN's next representation below this layer -- is passed *up* as the next unit's input;
      there is no top-down pass and no encoder-only / decoder-only phase.
    * *f_b's state is x_t itself*, the representation below at this step (it is what FRNN's
      decoder starts from after encoding x_t), so the only state carried over time is h.
    * *Each mapping is a ConvGRU* (reset before the convolution, tanh, one bias per gate on the
      input convolution: :class:`ConvGRU`'s choices) with hidden channels on both sides
      (FRNN's layers change width; Table VII counts 2 x ConvGRU: 4.69M).
    * *Layer normalisation*: none (FRNN has none).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h": h}``, also
    ``TEMPORAL`` (T_E merges into it at the bottom unit; the temporal decoder reads it at the
    top unit). Exposed maps: both mappings' gates, z and r of f_f (encoder) and of f_b (decoder).
    No shared state, window or lower layers.

    Cost at hidden 128, kernel 5, 16x16 (Table VII: 4.69M, 1.17G): 2 x 2,457,600 = 4,915,200
    conv weights + 768 biases = 4.69M (M = 2^20), 4,915,200 x 256 = 1.17G MACs.
    """

    MAPS = {"z_f": "update gate z of the forward (encoder) mapping f_f",
            "r_f": "reset gate r of the forward (encoder) mapping f_f",
            "z_b": "update gate z of the backward (decoder) mapping f_b",
            "r_b": "reset gate r of the backward (decoder) mapping f_b"}
    TEMPORAL = "h"
    CITE = "Oliu et al. 2018, Sec. 3"
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "dGRU"
    TABLE7_ROW = 3
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("as a bottom-up unit",
         ("FRNN runs the forward mapping while encoding and the backward one while predicting, "
          "top-down"),
         "both mappings at every step, forward then backward; the backward output goes up",
         "-"),
    )
    WHY_DIFFERENT = "within 1 %: two ConvGRU mappings sharing one state."
    AUTHORS_PARAMS_M = (4.6882, "moliusimon/frnn network/layer/bconvgru.py")

    def __init__(self, hidden: int, filter_size: int = 5):
        super().__init__()
        self.hidden = hidden
        self.fwd = ConvGRU(hidden, filter_size)  # f_f: (x_t, h_{t-1}) -> h_t
        self.bwd = ConvGRU(hidden, filter_size)  # f_b: (h_t, x_t) -> x^_t

    @classmethod
    def from_config(cls, cfg) -> "DGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``DGRUConfig``)."""
        return cls(cfg.hidden, cfg.filter_size)

    def init_state(self, x: torch.Tensor) -> State:
        """h_0 = 0 (Alg. 1 line 3)."""
        return {"h": torch.zeros_like(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        h, z_f, r_f = self.fwd.step(x, state["h"])   # encoder: the state from the input
        x_out, z_b, r_b = self.bwd.step(h, x)         # decoder: the representation from the state
        return x_out, {"h": h}, {"z_f": z_f, "r_f": r_f, "z_b": z_b, "r_b": r_b}
