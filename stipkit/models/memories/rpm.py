"""RPM: the residual predictive memory of STRPM (Chang et al., CVPR 2022, Sec. 3.2, Eq. 5-9)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Context, Memory, State


def _conv_ln(c_in: int, c_out: int, filter_size: int, size: tuple[int, int]) -> nn.Sequential:
    """A filter_size convolution followed by layer normalisation over (C, H, W) (official code)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, filter_size, padding=filter_size // 2),
                         nn.LayerNorm([c_out, *size]))


class RPM(Memory):
    r"""One RPM unit k at time step t (STRPM, CVPR 2022, Eq. 5-9, Fig. 3).

    Inputs: the encoded features :math:`E` (STRPM's :math:`T_E = S_E = O_E`: the stack's input
    at the bottom unit, :math:`H_t^{k-1}` above, "for k > 1 ... :math:`T_E, S_E, O_E = H_t^{k-1}`"),
    the unit's hidden state :math:`H_{t-1}^k`, the spatial state from below :math:`S_t^{k-1}`,
    its :math:`\tau` past temporal states :math:`\mathcal{T} = T_{t-\tau:t-1}^k` and the
    :math:`\theta` lower spatial states :math:`\mathcal{S} = S_t^{k-\theta:k-1}`.

    Features (Eq. 5), each convolution followed by layer normalisation:

    .. math::
        (TF, SF, OF) = (W_t * E, W_s * E, W_o * E) \qquad
        (HF, MF) = (W_h * H_{t-1}^k, W_m * S_t^{k-1})

    Residual gates (Eq. 6) and the temporal and spatial modules (Eq. 7, 8):

    .. math::
        R_T = \sigma(TF + HF) \qquad R_S = \sigma(SF + MF)

    .. math::
        T_t^k = R_T \odot (\tanh(TF + HF) + ATT_T(\mathcal{T})) \qquad
        S_t^k = R_S \odot (\tanh(SF + MF) + ATT_S(\mathcal{S}))

    Output module (Eq. 9):

    .. math::
        R_O = \sigma(OF + HF + W_{os} * S_t^k + W_{ot} * T_t^k) \qquad
        STRF_t^k = R_O \odot \tanh(W_{1\times1} * [T_t^k, S_t^k]) \qquad
        H_t^k = STIF_t^k + STRF_t^k

    Attention over n states :math:`X_1..X_n` (oldest first): the paper's "temporal attention
    network which is constructed with convolutional layers and can help merge the multiple
    temporal states to a single one" (Sec. 3.2), which the official code (github
    ZhengChang467/STRPM ``core/layers/STRPMCell.py``: ``att_c``, ``att_m``) builds as one
    filter_size convolution of the concatenated states followed by layer normalisation:

    .. math::
        ATT(X) = \mathrm{LN}(W_q * [X_1, \dots, X_n])

    ``attention="softmax"`` is **the kit's own variant**, in neither the paper nor the code
    (stipkit's default before revision 2): the merge above is the query Q of per-channel,
    per-pixel weights that sum to 1 over the states,
    :math:`A_i = \mathrm{softmax}_i(Q \odot X_i)`, and :math:`ATT(X) = \sum_i A_i \odot X_i`
    (the maps ``A_T``, ``A_S``; same parameters; with one state, weight 1 and no
    :math:`W_q`). ``conv_t``, ``conv_s``, ``conv_o``, ``conv_h``, ``conv_m`` are
    :math:`W_t, W_s, W_o, W_h, W_m`; ``conv_ts`` is :math:`[W_{ot}, W_{os}]` on
    :math:`[T_t^k, S_t^k]`; ``conv_last`` the 1x1 :math:`W_{1\times1}`; ``att_t``, ``att_s``
    the :math:`W_q` of :math:`ATT_T` (on :math:`\tau` states) and :math:`ATT_S` (:math:`\theta`).
    At hidden 128, kernel 5, tau = theta = 5: 6,997,120 convolution parameters (+ 524,288 of
    layer normalisation), 1.67 G multiply-accumulates on 16x16 maps; Table VII: 6.72M / 1.68G,
    which is the official bottom cell's, whose 1x1 STIF convolution over [T_E, S_E, O_E] (49,280
    parameters) stipkit does not have (see below); Table VII counts no layer normalisation.

    Choices (where the paper is open, or the official code departs from it):

    * Attention: the paper's and the official code's merging convolution (above), also for one
      state (tau or theta = 1: a convolution of that state, as the official code). STRPM
      Table 3's counts of RPM(θ = 1, τ = 1) and RPM(θ = 5, τ = 1) (45.95M, 77.09M against
      108.29M for 16 units) fall by 1.95M a unit for each window cut from 5 states to 1, which
      is the whole 640 -> 128 5x5 merge: a one-state merge would have kept 0.39M of it, so the
      authors' Table 3 models had none at one state. ``attention="softmax"``: the kit's variant.
    * A window with fewer states than tau (theta) is padded with zero states as the oldest,
      as the official code pads with its zero initial states.
    * :math:`\mathcal{S}` holds this step's lower spatial states only, :math:`S_t^0` being the
      stack's input (STIP's S_E). *Departure*: the official code zigzags S (its ``memory``)
      from the top unit at t-1 to the bottom at t and takes its window (of tau, not theta)
      along that path. So here :math:`S_t^k` (Eq. 8, no term from t-1) carries time only
      through :math:`E = H_t^{k-1}`: the bottom unit's S depends on S_E alone.
    * :math:`STIF = E` (an identity skip), the official code's rule where
      :math:`T_E = S_E = O_E`, which is every unit here (STIP gives a stack one encoded input);
      Eq. 9 writes :math:`W_{1\times1} * [T_E, S_E]`. ``residual=False`` (STRPM Table 3, "RPM
      w/o residual"): :math:`H_t^k = STRF_t^k`.
    * ``forget_bias`` (``RPMConfig``, default 0, the paper): the ATT term is gated by
      :math:`\sigma(TF + HF + b)` (:math:`\sigma(SF + MF + b)`); the official code has b = 1.
    * Layer normalisation after every filter_size convolution (the official code; the paper
      says nothing); none after the 1x1.
    * Inside STRPM (:class:`~stipkit.models.strpm.STRPM`) the bottom unit reads three encoded
      inputs, :math:`T_E, S_E, O_E` (``ctx.shared["E"]`` holds T_E and O_E; ``x`` is S_E), and
      its STIF is the paper's :math:`W_{1\times1} * [T_E, S_E]` (``conv_stif``).

    Official-code departures (``RPMConfig`` fields, all on in the ``strpm-*-official`` presets;
    rows of ``stipkit.reports.departures.strpm_departures()``): ``temporal_states="repeat_last"`` (its
    window list holds one list object many times, so :math:`\mathcal{T}` is tau copies of
    :math:`T_{t-1}^k`), ``spatial_states="zigzag"`` (:math:`S_t^0 = S_{t-1}^K` and
    :math:`\mathcal{S}` the last theta states along the zigzag path; while the path holds at
    most theta states the official index arithmetic uses the step count, so the window repeats
    the zero state: reproduced),
    ``stif_gate`` (the bottom STIF convolution reads :math:`[T_E, S_E, R_O]`: the cell's
    argument ``o_t`` is overwritten by the gate before it is used) and ``forget_bias=1``.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is
    ``{"T": T_{t-1}^k, "H": H_{t-1}^k}``; ``T`` is the temporal state Alg. 1 line 7 merges T_E
    into at the bottom unit and the temporal decoder reads at the top (as STRPM's Dec_T reads
    T). ``x`` is :math:`S_t^{k-1}` (the stack's input S_E at the bottom) and ``x_out`` is
    :math:`S_t^k`, which the spatial decoder reads at the top (as STRPM's Dec_S). :math:`H_t^k`
    goes up in ``ctx.shared["H"]`` (read by the unit above; the bottom unit reads the stack's
    input instead, ``bottom=True``, set by :meth:`stack`). :math:`\mathcal{T}` is ``ctx.past``
    (``window = tau``), whose newest state is read from ``state`` (at the bottom unit it holds
    T_E, merged by Alg. 1 line 7); :math:`\mathcal{S}` is ``ctx.below`` (``below = theta``).
    Maps: the gates R_T, R_S, R_O and Eq. 9's two terms STIF and STRF (STRPM's Fig. 5 shows
    them); with ``attention="softmax"`` also the weight of the newest state of each window,
    A_T (on :math:`T_{t-1}^k`) and A_S (on :math:`S_t^{k-1}`).
    """

    MAPS = {"R_T": "temporal residual gate R_T (STRPM Eq. 6)",
            "R_S": "spatial residual gate R_S (Eq. 6)",
            "R_O": "output residual gate R_O (Eq. 9)",
            "STIF": "spatiotemporal input features STIF (Eq. 9; zero without the residual)",
            "STRF": "spatiotemporal residual features STRF (Eq. 9)"}
    SOFTMAX_MAPS = {  # attention="softmax" (the kit's variant) adds them after R_O
        "A_T": "attention weight of T_{t-1} among the tau temporal states (kit's softmax ATT_T)",
        "A_S": "attention weight of S_t^{k-1} among the theta spatial states (kit's softmax ATT_S)"}
    TEMPORAL = "T"
    CITE = "STRPM Eq. 5-9"
    REVISION = 2
    REVISION_NOTE = ("the default attention is now the paper's and the official code's merging "
                     "convolution (RPMConfig.attention='conv'); revision 1 weighed the states by "
                     "the kit's per-position softmax (now attention='softmax'): the same "
                     "parameters, other outputs")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "RPM"
    TABLE7_ROW = 7
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("attention over states",
         ("ATT_T, ATT_S: 'constructed with convolutional layers' to 'merge the multiple temporal "
          "states to a single one' (Eq. 7, 8)"),
         ("the official code's merge (STRPMCell att_c, att_m): LayerNorm(conv of the τ (θ) "
          "stacked states), also for one state; attention='softmax' is the kit's own variant "
          "(per-position softmax weights with that merge as the query), in neither paper nor "
          "code"),
         "model.memory.attention"),
        ("encoded inputs",
         "three inputs T_E, S_E, O_E and a 1×1 residual over [T_E, S_E] (Eq. 9)",
         ("in STIP's stack one encoded input and the identity skip; in STRPM (models/strpm.py) "
          "the three, and the 1×1 at the bottom unit"),
         "model.memory.residual"),
        ("spatial window",
         "θ lower spatial states S_t^{k-θ:k-1}; S_t^0 not stated",
         ("θ lower-layer outputs of this step (ctx.below), S_t^0 = S_E; spatial_states='zigzag' "
          "is the official path (strpm_departures)"),
         "model.memory.spatial_states"),
    )
    WHY_DIFFERENT = ("Table VII counts the official cell's convolutions, including a 1×1 merge of "
                     "three encoder inputs (49,280 parameters) that is the identity here (one "
                     "encoded input); the attention (the official merging convolution, the "
                     "default since revision 2, or the kit's softmax) has the same parameters "
                     "either way.")
    AUTHORS_PARAMS_M = (6.72, "ZhengChang467/STRPM core/layers/STRPMCell.py (with its 1x1 merge "
                              "of three inputs)")

    def __init__(self, hidden: int, size: tuple[int, int], filter_size: int = 5, tau: int = 5,
                 theta: int = 5, residual: bool = True, forget_bias: float = 0.0,
                 bottom: bool = True, *, stif: str = "identity", attention: str = "conv",
                 temporal_states: str = "past", spatial_states: str = "layers", layers: int = 1):
        super().__init__()
        self.window, self.below = tau, theta
        self.residual, self.forget_bias, self.bottom = residual, forget_bias, bottom
        self.stif, self.attention, self.layers = stif, attention, layers
        self.temporal_states, self.spatial_states = temporal_states, spatial_states
        conv = lambda c_in: _conv_ln(c_in, hidden, filter_size, size)  # noqa: E731
        self.conv_t, self.conv_s, self.conv_o = conv(hidden), conv(hidden), conv(hidden)
        self.conv_h, self.conv_m = conv(hidden), conv(hidden)
        self.conv_ts = conv(2 * hidden)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1)
        merge = attention == "conv"  # the official merge has a convolution even for one state
        self.att_t = conv(tau * hidden) if tau > 1 or merge else None
        self.att_s = conv(theta * hidden) if theta > 1 or merge else None
        self.conv_stif = (None if stif == "identity" else
                          nn.Conv2d((3 if stif == "gated" else 2) * hidden, hidden, 1))
        if not merge:  # the kit's softmax: attention weights to show, after R_O
            maps = list(RPM.MAPS.items())
            self.MAPS = dict(maps[:3] + list(RPM.SOFTMAX_MAPS.items()) + maps[3:])

    @classmethod
    def from_config(cls, cfg, bottom: bool = True) -> "RPM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``RPMConfig``).
        STRPM's bottom unit has the paper's STIF convolution (gated: official)."""
        m = cfg.memory
        stif = ("gated" if m.stif_gate else "conv") if bottom and cfg.name == "strpm" else "identity"
        return cls(cfg.hidden, cfg.latent_size, cfg.filter_size, m.tau, m.theta, m.residual,
                   m.forget_bias, bottom, stif=stif, attention=m.attention,
                   temporal_states=m.temporal_states, spatial_states=m.spatial_states,
                   layers=cfg.num_layers)

    @classmethod
    def stack(cls, cfg) -> list["RPM"]:
        """``cfg.num_layers`` units; only the bottom one reads the stack's input as E."""
        return [cls.from_config(cfg, bottom=k == 0) for k in range(cfg.num_layers)]

    def init_state(self, x: torch.Tensor) -> State:
        """T_0^k = H_0^k = 0."""
        return {"T": torch.zeros_like(x), "H": torch.zeros_like(x)}

    def init_shared(self, x: torch.Tensor) -> State:
        """Zigzag (official): the path of spatial states starts with S_0 = 0."""
        if self.spatial_states != "zigzag":
            return {}
        return {"S_path": [torch.zeros_like(x)], "S_seen": 1}

    def attend(self, conv: nn.Module | None, states: list[torch.Tensor], n: int):
        """ATT over the n latest ``states`` (oldest first, zero-padded): (merged, weights).
        ``attention="conv"`` (paper, official; default): the convolution's output is the merged
        state, no weights; ``"softmax"`` (the kit's variant): the weighted sum."""
        states = list(states)[-n:]
        states = [torch.zeros_like(states[0])] * (n - len(states)) + states
        if self.attention == "conv":
            return conv(torch.cat(states, dim=1)), None
        x = torch.stack(states)
        if conv is None:  # one state: weight 1
            return states[0], torch.ones_like(x)
        weights = torch.softmax(conv(torch.cat(states, dim=1)) * x, dim=0)
        return (weights * x).sum(0), weights

    def _zigzag_window(self, shared: State) -> list[torch.Tensor]:
        """The official spatial window: the last theta states of the zigzag path; while the path
        holds at most theta, [S_0] * (theta - c) + path[:c] with c the time steps begun so far."""
        path, seen, n = shared["S_path"], shared["S_seen"], self.below
        if seen > n:
            return path[-n:]
        c = (seen - 1) // self.layers + 1
        return [path[0]] * (n - c) + path[:c]

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        ctx = Context() if ctx is None else ctx
        sh = ctx.shared
        if self.bottom and "E" in sh:                                    # STRPM: Eq. 1's three
            t_e, s_e, o_e = sh["E"]["t"], x, sh["E"]["o"]
        else:                                                           # T_E = S_E = O_E
            t_e = s_e = o_e = x if self.bottom else sh["H"]
        zigzag = self.spatial_states == "zigzag"
        m = sh["S_path"][-1] if zigzag else x                            # S_t^{k-1}
        if self.temporal_states == "past":                              # 𝒯, newest = state
            past = [p["T"] for p in ctx.past[:-1]] + [state["T"]]
        else:
            past = [state["T"]] * self.window
        below = self._zigzag_window(sh) if zigzag else (list(ctx.below) or [x])  # 𝒮
        hf = self.conv_h(state["H"])                                    # Eq. 5
        a_t = self.conv_t(t_e) + hf
        a_s = self.conv_s(s_e) + self.conv_m(m)
        r_t, r_s = torch.sigmoid(a_t), torch.sigmoid(a_s)               # R_T, R_S (Eq. 6)
        att_t, w_t = self.attend(self.att_t, past, self.window)
        att_s, w_s = self.attend(self.att_s, below, self.below)
        fb = self.forget_bias
        f_t, f_s = (r_t, r_s) if fb == 0 else (torch.sigmoid(a_t + fb), torch.sigmoid(a_s + fb))
        t = r_t * torch.tanh(a_t) + f_t * att_t                         # T_t^k (Eq. 7)
        s = r_s * torch.tanh(a_s) + f_s * att_s                         # S_t^k (Eq. 8)
        ts = torch.cat([t, s], dim=1)
        r_o = torch.sigmoid(self.conv_o(o_e) + hf + self.conv_ts(ts))   # R_O (Eq. 9)
        strf = r_o * torch.tanh(self.conv_last(ts))                     # STRF
        stif = torch.zeros_like(strf)
        if self.residual:                                               # + STIF
            if self.stif == "identity":
                stif = t_e
            else:
                extra = [r_o] if self.stif == "gated" else []
                stif = self.conv_stif(torch.cat([t_e, s_e, *extra], dim=1))
        h = stif + strf
        sh["H"] = h                                                     # up the stack
        if zigzag:
            sh["S_path"] = (sh["S_path"] + [s])[-max(self.below, 1):] if sh["S_seen"] >= self.below \
                else sh["S_path"] + [s]
            sh["S_seen"] += 1
        maps = {"R_T": r_t, "R_S": r_s, "R_O": r_o}                     # in MAPS' order
        if w_t is not None:
            maps.update(A_T=w_t[-1], A_S=w_s[-1])
        maps.update(STIF=stif, STRF=strf)
        return s, {"T": t, "H": h}, maps
