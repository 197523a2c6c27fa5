"""The kit's one statistical rule: how a claim "A beats B" is decided over seeds.

Each claim "A beats B" is a two-sided Welch t-test (Welch 1947) of the per-seed scores of A
against those of B; the p-values of all the pairs of one table are Holm-corrected together
(Holm 1979); a claim holds when its corrected p is below :data:`ALPHA` (0.05) in the claimed
direction, does not hold when it is below 0.05 the other way, and is otherwise not separable
from noise (always so with one seed on a side). A claim over several pairs ("A beats B and C")
holds when every pair holds, does not hold when any pair does not, and is otherwise not
separable. The protocol asks for at least :data:`MIN_SEEDS` (5) seeds per method. :data:`RULE`
says this in plain words for the notebooks and the README.

* :func:`welch` -- one pair: the difference of means in the claimed direction, its standard
  error, the Welch-Satterthwaite degrees of freedom, the two-sided p-value and a confidence
  interval of the difference (not corrected for the family: the verdict reads the Holm p).
* :func:`mean_ci` -- one method's mean over seeds with its t-interval.
* :func:`holm` -- Holm-Bonferroni adjusted p-values of one family (nan-safe).
* :func:`verdict` and :func:`combine` -- the words of one pair, and of a claim over several pairs.
* :func:`claim_table` -- every pair of one table tested, Holm-corrected together and judged;
  :func:`claim_verdicts` folds it to one row per claim.
* :func:`bootstrap_diff` -- a percentile bootstrap interval of the difference, a cross-check of
  the t-interval (not part of the rule).
* :func:`paired` and :func:`window_margins` -- one trained model against the baselines on the
  disjoint windows of a test split: a paired t-test per baseline, Holm-corrected over the
  baselines (the rule above is for seeds; this one is for the windows of one run).

Pure functions of numpy arrays and pandas frames. A nan score (a run that produced none) is left
out of its side before anything is computed.

References: B. L. Welch, "The generalization of 'Student's' problem when several different
population variances are involved", Biometrika 34 (1947) 28-35. S. Holm, "A simple sequentially
rejective multiple test procedure", Scandinavian Journal of Statistics 6 (1979) 65-70.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ALPHA", "MIN_SEEDS", "RULE", "VERDICTS", "bootstrap_diff", "claim_table",
           "claim_verdicts", "combine", "enough_seeds", "holm", "mean_ci", "paired", "verdict", "welch",
           "window_margins"]

#: The significance level of every claim, after Holm's correction.
ALPHA = 0.05
#: The protocol's minimum number of seeds per method (fewer: the table says so).
MIN_SEEDS = 5
#: The four words a claim can get, strongest first.
HOLDS, DOES_NOT_HOLD, NOISE, NOT_RUN = ("holds", "does not hold", "not separable from noise",
                                        "not run")
VERDICTS = (HOLDS, DOES_NOT_HOLD, NOISE, NOT_RUN)

#: How a claim "A beats B" is decided over seeds (printed by the notebooks and the README).
RULE = ("each claim 'A beats B' is a two-sided Welch t-test over seeds of the per-seed scores of "
        "A and B; the p-values of all the pairs of one table are Holm-corrected together; a "
        f"claim holds when its corrected p < {ALPHA} in the claimed direction, does not hold "
        f"when its corrected p < {ALPHA} the other way, and is otherwise not separable from "
        "noise (always so with one seed on a side). A claim over several pairs ('A beats B and "
        "C') holds when every pair holds, does not hold when any pair does not, and is otherwise "
        f"not separable from noise. The protocol asks for at least {MIN_SEEDS} seeds per method; "
        "the 95 % intervals shown are per pair, not corrected for the table.")


def enough_seeds(n: int) -> bool:
    """Whether ``n`` seeds meet the protocol's minimum (:data:`MIN_SEEDS`)."""
    return n >= MIN_SEEDS


def _scores(x) -> np.ndarray:
    """The per-seed scores as a flat float array, nans (runs with no score) left out."""
    a = np.asarray(x, dtype=float).ravel()
    return a[~np.isnan(a)]


def mean_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean over seeds and its Student t-interval at ``level``
    (``mean +- t_{(1+level)/2, n-1} * s / sqrt(n)``). The interval is nan with fewer than two
    seeds; everything is nan with none."""
    a = _scores(x)
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    m = float(a.mean())
    if len(a) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(a) - 1)) * float(a.std(ddof=1)) / math.sqrt(len(a))
    return m, m - half, m + half


def welch(x, y, higher_is_better: bool = True, level: float = 0.95) -> dict:
    """Welch's unequal-variance t-test (Welch 1947) of ``x`` (per-seed scores of the method
    claimed better) against ``y`` (of the method claimed worse).

    Returns a dict:

    * ``diff`` -- the difference of the means in the claimed direction: ``mean(x) - mean(y)``,
      negated when lower is better, so that positive always means "x is better";
    * ``se`` -- its standard error ``sqrt(s_x^2/n_x + s_y^2/n_y)``;
    * ``df`` -- the Welch-Satterthwaite degrees of freedom
      ``se^4 / ((s_x^2/n_x)^2/(n_x-1) + (s_y^2/n_y)^2/(n_y-1))``;
    * ``t`` and ``p`` -- the t statistic ``diff/se`` and its two-sided p-value (the same as
      ``scipy.stats.ttest_ind(x, y, equal_var=False)``);
    * ``ci`` -- ``(lo, hi)``, the ``level`` confidence interval of ``diff``,
      ``diff +- t_{(1+level)/2, df} * se``;
    * ``n_x``, ``n_y`` -- the seeds on each side (nan scores left out);
    * ``reason`` -- ``""`` when the test ran, else why ``p`` and ``ci`` are nan (or exact).

    With fewer than two seeds on a side, ``p`` and ``ci`` are nan (``diff`` is nan when a side
    has none). When neither side varies (deterministic runs), the difference is exact: ``p`` is
    0 and the interval is ``(diff, diff)`` if the means differ, nan if they are equal.
    """
    a, b = _scores(x), _scores(y)
    sign = 1.0 if higher_is_better else -1.0
    out = dict(diff=math.nan, se=math.nan, df=math.nan, t=math.nan, p=math.nan,
               ci=(math.nan, math.nan), n_x=len(a), n_y=len(b), reason="")
    if not (len(a) and len(b)):
        out["reason"] = f"no runs on a side (n_x={len(a)}, n_y={len(b)})"
        return out
    out["diff"] = d = sign * float(a.mean() - b.mean())
    if min(len(a), len(b)) < 2:
        out["reason"] = (f"fewer than 2 seeds on a side (n_x={len(a)}, n_y={len(b)}): "
                         "no variance, no test")
        return out
    vx, vy = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    out["se"] = se = float(math.sqrt(vx + vy))
    if se == 0:
        if d != 0:
            out.update(p=0.0, ci=(d, d), reason="neither side varies: the difference is exact")
        else:
            out["reason"] = "neither side varies and the means are equal: no test"
        return out
    out["df"] = df = float((vx + vy) ** 2 / (vx ** 2 / (len(a) - 1) + vy ** 2 / (len(b) - 1)))
    out["t"] = t = d / se
    out["p"] = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    out["ci"] = (d - half, d + half)
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input's order.

    Sort the m p-values ascending, p_(1) <= ... <= p_(m); the adjusted value of p_(i) is
    ``min(1, max_{j <= i} (m - j + 1) * p_(j))`` (the running maximum keeps the adjusted values
    in the order of the raw ones). Rejecting where the adjusted value is below alpha controls the
    family-wise error rate at alpha, with no assumption on how the tests depend on each other.
    This is statsmodels' ``multipletests(method="holm")``. Nans (pairs not tested) stay nan and
    do not count in m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    flat, res = p.ravel(), out.reshape(-1)
    idx = np.flatnonzero(~np.isnan(flat))
    if len(idx) == 0:
        return out
    order = idx[np.argsort(flat[idx], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * flat[order]
    res[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def verdict(diff: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """The words of one pair: ``"holds"`` when ``p_adjusted < alpha`` and ``diff > 0`` (the
    claimed direction), ``"does not hold"`` when ``p_adjusted < alpha`` and ``diff < 0``,
    ``"not separable from noise"`` otherwise (a nan p included), ``"not run"`` when there is no
    difference at all (``diff`` None or nan: a side has no runs)."""
    if diff is None or math.isnan(diff):
        return NOT_RUN
    if p_adjusted is not None and not math.isnan(p_adjusted) and p_adjusted < alpha:
        if diff > 0:
            return HOLDS
        if diff < 0:
            return DOES_NOT_HOLD
    return NOISE


def combine(verdicts: Iterable[str]) -> str:
    """The verdict of a claim over several pairs ("A beats B and C"): ``"not run"`` when any
    pair was not run (or there are none), else ``"does not hold"`` when any pair does not hold,
    ``"holds"`` when every pair holds, and ``"not separable from noise"`` otherwise."""
    vs = list(verdicts)
    unknown = set(vs) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdicts {sorted(unknown)}: valid are {list(VERDICTS)}")
    if not vs or NOT_RUN in vs:
        return NOT_RUN
    if DOES_NOT_HOLD in vs:
        return DOES_NOT_HOLD
    return HOLDS if all(v == HOLDS for v in vs) else NOISE


_PAIR_COLUMNS = ["diff", "se", "df", "ci_lo", "ci_hi", "p", "p_holm", "verdict", "n", "n_x",
                 "n_y", "enough_seeds", "reason"]


def claim_table(pairs: Sequence[dict], alpha: float = ALPHA, level: float = 0.95) -> pd.DataFrame:
    """Every pair of one table tested by :func:`welch`, Holm-corrected together and judged.

    ``pairs`` are dicts, one per pair "better beats worse", with ``x`` (the per-seed scores of
    the method claimed better), ``y`` (those of the method claimed worse) and
    ``higher_is_better`` (the metric's direction: required, so that an MSE is never read the
    wrong way round); every other key (``claim``, ``data``, ``metric``, ``better``, ``worse``,
    ...) is copied to the row. The rows passed in are one family: their p-values are
    Holm-corrected together (pass one ablation table's pairs, all its claims and datasets).

    Returns one row per pair: the copied keys, then ``diff`` (claimed direction positive),
    ``se``, ``df``, ``ci_lo``/``ci_hi`` (the ``level`` interval of ``diff``, not corrected),
    ``p`` (Welch, two-sided), ``p_holm``, ``verdict`` (:func:`verdict` of ``diff`` and
    ``p_holm``), ``n`` (the fewer seeds of the two sides), ``n_x``, ``n_y``, ``enough_seeds``
    (``n >= MIN_SEEDS``) and ``reason`` (why there is no test, if there is none).
    """
    rows = []
    for i, pair in enumerate(pairs):
        missing = {"x", "y", "higher_is_better"} - set(pair)
        if missing:
            raise KeyError(f"pair {i} lacks {sorted(missing)} (has {sorted(pair)})")
        w = welch(pair["x"], pair["y"], higher_is_better=bool(pair["higher_is_better"]),
                  level=level)
        keep = {k: v for k, v in pair.items() if k not in ("x", "y")}
        rows.append({**keep, "diff": w["diff"], "se": w["se"], "df": w["df"],
                     "ci_lo": w["ci"][0], "ci_hi": w["ci"][1], "p": w["p"],
                     "n": min(w["n_x"], w["n_y"]), "n_x": w["n_x"], "n_y": w["n_y"],
                     "reason": w["reason"]})
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=_PAIR_COLUMNS)
    table["p_holm"] = holm(table["p"].to_numpy(dtype=float))
    table["verdict"] = [verdict(d, p, alpha) for d, p in zip(table["diff"], table["p_holm"])]
    table["enough_seeds"] = table["n"].map(enough_seeds)
    keys = [c for c in table.columns if c not in _PAIR_COLUMNS]
    return table[keys + _PAIR_COLUMNS]


def claim_verdicts(table: pd.DataFrame, by: Sequence[str] = ("data", "claim")) -> pd.DataFrame:
    """One row per claim from a :func:`claim_table`: its pairs' verdicts folded by
    :func:`combine`, the fewest seeds of any pair (``n``), and the evidence in words (each
    pair's difference with its interval and Holm p). Groups by the columns of ``by`` that the
    table has, in order of first appearance."""
    by = [c for c in by if c in table.columns]
    if table.empty:
        return pd.DataFrame(columns=[*by, "verdict", "n", "pairs", "evidence"])

    def words(r) -> str:
        vs = f"vs {r['worse']}: " if "worse" in r else ""
        return f"{vs}{r['diff']:+.3g} [{r['ci_lo']:+.3g}, {r['ci_hi']:+.3g}], p_holm={r['p_holm']:.2g}"

    rows = []
    groups = table.groupby(by, sort=False) if by else [((), table)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "verdict": combine(g["verdict"]), "n": int(g["n"].min()),
                     "pairs": len(g), "evidence": "; ".join(words(r) for _, r in g.iterrows())})
    return pd.DataFrame(rows)


def bootstrap_diff(x, y, n_boot: int = 10000, seed: int = 0, higher_is_better: bool = True,
                   level: float = 0.95) -> tuple[float, float, float]:
    """``(diff, lo, hi)``: the difference of means in the claimed direction (as :func:`welch`)
    and its percentile bootstrap interval at ``level``, each side resampled over its seeds with
    replacement ``n_boot`` times (numpy generator seeded by ``seed``). A cross-check of the
    t-interval, not part of the rule: with a handful of seeds a percentile bootstrap is too
    narrow (it cannot see more spread than the seeds show), so expect it inside Welch's
    interval. The interval is nan with fewer than two seeds on a side."""
    a, b = _scores(x), _scores(y)
    sign = 1.0 if higher_is_better else -1.0
    if not (len(a) and len(b)):
        return math.nan, math.nan, math.nan
    d = sign * float(a.mean() - b.mean())
    if min(len(a), len(b)) < 2:
        return d, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    mb = b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
    lo, hi = np.quantile(sign * (ma - mb), [(1 - level) / 2, (1 + level) / 2])
    return d, float(lo), float(hi)


# --------------------------------------------------------------------------- one model, test windows
def paired(x, y, higher_is_better: bool = True, level: float = 0.95) -> dict:
    """Paired t-test of one model's per-window scores ``x`` against a baseline's ``y`` on the
    same test windows, in the same order (the windows of a split are disjoint, so each pair is
    one observation): ``diff`` (mean of x - y, negated when lower is better: positive means x is
    better), ``ci`` (its ``level`` t-interval), ``p`` (two-sided, as
    ``scipy.stats.ttest_rel``) and ``n`` (windows with both scores). With fewer than two
    windows ``p`` and ``ci`` are nan; when the differences do not vary, ``p`` is 0 (or nan when
    they are all zero) and the interval is exact."""
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores need one per window on both sides, got {a.size} and {b.size}")
    d = (1.0 if higher_is_better else -1.0) * (a - b)
    d = d[~np.isnan(d)]
    out = dict(diff=math.nan, ci=(math.nan, math.nan), p=math.nan, n=len(d))
    if not len(d):
        return out
    out["diff"] = m = float(d.mean())
    if len(d) < 2:
        return out
    s = float(d.std(ddof=1))
    if s == 0:
        out.update(ci=(m, m), p=0.0 if m != 0 else math.nan)
        return out
    se = s / math.sqrt(len(d))
    half = float(stats.t.ppf((1 + level) / 2, len(d) - 1)) * se
    out.update(ci=(m - half, m + half), p=float(2 * stats.t.sf(abs(m / se), len(d) - 1)))
    return out


def window_margins(rows: pd.DataFrame, metric: str = "psnr", level: float = 0.95,
                   alpha: float = ALPHA) -> pd.DataFrame:
    """Does the model beat each baseline on the test windows? ``rows``: the per-window scores of
    :func:`stipkit.scoring.evaluate.evaluate` (``per_sample=True``), the model beside the
    baselines. Each method's score of a window is ``metric`` averaged over the predicted steps;
    the model is tested against each baseline by :func:`paired`, the p-values Holm-corrected
    over the baselines, and judged by :func:`verdict` ("holds": the model is better).

    One row per baseline: ``model`` (its name), ``baseline``, ``strongest`` (the baseline to
    beat: :func:`stipkit.scoring.evaluate.strongest_baseline`), ``metric``, ``model_value`` and
    ``baseline_value`` (means over the windows), ``diff``, ``ci_lo``, ``ci_hi``, ``p``,
    ``p_holm``, ``windows`` and ``verdict``."""
    from ..scoring.evaluate import BASELINES, HIGHER_IS_BETTER, model_method, strongest_baseline

    if "sample" not in rows.columns:
        raise ValueError("window_margins needs per-window scores: evaluate(..., per_sample=True)")
    model, best = model_method(rows), strongest_baseline(rows, metric)
    wide = rows.assign(method=rows["method"].astype(str)).pivot_table(
        index="sample", columns="method", values=metric, aggfunc="mean")
    out = []
    for base in (b for b in BASELINES if b in wide.columns):
        test = paired(wide[model], wide[base], HIGHER_IS_BETTER[metric], level)
        out.append(dict(model=model, baseline=base, strongest=base == best, metric=metric,
                        model_value=float(wide[model].mean()), baseline_value=float(wide[base].mean()),
                        diff=test["diff"], ci_lo=test["ci"][0], ci_hi=test["ci"][1], p=test["p"],
                        windows=test["n"]))
    table = pd.DataFrame(out)
    table.insert(table.columns.get_loc("windows"), "p_holm", holm(table["p"].to_numpy(dtype=float)))
    table["verdict"] = [verdict(d, p, alpha) for d, p in zip(table["diff"], table["p_holm"])]
    return table


def strongest_row(margins: pd.DataFrame, metric: str | None = None) -> pd.Series:
    """The row of a :func:`window_margins` table (or several concatenated, one per metric) that
    tests the model against the strongest baseline, in ``metric`` (default: the table's first)."""
    metric = metric or margins["metric"].iloc[0]
    rows = margins[margins["strongest"].astype(bool) & (margins["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no strongest-baseline row in {metric!r}: the table has metrics "
                         f"{sorted(set(margins['metric']))}")
    return rows.iloc[0]
