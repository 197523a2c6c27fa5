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
