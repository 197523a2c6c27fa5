"""What the ablation runs say: per-run scores, summaries over seeds, and each of the paper's claims
tested by the kit's one rule (:data:`RULE`, :mod:`stipkit.reports.stats`).

Read top to bottom: :func:`ablation` (a table's definition), :func:`per_run` (one row per run and
method: each variant and each training-free baseline, the table's steps averaged),
:func:`summary` (mean, std and seeds per method, against the strongest baseline),
:func:`pairs` / :func:`claim_tests` / :func:`verdicts` (Welch's test of each pair over seeds,
Holm-corrected across the table; *holds* / *does not hold* / *not separable from noise*),
:func:`paper_rows` (the paper's own numbers, labelled) and :func:`baseline_report` (in words).
Runs of several starts (``ModelConfig.init``; the benchmark protocol trains both) are read one
start at a time: ``start=``. :mod:`stipkit.experiments.ablation` makes the runs these read.
"""
from __future__ import annotations

import pandas as pd

from ..reports import stats
from ..reports.ablation_tables import ABLATIONS, METRICS, Ablation

#: How a claim "A beats B" is decided (also printed by the notebooks and README): the one rule of
#: the kit, :data:`stipkit.reports.stats.RULE` (Welch's t-test over seeds, Holm across a table).
RULE = stats.RULE
HIGHER_IS_BETTER = {"mse": False, "psnr": True, "ssim": True, "lpips_x100": False}


def ablation(table: str) -> Ablation:
    """The definition of ``table`` (:data:`stipkit.reports.ablation_tables.ABLATIONS`)."""
    if table not in ABLATIONS:
        raise ValueError(f"table={table!r} is unknown: valid tables are {list(ABLATIONS)}")
    return ABLATIONS[table]


def is_baseline(methods: pd.Series) -> pd.Series:
    """Which rows of a ``method`` column are a training-free baseline's (copy-last, ...)."""
    from ..scoring.baselines import BASELINES
    return methods.astype(str).isin(set(BASELINES))


def one_start(results: pd.DataFrame, start: str | None = None) -> pd.DataFrame:
    """The runs of one start (``ModelConfig.init``, the ``start`` column): ``start`` if given,
    else the only one present; results of several starts need ``start=`` (a ValueError names
    them), so runs of different starts are never averaged together."""
    if "start" not in results or not len(results):
        return results
    starts = list(dict.fromkeys(results["start"].astype(str)))
    if start is None:
        if len(starts) > 1:
            raise ValueError(f"the results hold runs of several starts {starts}: pass start= one "
                             "of them (each start is its own table)")
        return results
    if start not in starts:
        raise ValueError(f"start={start!r} has no runs here; the results hold {starts}")
    return results[results["start"].astype(str) == start]


def per_run(results: pd.DataFrame, table: str, start: str | None = None) -> pd.DataFrame:
    """One row per (data, method, seed): each variant, then each training-free baseline
    (copy-last, mean-frame, flow-warp: :data:`stipkit.scoring.baselines.BASELINES`) as its own
    method, the table's metrics averaged over its steps. A baseline scores the same test windows in
    every variant's run of a (data, seed); one run's rows are kept. Results cached before
    mean-frame and flow-warp existed hold copy-last only, which is then the only baseline."""
    from ..scoring.baselines import BASELINES
    a = ablation(table)
    r = one_start(results[results["table"] == table], start)
    if a.steps is not None:
        first = r["t"].min()
        r = r[r["t"] < first + a.steps]
    r = r.assign(method=r["method"].where(is_baseline(r["method"]), r["variant"]))
    runs = r.groupby(["data", "method", "variant", "seed"], sort=False)[list(METRICS)].mean().reset_index()
    base = is_baseline(runs["method"])
    bases = runs[base].drop(columns="variant").drop_duplicates(["data", "method", "seed"])
    bases = bases.sort_values("method", key=lambda m: m.map(list(BASELINES).index), kind="stable")
    return pd.concat([runs[~base].drop(columns="method").rename(columns={"variant": "method"}),
                      bases], ignore_index=True)


def summary(results: pd.DataFrame, table: str, start: str | None = None) -> pd.DataFrame:
    """Mean, std and number of seeds per (data, method) for the table's metrics: the variants,
    then the baselines (copy-last, mean-frame, flow-warp; copy-last alone in results cached
    before the others existed).

    ``beats_baseline`` says whether the variant's mean PSNR is above the strongest baseline's on
    that dataset (:func:`stipkit.scoring.evaluate.strongest_baseline` of the runs; named by
    :func:`baseline_report`), ``beats_copy_last`` whether it is above copy-last's (None on the
    baselines' rows)."""
    from ..scoring.baselines import BASELINES
    from ..scoring.evaluate import strongest_baseline
    a, runs = ablation(table), per_run(results, table, start)
    agg = runs.groupby(["data", "method"], sort=False)[list(a.metrics)].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" if s != "count" else f"n_{m}" for m, s in agg.columns]
    agg = agg.rename(columns={f"n_{a.metrics[0]}": "seeds"}).drop(
        columns=[f"n_{m}" for m in a.metrics[1:]]).reset_index()
    agg.insert(2, "label", agg["method"].map(a.label))
    psnr = runs.groupby(["data", "method"])["psnr"].mean()
    strongest = {d: strongest_baseline(g) for d, g in runs.groupby("data")
                 if is_baseline(g["method"]).any()}

    def beats(d, m, base):
        if (d, base) not in psnr.index or m in BASELINES:
            return None
        return bool(psnr[(d, m)] > psnr[(d, base)])

    agg["beats_baseline"] = [beats(d, m, strongest.get(d)) for d, m in zip(agg["data"], agg["method"])]
    agg["beats_copy_last"] = [beats(d, m, "copy-last") for d, m in zip(agg["data"], agg["method"])]
    order = {m: i for i, m in enumerate([*a.variants, *BASELINES])}
    return agg.sort_values(["data", "method"], key=lambda s: s.map(order) if s.name == "method" else s,
                           kind="stable").reset_index(drop=True)


def pairs(runs: pd.DataFrame, table: str) -> list[dict]:
    """Every pair "better beats worse" of every claim of ``table`` on every dataset, with the
    per-seed scores of both sides (``x``, ``y``): the family :func:`stipkit.reports.stats.claim_table`
    tests and Holm-corrects together."""
    a, out = ablation(table), []
    for data in dict.fromkeys(runs["data"]):
        for c in a.claims:
            for w in c.worse:
                side = lambda m: runs[(runs["data"] == data) & (runs["method"] == m)][c.metric]  # noqa: E731
                out.append(dict(data=data, claim=c.text, metric=c.metric, better=c.better,
                                worse=a.label(w), x=side(c.better).to_numpy(),
                                y=side(w).to_numpy(), higher_is_better=HIGHER_IS_BETTER[c.metric]))
    return out


def claim_tests(results: pd.DataFrame, table: str, start: str | None = None) -> pd.DataFrame:
    """One row per pair of every claim of ``table``: difference, 95 % interval, Welch p and Holm
    p (over the whole table), verdict (:data:`RULE`)."""
    return stats.claim_table(pairs(per_run(results, table, start), table))


def verdicts(results: pd.DataFrame, table: str, start: str | None = None) -> pd.DataFrame:
    """Each claim of the table on each dataset: verdict by :data:`RULE`, with the evidence
    (each pair's difference in the claimed direction, its 95 % interval and Holm-corrected p)."""
    tests = claim_tests(results, table, start)
    cols = ["table", "data", "claim", "metric", "verdict", "seeds", "evidence"]
    if tests.empty:
        return pd.DataFrame(columns=cols)
    folded = stats.claim_verdicts(tests, by=("data", "claim"))
    metric = tests.drop_duplicates(["data", "claim"]).set_index(["data", "claim"])["metric"]
    folded["metric"] = [metric[(d, c)] for d, c in zip(folded["data"], folded["claim"])]
    return folded.rename(columns={"n": "seeds"}).assign(table=table)[cols]


def paper_rows(table: str) -> pd.DataFrame:
    """The paper's numbers for the table (labelled as the paper's), wide: one row per variant."""
    from ..reports.paper import PAPER_ABLATIONS
    a, p = ablation(table), PAPER_ABLATIONS[PAPER_ABLATIONS["table"] == table]
    wide = p.pivot_table(index="variant", columns=["dataset", "metric"], values="value", sort=False)
    wide.index = [f"{a.label(v)} (paper)" for v in wide.index]
    return wide


def baseline_report(results: pd.DataFrame, table: str, start: str | None = None) -> str:
    """In plain words, per dataset: the strongest training-free baseline (best mean PSNR over the
    table's steps and the seeds; the other baselines' in brackets), which variants beat it, and
    the best variant against it. Results cached with copy-last only name copy-last."""
    s, lines = summary(results, table, start), []
    for data, g in s.groupby("data", sort=False):
        base_rows = is_baseline(g["method"])
        bases, models = g[base_rows], g[~base_rows]
        if bases.empty or models.empty:
            lines.append(f"{data}: nothing to compare (methods {list(g['method'])})")
            continue
        strong = bases.loc[bases["psnr_mean"].idxmax()]  # ties: the earlier baseline
        name, base = strong["method"], strong["psnr_mean"]
        others = "; ".join(f"{m} {v:.2f} dB" for m, v in zip(bases["method"], bases["psnr_mean"])
                           if m != name)
        best = models.loc[models["psnr_mean"].idxmax()]
        won = list(models.loc[models["beats_baseline"].astype(bool), "label"])
        verdict = (f"every variant beats {name}" if len(won) == len(models) else
                   f"no variant beats {name}" if not won else f"{', '.join(won)} beat(s) {name}, "
                   "the others do not")
        lines.append(f"{data}: the strongest baseline is {name} ({base:.2f} dB"
                     f"{'; ' + others if others else ''}); {verdict} in PSNR (best: {best['label']} "
                     f"{best['psnr_mean']:.2f} dB vs {name} {base:.2f} dB, {int(best['seeds'])} "
                     f"seed(s))")
    return "\n".join(lines)


copy_last_report = baseline_report  # its name before mean-frame and flow-warp (notebooks 04-06, 08)
