"""STRPM's model figure (STRPM Fig. 2) drawn from the module itself, as :mod:`stipkit.plots.diagrams`
draws STIP's (with its :class:`~stipkit.plots.diagrams.Sketch`, :func:`~stipkit.plots.diagrams.record`
and :func:`~stipkit.plots.diagrams.shape`): block names and channels read from the built
:class:`~stipkit.models.strpm.STRPM`, every arrow labelled with the shape recorded by forward hooks
in one rollout on ``meta``."""
from __future__ import annotations

from matplotlib.figure import Figure

from ..reports.complexity import as_config, build_meta
from .diagrams import BLUE, FS, GREEN, OFF_FACE, ORANGE, RED, Sketch, record, shape

__all__ = ["strpm_diagram"]


def strpm_diagram(cfg="strpm-study", path=None, dpi: int = 100) -> Figure:
    """STRPM Fig. 2: frame -> patchify -> Enc_T, Enc_S, Enc_O (Eq. 1) -> K RPMs (Eq. 2, 5-9) ->
    Dec_T(T^K), Dec_S(S^K), Dec_O(O_P) (Eq. 3) -> O_D ⊙ tanh(W_1x1 [T_D, S_D]) (Eq. 4). Given
    ``path``, also writes it there.

    Memory ``"none"`` (the kit's control, :class:`~stipkit.models.memories.NoMemory`): the RPMs
    are drawn as one pass-through box, T_E, S_E, O_E going through it straight to the decoders
    (Eq. 2 is the identity)."""
    cfg = as_config(cfg)
    m = cfg.model
    if m.name != "strpm":
        raise ValueError(f"strpm_diagram needs an STRPM config (preset 'strpm-<preset>'), got "
                         f"ModelConfig.name={m.name!r}; STIP's figure is diagrams.model_diagram")
    pred, _ = build_meta(cfg)
    rec = record(pred, cfg)
    units, K = list(pred.memory), len(pred.memory)
    ys = {"t": 7.0, "s": 4.75, "o": 2.5}
    names = {"t": "T", "s": "S", "o": "O"}
    what = "no memory (memory 'none', the kit's control)" if pred.memoryless else f"K = {K} RPMs"
    sk = Sketch(21.7, 9.6, f"STRPM Fig. 2 (preset {cfg.name!r}): shapes (C, H, W) recorded in one "
                          f"rollout; {what}, N = {m.num_downsample} levels")
    sk.box(1.0, ys["s"], f"frame $v_t$\n{(m.img_channels, m.height, m.width)}", w=1.7)
    _, pr, _, _ = sk.box(3.2, ys["s"], f"patchify\nPixelUnshuffle({m.patch})\n→ "
                                       f"{shape(rec['patchify'])}", w=1.9, h=1.0)
    sk.arrow((1.85, ys["s"]), (2.25, ys["s"]))
    xe, xd, xf, xh = 5.6, 15.4, 17.6, 19.6
    for k in pred.streams:
        enc = pred.encoders[k]
        _, er, _, _ = sk.box(xe, ys[k], f"$Enc_{names[k]}$ (Eq. 1)\n{enc.clip.in_channels}→"
                                        f"{enc.clip.out_channels} 1×1 + {len(enc.down)} × (3×3, s2)\nReLU",
                             w=2.1, h=1.1)
        sk.arrow((pr, ys["s"]), (4.2, ys["s"]), (4.2, ys[k]), (xe - 1.05, ys[k]))
        sk.arrow((er, ys[k]), (8.1, ys[k]), (8.1, 4.75 + {"t": 0.5, "s": 0.0, "o": -0.5}[k]),
                 (8.75, 4.75 + {"t": 0.5, "s": 0.0, "o": -0.5}[k]),
                 label=f"${names[k]}_E$ {shape(rec[f'encoders.{k}'][-1])}", at=0)
    if pred.memoryless:
        xk, into = _passthrough(sk, rec, K)
    else:
        xk, into = _rpms(sk, rec, units, m)
    for k in pred.streams:
        nm, v = into[k]
        sk.arrow((xk + 0.68, 4.75 + {"t": 0.5, "s": 0.0, "o": -0.5}[k]),
                 (xk + 1.1, 4.75 + {"t": 0.5, "s": 0.0, "o": -0.5}[k]), (xk + 1.1, ys[k]),
                 (xd - 1.0, ys[k]), label=f"${nm}$ {shape(v)}", at=2)
        dec = pred.decoders[k]
        sk.box(xd, ys[k], f"$Dec_{names[k]}$ (Eq. 3)\n{len(dec.up)} × (3×3 deconv, s2)\nReLU between",
               w=2.0, h=1.1)
        tf = pred.to_frame[k]
        sk.box(xf, ys[k], f"1×1 {tf.in_channels}→{tf.out_channels}\n→ ${names[k]}_D$ "
                          f"{shape(rec[f'to_frame.{k}'])}", w=1.9, h=0.9, color=BLUE)
        sk.arrow((xd + 1.0, ys[k]), (xf - 0.95, ys[k]))
    head = pred.head
    sk.box(xh, 5.9, f"$W_{{1×1}}*[T_D, S_D]$\n{head.in_channels}→{head.out_channels}, tanh", w=1.9,
           h=0.9, color=ORANGE)
    sk.arrow((xf + 0.95, ys["t"]), (xh, ys["t"]), (xh, 6.35))
    sk.arrow((xf + 0.95, ys["s"]), (xh - 0.5, ys["s"]), (xh - 0.5, 5.45))
    sk.box(xh, 3.6, "$O_D$ ⊙ ·\n(Eq. 4)", w=1.3, h=0.8, color=ORANGE)
    sk.arrow((xh, 5.45), (xh, 4.0))
    sk.arrow((xf + 0.95, ys["o"]), (xh, ys["o"]), (xh, 3.2))
    sk.box(21.0, 2.2, f"$\\hat v_{{t+1}}$\nPixelShuffle({m.patch})\n{shape(rec['prediction'])}",
           w=1.35, h=1.0, color=RED)
    sk.arrow((xh + 0.65, 3.6), (21.0, 3.6), (21.0, 2.7))
    foot = ("no memory: $T_E$, $S_E$, $O_E$ go straight to the decoders (Eq. 2 is the identity); "
            "nothing recurs to the next step" if pred.memoryless else
            f"bottom RPM reads $T_E$, $S_E$, $O_E$; above: $H^{{k-1}}$ (Eq. 5); attention "
            f"{m.memory.attention}, temporal states {m.memory.temporal_states}, spatial states "
            f"{m.memory.spatial_states}")
    sk.ax.text(0.2, 0.15, foot, fontsize=FS, va="bottom")
    return sk.save(path, dpi)


def _rpms(sk: Sketch, rec: dict, units: list, m) -> tuple[float, dict]:
    """Up to three of the K RPMs (Eq. 5-9), each with its recorded state and STIF. Returns the x
    of the top RPM and what each decoder reads from it: stream -> (name, tensor)."""
    K = len(units)
    xu = [9.4 + 1.85 * i for i in range(min(K, 3))]
    shown = list(range(K)) if K <= 3 else [0, None, K - 1]
    for x, k in zip(xu, shown):
        if k is None:
            sk.box(x, 4.75, f"⋯\n{K - 2} more", w=1.3, h=1.5, edge=False, color="white")
            continue
        u = units[k]
        state = rec[f"memory.{k}"][1]
        lines = "\n".join(f"{s}: {shape(v)}" for s, v in state.items())
        stif = {"identity": "STIF = E", "conv": "STIF 1×1", "gated": "STIF 1×1 (+R_O)"}[u.stif]
        sk.box(x, 4.75, f"RPM {k + 1}\nτ={u.window}, θ={u.below}\n{lines}\n{stif}", w=1.35, h=1.9,
               color=GREEN)
    for a, b in zip(xu, xu[1:]):
        sk.arrow((a + 0.68, 4.75), (b - 0.68, 4.75), label="$H^k$, $S^k$" if a == xu[0] else None)
    top = rec[f"memory.{K - 1}"]
    o_name = "R_O^K (official)" if m.memory.decode_gate else "H^K"
    return xu[-1], {"t": ("T^K", top[1]["T"]), "s": ("S^K", top[0]),
                    "o": (o_name, top[2]["R_O"] if m.memory.decode_gate else top[1]["H"])}


def _passthrough(sk: Sketch, rec: dict, K: int, left: float = 8.72, right: float = 13.78,
                 out: float = 13.1) -> tuple[float, dict]:
    """The memory for memory ``"none"``: one grey pass-through box in place of the RPMs, Eq. 2
    as the identity, (T_P, S_P, O_P) = (T_E, S_E, O_E). Returns the x the decoders' arrows
    leave from (as the top RPM's) and what each decoder reads: stream -> (name, tensor)."""
    sk.box((left + right) / 2, 4.75, f"no memory (memory 'none', the kit's control)\n"
           f"$T_E$, $S_E$, $O_E$ go straight to the decoders:\n"
           f"$(T_P, S_P, O_P) = (T_E, S_E, O_E)$ (Eq. 2 = identity)\n"
           f"no state, no parameters; {K} identity units (NoMemory)",
           w=right - left, h=1.9, color=OFF_FACE)
    return out, {k: (f"{n}_E", rec[f"encoders.{k}"][-1]) for k, n in (("t", "T"), ("s", "S"), ("o", "O"))}


def rpm_diagram(unit, shp: str, title: str, path=None, dpi: int = 100) -> Figure:
    """STRPM Fig. 3: one RPM unit (STRPM Eq. 5-9), drawn like STIP's Fig. 2 -- features (Eq. 5), the
    residual gates and the temporal / spatial modules with their attention over past and lower
    states (Eq. 6-8), the output module and STIF + STRF (Eq. 9). ``unit``: a built RPM; called by
    :func:`stipkit.plots.diagrams.memory_diagram` ("rpm")."""
    sk = Sketch(19, 9.0, title)
    yT, yS, yO = 6.6, 3.6, 1.0
    sk.region(2.6, 5.4, 0.3, 8.0, "features, Eq. 5")
    sk.region(5.6, 12.4, 2.5, 8.0, "temporal / spatial modules, Eq. 6-8")
    sk.region(12.6, 16.6, 0.3, 8.0, "output module, Eq. 9")
    k = "×".join(map(str, unit.conv_t[0].kernel_size))
    sk.box(1.1, 7.2, f"$E$ ($T_E, S_E, O_E$)\n{shp}", w=1.8)
    sk.box(1.1, 5.6, f"$H_{{t-1}}^k$\n{shp}", w=1.8)
    sk.box(1.1, 3.6, f"$S_t^{{k-1}}$\n{shp}", w=1.8)
    sk.box(1.1, 1.6, f"$\\mathcal{{T}} = T_{{t-\\tau:t-1}}^k$\n$\\tau$ = {unit.window}", w=1.8)
    sk.box(1.1, 0.5, f"$\\mathcal{{S}} = S_t^{{k-\\theta:k-1}}$, $\\theta$ = {unit.below}", w=2.0, h=0.5)
    sk.box(4.0, yT, f"TF = $W_t*E$, HF = $W_h*H$\n{k} conv + LayerNorm", w=2.6, h=0.8, color=ORANGE)
    sk.box(4.0, yS, f"SF = $W_s*E$, MF = $W_m*S$\n{k} conv + LayerNorm", w=2.6, h=0.8, color=ORANGE)
    sk.box(4.0, yO, "OF = $W_o*E$\n(+ HF)", w=2.6, h=0.8, color=ORANGE)
    sk.box(7.0, yT, "$R_T = \\sigma(TF + HF)$", w=2.4, h=0.6)
    sk.box(7.0, yS, "$R_S = \\sigma(SF + MF)$", w=2.4, h=0.6)
    sk.box(7.0, 5.1, "$ATT_T(\\mathcal{T})$: conv of the\n$\\tau$ past temporal states", w=2.4, h=0.8,
           color=ORANGE)
    sk.box(7.0, 2.1, "$ATT_S(\\mathcal{S})$: conv of the\n$\\theta$ lower spatial states", w=2.4, h=0.8,
           color=ORANGE)
    sk.box(10.6, yT, "$T_t^k = R_T \\odot (\\tanh(TF + HF)$\n$+ ATT_T(\\mathcal{T}))$  (Eq. 7)", w=3.2,
           h=0.9, color=GREEN)
    sk.box(10.6, yS, "$S_t^k = R_S \\odot (\\tanh(SF + MF)$\n$+ ATT_S(\\mathcal{S}))$  (Eq. 8)", w=3.2,
           h=0.9, color=GREEN)
    sk.box(14.6, 5.1, "$R_O = \\sigma(OF + HF$\n$+ W_{ot}*T_t^k + W_{os}*S_t^k)$", w=3.4, h=0.9)
    sk.box(14.6, 3.1, "STRF $= R_O \\odot \\tanh(W_{1\\times1}*[T_t^k, S_t^k])$", w=3.6, h=0.7,
           color=GREEN)
    sk.box(14.6, 1.2, "STIF: the input information\n(identity or 1×1 conv of $E$)", w=3.4, h=0.8,
           color=GREEN)
    sk.box(17.9, yT, f"$T_t^k$ {shp}\n→ unit k, t+1", w=1.7, color=RED)
    sk.box(17.9, yS, f"$S_t^k$ {shp}\n→ unit k+1", w=1.7, color=RED)
    sk.box(17.9, 1.2, f"$H_t^k$ = STIF + STRF\n{shp} → up", w=1.7, color=RED)
    sk.arrow((2.0, 7.2), (2.3, 7.2), (2.3, yT), (2.7, yT))        # E -> the three features
    sk.arrow((2.3, 7.2), (2.3, yS + 0.2), (2.7, yS + 0.2))
    sk.arrow((2.3, yS + 0.2), (2.3, yO), (2.7, yO))
    sk.arrow((2.0, 5.6), (2.5, 5.6), (2.5, yT - 0.2), (2.7, yT - 0.2))   # H -> HF
    sk.arrow((2.0, 3.6), (2.7, yS - 0.2))                          # S^{k-1} -> MF
    sk.arrow((5.3, yT), (5.8, yT))
    sk.arrow((5.3, yS), (5.8, yS))
    sk.arrow((2.0, 1.6), (5.5, 1.6), (5.5, 5.1), (5.8, 5.1))       # past states -> ATT_T
    sk.arrow((3.1, 0.5), (5.7, 0.5), (5.7, 2.1), (5.8, 2.1))       # lower states -> ATT_S
    sk.arrow((8.2, yT), (9.0, yT), label="$R_T$", at=0)
    sk.arrow((8.2, yS), (9.0, yS), label="$R_S$", at=0)
    sk.arrow((8.2, 5.1), (8.6, 5.1), (8.6, yT - 0.3), (9.0, yT - 0.3))
    sk.arrow((8.2, 2.1), (8.6, 2.1), (8.6, yS - 0.3), (9.0, yS - 0.3))
    sk.arrow((12.2, yT), (17.05, yT))
    sk.arrow((12.2, yS), (17.05, yS))
    sk.arrow((12.5, yT), (12.5, 5.1), (12.9, 5.1))                 # T, S -> R_O and STRF
    sk.arrow((12.5, yS), (12.5, 3.1), (12.8, 3.1))
    sk.arrow((5.3, yO), (12.7, yO), (12.7, 4.9), (12.9, 4.9), label="OF", at=0)
    sk.arrow((14.6, 4.65), (14.6, 3.45), label="$R_O$")
    sk.arrow((16.4, 3.1), (16.8, 3.1), (16.8, 1.4), (17.05, 1.4))
    sk.arrow((2.0, 7.2), (2.15, 7.9), (12.9, 7.9), (12.9, 0.4), (14.6, 0.4), (14.6, 0.8), label="$E$")
    sk.arrow((16.3, 1.2), (17.05, 1.2))
    return sk.save(path, dpi)
