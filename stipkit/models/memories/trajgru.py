"""TrajGRU: the trajectory GRU of Shi et al., NeurIPS 2017 ("Deep Learning for Precipitation
Nowcasting: A Benchmark and A New Model", Sec. 3.2, Eq. 3-4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Memory, State, lerp


class TrajGRU(Memory):
    r"""One TrajGRU unit: a ConvGRU whose state-to-state connections follow L learned links.

    A small structure-generating network :math:`\gamma` reads the input and the previous state and
    outputs L flow fields (Eq. 3); the previous state is warped along each of them and the gates
    read the L warped states through 1x1 convolutions (Eq. 4):

    .. math::
        U_t, V_t = \gamma(X_t, H_{t-1}) \qquad
        \tilde H_{t-1}^l = \mathrm{warp}(H_{t-1}, U_{t,l}, V_{t,l}), \quad l = 1..L

        Z_t = \sigma(W_{xz} * X_t + b_{xz} + \textstyle\sum_l W_{hz}^l * \tilde H_{t-1}^l + b_{hz})
        \qquad
        R_t = \sigma(W_{xr} * X_t + b_{xr} + \textstyle\sum_l W_{hr}^l * \tilde H_{t-1}^l + b_{hr})

        H'_t = f(W_{xh} * X_t + b_{xh}
                 + R_t \odot (\textstyle\sum_l W_{hh}^l * \tilde H_{t-1}^l + b_{hh})) \qquad
        H_t = (1 - Z_t) \odot H'_t + Z_t \odot H_{t-1}

    :math:`\mathrm{warp}(H, U, V)[i, j] = H[i + V_{ij}, j + U_{ij}]` (the paper's; the code's is
    :math:`H[i - V_{ij}, j - U_{ij}]`, ``warp="code"``), sampled bilinearly
    (``F.grid_sample``; positions outside the map read 0). The ``W_h?^l`` are 1x1 kernels, so
    :math:`\sum_l W^l * \tilde H^l` is one 1x1 convolution of the L warped states stacked along
    channels (``conv_h``, with the biases :math:`b_{h?}`); ``W_x?`` is one filter_size convolution
    of X (``conv_x``, with :math:`b_{x?}`). Chunks are ordered (z, r, h) in both. The biases are
    the HKO-7 code's (the paper writes none): inside :math:`H'_t` the reset gate scales
    :math:`b_{hh}` with the links, so it is not redundant with :math:`b_{xh}`.

    Authors' code: sxjscience/HKO-7 ``nowcasting/operators/traj_rnn.py`` (``TrajGRU``,
    ``flow_conv``; MXNet), with its defaults in ``nowcasting/config.py`` and ``nowcasting/ops.py``.
    MXNet does not run under PyTorch, so there is no golden-output test; the weights map one to
    one (i2h -> ``conv_x``, h2h -> ``conv_h``, i2f_conv1 -> ``flow_x``, h2f_conv1 -> ``flow_h``,
    f_out -> ``flow_out``; the code orders the gate chunks (r, u, h), stipkit (z, r, h)).

    Choices (where the paper is open; the authors' code decides where it speaks):

    * gamma: ``flow_x(X) + flow_h(H)`` (= one conv of [X, H] to 32 channels), LeakyReLU(0.2),
      then a conv to 2L channels, (U_l, V_l) per link, in pixels -- the paper says only "a
      one-hidden-layer CNN"; 32 channels and ``TrajGRUConfig.flow_kernel`` = 5x5 kernels (a
      literal there, apart from the input kernel) are the HKO-7 code's;
    * f = LeakyReLU(0.2), the paper's activation and the code's ``act_type="leaky"``;
    * biases: every convolution has one, as in the code: the input convolution (one per gate),
      the 1x1 links (``conv_h``: the code's ``h2h_bias``) and both halves of gamma's first layer
      (``i2f_conv1_bias``, ``h2f_conv1_bias``; their sum is one bias, kept as two to map the
      code's weights). The paper's Eq. 4 writes none; stipkit before revision 2 had none on
      ``conv_h`` and ``flow_h``;
    * no layer normalisation and no zoneout (the code's default zoneout is 0);
    * initialisation: gamma's output layer starts at zero (``TrajGRUConfig.zero_flows``, the
      code's ``MODEL.TRAJRNN.INIT_GRID``, on by default there), so every link starts as the
      identity warp; PyTorch's default everywhere else;
    * warp sign (``TrajGRUConfig.warp``): ``"paper"`` samples :math:`H[i + V, j + U]` as the
      paper's warp; ``"code"`` samples :math:`H[i - V, j - U]`, as HKO-7's ``flow_conv``
      (``GridGenerator(data=-flow, transform_type="warp")`` then ``BilinearSampler``). The flow is
      learned, so the two are the same model with gamma's output layer negated;
    * warp samples pixel centres (``align_corners=False``) and reads zeros outside the map (the
      code's sampler: the same positions in pixels, zeros outside).

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h": H_{t-1}}``, the
    temporal state; x_out = H_t. Maps: Z_t, R_t and the flow magnitude (mean over the L links of
    :math:`\sqrt{U^2 + V^2}`, one channel). Needs no shared state, window or lower layers.

    At hidden 128, kernel 5, 16x16, L = 9: 1,891,218 parameters (1.80M; Table VII: 1.68M), of
    which gamma 0.21M, and 0.45G multiply-adds (Table VII: 0.42G).
    """

    MAPS = {"z_t": "update gate Z_t (Eq. 4)", "r_t": "reset gate R_t (Eq. 4)",
            "flow": "flow magnitude: mean |(U_l, V_l)| over the L links, pixels (Eq. 3); 1 channel"}
    TEMPORAL = "h"
    CITE = "Shi et al. 2017, Eq. 3-4"
    REVISION = 2
    REVISION_NOTE = ("revision 2 follows the HKO-7 code: biases on the 1x1 links (conv_h) and on "
                     "the flow network's state convolution (flow_h), the flow network's kernels "
                     "flow_kernel = 5 (were filter_size), gamma's output layer zero-initialised")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "TrajGRU-L9"
    TABLE7_ROW = 2
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("flow network γ",
         "'a one-hidden-layer CNN' of unstated size",
         ("HKO-7 code's: 5×5 conv of [X, H] to 32 channels, LeakyReLU(0.2), 5×5 to 2L flows; "
          "output layer zero-initialised (INIT_GRID)"),
         "model.memory.flow_kernel, zero_flows"),
        ("biases",
         "Eq. 4 writes none",
         ("HKO-7 code's: on every convolution, the 1×1 links and both halves of γ's first layer "
          "included"),
         "-"),
        ("warping",
         "bilinear warp H[i+V, j+U] along each flow; HKO-7 code samples H[i-V, j-U]",
         ("the paper's sign (the flow is learned: γ's output negated); grid_sample at pixel "
          "centres, zeros outside"),
         "model.memory.warp"),
    )
    WHY_DIFFERENT = ("the authors' cell (sxjscience/HKO-7 nowcasting/operators/traj_rnn.py) at "
                     "this setting has 1,891,218 parameters, as stipkit's: 5×5 input kernel, flow "
                     "network 5×5 to 32 channels then to 2L = 18 flows (0.21M), a bias on every "
                     "convolution. Table VII's 1.68M is not rebuilt from it (flow_kernel 3 gives "
                     "1.67M, a 3×3 input kernel 1.05M); the paper does not give the flow "
                     "network's size.")
    AUTHORS_PARAMS_M = (1.8036, "sxjscience/HKO-7 nowcasting/operators/traj_rnn.py")

    def __init__(self, hidden: int, filter_size: int = 5, links: int = 9,
                 flow_hidden: int = 32, slope: float = 0.2, *, flow_kernel: int = 5,
                 warp: str = "paper", zero_flows: bool = True):
        super().__init__()
        if warp not in ("paper", "code"):
            raise ValueError(f"TrajGRU: warp={warp!r} must be 'paper' or 'code'")
        self.links, self.slope, self.sign = links, slope, -1.0 if warp == "code" else 1.0
        pad, fk = filter_size // 2, flow_kernel
        self.conv_x = nn.Conv2d(hidden, 3 * hidden, filter_size, padding=pad)        # W_x{z,r,h}
        self.conv_h = nn.Conv2d(links * hidden, 3 * hidden, 1)                        # W_h{z,r,h}^l
        self.flow_x = nn.Conv2d(hidden, flow_hidden, fk, padding=fk // 2)            # gamma
        self.flow_h = nn.Conv2d(hidden, flow_hidden, fk, padding=fk // 2)
        self.flow_out = nn.Conv2d(flow_hidden, 2 * links, fk, padding=fk // 2)
        if zero_flows:  # HKO-7's INIT_GRID: every link starts as the identity warp
            nn.init.zeros_(self.flow_out.weight)
            nn.init.zeros_(self.flow_out.bias)

    @classmethod
    def from_config(cls, cfg) -> "TrajGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``TrajGRUConfig``)."""
        m = cfg.memory
        return cls(cfg.hidden, cfg.filter_size, m.links, flow_kernel=m.flow_kernel, warp=m.warp,
                   zero_flows=m.zero_flows)

    def init_state(self, x: torch.Tensor) -> State:
        """H_0 = 0."""
        return {"h": torch.zeros_like(x)}

    @staticmethod
    def warp(h: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """h (B, C, H, W) warped along each link of flow (B, 2L, H, W) = (U_1, V_1, U_2, ...):
        (B, L*C, H, W), link l in channels l*C..(l+1)*C, out[i, j] = h[i + V, j + U]."""
        b, c, height, width = h.shape
        links = flow.shape[1] // 2
        flow = flow.reshape(b * links, 2, height, width)
        ys = torch.arange(height, device=h.device, dtype=h.dtype).view(height, 1)
        xs = torch.arange(width, device=h.device, dtype=h.dtype).view(1, width)
        grid = torch.stack([(2 * (xs + flow[:, 0]) + 1) / width - 1,     # x in [-1, 1]
                            (2 * (ys + flow[:, 1]) + 1) / height - 1], -1)  # y
        many = h.unsqueeze(1).expand(b, links, c, height, width).flatten(0, 1)
        out = F.grid_sample(many, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(b, links * c, height, width)

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        h = state["h"]
        hidden = F.leaky_relu(self.flow_x(x) + self.flow_h(h), self.slope)
        flow = self.flow_out(hidden)                                   # U_t, V_t   (Eq. 3)
        x_z, x_r, x_h = self.conv_x(x).chunk(3, 1)
        warped = self.warp(h, flow if self.sign > 0 else -flow)        # warp_l (code: H[i-V, j-U])
        h_z, h_r, h_h = self.conv_h(warped).chunk(3, 1)                # sum_l W^l * warp_l + b
        z = torch.sigmoid(x_z + h_z)                                   # Z_t  (Eq. 4)
        r = torch.sigmoid(x_r + h_r)                                   # R_t
        cand = F.leaky_relu(x_h + r * h_h, self.slope)                 # H'_t
        h_new = lerp(cand, h, z)                                 # (1-Z)H' + Z H
        speed = flow.unflatten(1, (self.links, 2)).norm(dim=2).mean(1, keepdim=True)
        return h_new, {"h": h_new}, {"z_t": z, "r_t": r, "flow": speed}
