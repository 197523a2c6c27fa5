"""MotionRNN (Wu et al., CVPR 2021): MotionGRU units between PredRNN's ST-LSTM layers, and the
motion highway, as the authors' code builds them (thuml/MotionRNN, ``core/layers/MotionGRU.py``,
``core/layers/SpatioTemporalLSTMCell_Motion_Highway.py``, ``core/models/MotionRNN_PredRNN.py``;
read, not copied).

The paper is not on disk: its parts are named below by what they do (the code's README: MotionGRU
captures "the transient variation and motion trend"; the "motion highway"; the paper's own
sub-headings as remembered), without equation numbers, which could not be checked. The code's
functions are cited instead. tests/test_mem_motionrnn.py checks a 3-layer stack against outputs
recorded from the authors' code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Memory, State, lerp
from .stlstm import STLSTM


def neighbour_warp(x: torch.Tensor, flow: torch.Tensor, k: int) -> torch.Tensor:
    r"""Bilinear samples of ``x`` (B, C, h, w) at the k x k neighbours of every position, each
    moved by its own offset: sample n at p is :math:`x(p + p_n + F_n(p))`.

    ``flow`` is (B, 2k², h, w): channels [0, k²) the vertical offsets (rows), [k², 2k²) the
    horizontal ones (columns), in pixels; neighbour n = i k + j (row-major) sits at
    :math:`p_n = (i - k//2, j - k//2)`. Positions outside the map read zero (bilinear weights
    onto the outside pixels are lost). Returns (B, k², C, h, w); zero flow and k = 1 give ``x``.
    """
    b, c, h, w = x.shape
    n, r = k * k, k // 2
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
    grid = torch.arange(k, device=x.device) - r
    dy = grid.repeat_interleave(k).to(x.dtype).view(1, n, 1, 1)    # p_n, rows
    dx = grid.repeat(k).to(x.dtype).view(1, n, 1, 1)               # p_n, columns
    y = rows + dy + flow[:, :n]                                    # (B, N, h, w), pixel units
    xx = cols + dx + flow[:, n:]
    # pixel centre -> [-1, 1] (align_corners=False: pixel i covers [i, i + 1) of the map)
    g = torch.stack([(2 * xx + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    src = x.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
    out = F.grid_sample(src, g.reshape(b * n, h, w, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.view(b, n, c, h, w)


class MotionGRU(Memory):
    r"""The MotionGRU between ST-LSTM layers l and l+1: ``MotionGRU.forward`` and ``Warp`` of
    thuml/MotionRNN ``core/layers/MotionGRU.py``, with the Enc / Dec / gate around it that
    ``RNN.forward`` of ``core/models/MotionRNN_PredRNN.py`` applies (``enc_list``,
    ``dec_list``, ``gate_list``). It reads :math:`H_t^l` (the layer below's output) and its own
    motion states :math:`F_{t-1}^l` (motion filter, the code's ``offset``) and
    :math:`D_{t-1}^l` (motion trend, the code's ``mean``), carried over time. Enc is a stride-2
    convolution to a quarter of the hidden width (:math:`E = Enc(H_t^l)`).

    Transient variation, a ConvGRU on the motion filter (the code's ``update``, ``reset``,
    ``output`` convolutions):

    .. math::
        u_t = \sigma(W_u * [E, F_{t-1}^l]) \qquad r_t = \sigma(W_r * [E, F_{t-1}^l]) \qquad
        z_t = \tanh(W_z * [E, r_t \odot F_{t-1}^l])

    .. math::
        F'^l_t = u_t \odot z_t + (1 - u_t) \odot F_{t-1}^l

    Trending momentum, with step :math:`\alpha` (``momentum``, the code's 0.5), and the motion
    filter as their sum:

    .. math::
        D_t^l = D_{t-1}^l + \alpha (F_{t-1}^l - D_{t-1}^l) \qquad F_t^l = F'^l_t + D_t^l

    Motion-based transition (the code's ``Warp``), output gate and merge (``gate_list``):

    .. math::
        m_t = \sigma(W_{m} * E) \qquad
        H'_t = \mathrm{Warp}(E, F_t^l, m_t) = \textstyle\sum_n W_n \,
        m_{t,n} \odot E(p + p_n + F_{t,n}^l)

    .. math::
        g_t = \sigma(W_g * [Dec(H'_t), H_t^l]) \qquad
        X_t^l = g_t \odot Dec(H'_t) + (1 - g_t) \odot H_t^l

    :math:`X_t^l` goes up as layer l+1's input (and, in :class:`MotionRNN`, back to layer l as
    its :math:`H_{t-1}` at the next step). The warp samples E bilinearly
    (:func:`neighbour_warp`, ``F.grid_sample``) at the k x k neighbours :math:`p_n` of every
    position, each moved by its own offset: :math:`F_t^l` has 2k² channels (k = ``neighbourhood``,
    3), the mask :math:`m_t` one per neighbour, and the W_n (``conv_warp``, a 1x1 convolution of
    the k² masked samples stacked on channels; the code's k x k convolution of stride k over
    the samples laid out as k x k blocks, the same weights reordered) mix them back to E's width:
    a deformable k x k convolution. Dec is a 4x4 stride-2 transposed convolution back to the
    hidden width.

    Weights: ``enc`` (filter_size, stride 2, hidden -> C' = max(1, hidden // 4)); ``conv_ur``
    (3x3, [E, F] -> u, r chunks: the code's ``update`` and ``reset`` stacked) and ``conv_z``
    (3x3, ``output``); ``conv_m`` (3x3, E -> k² masks, ``warp_gate``); ``conv_warp`` (1x1,
    k² C' -> C', no bias, ``warp.conv``); ``dec``; ``conv_g`` (filter_size, [Dec(H'), H] -> g,
    ``gate_list``). At hidden 16, kernel 5, k = 3: 26,683 parameters; at hidden 128: 1,023,595,
    as the code's.

    Choices (where the paper is open or stipkit differs from the code):

    * Enc/Dec as the code: a filter_size convolution of stride 2 to hidden // 4 channels, and a
      4x4 transposed convolution of stride 2; on an odd map the decoder's extra row/column is
      cropped (the code needs even maps).
    * The GRU's and the mask's kernels are 3x3, g_t's is filter_size (the code). Every
      convolution has a bias but ``conv_warp`` (the code).
    * Warp: bilinear ``grid_sample`` at pixel centres with zeros outside; the code clamps the
      sampling positions to a one-pixel zero border around E, which gives the same values (a
      sample beyond the border reads zeros either way), with gradients that differ there.
    * F_0 = D_0 = 0 (the code draws one Xavier-normal tensor for both; see :class:`MotionRNN`).
    * PyTorch's default initialisation (the code zeroes the weights of the GRU's and the mask's
      convolutions and registers a backward hook meant to scale their gradients by 0.1, which
      has no effect: it returns None).

    Memory interface: the state is ``{"F", "D"}`` (:math:`F_t^l, D_t^l`, 2k² channels at half
    the map size), carried over time; ``TEMPORAL`` is None (a MotionGRU is never the bottom or
    top unit of a stack). :class:`MotionRNN` holds it as its ``motion`` submodule; it can also
    stand alone between two units of a custom stack (it leaves ``ctx.shared`` alone). Exposed
    maps: the gate g_t and the motion filter's length per neighbour, |F_t^l|.
    """

    MAPS = {"g_t": "MotionGRU output gate g_t (MotionRNN, gate_list)",
            "|F_t|": "motion filter length |F_t| per neighbour, in pixels (MotionRNN, offset)"}
    TEMPORAL = None
    CITE = "MotionRNN (Wu et al., 2021), MotionGRU"

    def __init__(self, hidden: int, filter_size: int = 5, neighbourhood: int = 3,
                 momentum: float = 0.5):
        super().__init__()
        k, pad = filter_size, filter_size // 2
        self.hidden, self.neighbourhood, self.momentum = hidden, neighbourhood, momentum
        n = neighbourhood * neighbourhood
        self.width = c = max(1, hidden // 4)          # C': Enc's width
        self.motion = 2 * n                           # F's and D's channels
        self.enc = nn.Conv2d(hidden, c, k, stride=2, padding=pad)              # Enc
        self.conv_ur = nn.Conv2d(c + self.motion, 2 * self.motion, 3, padding=1)  # W_u, W_r
        self.conv_z = nn.Conv2d(c + self.motion, self.motion, 3, padding=1)       # W_z
        self.conv_m = nn.Conv2d(c, n, 3, padding=1)                               # W_m
        self.conv_warp = nn.Conv2d(n * c, c, 1, bias=False)                       # W_n
        self.dec = nn.ConvTranspose2d(c, hidden, 4, stride=2, padding=1)          # Dec
        self.conv_g = nn.Conv2d(2 * hidden, hidden, k, padding=pad)               # W_g

    @classmethod
    def from_config(cls, cfg) -> "MotionGRU":
        """One unit of a :class:`~stipkit.config.ModelConfig` (section: ``MotionRNNConfig``)."""
        return cls(cfg.hidden, cfg.filter_size, cfg.memory.neighbourhood, cfg.memory.momentum)

    def init_state(self, x: torch.Tensor) -> State:
        """F_0 = D_0 = 0, at Enc's (half) map size."""
        b, _, h, w = x.shape
        zeros = x.new_zeros(b, self.motion, (h + 1) // 2, (w + 1) // 2)
        return {"F": zeros, "D": zeros}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        f_prev, d_prev = state["F"], state["D"]
        e = self.enc(x)                                                  # Enc(H_t^l)
        u, r = torch.sigmoid(self.conv_ur(torch.cat([e, f_prev], 1))).chunk(2, dim=1)
        z = torch.tanh(self.conv_z(torch.cat([e, r * f_prev], 1)))
        f_trans = lerp(f_prev, z, u)                               # F'_t, transient variation
        d = lerp(d_prev, f_prev, self.momentum)                    # D_t, trending momentum
        f = f_trans + d                                                  # F_t
        m = torch.sigmoid(self.conv_m(e))                                # m_t
        samples = neighbour_warp(e, f, self.neighbourhood) * m.unsqueeze(2)
        warped = self.conv_warp(samples.flatten(1, 2))                   # H'_t
        dec = self.dec(warped)[..., :x.shape[-2], :x.shape[-1]]          # Dec(H'_t)
        g = torch.sigmoid(self.conv_g(torch.cat([dec, x], 1)))           # g_t
        out = lerp(x, dec, g)                                      # X_t^l
        n = self.neighbourhood ** 2
        length = torch.sqrt(f[:, :n].square() + f[:, n:].square())
        return out, {"F": f, "D": d}, {"g_t": g, "|F_t|": length}


class MotionRNN(STLSTM):
    r"""One layer of MotionRNN on PredRNN, as ``RNN.forward`` of thuml/MotionRNN
    ``core/models/MotionRNN_PredRNN.py`` runs it: an ST-LSTM (:class:`STLSTM`, PredRNN Eq. 3, the
    code's ``SpatioTemporalLSTMCell_Motion_Highway``) with the motion highway, and the
    :class:`MotionGRU` above it (``motion``; none on the top layer). For layer l at step t:

    .. math::
        \hat H_t^l = o_t \odot \tanh(W_{1\times1} * [C_t^l, M_t^l]) + (1 - o_t) \odot V_t^l

    with :math:`o_t, C_t^l, M_t^l` the ST-LSTM's on :math:`(X_t^{l-1}, H_{t-1}^l, C_{t-1}^l,
    M_t^{l-1})` (the first term is its output :math:`H` of PredRNN Eq. 3), then

    .. math::
        X_t^l, F_t^l, D_t^l = \mathrm{MotionGRU}(\hat H_t^l, F_{t-1}^l, D_{t-1}^l) \qquad
        H_t^l = X_t^l

    where :math:`o_t` is the layer's own output gate and the highway :math:`V_t^l` is the
    ST-LSTM output of the layer below, :math:`\hat H_t^{l-1}`, before its MotionGRU (the
    code's ``motion_highway``, passed up the stack like M): the highway bypasses the MotionGRU
    and brings back the content the warp did not move. At the bottom,
    :math:`V_t^1 = W_v * X_t^0`, a 1x1 convolution without bias of the stack's input (the code's
    ``conv_first_v`` of the frame). :math:`X_t^l` goes up as layer l+1's input and is the
    layer's :math:`H_t^l`, the :math:`H_{t-1}^l` of its next step (the code's ``h_t[i]``,
    overwritten by the merge). The top layer has no MotionGRU: its output and H are
    :math:`\hat H_t^L`. ``stack(cfg)`` is the whole memory: L such layers, the L - 1 below the
    top with a MotionGRU.

    Choices:

    * State flow as the code (``MotionRNNConfig.carry="merged"``): the MotionGRU's merged
      output :math:`X_t^l` is the layer's next :math:`H_{t-1}^l`. ``carry="own"`` keeps the
      ST-LSTM's own :math:`\hat H_t^l` instead (stipkit before revision 2, one reading of the
      paper's "without changing the original state transition flow").
    * The bottom highway reads a 1x1 convolution (``conv_v``, no bias) of the stack's input,
      STIP's S_E: in the code the bottom ST-LSTM reads the frame and the highway a 1x1 of the
      same frame; here the bottom ST-LSTM reads S_E, so the 1x1 of S_E is the same relation
      (stipkit before revision 2 used S_E itself). ``highway=False`` drops the highway (and
      ``conv_v``) everywhere: the layers are plain ST-LSTMs.
    * MotionGRUs between *every* two consecutive layers (the code), none above the top layer;
      a one-layer stack is one ST-LSTM with the bottom highway.
    * Zero initial states H_0 = C_0 = M_0 = F_0 = D_0 = 0. The code draws them with
      ``nn.init.xavier_normal_`` on every forward (one draw shared by H_0 and C_0 of a layer,
      one by F_0 and D_0): noise whose scale, sqrt(2 / ((B + C) h w)), depends on the batch size
      (about 0.005 for H_0 at the code's Human3.6M setting), which would make a sample's
      prediction depend on its batch and on the random state. stipkit is seeded and
      deterministic; the golden test feeds the code's recorded draws as the initial state.
    * ST-LSTM choices as :class:`STLSTM` (``forget_bias`` 1 and no gate biases, as the code;
      ``gate_bias=True`` adds them; no LayerNorm: the code's Human3.6M script sets
      ``--layer_norm 0``).

    Memory interface: the state is ``{"h", "c", "F", "D"}`` (``{"h", "c"}`` on the top layer),
    ``c`` temporal; M zigzags in ``ctx.shared["M"]`` as in :class:`STLSTM`, and the highway's
    :math:`\hat H_t^l` goes up in ``ctx.shared["V"]`` (the bottom layer writes it afresh each
    step). The maps are the ST-LSTM's gates and, below the top, the MotionGRU's g_t and |F_t|.
    """

    MAPS = {**STLSTM.MAPS, **MotionGRU.MAPS}
    CITE = "MotionRNN (Wu et al., 2021) on PredRNN Eq. 3"
    REVISION = 2
    REVISION_NOTE = ("revision 2 (issue 18) follows thuml/MotionRNN's MotionRNN_PredRNN: a layer "
                     "and the MotionGRU above it are one unit whose next H is the MotionGRU's "
                     "merged output (MotionRNNConfig.carry='own': the ST-LSTM's own), the bottom "
                     "highway reads a 1x1 convolution of S_E, and the ST-LSTM has no gate biases "
                     "(MotionRNNConfig.gate_bias)")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "MotionRNN"
    TABLE7_ROW = None  # not in Table VII (a method of the comparison, ABLATIONS['compare'])
    CHOICES = (
        ("where MotionGRUs sit",
         "'between the stacked layers' (Fig. 2)",
         "one between every two consecutive ST-LSTM layers (L-1), none above the top",
         "-"),
        ("Enc / Dec",
         "unstated sizes",
         ("official: filter_size conv, stride 2, to hidden//4; 4×4 transposed conv, stride 2 "
          "(odd maps: cropped)"),
         "-"),
        ("warp",
         "bilinear Warp of Enc(H) by the motion filter F_t",
         ("k×k neighbours per position, each with its own offset and sigmoid mask, mixed by a "
          "1×1 conv (a deformable k×k conv, official); grid_sample, zeros outside"),
         "model.memory.neighbourhood"),
        ("trend step α, initial states",
         "α = 0.5; initial states unstated",
         ("α = 0.5; H_0 = C_0 = M_0 = F_0 = D_0 = 0 (the code: a Xavier-normal draw on every "
          "forward, its scale set by the batch size)"),
         "model.memory.momentum"),
        ("state flow",
         "MotionGRU 'without changing the original state transition flow' (README)",
         ("as the code: the MotionGRU's merged output X_t^l is the layer's next H_{t-1}^l; "
          "carry='own' keeps the ST-LSTM's own H"),
         "model.memory.carry"),
        ("motion highway",
         "(1 - o_t) × the layer below's ST-LSTM output, bypassing its MotionGRU",
         ("as the code, on every layer; the bottom one reads a 1×1 conv of S_E (the code: a 1×1 "
          "of the frame the bottom cell reads)"),
         "model.memory.highway"),
        ("forget bias, gate biases, init",
         "none in PredRNN's Eq. 3; init unstated",
         ("+forget_bias (1), no ST-LSTM gate biases (as the code); PyTorch's default init (the "
          "code zeroes the GRU's and mask's weights)"),
         "model.memory.forget_bias, gate_bias"),
    )
    WHY_DIFFERENT = ("not in Table VII; the one-unit row is the bottom layer of a one-layer stack "
                     "(no MotionGRU): the authors' ST-LSTM cell (6,586,368 parameters) and the "
                     "bottom highway's 1×1 of S_E (16,384; the code's conv_first_v reads the "
                     "frame). Each layer below the top adds its MotionGRU with Enc, Dec and gate: "
                     "0.98M / 0.21G (1,023,595 parameters, as thuml/MotionRNN; the warp's "
                     "grid_sample is not counted). A 4-layer stack has 29,432,641, the code's RNN "
                     "without its conv_last.")
    AUTHORS_PARAMS_M = (float("nan"), "thuml/MotionRNN: a 4-layer stack equals stipkit's "
                                      "(29,432,641)")
    CARRIES = ("merged", "own")

    def __init__(self, hidden: int, filter_size: int = 5, forget_bias: float = 1.0,
                 gate_bias: bool = False, *, highway: bool = True, bottom: bool = True,
                 motion: bool = True, carry: str = "merged", neighbourhood: int = 3,
                 momentum: float = 0.5):
        super().__init__(hidden, filter_size, forget_bias, gate_bias)
        if carry not in self.CARRIES:
            raise ValueError(f"carry={carry!r} must be one of {self.CARRIES}")
        self.highway, self.bottom, self.carry = highway, bottom, carry
        # W_v: the bottom highway, a 1x1 of the stack's input (the code's conv_first_v)
        self.conv_v = nn.Conv2d(hidden, hidden, 1, bias=False) if highway and bottom else None
        self.motion = (MotionGRU(hidden, filter_size, neighbourhood, momentum) if motion
                       else None)
        if self.motion is None:
            self.MAPS = STLSTM.MAPS   # the top layer: no MotionGRU maps

    @classmethod
    def from_config(cls, cfg, bottom: bool = True, motion: bool = True) -> "MotionRNN":
        """One layer (section: ``MotionRNNConfig``): ``bottom`` has the 1x1 highway input,
        ``motion`` a MotionGRU above it (every layer but the top)."""
        s = cfg.memory
        return cls(cfg.hidden, cfg.filter_size, s.forget_bias, s.gate_bias, highway=s.highway,
                   bottom=bottom, motion=motion, carry=s.carry, neighbourhood=s.neighbourhood,
                   momentum=s.momentum)

    @classmethod
    def stack(cls, cfg) -> list[Memory]:
        """``cfg.num_layers`` layers, bottom first; each but the top with its MotionGRU."""
        n = cfg.num_layers
        return [cls.from_config(cfg, bottom=k == 0, motion=k < n - 1) for k in range(n)]

    def init_state(self, x: torch.Tensor) -> State:
        """H_0 = C_0 = 0 (and F_0 = D_0 = 0 at half the map size below the top)."""
        state = super().init_state(x)
        return state if self.motion is None else {**state, **self.motion.init_state(x)}

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        if self.conv_v is not None:
            ctx.shared["V"] = self.conv_v(x)                             # V^1 = W_v * S_E
        h, lstm, maps = super().forward(x, state, ctx)                   # PredRNN Eq. 3; M up
        if self.highway:
            v = ctx.shared.get("V")
            if v is None:
                raise ValueError("MotionRNN: the motion highway reads the layer below's "
                                 "output from ctx.shared['V'], which the bottom layer "
                                 "(bottom=True) writes")
            h = h + (1 - maps["o_t"]) * v                                # motion highway
            ctx.shared["V"] = h                                          # to the layer above
        if self.motion is None:                                          # the top layer
            return h, {"h": h, "c": lstm["c"]}, maps
        motion_state = {"F": state["F"], "D": state["D"]}
        out, motion_state, motion_maps = self.motion(h, motion_state)    # X_t^l
        carried = out if self.carry == "merged" else h
        return out, {"h": carried, "c": lstm["c"], **motion_state}, {**maps, **motion_maps}
