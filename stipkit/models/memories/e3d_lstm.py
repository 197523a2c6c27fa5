"""E3D-LSTM: the eidetic 3D LSTM of Wang et al., ICLR 2019 ("Eidetic 3D LSTM: A Model for Video
Prediction and Beyond", Sec. 3.2, Eq. 1-2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Memory, State


class E3DLSTM(Memory):
    r"""One E3D-LSTM unit k at step t: 3D convolutions over a window of tau steps, an eidetic
    cell C that recalls its tau past values by attention, and PredRNN's zigzag memory M.

    Eq. 1, the eidetic cell (``*``: the 3D convolution over the window, ``.``: a dot product
    over channels between every position of R_t and every position of the tau past cells):

    .. math::
        R_t = \sigma(W_{xr} * \mathcal X_t + W_{hr} * \mathcal H_{t-1}^k + b_r) \quad
        I_t = \sigma(W_{xi} * \mathcal X_t + W_{hi} * \mathcal H_{t-1}^k + b_i) \quad
        G_t = \tanh(W_{xg} * \mathcal X_t + W_{hg} * \mathcal H_{t-1}^k + b_g)

        \mathrm{RECALL}(R_t, C_{t-\tau:t-1}^k) =
            \mathrm{softmax}(R_t \cdot (C_{t-\tau:t-1}^k)^\top) \cdot C_{t-\tau:t-1}^k

        C_t^k = I_t \odot G_t
              + \mathrm{LayerNorm}(C_{t-1}^k + \mathrm{RECALL}(R_t, C_{t-\tau:t-1}^k))

    Eq. 2, the spatiotemporal memory M (from the unit below, or from the top unit at t-1) and
    the output:

    .. math::
        I'_t = \sigma(W'_{xi} * \mathcal X_t + W_{mi} * M_t^{k-1} + b'_i) \quad
        G'_t = \tanh(W'_{xg} * \mathcal X_t + W_{mg} * M_t^{k-1} + b'_g) \quad
        F'_t = \sigma(W'_{xf} * \mathcal X_t + W_{mf} * M_t^{k-1} + b'_f)

        M_t^k = I'_t \odot G'_t + F'_t \odot M_t^{k-1}

        O_t = \sigma(W_{xo} * \mathcal X_t + W_{ho} * \mathcal H_{t-1}^k + W_{co} * C_t^k
                     + W_{mo} * M_t^k + b_o) \qquad
        H_t^k = O_t \odot \tanh(W_{1\times1\times1} * [C_t^k, M_t^k])

    :math:`\mathcal X_t = X_{t-\tau+1:t}` and :math:`\mathcal H_{t-1}^k = H_{t-\tau:t-1}^k` are
    windows of tau maps; a (tau, k, k) kernel without temporal padding turns each into one map.
    That 3D convolution is stored as the 2D convolution of the tau maps stacked along channels,
    oldest first (weight (out, tau*C, k, k) = the Conv3d weight (out, C, tau, k, k) with its
    time axis moved before C): the same operation, and STIP converts its modules to
    channels_last, which 5D weights do not support. ``conv_x`` holds the seven W_x kernels
    (chunks ordered r, i, g, i', g', f', o), ``conv_h`` W_h{r,i,g,o}, ``conv_m`` W_m{i,g,f},
    ``conv_o`` [W_co, W_mo] on [C_t, M_t].

    Choices (where the paper is open, or stipkit's interface differs):

    * states are 2D maps (B, hidden, H, W), one per step, not the paper's clips with a temporal
      axis: the 3D kernel's depth is the window tau (``E3DLSTMConfig.window``) and collapses it;
    * only the windows (X and H) are convolved in 3D; M_t^{k-1}, C_t and M_t are single maps,
      convolved in 2D with k x k kernels (W_m?, W_co, W_mo);
    * the input window lives in the unit's state, ``"x_hist"`` (B, (tau-1)*hidden, H, W): the
      tau-1 previous inputs stacked along channels, oldest first (zeros before t = 1); the H
      window and the recalled cells come from the stack (``window = tau``: ``ctx.past``), its
      newest entry replaced by ``state`` (at the bottom unit STIP merges T_E into it). H before
      t = 1 is zero; until tau states exist the recall attends over the cells there are;
    * RECALL is unscaled (as the paper writes it), over all H*W positions of all tau cells;
    * LayerNorm over (C, H, W) with elementwise affine (as STGRU's), only where Eq. 1 has it;
      no norms after the convolutions (the official code's option), no forget bias in F'_t
      (the paper has none), sigma in O_t (the official code has tanh);
    * biases: one per gate, on ``conv_x``; W_{1x1x1} has none.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is ``{"h", "c",
    "x_hist"}``, ``"c"`` the temporal state; x_out = H_t; the zigzag state is ``ctx.shared["m"]``.
    Maps: the gates R_t (recall), I_t, O_t, I'_t (``"Im_t"``), F'_t (``"Fm_t"``).

    At hidden 128, kernel 5, tau 2, 16x16: 11,158,400 parameters (10.64M; Table VII: 18.80M)
    and 2.68G multiply-adds (2.64G convolutions, 0.03G recall).
    """

    MAPS = {"R_t": "recall gate R_t (Eq. 1)", "I_t": "input gate I_t (Eq. 1)",
            "O_t": "output gate O_t (Eq. 2)", "Im_t": "input gate I'_t of M (Eq. 2)",
            "Fm_t": "forget gate F'_t of M (Eq. 2)"}
    TEMPORAL = "c"
    CITE = "E3D-LSTM Eq. 1-2"

    def __init__(self, hidden: int, size: tuple[int, int], filter_size: int = 5, window: int = 2):
        super().__init__()
        self.hidden, self.window = hidden, window
        k, pad = filter_size, filter_size // 2
        self.conv_x = nn.Conv2d(window * hidden, 7 * hidden, k, padding=pad)       # 3D, tau deep
        self.conv_h = nn.Conv2d(window * hidden, 4 * hidden, k, padding=pad, bias=False)
        self.conv_m = nn.Conv2d(hidden, 3 * hidden, k, padding=pad, bias=False)
        self.conv_o = nn.Conv2d(2 * hidden, hidden, k, padding=pad, bias=False)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)
        self.norm = nn.LayerNorm([hidden, *size])

    @classmethod
    def from_config(cls, cfg) -> "E3DLSTM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``E3DLSTMConfig``)."""
        return cls(cfg.hidden, cfg.latent_size, cfg.filter_size, cfg.memory.window)

    def init_state(self, x: torch.Tensor) -> State:
        """H_0 = C_0 = 0, and no inputs before the first."""
        return {"h": torch.zeros_like(x), "c": torch.zeros_like(x),
                "x_hist": torch.zeros_like(x).repeat(1, self.window - 1, 1, 1)}

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0 = 0 (read by the bottom unit at t = 1)."""
        return {"m": torch.zeros_like(x)}

    @staticmethod
    def recall(r: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """RECALL(R_t, C_{t-tau:t-1}): r (B, C, H, W) attends over cells (B, C, n, H, W)."""
        b, c, height, width = r.shape
        q = r.flatten(2).transpose(1, 2)        # (B, HW, C)
        kv = cells.flatten(2).transpose(1, 2)   # (B, nHW, C)
        out = F.scaled_dot_product_attention(q, kv, kv, scale=1.0)
        return out.transpose(1, 2).reshape(b, c, height, width)

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        tau = self.window
        window = (list(ctx.past[:-1]) + [state])[-tau:]                # steps t-tau..t-1
        hs = [p["h"] for p in window]
        hs = [torch.zeros_like(x)] * (tau - len(hs)) + hs
        xs = torch.cat([state["x_hist"], x], 1)                        # X_{t-tau+1:t}
        x_r, x_i, x_g, x_i2, x_g2, x_f2, x_o = self.conv_x(xs).chunk(7, 1)
        h_r, h_i, h_g, h_o = self.conv_h(torch.cat(hs, 1)).chunk(4, 1)  # H_{t-tau:t-1}
        r = torch.sigmoid(x_r + h_r)                                   # R_t  (Eq. 1)
        i = torch.sigmoid(x_i + h_i)                                   # I_t
        g = torch.tanh(x_g + h_g)                                      # G_t
        cells = torch.stack([p["c"] for p in window], 2)               # C_{t-tau:t-1}
        c = i * g + self.norm(state["c"] + self.recall(r, cells))      # C_t
        m_prev = ctx.shared["m"]                                       # M_t^{k-1}
        m_i, m_g, m_f = self.conv_m(m_prev).chunk(3, 1)
        i2 = torch.sigmoid(x_i2 + m_i)                                 # I'_t (Eq. 2)
        g2 = torch.tanh(x_g2 + m_g)                                    # G'_t
        f2 = torch.sigmoid(x_f2 + m_f)                                 # F'_t
        m = i2 * g2 + f2 * m_prev                                      # M_t^k
        cm = torch.cat([c, m], 1)
        o = torch.sigmoid(x_o + h_o + self.conv_o(cm))                 # O_t
        h = o * torch.tanh(self.conv_last(cm))                         # H_t^k
        ctx.shared["m"] = m
        return h, {"h": h, "c": c, "x_hist": xs[:, x.shape[1]:]}, {
            "R_t": r, "I_t": i, "O_t": o, "Im_t": i2, "Fm_t": f2}
