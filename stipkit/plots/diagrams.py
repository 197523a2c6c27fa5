"""STIP's Figs. 1-3 drawn from the modules themselves (matplotlib only), so they follow the code:

* :func:`model_diagram` -- Fig. 1, the whole predictor (MGST-AE, Eq. 1-4, Alg. 1 lines 6-19),
  with every block's output shape recorded by forward hooks in one rollout on ``meta``;
* :func:`memory_diagram` -- Fig. 2, one STGRU unit (Eq. 5-7) with channels read from a built
  unit; any other memory of :data:`~stipkit.models.memories.MEMORIES` as a generic box diagram;
* :func:`training_diagram` -- Fig. 3 / Alg. 1, the training process: P, D, Eq. 8-10 combined
  by Eq. 9 as ``cfg.train.loss`` says (terms that are off are greyed), updates of lines 22-23.

Shapes are (C, H, W) of one sample (the batch is left out). Each returns the Figure and, given
``path``, also writes it there (:func:`stipkit.config.outputs.save_figure`).

The drawing kit is shared with :mod:`stipkit.plots.diagrams_strpm` (STRPM's Fig. 2): :class:`Sketch`
(boxes and arrows on one borderless axes), :func:`record` (every part's first output in one
rollout on ``meta``), :func:`shape` (a tensor's shape as a label) and the colours and font size.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from ..config import Config, ModelConfig, get_preset
from ..config.memories import memory_config
from ..config.outputs import save_figure
from ..reports.complexity import as_config, build_meta

__all__ = ["model_diagram", "memory_diagram", "training_diagram", "Sketch", "record", "shape",
           "FS", "BLUE", "GREEN", "ORANGE", "RED", "OFF_FACE"]

FS = 6.5                                          # font size (points) of every box
OFF_FACE, OFF_TEXT = "#f2f2f2", "#a0a0a0"         # a greyed (switched-off) part
BLUE, GREEN, ORANGE, RED = "#dbe7f6", "#dcefdc", "#fbe5cc", "#f6d8d8"


def shape(t) -> str:
    """The shape of one sample of the batched tensor ``t`` as a label: ``"(C, H, W)"``."""
    return str(tuple(t.shape[1:]))


class Sketch:
    """One borderless axes in data units (w x h, ``scale`` inches each): boxes and arrows.
    ``fig`` is the Figure; :meth:`save` writes it (or not) and returns it."""

    def __init__(self, w: float, h: float, title: str, scale: float = 0.72):
        self.fig = Figure(figsize=(w * scale, h * scale))
        self.ax = self.fig.add_axes((0, 0, 1, 0.95))
        self.ax.set_xlim(0, w), self.ax.set_ylim(0, h), self.ax.axis("off")
        self.fig.suptitle(title, fontsize=FS + 2, y=0.985)

    def box(self, x, y, text, w=1.6, h=0.8, color=BLUE, off=False, fs=FS, edge=True):
        """A rounded box centred at (x, y); returns its (left, right, bottom, top)."""
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, lw=0.8 if edge else 0,
                                         boxstyle="round,pad=0,rounding_size=0.08",
                                         fc=OFF_FACE if off else color, ec="#999" if off else "#333", zorder=2))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=fs,
                     color=OFF_TEXT if off else "black", linespacing=1.3, zorder=3)
        return x - w / 2, x + w / 2, y - h / 2, y + h / 2

    def arrow(self, *pts, label=None, off=False, at=None, ls="-"):
        """A polyline through ``pts`` ending in an arrowhead; ``label`` on segment ``at``
        (default: the longest) on a white ground."""
        col = OFF_TEXT if off else "#333"
        if len(pts) > 2:
            self.ax.plot(*zip(*pts[:-1]), color=col, lw=0.8, ls=ls, zorder=1)
        self.ax.annotate("", xy=pts[-1], xytext=pts[-2], arrowprops=dict(
            arrowstyle="-|>", color=col, lw=0.8, ls=ls, shrinkA=0, shrinkB=0, mutation_scale=7), zorder=1)
        if label:
            segs = list(zip(pts, pts[1:]))
            i = at if at is not None else max(range(len(segs)), key=lambda j: abs(
                segs[j][1][0] - segs[j][0][0]) + abs(segs[j][1][1] - segs[j][0][1]))
            (x0, y0), (x1, y1) = segs[i]
            self.ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, ha="center", va="center",
                         fontsize=FS - 0.5, color=col, bbox=dict(fc="white", ec="none", pad=0.6), zorder=3)

    def save(self, path=None, dpi: int = 100) -> Figure:
        """The finished Figure, written to ``path`` when given (:func:`save_figure`)."""
        save_figure(self.fig, path, dpi)
        return self.fig

    def region(self, x0, x1, y0, y1, label):
        """A dashed background frame (a module of Fig. 2) with its label at the bottom."""
        self.ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fc="#fafafa", ec="#bbb", ls="--", lw=0.7))
        self.ax.text((x0 + x1) / 2, y0 + 0.12, label, ha="center", va="bottom", fontsize=FS, style="italic")


# =============================================================================== Fig. 1
def record(predictor, cfg: Config) -> dict:
    """The first output of every part of ``predictor`` in its class's ``PARTS`` and of each of
    their children (keys ``"part"`` and ``"part.child"``), from one rollout of ``cfg``'s size on
    the ``meta`` device; with ``"prediction"`` (the first predicted frame) and ``"patchify"``."""
    out, hooks = {}, []
    for name, child in predictor.named_children():
        if name in getattr(type(predictor), "PARTS", {name: ""}):
            for key, mod in [(name, child), *((f"{name}.{k}", c) for k, c in child.named_children())]:
                hooks.append(mod.register_forward_hook(
                    lambda m, i, o, key=key: out.setdefault(key, o)))
    m = cfg.model
    frames = torch.zeros(1, cfg.input_length + 1, m.img_channels, m.height, m.width, device="meta")
    try:
        with torch.no_grad():
            out["prediction"] = predictor(frames).predictions[:, 0]
    finally:
        for h in hooks:
            h.remove()
    out["patchify"] = predictor.patchify(frames[:, 0])
    return out


def _units(sk: Sketch, pred, rec: dict, enc_box: dict, sted: bool, y: tuple, xe: float):
    """Fig. 1's memory: the merge of Alg. 1 line 7 and up to four of the K units (Eq. 2), each
    with its recorded state, and the arrows from the encoders into them. Returns the x of the
    top unit and its outputs (T^K, S^K)."""
    (yT, yM, yS), units = y, list(pred.memory)
    K = len(units)
    xu = [9.6 + 1.55 * i for i in range(min(K, 4))]
    shown = list(range(K)) if K <= 4 else [0, 1, None, K - 1]
    for x, k in zip(xu, shown):
        if k is None:
            sk.box(x, yM, f"⋯\n{K - 3} more", w=1.35, h=1.5, edge=False, color="white")
            continue
        state = rec[f"memory.{k}"][1]
        lines = "\n".join(f"{s}: {shape(v)}" for s, v in state.items())
        sk.box(x, yM, f"unit {k + 1}\n{type(units[k]).__name__}\n{lines}\nout {shape(rec[f'memory.{k}'][0])}",
               w=1.4, h=1.6, color=GREEN)
    for a, b in zip(xu, xu[1:]):
        sk.arrow((a + 0.7, yM), (b - 0.7, yM))
    streams = pred.streams
    t_e, s_e = rec[f"encoders.{streams[0]}"][-1], rec[f"encoders.{streams[-1]}"][-1]
    mt, er = pred.merge_t, enc_box["t"][1]
    sk.box(7.7, yT, f"Merge $W_{{1×1}}[T_E, T^1_{{t-1}}]$\n(Alg. 1 line 7)\n{mt.in_channels}→"
           f"{mt.out_channels}", w=2.0, h=0.9, color=ORANGE)
    te = f"$T_E$ {shape(t_e)}"
    if sted:
        sk.arrow((er, yT), (6.7, yT))
        sk.arrow((enc_box["s"][1], yS), (8.5, yS), (8.5, yM), (xu[0] - 0.7, yM), label=f"$S_E$ {shape(s_e)}", at=0)
        sk.ax.text(xe, yT - 0.75, te, ha="center", va="top", fontsize=FS - 0.5)
    else:
        sk.arrow((xe, yM + 0.55), (xe, yT), (6.7, yT), label=te, at=0)
        sk.arrow((er, yM - 0.2), (xu[0] - 0.7, yM - 0.2), label=f"$S_E = T_E$ {shape(s_e)}")
    sk.arrow((8.7, yT), (xu[0], yT), (xu[0], yM + 0.8), label=f"$T^1_{{t-1}}$ {shape(rec['merge_t'])}")
    top = rec[f"memory.{K - 1}"]
    return xu[-1], top[1][pred.memory.top_temporal], top[0]


def _passthrough(sk: Sketch, rec: dict, enc_box: dict, sted: bool, y: tuple, K: int,
                 left: float = 8.9, right: float = 13.9, out: float = 12.9):
    """Fig. 1's memory for memory ``"none"``: one grey pass-through box in place of the merge
    of line 7 and the K units, T_E and S_E drawn straight through it (T^K = T_E, S^K = S_E).
    Returns the x where the decoders' arrows leave the box and (T_E, S_E)."""
    yT, yM, yS = y
    streams = ("t", "s") if sted else ("t",)
    t_e, s_e = rec[f"encoders.{streams[0]}"][-1], rec[f"encoders.{streams[-1]}"][-1]
    sk.box((left + right) / 2, yM, f"no memory (memory 'none', the kit's control)\n"
           f"$S_E$, $T_E$ go straight to the decoder:\n$T^K = T_E$, $S^K = S_E$\n"
           f"no state, no parameters, no merge (Alg. 1 line 7);\n{K} identity units (NoMemory)",
           w=right - left, h=1.6, color=OFF_FACE)
    if sted:
        sk.arrow((enc_box["t"][1], yT), (left + 1.0, yT), (left + 1.0, yM + 0.8),
                 label=f"$T_E$ {shape(t_e)}", at=0)
        sk.arrow((enc_box["s"][1], yS), (8.5, yS), (8.5, yM), (left, yM), label=f"$S_E$ {shape(s_e)}", at=0)
    else:
        sk.arrow((enc_box["t"][1], yM), (left, yM), label=f"$S_E = T_E$ {shape(s_e)}")
    return out, t_e, s_e


def model_diagram(cfg: Config | str, path=None, dpi: int = 100) -> Figure:
    """Fig. 1: frames -> patchify -> Enc_T/Enc_S (Eq. 1) -> merge (Alg. 1 line 7) -> K memory
    units (Eq. 2) -> Dec_T/Dec_S with the MGIR recall (Eq. 3) -> 1x1 fusion (Eq. 4) -> v̂_{t+1},
    every arrow labelled with the shape recorded in one rollout on the meta device.

    Memory ``"none"`` (the kit's control, :class:`~stipkit.models.memories.NoMemory`): the K
    units and the merge of line 7 are drawn as one pass-through box, and T_E, S_E go through it
    straight to the decoders (:func:`_passthrough`)."""
    cfg = as_config(cfg)
    m = cfg.model
    pred, _ = build_meta(cfg)
    rec = record(pred, cfg)
    units, streams = list(pred.memory), pred.streams
    n, K = m.num_downsample, len(units)
    memoryless = pred.merge_t is None  # memory "none": STIP builds no merge of line 7
    yT, yM, yS = 7.0, 4.75, 2.5
    ys = {"t": yT, "s": yS} if len(streams) == 2 else {"t": yM}
    names = {"t": "T", "s": "S"} if len(streams) == 2 else {"t": ""}
    what = "no memory (memory 'none', the kit's control)" if memoryless else f"K = {K} units"
    sk = Sketch(21.7, 9.6, f"Fig. 1 ({pred.label}, preset {cfg.name!r}): shapes (C, H, W) recorded "
                          f"in one rollout; {what}, N = {n} levels, L = {m.clip_length}")
    c, p = m.img_channels, m.patch
    sk.box(1.0, yM, f"frames $v_{{t-L+1:t}}$\n{m.clip_length} × {(c, m.height, m.width)}", w=1.7)
    _, pr, _, _ = sk.box(3.2, yM, f"patchify\nPixelUnshuffle({p})\n→ {shape(rec['patchify'])}", w=1.9, h=1.0)
    sk.arrow((1.85, yM), (2.25, yM))
    xe, xd, xh = 5.5, 16.3, 18.75
    enc_box = {}
    for k in streams:
        enc = pred.encoders[k]
        what = f"$Enc_{names[k]}$ (Eq. 1)" if names[k] else "Enc (shared: $T_E = S_E$)"
        enc_box[k] = sk.box(xe, ys[k], f"{what}\n{enc.clip.in_channels}→{enc.clip.out_channels} clip conv"
                                       f"\n+ {len(enc.down)} × DL (3×3, s2)", w=2.0, h=1.1)
        sk.arrow((pr, yM), (4.1, yM), (4.1, ys[k]), (enc_box[k][0], ys[k]))
    if memoryless:
        xk, t_top, s_top = _passthrough(sk, rec, enc_box, len(streams) == 2, (yT, yM, yS), K)
        top_names = ("T_E", "S_E")
    else:
        xk, t_top, s_top = _units(sk, pred, rec, enc_box, len(streams) == 2, (yT, yM, yS), xe)
        top_names = ("T^K", "S^K")
    if len(streams) == 2:
        t_name, s_name = top_names
        into = {"t": (s_name, s_top), "s": (t_name, t_top)} if m.swap_decoder_states else \
               {"t": (t_name, t_top), "s": (s_name, s_top)}
        for k, edge in (("t", yM + 0.8), ("s", yM - 0.8)):
            nm, v = into[k]
            sk.arrow((xk, edge), (xk, ys[k]), (xd - 1.0, ys[k]), label=f"${nm}$ {shape(v)}")
    else:
        mts = pred.merge_ts
        sk.box(xk, yS, f"Merge $W_{{1×1}}[T^K, S^K]$\n(no STED) {mts.in_channels}→{mts.out_channels}",
               w=2.0, h=0.9, color=ORANGE)
        sk.arrow((xk, yM - 0.8), (xk, yS + 0.45), label=", ".join(
            f"${nm}$ {shape(v)}" for nm, v in zip(top_names, (t_top, s_top))))
        sk.arrow((xk + 1.0, yS), (xd, yS), (xd, yM - 0.55), label=shape(rec["merge_ts"]), at=0)
    head = pred.head
    for k in streams:
        dec = pred.decoders[k]
        what = f"$Dec_{names[k]}$ (Eq. 3)" if names[k] else "Dec (Eq. 3)"
        d = f"${names[k] or 'T'}_D$ {shape(rec[f'decoders.{k}'])}"
        sk.box(xd, ys[k], f"{what}\n{len(dec.up)} × UL (3×3 deconv, s2)" + ("" if names[k] else f"\n→ {d}"),
               w=2.0, h=1.1)
        if len(streams) == 2:
            sk.arrow((xd + 1.0, ys[k]), (xh, ys[k]), (xh, yM + (0.45 if k == "t" else -0.45)), label=d, at=1)
        else:
            sk.arrow((xd + 1.0, yM), (xh - 1.0, yM))
        if m.mgir:  # Eq. 3: decoder layer l adds lambda * E^{-l}; l = 1 (deepest) unless skipped
            lv = rec[f"encoders.{k}"][1:]
            ls = [l for l in range(1, n + 1) if l > 1 or m.recall_deepest]
            up = k == "t" and len(streams) == 2
            for i, l in enumerate(ls):
                y0 = ys[k] + (0.55 if up else -0.55)
                yy = y0 + (0.32 * (i + 1)) * (1 if up else -1)
                sk.arrow((xe - 0.75 + 0.3 * i, y0), (xe - 0.75 + 0.3 * i, yy), (xd + 0.75 - 0.3 * i, yy),
                         (xd + 0.75 - 0.3 * i, y0), ls="--", at=1,
                         label=f"MGIR λ={m.recall_weight}: $e_{{{n - l + 1}}}$ {shape(lv[-l])} → layer {l}")
    hin = sum(h.in_channels for h in head.values())
    sk.box(xh, yM, f"Fusion $W_{{1×1}}*[T_D, S_D]$\n(Eq. 4) {hin}→{m.frame_channels}\n→ "
           f"{shape(rec[f'head.{streams[0]}'])}", w=2.0, h=1.0,
           color=ORANGE)
    sk.box(20.85, yM, f"$\\hat v_{{t+1}}$\nPixelShuffle({p})\n{shape(rec['prediction'])}", w=1.4, h=1.0,
           color=RED)
    sk.arrow((xh + 1.0, yM), (20.1, yM))
    flags = f"STED {'on' if m.sted else 'off'}, MGIR {'on' if m.mgir else 'off'}"
    if memoryless:
        flags += "; no memory: nothing recurs to the next step"
    elif m.mgir:
        flags += "; the T state of each unit recurs to the next step"
    sk.ax.text(0.2, 0.15, flags + ("; --> : MGIR recall (Eq. 3)" if m.mgir else ""), fontsize=FS,
               va="bottom")
    return sk.save(path, dpi)


# =============================================================================== Fig. 2
def _memory(memory) -> tuple[type, ModelConfig]:
    """(unit class, ModelConfig) for a Config / ModelConfig / preset name / memory name or class;
    a bare memory gets the study preset's model with that memory's default section."""
    from ..models.memories import MEMORIES

    if isinstance(memory, str) and memory not in MEMORIES:
        memory = get_preset(memory)
    if isinstance(memory, (Config, ModelConfig)):
        m = memory.model if isinstance(memory, Config) else memory
        return MEMORIES[m.memory.name], m
    cls = MEMORIES[memory] if isinstance(memory, str) else memory
    names = [n for n, c in MEMORIES.items() if c is cls]
    if not names:
        raise ValueError(f"{memory!r} is not a memory of stipkit.models.memories.MEMORIES ({sorted(MEMORIES)})")
    return cls, replace(get_preset("study").model, memory=memory_config(names[0]))


def memory_diagram(memory, path=None, dpi: int = 100) -> Figure:
    """Fig. 2: one memory unit. STGRU (Eq. 5-7): inputs S_t^{k-1}, T_{t-1}^k, the convolutions
    conv_t / conv_s, (a) the gates of Eq. 5, (b) the trend terms of Eq. 6, (c) the updates of
    Eq. 7 -> S_t^k, T_t^k, with channels read from a unit built by ``from_config``. RPM: STRPM's
    Fig. 3 the same way (:func:`stipkit.plots.diagrams_strpm.rpm_diagram`: Eq. 5-9, features, gates, the two modules with their
    attention over past states, the output module, STIF + STRF). Any other
    memory: a box diagram of its MAPS, state keys (``init_state``), shared state and TEMPORAL;
    a memory with none of them (``"none"``, the identity) says so in each box.

    memory: a memory class or name of ``MEMORIES``, a Config / ModelConfig, or a preset name.
    """
    from ..models.memories import RPM, STGRU, MemoryStack

    cls, m = _memory(memory)
    with torch.device("meta"):
        stack = MemoryStack(cls.stack(m))
    x = torch.zeros(1, m.hidden, *m.latent_size, device="meta")
    k = next(i for i, u in enumerate(stack) if type(u) is cls)
    unit, shp = stack[k], shape(x)
    params = sum(p.numel() for p in unit.parameters())
    title = f"Fig. 2: {cls.__name__} ({cls.CITE}), one unit k at step t; hidden {m.hidden}, {params:,} parameters"
    if issubclass(cls, STGRU):
        return _stgru(unit, shp, title, path, dpi)
    if issubclass(cls, RPM):
        title = title.replace("Fig. 2:", "STRPM Fig. 3:", 1)
        from .diagrams_strpm import rpm_diagram  # STRPM's figures live there
        return rpm_diagram(unit, shp, title, path, dpi)
    state0, shared0, rec = unit.init_state(x), stack.init_state(x).shared, {}
    hook = unit.register_forward_hook(lambda mod, i, o: rec.setdefault("out", o))
    with torch.no_grad():
        stack(x, stack.init_state(x))
    hook.remove()
    out_shape, state1 = shape(rec["out"][0]), rec["out"][1]
    sk = Sketch(14, 6.4, title)
    lst = lambda d: "\n".join(f"{n}: {shape(v)}" + (" (TEMPORAL)" if n == cls.TEMPORAL else "")  # noqa: E731
                              for n, v in d.items()) or "(none: nothing is carried over time)"
    sk.box(2.2, 1.3, f"input from below\n$S_t^{{k-1}}$: {shp}", w=3.0, h=0.8)
    sk.box(2.2, 3.2, f"state keys (init_state), t-1:\n{lst(state0)}", w=3.0, h=1.6)
    if shared0:
        sk.box(2.2, 5.1, f"shared (zigzag) state:\n{lst(shared0)}", w=3.0, h=1.0, color=ORANGE)
    maps = "\n".join(f"{n}: {d}" for n, d in cls.MAPS.items()) or "(none: no gates or maps to show)"
    sk.box(7.0, 3.2, f"{cls.__name__}  ({cls.CITE})\n\nMAPS:\n{maps}\n\nwindow τ = {unit.window}, "
                     f"below θ = {unit.below}", w=4.6, h=4.6, color=GREEN)
    sk.box(11.8, 1.3, f"output up: $S_t^k$ {out_shape}", w=3.0, h=0.8)
    sk.box(11.8, 3.2, f"state keys, t:\n{lst(state1)}", w=3.0, h=1.6)
    for y in (1.3, 3.2):
        sk.arrow((3.7, y), (4.7, y))
        sk.arrow((9.3, y), (10.3, y))
    if shared0:
        sk.arrow((3.7, 5.1), (4.7, 5.1))
        sk.arrow((9.3, 5.1), (10.3, 5.1))
        sk.ax.text(10.4, 5.1, "to unit k+1 / next step", fontsize=FS, va="center")
    kinds = ", ".join(type(u).__name__ for u in stack)
    role = ("the state T_E merges into, Alg. 1 line 7, and Dec_T reads" if state0 else
            "nominal: with no state, T_E goes straight to Dec_T and there is no merge of Alg. 1 line 7")
    sk.ax.text(0.2, 0.1, f"TEMPORAL = {cls.TEMPORAL!r} ({role}); stack of {len(stack)}: {kinds}",
               fontsize=FS, va="bottom")
    return sk.save(path, dpi)


def _stgru(unit, shp: str, title: str, path=None, dpi: int = 100) -> Figure:
    """Fig. 2 for an STGRU unit (see :func:`memory_diagram`)."""
    sk = Sketch(18, 8.4, title)
    yT, yG, yS = 6.2, 4.1, 2.0
    sk.region(5.7, 8.5, 1.1, 7.1, "(a) gates, Eq. 5")
    sk.region(8.7, 12.3, 0.2, 7.1, "(b) trend, Eq. 6")
    sk.region(12.5, 15.9, 0.2, 7.1, "(c) update, Eq. 7")
    sk.box(1.1, yT, f"$T_{{t-1}}^k$\n{shp}", w=1.6)
    sk.box(1.1, yS, f"$S_t^{{k-1}}$\n{shp}", w=1.6)
    for nm, conv, y in (("t", unit.conv_t, yT), ("s", unit.conv_s, yS)):
        kk = "×".join(map(str, conv.kernel_size))
        sk.box(3.75, y, f"conv_{nm}: {kk}, {conv.in_channels}→{conv.out_channels}\n+ LayerNorm, 4 chunks"
                        f"\n$W_{{{nm}u}}, W_{{{nm}r}}, W_{{{nm}t}}, W_{{{nm}s}}$ ({conv.out_channels // 4} each)",
               w=2.6, h=1.0, color=ORANGE)
        sk.arrow((1.9, y), (2.45, y))
    (r, rd), (u, ud) = list(type(unit).MAPS.items())[:2]
    sk.box(7.1, yG + 0.8, f"{rd}\n$\\sigma(W_{{sr}}*S_t^{{k-1}} + W_{{tr}}*T_{{t-1}}^k)$", w=2.6, h=0.8)
    sk.box(7.1, yG - 0.8, f"{ud}\n$\\sigma(W_{{su}}*S_t^{{k-1}} + W_{{tu}}*T_{{t-1}}^k)$", w=2.6, h=0.8)
    sk.box(10.5, yT, "$\\mathbb{T}_t^k = \\tanh(W_{tt}*T_{t-1}^k$\n$+ R_t \\odot (W_{st}*S_t^{k-1}))$",
           w=3.4, h=0.8, color=GREEN)
    sk.box(10.5, yS, "$\\mathbb{S}_t^k = \\tanh(W_{ss}*S_t^{k-1}$\n$+ R_t \\odot (W_{ts}*T_{t-1}^k))$",
           w=3.4, h=0.8, color=GREEN)
    sk.box(14.2, yT, "$T_t^k = (1-U_t)\\odot\\mathbb{T}_t^k$\n$+ U_t \\odot T_{t-1}^k$", w=3.2, h=0.8, color=GREEN)
    sk.box(14.2, yS, "$S_t^k = (1-U_t)\\odot\\mathbb{S}_t^k$\n$+ U_t \\odot S_t^{k-1}$", w=3.2, h=0.8, color=GREEN)
    sk.box(17.1, yT, f"$T_t^k$ {shp}\n→ unit k, t+1", w=1.6, color=RED)
    sk.box(17.1, yS, f"$S_t^k$ {shp}\n→ unit k+1", w=1.6, color=RED)
    for y in (yT, yS):  # conv -> gates, own trend; trend -> update -> output
        for g in (yG + 0.8, yG - 0.8):
            sk.arrow((5.05, y + (-0.3 if y == yT else 0.3)), (5.5, y + (-0.3 if y == yT else 0.3)), (5.5, g), (5.8, g))
        sk.arrow((5.05, y), (8.8, y))
        sk.arrow((12.2, y), (12.6, y))
        sk.arrow((15.8, y), (16.3, y))
    sk.arrow((5.05, yT - 0.4), (8.8, yS + 0.3))  # the cross terms of Eq. 6
    sk.arrow((5.05, yS + 0.4), (8.8, yT - 0.3))
    sk.ax.text(8.2, yS + 0.7, "$W_{ts}*T$", fontsize=FS, ha="center")
    sk.ax.text(8.2, yT - 0.85, "$W_{st}*S$", fontsize=FS, ha="center")
    sk.arrow((8.4, yG + 0.8), (9.6, yG + 0.8), (9.6, yT - 0.4), label="$R_t$", at=0)
    sk.arrow((9.6, yG + 0.8), (9.6, yS + 0.4))
    sk.arrow((8.4, yG - 0.8), (12.35, yG - 0.8), (12.35, yT - 0.5), (12.6, yT - 0.3), label="$U_t$", at=0)
    sk.arrow((12.35, yG - 0.8), (12.35, yS + 0.5), (12.6, yS + 0.3))
    sk.arrow((1.1, yT + 0.4), (1.1, 7.6), (14.2, 7.6), (14.2, yT + 0.4), label="$T_{t-1}^k$ (Eq. 7)")
    sk.arrow((1.1, yS - 0.4), (1.1, 0.75), (14.2, 0.75), (14.2, yS - 0.4), label="$S_t^{k-1}$ (Eq. 7)")
    return sk.save(path, dpi)


# =============================================================================== Fig. 3
def training_diagram(cfg: Config | str, path=None, dpi: int = 100) -> Figure:
    """Fig. 3 / Alg. 1: P rolls out over a training window (scheduled sampling), D (its layers
    read from the built Discriminator) scores real and predicted frames, L_MSE and L_GAN(P)
    (Eq. 10) and L_LP (Eq. 8) combine by Eq. 9 with cfg.train's gamma_1, gamma_2; terms that
    ``cfg.train.loss`` leaves out are greyed. Line 22 updates D, line 23 P."""
    cfg = as_config(cfg)
    tc, m = cfg.train, cfg.model
    pred, disc = build_meta(cfg)
    gan, lp = tc.loss != "mse", tc.loss == "mse+gan+lp"
    off = f"\n(off: loss={tc.loss!r})"
    T, L = cfg.train_length, cfg.input_length
    units = dict.fromkeys(type(u).__name__ for u in pred.memory)
    sk = Sketch(18, 8, f"Fig. 3 / Alg. 1: training process (preset {cfg.name!r}, loss {tc.loss!r})")
    sk.box(1.6, 5.6, f"window V = $v_1..v_T$\nT = {T}, batch {tc.batch_size}\n{L} given, {T - L} predicted",
           w=2.6, h=1.1)
    ss = (f"later: scheduled sampling,\ntrue $v_t$ w.p. η = {tc.sampling_start} − {tc.sampling_rate}·iter\n"
          f"(0 from iter {tc.sampling_stop_iter})") if tc.scheduled_sampling else "later: its own $\\hat v_t$"
    sk.box(5.4, 5.6, f"Predictor P ({pred.label}): {len(pred.memory)} × {' + '.join(units)}\n"
                     f"rollout t = 1..T−1 (Alg. 1 lines 4-21)\nt ≤ {L}: given $v_t$; {ss}", w=3.9, h=1.7)
    sk.arrow((2.9, 5.6), (3.45, 5.6))
    sk.box(9.2, 5.6, "$\\hat V = \\hat v_2..\\hat v_T$", w=1.8, h=0.7, color=RED)
    sk.arrow((7.35, 5.6), (8.3, 5.6))
    acts = {type(a).__name__ for a in disc.features if not isinstance(a, (torch.nn.Conv2d, torch.nn.GroupNorm))}
    n = sum(isinstance(c, torch.nn.Conv2d) for c in disc.features)
    sk.box(9.2, 2.6, f"Discriminator D\n{n} × $DL_D$ (3×3 s2, GroupNorm, {', '.join(acts)})\n+ FC, sigmoid"
                     f"\n(disc_layers = {m.disc_layers})" + ("" if gan else off), w=3.6, h=1.4, color=ORANGE, off=not gan)
    sk.arrow((9.2, 5.25), (9.2, 3.3), off=not gan, label="$\\hat v_t$, $v_t$")
    sk.arrow((1.6, 5.05), (1.6, 2.6), (7.4, 2.6), off=not gan, label="real $v_t$")
    g1, g2 = tc.gamma_gan, tc.gamma_lp
    sk.box(13.3, 6.9, "$\\mathcal{L}_{MSE} = \\sum_t \\mathcal{L}_2(v_t, \\hat v_t)$ (Eq. 10)", w=3.4, h=0.6)
    sk.arrow((9.2, 5.95), (9.2, 6.9), (11.6, 6.9), label="$\\hat v_t$ vs $v_t$", at=1)
    sk.box(13.3, 5.0, "$\\mathcal{L}_{GAN}(P) = -\\sum_t \\log D(\\hat v_t)$ (Eq. 10)" + ("" if gan else off),
           w=3.4, h=0.8, off=not gan)
    sk.box(13.3, 3.3, "$\\mathcal{L}_{LP} = \\sum_t \\mathcal{L}_2[D_l(v_t), D_l(\\hat v_t)]$ (Eq. 8)" +
           ("" if lp else off), w=3.4, h=0.8, off=not lp)
    sk.box(13.3, 1.2, "$\\mathcal{L}_{GAN}(D) = -\\sum_t [\\log D(v_t) + \\log(1 - D(\\hat v_t))]$\n(Eq. 10)"
           + ("" if gan else off), w=3.8, h=0.9, off=not gan)
    sk.arrow((11.0, 2.9), (11.3, 2.9), (11.3, 5.0), (11.6, 5.0), off=not gan, label="$D(\\hat v_t)$", at=1)
    sk.arrow((11.0, 2.6), (11.6, 3.1), off=not lp)
    sk.ax.text(11.35, 3.55, "$D_l$", fontsize=FS, color="black" if lp else OFF_TEXT)
    sk.arrow((11.0, 2.2), (11.3, 2.2), (11.3, 1.2), (11.4, 1.2), off=not gan)
    terms = ["$\\mathcal{L}_{MSE}$"] + [f"{g1}·$\\mathcal{{L}}_{{GAN}}(P)$"] * gan + [f"{g2}·$\\mathcal{{L}}_{{LP}}$"] * lp
    sk.box(16.6, 4.2, "Eq. 9: $\\mathcal{L} = \\mathcal{L}_{MSE} + \\gamma_1 \\mathcal{L}_{GAN}(P) + "
                      f"\\gamma_2 \\mathcal{{L}}_{{LP}}$\n$\\gamma_1$ = {g1}, $\\gamma_2$ = {g2}\n"
                      f"on: L = {' + '.join(terms)}", w=2.6, h=1.3, color=GREEN, fs=FS - 0.5)
    for y, on in ((6.9, True), (5.0, gan), (3.3, lp)):
        sk.arrow((15.0, y), (15.3, y), (15.3, 4.2 + (y - 5.0) * 0.2), off=not on)
    sk.box(16.6, 6.9, f"Alg. 1 line 23: $W_P$ ← Adam(∇$\\mathcal{{L}}$)\nlr {tc.lr}", w=2.6, h=0.8, color=BLUE)
    sk.arrow((16.6, 4.85), (16.6, 6.5))
    sk.arrow((16.6, 7.3), (16.6, 7.7), (5.4, 7.7), (5.4, 6.45), label="update P")
    sk.box(16.6, 1.2, f"Alg. 1 line 22: $W_D$ ← Adam(∇$\\mathcal{{L}}_{{GAN}}(D)$)\nlr_d {tc.lr_d}"
           + ("" if gan else off), w=2.6, h=1.0, off=not gan)
    sk.arrow((15.2, 1.2), (15.3, 1.2), off=not gan)
    sk.arrow((16.6, 0.7), (16.6, 0.3), (9.2, 0.3), (9.2, 1.9), off=not gan, label="update D")
    return sk.save(path, dpi)
