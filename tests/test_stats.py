"""stipkit.reports.stats: Welch's test, Holm's correction and the verdicts of the claims."""
import math
import subprocess
import sys

import numpy as np
import pytest
import pandas as pd
from scipy import stats as sps

from stipkit.reports import stats
from stipkit.reports.stats import (ALPHA, MIN_SEEDS, RULE, bootstrap_diff, claim_table,
                                   claim_verdicts, combine, enough_seeds, holm, mean_ci, verdict,
                                   welch)

NOISE = "not separable from noise"


# --------------------------------------------------------------------------- Welch

def test_welch_by_hand_two_seeds_a_side():
    # x = [1, 3], y = [6, 8]: variances 2 and 2, se = sqrt(2/2 + 2/2) = sqrt(2), df = 2.
    # With 2 degrees of freedom the t distribution has a closed form: F(t) = 1/2 + t / (2 sqrt(2 + t^2)),
    # so the two-sided p is 1 - |t| / sqrt(2 + t^2) and the 0.975 quantile is 0.95 / sqrt(2 .975 .025).
    w = welch([1, 3], [6, 8])
    t = -5 / math.sqrt(2)
    assert w["diff"] == pytest.approx(-5)
    assert w["se"] == pytest.approx(math.sqrt(2))
    assert w["df"] == pytest.approx(2)
    assert w["t"] == pytest.approx(t)
    assert w["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))  # 0.0715
    q = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027
    assert w["ci"] == pytest.approx((-5 - q * math.sqrt(2), -5 + q * math.sqrt(2)))
    assert (w["n_x"], w["n_y"], w["reason"]) == (2, 2, "")


def test_welch_satterthwaite_df_by_hand():
    # x = [1, 2, 3]: s^2 = 1, s^2/n = 1/3; y = [3, 5, 7, 9]: s^2 = 20/3, s^2/n = 5/3; se^2 = 2.
    # df = 2^2 / ((1/3)^2 / 2 + (5/3)^2 / 3) = 4 / (53/54) = 216/53.
    w = welch([1, 2, 3], [3, 5, 7, 9])
    assert w["diff"] == pytest.approx(-4)
    assert w["se"] == pytest.approx(math.sqrt(2))
    assert w["df"] == pytest.approx(216 / 53)


@pytest.mark.parametrize("seed", range(5))
def test_welch_agrees_with_scipy(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0.3, 1, size=3 + seed), rng.normal(0, 2, size=5)
    w, ref = welch(x, y), sps.ttest_ind(x, y, equal_var=False)
    assert w["t"] == pytest.approx(ref.statistic)
    assert w["p"] == pytest.approx(ref.pvalue)
    assert w["df"] == pytest.approx(ref.df)
    ci = ref.confidence_interval(0.95)
    assert w["ci"] == pytest.approx((ci.low, ci.high))


def test_welch_lower_is_better_flips_the_sign_only():
    x, y = [0.10, 0.12, 0.11], [0.20, 0.22, 0.25]  # e.g. MSE: x is better
    hi, lo = welch(x, y), welch(x, y, higher_is_better=False)
    assert lo["diff"] == pytest.approx(-hi["diff"]) and lo["diff"] > 0
    assert lo["p"] == pytest.approx(hi["p"]) and lo["se"] == pytest.approx(hi["se"])
    assert lo["ci"] == pytest.approx((-hi["ci"][1], -hi["ci"][0]))


def test_welch_ci_covers_zero_95_percent_of_the_time():
    # Equal means, 5 seeds a side: the 95 % interval should contain the true difference (0)
    # about 95 % of the time, and p < 0.05 about 5 % of the time.
    rng = np.random.default_rng(1947)
    results = [welch(rng.normal(0, 1, 5), rng.normal(0, 1, 5)) for _ in range(2000)]
    covered = np.mean([lo <= 0 <= hi for lo, hi in (r["ci"] for r in results)])
    rejected = np.mean([r["p"] < 0.05 for r in results])
    assert 0.93 <= covered <= 0.97
    assert 0.03 <= rejected <= 0.07
    # the interval and the test agree: 0 is outside exactly when p < 0.05
    assert all((r["p"] < 0.05) == (not r["ci"][0] <= 0 <= r["ci"][1]) for r in results)


def test_welch_one_seed_and_no_seed():
    one = welch([1.0], [0.5, 0.6, 0.7])
    assert one["diff"] == pytest.approx(0.4)
    assert math.isnan(one["p"]) and all(math.isnan(c) for c in one["ci"])
    assert "fewer than 2 seeds" in one["reason"]
    none = welch([], [0.5, 0.6])
    assert math.isnan(none["diff"]) and math.isnan(none["p"])
    assert "no runs" in none["reason"] and (none["n_x"], none["n_y"]) == (0, 2)


def test_welch_leaves_nan_scores_out():
    w = welch([1.0, np.nan, 2.0, 3.0], [3, 5, 7, 9, np.nan])
    assert (w["n_x"], w["n_y"]) == (3, 4)
    assert w["df"] == pytest.approx(216 / 53)


def test_welch_without_spread():
    exact = welch([2.0, 2.0], [1.0, 1.0, 1.0])
    assert exact["diff"] == 1 and exact["p"] == 0 and exact["ci"] == (1.0, 1.0)
    same = welch([2.0, 2.0], [2.0, 2.0])
    assert same["diff"] == 0 and math.isnan(same["p"]) and same["reason"]


# --------------------------------------------------------------------------- mean_ci

def test_mean_ci():
    m, lo, hi = mean_ci([1, 2, 3, 4, 5])
    half = sps.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5)  # 2.776 * 0.7071
    assert (m, lo, hi) == pytest.approx((3, 3 - half, 3 + half))
    m, lo, hi = mean_ci([1, 3], level=0.95)  # df = 1: t quantile = tan(pi (0.975 - 1/2)) = 12.706
    assert (lo, hi) == pytest.approx((2 - math.tan(math.pi * 0.475), 2 + math.tan(math.pi * 0.475)))
    m, lo, hi = mean_ci([7.0])
    assert m == 7 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in mean_ci([]))


# --------------------------------------------------------------------------- Holm

def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 1.0, max(1.0, 0.6); capped at 1
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert holm([0.02]) == pytest.approx([0.02])  # a family of one is not corrected
    assert holm([]).shape == (0,)


def test_holm_nans_stay_nan_and_do_not_count():
    out = holm([0.01, np.nan, 0.04, 0.03, 0.005])
    assert np.isnan(out[1])
    assert out[[0, 2, 3, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])  # m = 4, not 5
    assert np.isnan(holm([np.nan, np.nan])).all()


def _holm_reference(p):
    """statsmodels' multipletests(method="holm") written out with loops: p_(i) adjusted is
    min(1, max over j <= i of (m - j + 1) p_(j)), with 1-based ranks i, j of the sorted p."""
    m, order = len(p), sorted(range(len(p)), key=lambda k: p[k])
    out, running = [0.0] * m, 0.0
    for rank, k in enumerate(order, start=1):
        running = max(running, (m - rank + 1) * p[k])
        out[k] = min(1.0, running)
    return out


def _holm_rejects(p, alpha):
    """Holm's step-down procedure: reject the smallest p while p_(i) <= alpha / (m - i + 1)."""
    m, rejected = len(p), set()
    for rank, k in enumerate(sorted(range(m), key=lambda k: p[k]), start=1):
        if p[k] > alpha / (m - rank + 1):
            break
        rejected.add(k)
    return rejected


@pytest.mark.parametrize("seed", range(20))
def test_holm_agrees_with_the_definition(seed):
    rng = np.random.default_rng(seed)
    p = list(rng.uniform(0, 0.2, size=rng.integers(1, 12)) ** 2)
    adjusted = holm(p)
    assert adjusted == pytest.approx(_holm_reference(p))
    assert np.all(adjusted >= np.asarray(p)) and np.all(adjusted <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)  # monotone in the raw p
    for alpha in (0.01, 0.05, 0.1):
        assert {k for k in range(len(p)) if adjusted[k] <= alpha} == _holm_rejects(p, alpha)


# --------------------------------------------------------------------------- verdicts

def test_verdict():
    assert verdict(0.3, 0.01) == "holds"
    assert verdict(-0.3, 0.01) == "does not hold"
    assert verdict(0.3, 0.05) == NOISE  # strictly below alpha
    assert verdict(0.3, 0.2) == NOISE
    assert verdict(0.3, math.nan) == NOISE  # one seed: no test
    assert verdict(0.0, 0.0) == NOISE
    assert verdict(math.nan, math.nan) == "not run"
    assert verdict(None, None) == "not run"
    assert verdict(0.3, 0.04, alpha=0.01) == NOISE


def test_combine():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["holds", NOISE]) == NOISE
    assert combine(["holds", "does not hold", NOISE]) == "does not hold"
    assert combine(["holds", "not run"]) == "not run"
    assert combine([]) == "not run"
    with pytest.raises(ValueError, match="unknown verdicts"):
        combine(["holds", "hold"])


def test_seeds_and_rule():
    assert (ALPHA, MIN_SEEDS) == (0.05, 5)
    assert enough_seeds(5) and not enough_seeds(3)
    for words in ("Welch", "Holm", "0.05", "not separable from noise", "does not hold", "5 seeds"):
        assert words in RULE
    assert "1947" in stats.__doc__ and "1979" in stats.__doc__


# --------------------------------------------------------------------------- tables

_X = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
_Y = _X[::-1] + np.array([0, 0.05, -0.05, 0.02, -0.02])  # same spread, shuffled


def _pair(worse, x, y, claim="A beats the rest", metric="psnr", higher=True, data="digits"):
    return dict(claim=claim, data=data, metric=metric, better="A", worse=worse, x=x, y=y,
                higher_is_better=higher)


def test_holm_turns_a_family_of_borderline_wins_into_noise():
    # Three pairs each with a raw Welch p between 0.02 and 0.045: alone each would hold; in a
    # family of three, Holm multiplies the smallest by 3 (> 0.05), and so none holds.
    pairs = [_pair(f"B{i}", _X + d, _Y) for i, d in enumerate((0.25, 0.28, 0.30))]
    t = claim_table(pairs)
    assert (t["p"] < 0.05).all() and (t["diff"] > 0).all()
    assert [verdict(d, p) for d, p in zip(t["diff"], t["p"])] == ["holds"] * 3  # uncorrected
    assert (t["p_holm"] > 0.05).all()
    assert list(t["verdict"]) == [NOISE] * 3
    assert claim_verdicts(t)["verdict"].item() == NOISE
    # the same pair alone (a family of one) holds
    assert claim_table(pairs[2:])["verdict"].item() == "holds"


def test_claim_table_columns_family_and_directions():
    rng = np.random.default_rng(0)
    pairs = [
        _pair("B", _X + 2, _X),  # clearly better
        _pair("C", _X - 2, _X),  # clearly worse
        _pair("D", [0.1, 0.11, 0.1, 0.12, 0.1], [0.3, 0.31, 0.33, 0.3, 0.32], metric="mse",
              higher=False, claim="A has lower MSE"),  # lower is better: holds
        _pair("E", rng.normal(0, 1, 5), rng.normal(0, 1, 5), claim="noise"),
        _pair("F", [1.0], [0.5, 0.6, 0.7], claim="one seed"),
        _pair("G", [], [0.5, 0.6], claim="not run"),
    ]
    t = claim_table(pairs)
    assert list(t.columns[:7]) == ["claim", "data", "metric", "better", "worse", "higher_is_better",
                                   "diff"]
    for col in ("diff", "se", "df", "ci_lo", "ci_hi", "p", "p_holm", "verdict", "n", "reason"):
        assert col in t.columns
    assert "x" not in t.columns and "y" not in t.columns
    assert list(t["verdict"]) == ["holds", "does not hold", "holds", NOISE, NOISE, "not run"]
    assert list(t["n"]) == [5, 5, 5, 5, 1, 0]
    assert list(t["enough_seeds"]) == [True, True, True, True, False, False]
    # one family: the Holm of the tested pairs, the untested ones left out of m
    tested = t["p"].notna()
    assert tested.sum() == 4
    assert t.loc[tested, "p_holm"].to_numpy() == pytest.approx(holm(t.loc[tested, "p"]))
    assert t["p_holm"].isna().equals(t["p"].isna())
    # the per-pair interval is Welch's
    w = welch(pairs[2]["x"], pairs[2]["y"], higher_is_better=False)
    assert (t.loc[2, "ci_lo"], t.loc[2, "ci_hi"]) == pytest.approx(w["ci"])

    v = claim_verdicts(t)
    assert list(v.columns) == ["data", "claim", "verdict", "n", "pairs", "evidence"]
    by_claim = dict(zip(v["claim"], v["verdict"]))
    assert by_claim == {"A beats the rest": "does not hold", "A has lower MSE": "holds",
                        "noise": NOISE, "one seed": NOISE, "not run": "not run"}
    assert v.loc[v["claim"] == "A beats the rest", "pairs"].item() == 2
    assert "vs B: +" in v["evidence"].iloc[0] and "p_holm=" in v["evidence"].iloc[0]


def test_claim_table_requires_the_direction_and_handles_empty():
    with pytest.raises(KeyError, match="higher_is_better"):
        claim_table([dict(claim="c", x=[1, 2], y=[0, 1])])
    empty = claim_table([])
    assert empty.empty and "verdict" in empty.columns
    assert claim_verdicts(empty).empty


# --------------------------------------------------------------------------- bootstrap

def test_bootstrap_cross_checks_welch():
    rng = np.random.default_rng(3)
    x, y = rng.normal(1, 1, 8), rng.normal(0, 1, 8)
    d, lo, hi = bootstrap_diff(x, y, n_boot=4000, seed=0)
    w = welch(x, y)
    assert d == pytest.approx(w["diff"]) and lo < d < hi
    # the percentile bootstrap is narrower than the t-interval with few seeds, but not wildly
    width, t_width = hi - lo, w["ci"][1] - w["ci"][0]
    assert 0.6 * t_width < width < 1.05 * t_width
    assert bootstrap_diff(x, y, n_boot=4000, seed=0) == (d, lo, hi)  # seeded
    d2, lo2, hi2 = bootstrap_diff(x, y, n_boot=4000, seed=0, higher_is_better=False)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))
    d1, lo1, hi1 = bootstrap_diff([1.0], y)
    assert math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(v) for v in bootstrap_diff([], y))


def test_imports_no_torch():
    code = "import sys, stipkit.reports.stats; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- one model, test windows

@pytest.mark.parametrize("seed", range(3))
def test_paired_agrees_with_scipy(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(20, 2, 12)
    x = y + rng.normal(0.3, 0.5, 12)
    got, ref = stats.paired(x, y), sps.ttest_rel(x, y)
    assert got["diff"] == pytest.approx(float(np.mean(x - y))) and got["n"] == 12
    assert got["p"] == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert got["ci"] == pytest.approx((lo, hi))
    flipped = stats.paired(x, y, higher_is_better=False)
    assert flipped["diff"] == pytest.approx(-got["diff"]) and flipped["p"] == pytest.approx(got["p"])


def test_paired_edge_cases():
    assert stats.paired([1.0, 2.0], [0.0, 1.0]) == dict(diff=1.0, ci=(1.0, 1.0), p=0.0, n=2)
    assert math.isnan(stats.paired([1.0, 2.0], [1.0, 2.0])["p"])
    one = stats.paired([3.0], [1.0])
    assert one["diff"] == 2.0 and math.isnan(one["p"]) and one["n"] == 1
    with pytest.raises(ValueError, match="one per window"):
        stats.paired([1.0, 2.0], [1.0])


def _windows(model_shift, noise=0.0, n=20, seed=0):
    """Per-window scores as evaluate(per_sample=True) gives them: the model is flow-warp plus
    ``model_shift`` dB (and some noise), copy-last 1 dB under flow-warp, mean-frame 3 dB under."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    base = rng.normal(28, 2, n)
    rows = []
    for name, shift in (("STIP", model_shift), ("copy-last", -1.0), ("mean-frame", -3.0),
                        ("flow-warp", 0.0)):
        jitter = rng.normal(0, noise, n) if name == "STIP" else np.zeros(n)
        for s in range(n):
            for t in (5, 6):
                rows.append(dict(method=name, sample=s, t=t, psnr=base[s] + shift + jitter[s] - (t - 5),
                                 lpips_x100=5.0 - shift))
    return pd.DataFrame(rows)


def test_window_margins_reads_the_strongest_baseline_and_says_whether_the_model_beats_it():
    table = stats.window_margins(_windows(0.5, noise=0.3)).set_index("baseline")
    assert table["strongest"].tolist() == [False, False, True]  # flow-warp
    fw = table.loc["flow-warp"]
    assert fw["diff"] == pytest.approx(0.5, abs=0.2) and fw["windows"] == 20
    assert fw["verdict"] == "holds" and fw["ci_lo"] > 0 and fw["p_holm"] >= fw["p"]
    level = stats.window_margins(_windows(0.02, noise=1.0)).set_index("baseline").loc["flow-warp"]
    assert level["verdict"] == NOISE and level["ci_lo"] < 0 < level["ci_hi"]
    worse = stats.window_margins(_windows(-0.5, noise=0.3)).set_index("baseline").loc["flow-warp"]
    assert worse["verdict"] == "does not hold"
    lp = stats.window_margins(_windows(0.5, noise=0.3), "lpips_x100").set_index("baseline")
    assert lp.loc["flow-warp", "diff"] == pytest.approx(0.5)  # lower is better: positive = model better
    with pytest.raises(ValueError, match="per_sample=True"):
        stats.window_margins(_windows(0.5).drop(columns="sample"))


def test_strongest_row_picks_the_strongest_baseline_in_the_metric_asked():
    from stipkit.reports.stats import strongest_row

    table = pd.DataFrame({"baseline": ["copy-last", "flow-warp", "copy-last", "flow-warp"],
                          "strongest": [False, True, True, False],
                          "metric": ["psnr", "psnr", "lpips_x100", "lpips_x100"]})
    assert strongest_row(table)["baseline"] == "flow-warp"
    assert strongest_row(table, "lpips_x100")["baseline"] == "copy-last"
    with pytest.raises(ValueError, match=r"no strongest-baseline row in 'ssim'"):
        strongest_row(table, "ssim")
