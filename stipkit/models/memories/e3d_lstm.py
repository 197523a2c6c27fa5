"""E3D-LSTM: the eidetic 3D LSTM of Wang et al., ICLR 2019 ("Eidetic 3D LSTM: A Model for Video
Prediction and Beyond", Sec. 3.2, Eq. 1-2), built as its authors' code builds it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Memory, State


class E3DLSTM(Memory):
    r"""One E3D-LSTM unit k at step t, as in the authors' code (github google/e3d_lstm,
    ``src/layers/rnn_cell.py`` ``EideticLSTMCell`` and ``src/models/eidetic_3d_lstm_net.py``;
    OpenSTL's PyTorch port: github chengtan9907/OpenSTL, ``openstl/modules/e3dlstm_modules.py``
    and ``openstl/models/e3dlstm_model.py``): every state is a clip of tau maps (tau = 2 in the
    authors' code), every path a (tau, k, k) 3D convolution, and the eidetic cell C recalls all
    its past values by attention.

    Eq. 1, the eidetic cell (``*``: a 3D convolution of a clip; ``LN``: LayerNorm; the recall
    attends from every position of R_t to every position of every past cell):

    .. math::
        R_t = \sigma(\mathrm{LN}(W_{xr} * \mathcal X_t) + \mathrm{LN}(W_{hr} * \mathcal H_{t-1}^k))
        \quad I_t = \sigma(\ldots_i) \quad G_t = \tanh(\ldots_g)

        \mathrm{RECALL}(R_t, C_{0:t-1}^k) = \mathrm{softmax}(R_t \cdot (C_{0:t-1}^k)^\top)
                                              \cdot C_{0:t-1}^k

        C_t^k = \mathrm{LN}(C_{t-1}^k + \mathrm{RECALL}(R_t, C_{0:t-1}^k)) + I_t \odot G_t

    Eq. 2, the spatiotemporal memory M (from the unit below, or from the top unit at t-1) and
    the output, with the code's M update and output gate:

    .. math::
        I'_t = \sigma(\mathrm{LN}(W'_{xi} * \mathcal X_t) + \mathrm{LN}(W_{mi} * M_t^{k-1})) \quad
        G'_t = \tanh(\ldots) \quad F'_t = \sigma(\ldots + b_f)

        M_t^k = F'_t \odot \tanh(W_{mm} * M_t^{k-1}) + I'_t \odot G'_t

        O_t = \sigma(\tanh(\mathrm{LN}(W_{xo} * \mathcal X_t) + \mathrm{LN}(W_{ho} * \mathcal H_{t-1}^k)
                           + W_{co} * C_t^k + W_{mo} * M_t^k)) \qquad
        H_t^k = O_t \odot \tanh(W_{1\times1\times1} * [C_t^k, M_t^k])

    Clips are (B, C, tau, H, W), oldest slot first. A (tau, k, k) kernel is stored as a 2D
    convolution of tau stacked slots (weight (out, tau*C, k, k) = the Conv3d weight
    (out, C, tau, k, k) with its time axis moved before C; :meth:`conv3d`): STIP converts its
    modules to channels_last, which 5D weights do not support. Chunks are in the code's order:
    ``conv_x`` (i, g, r, o, i', g', f'), ``conv_h`` (i, g, r, o), ``conv_m`` (i', f', g', m);
    ``conv_oc`` W_co, ``conv_om`` W_mo, ``conv_last`` W_1x1x1; ``norm_x``, ``norm_h``,
    ``norm_m`` the LNs after conv_x, conv_h, conv_m, ``norm_c`` the cell's.

    Choices (``E3DLSTMConfig``; where the paper, the authors' TensorFlow code and OpenSTL's port
    differ, or stipkit's interface asks for one):

    * ``code="google"`` (default): the authors' TensorFlow cell. Its 3D convolutions pad the
      clip 'same' (TF: (tau-1)//2 zero slots before, the rest after; so at tau = 2 slot 0 sees
      both input slots, slot 1 only the newest), have biases; its LayerNorms normalise over
      (C, tau, H, W) with one gain and shift per channel (``tf.contrib.layers.layer_norm``,
      epsilon 1e-12: ``nn.GroupNorm(1, C)``). ``code="openstl"``: OpenSTL's port, which departs
      from it in five places, reproduced to its outputs: no biases; a per-element gain and shift
      (``nn.LayerNorm([C, tau, H, W])``, epsilon 1e-5); with ``gate_norm`` also LNs after W_co
      and W_mo (``norm_oc``, ``norm_om``); each convolution is 'valid' in time and its one
      output slot repeated tau times (``tf_Conv3d``'s nearest interpolation); and its recall
      reshapes the channels-first clips (C, tau, H, W) flat into rows of C values rather than
      one channel vector per position (the history concatenated along channels);
    * ``zigzag=True`` (default): M_t^k goes up the stack and from the top unit at t-1 to the
      bottom unit at t, as the paper says. Both codes return the M they were given, so every
      unit at every step reads M_0 = 0 (M_t^k only feeds O_t and H_t); ``zigzag=False``
      reproduces that. The first author called it a bug of the released code that their own
      experiments did not have (github google/e3d_lstm issue 1), hence the default;
    * ``gate_norm=True``: the LNs after the X, H and M convolutions (always in the authors'
      code; OpenSTL's ``layer_norm`` switch, off in its configs). The cell's LN is always there;
    * ``forget_bias=1.0`` inside F'_t's sigmoid (both codes; the paper has none);
    * the code's M update F' (.) tanh(W_mm * M) + I' (.) G' (the paper: F' (.) M + I' (.) G')
      and output gate sigma(tanh(...)) (the paper: sigma(...)), without switches;
    * RECALL is unscaled softmax attention (both codes) over every past cell C_0..C_{t-1}, C_0 =
      0 included: the history grows by one clip a step, unbounded as in the authors' code;
      ``history=n`` keeps the n latest cells (memory and the recall's cost then stop growing).
      The history lives in the unit's state, ``"history"`` (B, C, (t-1)*tau, H, W), oldest
      first: the cells before the current C_{t-1} (the stack's ``ctx.past`` is not used:
      ``window`` = 0);
    * ``window`` (tau) is the clips' depth, the kernels' depth and the input window (the
      authors' ``window_length``, 2). The bottom unit's input clip is its tau latest inputs,
      oldest first, zeros before t = 1 (the authors' ``input_list``), kept in its state as
      ``"x_hist"`` (B, C_in, tau-1, H, W). A unit above reads the H clip of the unit below at
      this step (the authors': ``hidden[i - 1]``), ``ctx.shared["h_clip"]``;
      :meth:`stack` builds its units so (``clip_from_below``);
    * stipkit's interface is 2D (the stack's output, STIP's temporal state, the maps): the unit
      shows slot 0 of its clips, the slot whose kernels see the whole input clip under 'same'
      padding. Its state keeps ``"h"`` and ``"c"`` (slot 0; ``"c"`` is the temporal state STIP
      merges T_E into at the bottom and decodes at the top) and ``"h_rest"``, ``"c_rest"``
      (slots 1..tau-1). The authors' frame head (a (tau, 1, 1) convolution of the top H clip)
      is STIP's decoder's job.

    Memory interface (:mod:`stipkit.models.memories.base`): x_out = slot 0 of H_t; the zigzag
    state ``ctx.shared["m"]`` is the M clip. Maps (slot 0): the gates R_t (recall), I_t, O_t,
    I'_t (``"Im_t"``), F'_t (``"Fm_t"``).

    ``tests/test_mem_e3d_lstm.py`` checks both codes against their recorded outputs (the
    weights mapped by :meth:`google_state_dict`, :meth:`openstl_state_dict`; zigzag=False).

    At hidden 128, kernel 5, tau 2, 16x16 (``stipkit.reports.complexity.memory_table``): 13,961,472
    parameters (13.31M, as the authors' TF cell; OpenSTL's: 13,959,168, no biases; Table VII:
    18.80M) and 4,096 LayerNorm parameters (OpenSTL's per-element ones: 2,359,296); 6.78G
    multiply-adds at t = 2 ('same' padding computes tau output slots; OpenSTL's one: 3.34G),
    of which the recall 0.13G, growing with the history.
    """

    MAPS = {"R_t": "recall gate R_t (Eq. 1)", "I_t": "input gate I_t (Eq. 1)",
            "O_t": "output gate O_t (Eq. 2)", "Im_t": "input gate I'_t of M (Eq. 2)",
            "Fm_t": "forget gate F'_t of M (Eq. 2)"}
    TEMPORAL = "c"
    CITE = "E3D-LSTM Eq. 1-2"
    REVISION = 2
    REVISION_NOTE = ("E3D-LSTM now follows its authors' code: clip-shaped states of depth tau with "
                     "3D convolutions on every path, LayerNorms after the gate convolutions, a "
                     "recall over every past cell, the code's M update and output gate")
    # what the tables say about it (Memory's docstring; stipkit.reports reads them)
    LABEL = "E3D-LSTM"
    TABLE7_ROW = 5
    IN_PAPER_TABLE7 = True
    CHOICES = (
        ("3D states",
         ("states are clips with a time axis; the authors' code (google/e3d_lstm "
          "src/layers/rnn_cell.py): depth 2, (2, 5, 5) kernels on X, H, M, C and M_t"),
         ("the code's: clips of depth τ on every path, 'same' in time (TF), kernels stored as 2D "
          "convs over τ stacked slots; the unit shows slot 0 to the stack and STIP (its state's "
          "h, c); a unit above reads the clip below (ctx.shared)"),
         "model.memory.window"),
        ("recall",
         ("softmax(R · C) over past cells; the code: over every cell since t = 0 (the history "
          "grows)"),
         ("the code's: unscaled attention over all positions of every past cell, kept in the "
          "unit's state; history=n keeps the n latest"),
         "model.memory.history"),
        ("M across units and time",
         ("M zigzags (Eq. 2); both codes return the M given, so all units read M_0 = 0 "
          "(google/e3d_lstm issue 1: a bug the authors' experiments did not have)"),
         "zigzag (paper, the authors' word); zigzag=False is the released code's",
         "model.memory.zigzag"),
        ("M update, output gate",
         ("Eq. 2: F'⊙M + I'⊙G', O = σ(·); the code: F'⊙tanh(W_mm * M) + I'⊙G', O = σ(tanh(·)), "
          "+1 forget bias"),
         "the code's",
         "model.memory.forget_bias"),
        ("LayerNorm",
         ("the code: after the X, H, M convolutions and on C, over (C, τ, H, W) with a gain and "
          "shift per channel"),
         "the code's (GroupNorm(1, C), ε 1e-12); gate_norm=False keeps only C's",
         "model.memory.gate_norm"),
        ("OpenSTL's port",
         ("openstl/modules/e3dlstm_modules.py departs from the TF cell: no biases, per-element "
          "LN (also after W_co, W_mo), 'valid' time conv repeated, recall over rows of the "
          "channels-first flat clip"),
         "google's TF cell (golden test); code='openstl' reproduces the port (golden test)",
         "model.memory.code"),
    )
    WHY_DIFFERENT = ("the authors' cell (google/e3d_lstm rnn_cell.py: depth-2 clips, (2, 5, 5) "
                     "kernels on every path) has exactly stipkit's 13,961,472 parameters (13.31M) "
                     "and 4,096 LayerNorm ones; OpenSTL's port 13,959,168 (no biases) plus "
                     "2,359,296 per-element LayerNorm ones (15.56M in all). 18.80M matches "
                     "neither, and the paper does not give its layout. MACs: the code's 'same' 3D "
                     "convolutions compute both depth slots (6.78G at t = 2; OpenSTL's one-slot "
                     "'valid' ones 3.34G), and the recall grows with the history.")
    AUTHORS_PARAMS_M = (13.3147, "google/e3d_lstm src/layers/rnn_cell.py (golden test; OpenSTL's "
                                 "port too)")
    CODES = ("google", "openstl")

    def __init__(self, hidden: int, size: tuple[int, int], filter_size: int = 5, window: int = 2,
                 *, history: int = 0, zigzag: bool = True, gate_norm: bool = True,
                 forget_bias: float = 1.0, code: str = "google", in_channels: int | None = None,
                 clip_from_below: bool = False):
        super().__init__()
        if code not in self.CODES:
            raise ValueError(f"code must be one of {self.CODES}, got {code!r}")
        self.hidden, self.depth, self.history = hidden, window, history
        self.zigzag, self.forget_bias, self.code = zigzag, forget_bias, code
        self.clip_from_below = clip_from_below
        self.window = 0  # the stack keeps no past states: the unit keeps its history itself
        c_in, k, bias = in_channels or hidden, filter_size, code == "google"
        conv = lambda c, out: nn.Conv2d(window * c, out, k, padding=k // 2, bias=bias)  # noqa: E731
        self.conv_x = conv(c_in, 7 * hidden)
        self.conv_h = conv(hidden, 4 * hidden)
        self.conv_m = conv(hidden, 4 * hidden)
        self.conv_oc = conv(hidden, hidden)
        self.conv_om = conv(hidden, hidden)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=bias)
        norm = ((lambda c: nn.GroupNorm(1, c, eps=1e-12)) if code == "google" else
                (lambda c: nn.LayerNorm([c, window, *size])))
        self.norm_x = norm(7 * hidden) if gate_norm else nn.Identity()
        self.norm_h = norm(4 * hidden) if gate_norm else nn.Identity()
        self.norm_m = norm(4 * hidden) if gate_norm else nn.Identity()
        self.norm_c = norm(hidden)
        late = gate_norm and code == "openstl"
        self.norm_oc = norm(hidden) if late else nn.Identity()
        self.norm_om = norm(hidden) if late else nn.Identity()

    @classmethod
    def from_config(cls, cfg, **kwargs) -> "E3DLSTM":
        """One unit of a :class:`~stipkit.config.ModelConfig` (its section: ``E3DLSTMConfig``)."""
        m = cfg.memory
        return cls(cfg.hidden, cfg.latent_size, cfg.filter_size, m.window, history=m.history,
                   zigzag=m.zigzag, gate_norm=m.gate_norm, forget_bias=m.forget_bias,
                   code=m.code, **kwargs)

    @classmethod
    def stack(cls, cfg) -> list["E3DLSTM"]:
        """``cfg.num_layers`` units; each above the bottom reads the H clip of the one below."""
        return [cls.from_config(cfg, clip_from_below=k > 0) for k in range(cfg.num_layers)]

    def init_state(self, x: torch.Tensor) -> State:
        """H_0 = C_0 = 0, no past cells, and no inputs before the first."""
        zeros = lambda c, d: x.new_zeros(x.shape[0], c, d, *x.shape[2:])  # noqa: E731
        h = self.hidden
        state = {"h": x.new_zeros(x.shape[0], h, *x.shape[2:]), "h_rest": zeros(h, self.depth - 1),
                 "c": x.new_zeros(x.shape[0], h, *x.shape[2:]), "c_rest": zeros(h, self.depth - 1),
                 "history": zeros(h, 0)}
        if not self.clip_from_below:
            state["x_hist"] = zeros(x.shape[1], self.depth - 1)
        return state

    def init_shared(self, x: torch.Tensor) -> State:
        """M_0 = 0, a clip (read by the bottom unit at t = 1; by every unit when not zigzag)."""
        return {"m": x.new_zeros(x.shape[0], self.hidden, self.depth, *x.shape[2:])}

    def conv3d(self, conv: nn.Conv2d, clip: torch.Tensor) -> torch.Tensor:
        """The (tau, k, k) 3D convolution ``conv`` of a clip (B, C, tau, H, W), clip-shaped.

        google: 'same' in time (TF's padding: (tau-1)//2 zero slots before, the rest after), so
        output slot d reads input slots d..d+tau-1; openstl: 'valid' in time (one output slot)
        and that slot repeated tau times."""
        b, c, tau, height, width = clip.shape
        if self.code == "openstl":
            out = conv(clip.transpose(1, 2).reshape(b, tau * c, height, width))
            return out.unsqueeze(2).expand(-1, -1, tau, -1, -1)
        before = (tau - 1) // 2
        padded = F.pad(clip, (0, 0, 0, 0, before, tau - 1 - before))
        windows = padded.unfold(2, tau, 1)                       # (B, C, tau, H, W, tau)
        windows = windows.permute(0, 2, 5, 1, 3, 4).reshape(b * tau, tau * c, height, width)
        out = conv(windows)                                      # (B*tau, out, H, W)
        return out.view(b, tau, -1, height, width).transpose(1, 2)

    @staticmethod
    def per_slot(conv: nn.Conv2d, clip: torch.Tensor) -> torch.Tensor:
        """A 2D convolution applied to each slot of a clip (a (1, k, k) 3D convolution)."""
        b, c, tau, height, width = clip.shape
        out = conv(clip.transpose(1, 2).reshape(b * tau, c, height, width))
        return out.view(b, tau, -1, height, width).transpose(1, 2)

    def recall(self, r: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """RECALL(R_t, C): r (B, C, tau, H, W) attends over cells (B, C, n*tau, H, W)."""
        b, c = r.shape[:2]
        if self.code == "openstl":  # rows of C values of the flat channels-first clips
            q = r.reshape(b, -1, c)
            kv = cells.unflatten(2, (-1, self.depth)).transpose(1, 2).reshape(b, -1, c)
            return F.scaled_dot_product_attention(q, kv, kv, scale=1.0).reshape(r.shape)
        q = r.flatten(2).transpose(1, 2)          # (B, tau*H*W, C): a channel vector per position
        kv = cells.flatten(2).transpose(1, 2)     # (B, n*tau*H*W, C)
        out = F.scaled_dot_product_attention(q, kv, kv, scale=1.0)
        return out.transpose(1, 2).reshape(r.shape)

    def forward(self, x: torch.Tensor, state: State, ctx: Context):
        tau = self.depth
        if self.clip_from_below:
            if "h_clip" not in ctx.shared:
                raise ValueError("an E3D-LSTM unit with clip_from_below reads the H clip of an "
                                 "E3D-LSTM unit below it (ctx.shared['h_clip']); there is none")
            xs = ctx.shared["h_clip"]                                     # H_t^{k-1}
        else:
            xs = torch.cat([state["x_hist"], x.unsqueeze(2)], 2)          # X_{t-tau+1:t}
        h_prev = torch.cat([state["h"].unsqueeze(2), state["h_rest"]], 2)  # H_{t-1}
        c_prev = torch.cat([state["c"].unsqueeze(2), state["c_rest"]], 2)  # C_{t-1}
        m_prev = ctx.shared["m"]                                          # M_t^{k-1}
        i_x, g_x, r_x, o_x, i_xm, g_xm, f_xm = self.norm_x(self.conv3d(self.conv_x, xs)).chunk(7, 1)
        i_h, g_h, r_h, o_h = self.norm_h(self.conv3d(self.conv_h, h_prev)).chunk(4, 1)
        i = torch.sigmoid(i_x + i_h)                                      # I_t  (Eq. 1)
        r = torch.sigmoid(r_x + r_h)                                      # R_t
        g = torch.tanh(g_x + g_h)                                         # G_t
        cells = torch.cat([state["history"], c_prev], 2)                  # C_{0:t-1}
        if self.history:
            cells = cells[:, :, -self.history * tau:]
        c = self.norm_c(c_prev + self.recall(r, cells)) + i * g           # C_t
        i_m, f_m, g_m, m_m = self.norm_m(self.conv3d(self.conv_m, m_prev)).chunk(4, 1)
        i2 = torch.sigmoid(i_xm + i_m)                                    # I'_t (Eq. 2)
        f2 = torch.sigmoid(f_xm + f_m + self.forget_bias)                 # F'_t
        g2 = torch.tanh(g_xm + g_m)                                       # G'_t
        m = f2 * torch.tanh(m_m) + i2 * g2                                # M_t^k
        o_c = self.norm_oc(self.conv3d(self.conv_oc, c))
        o_m = self.norm_om(self.conv3d(self.conv_om, m))
        o = torch.sigmoid(torch.tanh(o_x + o_h + o_c + o_m))              # O_t
        h = o * torch.tanh(self.per_slot(self.conv_last, torch.cat([c, m], 1)))  # H_t^k
        if self.zigzag:
            ctx.shared["m"] = m
        ctx.shared["h_clip"] = h
        kept = (self.history - 1) * tau if self.history else cells.shape[2]  # C_t joins next
        new = {"h": h[:, :, 0], "h_rest": h[:, :, 1:], "c": c[:, :, 0], "c_rest": c[:, :, 1:],
               "history": cells[:, :, cells.shape[2] - kept:]}
        if not self.clip_from_below:
            new["x_hist"] = xs[:, :, 1:]
        return h[:, :, 0], new, {"R_t": r[:, :, 0], "I_t": i[:, :, 0], "O_t": o[:, :, 0],
                                 "Im_t": i2[:, :, 0], "Fm_t": f2[:, :, 0]}

    # ------------------------------------------------------------ the authors' weights
    @staticmethod
    def openstl_state_dict(sd: dict) -> dict:
        """This unit's state dict (``code="openstl"``) from the state dict of OpenSTL's
        ``Eidetic3DLSTMCell`` (``openstl/modules/e3dlstm_modules.py``). Its Conv3d weights
        (out, C, tau, k, k) become the stacked 2D ones (out, tau*C, k, k); chunk orders and
        LayerNorm shapes are the same."""
        as_2d = lambda w: w.transpose(1, 2).flatten(1, 2)  # noqa: E731
        names = {"conv_x.0.conv3d": "conv_x", "conv_h.0.conv3d": "conv_h",
                 "conv_gm.0.conv3d": "conv_m", "conv_new_cell.0.conv3d": "conv_oc",
                 "conv_new_gm.0.conv3d": "conv_om", "conv_last.conv3d": "conv_last",
                 "conv_x.1": "norm_x", "conv_h.1": "norm_h", "conv_gm.1": "norm_m",
                 "conv_new_cell.1": "norm_oc", "conv_new_gm.1": "norm_om", "_norm_c_t": "norm_c"}
        out = {}
        for key, value in sd.items():
            module, _, param = key.rpartition(".")
            if module.endswith("conv3d"):
                value = as_2d(value)
            out[f"{names[module]}.{param}"] = value
        return out

    @staticmethod
    def google_state_dict(variables: dict, scope: str) -> dict:
        """This unit's state dict (``code="google"``) from the TensorFlow variables of one
        ``EideticLSTMCell`` of google/e3d_lstm (``src/layers/rnn_cell.py``), named
        ``<scope>/<layer>/<kernel|bias|gamma|beta>:0`` (scope e.g. ``"generator/e3d-lstm/e3d0"``),
        as tensors. The cell creates its convolutions in the order W_h, W_x, W_m, W_co, W_mo,
        W_1x1x1 (``conv3d``, ``conv3d_1``, ...); a kernel (tau, k, k, in, out) becomes the
        stacked 2D weight (out, tau*in, k, k)."""
        convs = ("conv_h", "conv_x", "conv_m", "conv_oc", "conv_om", "conv_last")
        norms = {"hidden": "norm_h", "inputs": "norm_x", "global_memory": "norm_m",
                 "self_attn": "norm_c"}
        get = lambda name: torch.as_tensor(variables[f"{scope}/{name}:0"])  # noqa: E731
        out = {}
        for n, mine in enumerate(convs):
            layer = "conv3d" + (f"_{n}" if n else "")
            out[f"{mine}.weight"] = get(f"{layer}/kernel").permute(4, 0, 3, 1, 2).flatten(1, 2)
            out[f"{mine}.bias"] = get(f"{layer}/bias")
        for layer, mine in norms.items():
            out[f"{mine}.weight"], out[f"{mine}.bias"] = get(f"{layer}/gamma"), get(f"{layer}/beta")
        return out
