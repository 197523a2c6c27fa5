"""Analysis of Fig. 5: the paper's three readings of its feature and gate maps (Sec. IV-B),
checked numerically on every test window (:func:`fig5_observations`, in words:
:func:`describe_observations`). Features as :func:`stipkit.experiments.study.extract_features` returns them.
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from ..models.memories import STGRU
from .viz import map_tensor


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r of maps (..., h, w) pairwise over the last two axes; NaN where one is constant."""
    a = a.flatten(-2).double()
    b = b.flatten(-2).double()
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    r = (a * b).sum(-1) / den
    return torch.where(den > 1e-12, r, torch.full_like(r, float("nan")))


def _pool(x: torch.Tensor, size) -> torch.Tensor:
    """(B, S, H, W) -> (B, S, h, w) by area averaging."""
    b, s = x.shape[:2]
    return F.adaptive_avg_pool2d(x.reshape(b * s, 1, *x.shape[2:]), tuple(size)).reshape(b, s, *size)


def fig5_observations(features: dict, frames, level: int | None = None,
                      unit: int | None = None) -> pd.DataFrame:
    """The paper's three readings of Fig. 5 (Sec. IV-B), checked numerically on every test sample.

    With v_t the input frame of step t (the clip v_{t-1:t} ending there), maps are channel means
    of |features|, and frame maps are area-downsampled to the feature map's size:

    * (a) *T_E follows motion*: Pearson r of |T_E| with |v_t - v_{t-1}| (motion) is positive
      and higher than that of |S_E|;
    * (b) *S_E follows appearance*: r of |S_E| with the brightness of v_t is positive and
      higher than r of |T_E|;
    * (c) *U_t is brighter than R_t*: mean U_t > mean R_t (STGRU's gates: only when the
      model's memory is STGRU; other memories get no (c) row).

    r is computed per (sample, step) and averaged; step 0 is skipped (its clip repeats v_1, so
    there is no motion). ``level``: one encoder level, or None for one (a)/(b) row per level;
    ``unit``: one STGRU unit for (c), or None for all units. Columns: ``observation``,
    ``where``, ``measure``, ``value`` (the side the paper says is larger), ``versus`` (the
    other side), ``holds`` (value > versus, and for (a)/(b) value > 0: a map that is
    anti-correlated with motion does not "follow" it), ``share`` (the fraction of single maps on which
    the claim holds: near 0.5 means a toss-up even where ``holds`` is True) and ``maps`` (how
    many maps were compared; maps with a constant side are left out).
    """
    fr = torch.as_tensor(frames).detach().float().cpu()
    steps = features["T_E"][0].shape[1]
    if fr.shape[1] < steps:
        raise ValueError(f"frames hold {fr.shape[1]} steps; the features have {steps}")
    if steps < 2:
        raise ValueError("need at least 2 steps (step 0 has no motion)")
    fr = fr[:, :steps]
    gray = fr.mean(2)                                  # (B, S, H, W) brightness
    motion = (fr[:, 1:] - fr[:, :-1]).abs().mean(2)    # (B, S-1, H, W), step s >= 1
    brightness = gray[:, 1:]
    levels = range(len(features["T_E"])) if level is None else [level]
    rows = []
    for l in levels:
        t_map = map_tensor(features, "T_E", 0, l)[:, 1:].abs().mean(2)   # (B, S-1, h, w)
        s_map = map_tensor(features, "S_E", 0, l)[:, 1:].abs().mean(2)
        size = t_map.shape[-2:]
        mo, br = _pool(motion, size), _pool(brightness, size)
        r_tm, r_sm = _corr(t_map, mo), _corr(s_map, mo)
        r_sb, r_tb = _corr(s_map, br), _corr(t_map, br)
        where = f"encoder level {l} ({size[0]}x{size[1]})"
        rows.append(_row("(a) T_E follows motion", where,
                         "mean r(|T_E|, motion) vs r(|S_E|, motion)", r_tm, r_sm, positive=True))
        rows.append(_row("(b) S_E follows appearance", where,
                         "mean r(|S_E|, brightness) vs r(|T_E|, brightness)", r_sb, r_tb,
                         positive=True))
    r_name, u_name = STGRU.MAPS  # (c) is about STGRU's gates: other memories have no R_t, U_t
    if u_name in features and r_name in features:
        if unit is None:
            u, r = (torch.as_tensor(features[k]).float() for k in (u_name, r_name))
            where = f"all {u.shape[2]} STGRU units"
        else:
            u, r = (map_tensor(features, k, unit=unit) for k in (u_name, r_name))
            where = f"STGRU unit {unit}"
        # one brightness per (sample, step[, unit]) map; value/versus are the overall means
        row = _row("(c) U_t brighter than R_t", where, "mean U_t vs mean R_t",
                   u.flatten(-3).mean(-1), r.flatten(-3).mean(-1))
        row.update(value=float(u.double().mean()), versus=float(r.double().mean()))
        row["holds"] = bool(row["value"] > row["versus"])
        rows.append(row)
    return pd.DataFrame(rows)


def _row(observation: str, where: str, measure: str, claimed: torch.Tensor,
         other: torch.Tensor, positive: bool = False) -> dict:
    """A table row from per-map values of the side the paper says is larger and the other
    (``positive``: the claimed side must also be > 0 for the claim to hold)."""
    ok = torch.isfinite(claimed) & torch.isfinite(other)
    a, b = claimed[ok].double(), other[ok].double()
    value, versus = (float(a.mean()), float(b.mean())) if ok.any() else (float("nan"),) * 2
    floor = 0.0 if positive else float("-inf")
    return {"observation": observation, "where": where, "measure": measure, "value": value,
            "versus": versus, "holds": bool(value > versus and value > floor),
            "share": float(((a > b) & (a > floor)).double().mean()) if ok.any() else float("nan"),
            "maps": int(ok.sum())}


def describe_observations(df: pd.DataFrame) -> list[str]:
    """One sentence per row of :func:`fig5_observations`, saying whether it holds."""
    return [f"{r.observation} at {r.where}: {'HOLDS' if r.holds else 'does NOT hold'} "
            f"({r.measure}: {r.value:.3f} vs {r.versus:.3f}; the claim holds on "
            f"{r.share:.0%} of {r.maps} single maps)" for r in df.itertuples()]


def structured_view(features: dict, frames, step: int) -> tuple[int, int]:
    """``(sample, level)`` for a static Fig. 5 whose maps have something to show: the test window
    that moves most into ``step`` (mean |v_step - v_{step-1}|; a near-still window gives flat
    temporal maps), and the encoder level where T_E's channel mean varies most across the frame
    (its spatial standard deviation over its mean magnitude; at level 0, a 1x1 convolution of the
    two frames, S_E and T_E are both close to the frame)."""
    x = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(frames)
    if not 1 <= step < x.shape[1]:
        raise ValueError(f"step must be in 1..{x.shape[1] - 1} (it compares with the frame "
                         f"before), got {step}")
    motion = (x[:, step] - x[:, step - 1]).abs().flatten(1).mean(1)
    sample = int(motion.argmax())
    levels = len(features["T_E"])
    spread = []
    for level in range(levels):
        m = map_tensor(features, "T_E", level=level)[sample, step].abs().mean(0).double()
        spread.append(float(m.std() / (m.mean() + 1e-12)))
    return sample, int(torch.tensor(spread).argmax())


def strpm_fig5_readings(features: dict, t: int, level: int, sample: int = 0) -> pd.DataFrame:
    """STRPM's reading of its Fig. 5 (STRPM Sec. 4), measured on the maps drawn
    (:func:`stipkit.experiments.compare.strpm_fig5_features`): (1) the temporal features cover a
    wider motion area than the spatial ones -- the share of the frame where the channel mean of
    |T_E| is above half its maximum, against the same share of |S_E|; (2) STRF carries much larger
    weights than the temporal features -- mean |STRF| of the bottom RPM against mean |T_E|."""
    def area(kind: str) -> float:
        m = map_tensor(features, kind, level=level)[sample, t].abs().mean(0)
        return float((m > 0.5 * m.max()).float().mean())

    mean_abs = lambda kind, **kw: float(map_tensor(features, kind, **kw)[sample, t].abs().mean())  # noqa: E731
    a_t, a_s = area("T_E"), area("S_E")
    strf, t_e = mean_abs("STRF", unit=0), mean_abs("T_E", level=level)
    return pd.DataFrame([
        dict(reading="T_E covers a wider motion area than S_E", measure="share of the frame above "
             "half the map's maximum", T_E=a_t, other=a_s, other_is="S_E", holds=a_t > a_s),
        dict(reading="STRF carries much larger weights than T_E", measure="mean |value|",
             T_E=t_e, other=strf, other_is="STRF", holds=strf > t_e)])
