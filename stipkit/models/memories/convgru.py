"""ConvGRU: the convolutional GRU of Ballas et al., ICLR 2016 (GRU-RCN), Table VII's [29]."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State, lerp


class ConvGRU(Memory):
    r"""One ConvGRU unit (Ballas et al., "Delving deeper into convolutional networks for
    learning video representations", ICLR 2016, the GRU-RCN equations; also Shi et al.,
    NeurIPS 2017, the ConvGRU of the TrajGRU paper).

    From the input :math:`x_t` (the output of the unit below) and the unit's state
    :math:`h_{t-1}`:

    .. math::
        z_t = \sigma(W_z * x_t + U_z * h_{t-1}) \qquad
        r_t = \sigma(W_r * x_t + U_r * h_{t-1}) \\
        \tilde h_t = \tanh(W * x_t + U * (r_t \odot h_{t-1})) \\
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``conv_x`` holds the three input kernels W_z, W_r, W (3*hidden outputs, in that order, with
    the biases); ``conv_h`` the two state kernels U_z, U_r (no bias); ``conv_rh`` the candidate's
    U, applied to the reset state r_t ⊙ h_{t-1} (no bias).

    Choices:

    * *Reset before the convolution* (Ballas; Cho et al.'s GRU): U * (r_t ⊙ h_{t-1}). Shi et
      al. 2017 gate after it, R_t ∘ (W_hh * H_{t-1}); the parameter count is the same.
    * *Update convention*: Ballas's, z_t weighs the candidate (Shi et al. 2017 write
      (1 - Z_t) ∘ H'_t + Z_t ∘ H_{t-1}: the same unit with z relabelled 1 - z).
    * *Candidate activation*: tanh (Ballas); Shi et al. 2017 use leaky ReLU (slope 0.2).
    * *Biases*: one per gate (b_z, b_r, b), on the input convolution only.
    * *Layer normalisation*: none (neither paper has one).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h": h}``, also
    ``TEMPORAL`` (T_E merges into it at the bottom unit; the temporal decoder reads it at the
    top unit) and the output passed up. Exposed maps: the gates z_t and r_t. No shared state,
    window or lower layers.

    Cost at hidden 128, kernel 5, 16x16 (Table VII: 2.34M, 0.59G): 3 x (128 + 128) x 128 x 25
    = 2,457,600 conv weights + 384 biases = 2.34M (M = 2^20), 2,457,600 x 256 = 0.59G MACs.
    """

    MAPS = {"z_t": "update gate z_t (GRU-RCN)", "r_t": "reset gate r_t (GRU-RCN)"}
    TEMPORAL = "h"
    CITE = "Ballas et al. 2016"
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "ConvGRU"
    TABLE7_ROW = 1
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("reset placement, activation",
         "Ballas: r before the convolution, tanh; Shi 2017: after, leaky ReLU",
         "Ballas's (the reference Table VII cites)",
         "-"),
    )
    WHY_DIFFERENT = "within 1 %: 3 gates × (128 + 128) × 128 × 25 weights, plus biases."
    AUTHORS_PARAMS_M = (float("nan"), "no authors' code (Ballas et al.)")

    def __init__(self, hidden: int, filter_size: int = 5):
        super().__init__()
        self.hidden = hidden
        pad = filter_size // 2
        self.conv_x = nn.Conv2d(hidden, 3 * hidden, filter_size, padding=pad)
        self.conv_h = nn.Conv2d(hidden, 2 * hidden, filter_size, padding=pad, bias=False)
        self.conv_rh = nn.Conv2d(hidden, hidden, filter_size, padding=pad, bias=False)

    @classmethod
    def from_config(cls, cfg) -> "ConvGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``ConvGRUConfig``)."""
        return cls(cfg.hidden, cfg.filter_size)

    def init_state(self, x: torch.Tensor) -> State:
        """h_0 = 0 (Alg. 1 line 3)."""
        return {"h": torch.zeros_like(x)}

    def step(self, x: torch.Tensor, h: torch.Tensor):
        """The GRU map (x_t, h_{t-1}) -> (h_t, z_t, r_t) (also dGRU's two mappings)."""
        x_z, x_r, x_h = self.conv_x(x).chunk(3, dim=1)   # W_z * x, W_r * x, W * x (+ b)
        h_z, h_r = self.conv_h(h).chunk(2, dim=1)        # U_z * h, U_r * h
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        candidate = torch.tanh(x_h + self.conv_rh(r * h))
        return lerp(h, candidate, z), z, r         # (1 - z) h + z h~

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        h, z, r = self.step(x, state["h"])
        return h, {"h": h}, {"z_t": z, "r_t": r}
