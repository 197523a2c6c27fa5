"""The kit-scale benchmark's committed results, read for the notebooks and the docs.

`make ablations` (budget ``benchmark``: the ``ablation64`` preset on Moving Digits, the ``study``
preset on the real clips, runs stopped on the validation split, a learning rate per method chosen
on it, both starts, seeds 0-4) writes every finished run to ``benchmarks/results/benchmark.csv``. These functions read that file without training
anything: :func:`results` (a table's current runs), :func:`coverage` (how far the grid has got:
seeds per variant, dataset and start), :func:`summary` and :func:`verdicts` (the scores of the
variants, and the claims between them, that have the protocol's
:data:`~stipkit.reports.stats.MIN_SEEDS` seeds; runs of a variant with fewer are left out, never
read early), :func:`stopping` (where each run's kept weights come from, and which runs never left
the copy-last start: :func:`stayed_at_copy_last`), :func:`versus_baselines`; and :func:`strip`,
the one reader of the runs' checkpoints (``runs/``, not committed): one test window predicted by
the trained variants.
"""
from __future__ import annotations

import pandas as pd

from ..config.budget import BUDGETS
from ..reports.stats import MIN_SEEDS
from . import verdicts as v
from .ablation import current_runs, current_setup, load_results

BUDGET = BUDGETS["benchmark"]


def results(table: str) -> pd.DataFrame:
    """The benchmark's current runs of ``table`` (at each dataset's preset, each start's Adam
    epsilon and the cap, on today's data and cells), every start; empty when none has run."""
    v.ablation(table)  # checks the name
    res = load_results(BUDGET)
    if not len(res):
        return res
    res = res[(res["table"] == table) & current_setup(res, BUDGET)
              & (res["iterations"] == BUDGET.ablation_iterations)]
    return current_runs(res, table, BUDGET, warn=False)


def coverage(res: pd.DataFrame, table: str) -> pd.DataFrame:
    """Seeds run per variant, one row per (data, start) of the grid, and whether every variant
    has the protocol's minimum (``complete``); 0 where nothing has run."""
    a = v.ablation(table)
    runs = res[~v.is_baseline(res["method"])] if len(res) else res
    n = runs.groupby(["data", "start", "variant"])["seed"].nunique() if len(runs) else pd.Series(dtype=int)
    rows = []
    for data in BUDGET.ablation_data:
        for start in BUDGET.ablation_starts:
            seeds = {k: int(n.get((data, start, k), 0)) for k in a.variants}
            rows.append({"data": data, "start": start, **{a.label(k): s for k, s in seeds.items()},
                         "complete": min(seeds.values()) >= MIN_SEEDS})
    return pd.DataFrame(rows)


def _complete(res: pd.DataFrame, table: str):
    """(start, its runs of the variants with the protocol's seeds) for every start with any:
    a variant with fewer seeds on a dataset is left out there (never read early)."""
    runs = res[~v.is_baseline(res["method"])] if len(res) else res
    for start in BUDGET.ablation_starts:
        r = res[res["start"] == start] if len(res) else res
        n = runs[runs["start"] == start].groupby(["data", "variant"])["seed"].nunique() \
            if len(runs) else pd.Series(dtype=int)
        done = {key for key, seeds in n.items() if seeds >= MIN_SEEDS}
        keep = [(d, k) in done for d, k in zip(r["data"], r["variant"])] if len(r) else []
        if any(keep):
            yield start, r[keep]


def summary(res: pd.DataFrame, table: str) -> pd.DataFrame:
    """:func:`stipkit.experiments.verdicts.summary` of every variant with the protocol's seeds,
    for each start (a ``start`` column); empty when none has them."""
    parts = [v.summary(r, table, start).assign(start=start) for start, r in _complete(res, table)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["data", "method",
                                                                                   "start"])


def verdicts(res: pd.DataFrame, table: str) -> pd.DataFrame:
    """:func:`stipkit.experiments.verdicts.verdicts` of every claim whose variants all have the
    protocol's seeds, for each start (a ``start`` column; Holm's correction runs over the claims
    tested in one start's table, on both datasets); empty when no claim can be tested yet."""
    parts = []
    for start, r in _complete(res, table):
        out = v.verdicts(r, table, start)
        parts.append(out[out["seeds"].astype(str) != "0"].assign(start=start))
    cols = ["table", "data", "claim", "metric", "verdict", "seeds", "evidence", "start"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


#: A run "stayed at copy-last" when its test PSNR is within this many dB of copy-last's at every
#: predicted step (the mean absolute gap over the steps): it never left its start.
STAYED_DB = 0.05


def stayed_at_copy_last(res: pd.DataFrame) -> pd.Series:
    """Per run (data, start, variant, seed) of ``res``: whether it predicts as copy-last does
    (mean |PSNR - copy-last's PSNR| over the predicted steps < :data:`STAYED_DB`). A run that
    starts as copy-last (``ModelConfig.init="copy_last"``: its last layer zero-initialised) can
    sit on a plateau there: the gradients below that layer are tiny, and under Adam's default
    epsilon they hardly move anything (``ablation.COPY_LAST_ADAM_EPS``). A run that had not left
    it when early stopping ended it kept copy-last's weights, and a claim against it measures
    that plateau, not the method."""
    keys = ["data", "start", "variant", "seed"]
    base = res[res["method"] == "copy-last"].set_index(keys + ["t"])["psnr"]
    runs = res[~v.is_baseline(res["method"])].set_index(keys + ["t"])["psnr"]
    gap = (runs - base.reindex(runs.index)).abs().groupby(level=keys).mean()
    return gap < STAYED_DB


def stopping(res: pd.DataFrame, table: str) -> pd.DataFrame:
    """Where the runs of :func:`results` stopped: per (data, start, variant), the median and range
    over seeds of the iteration whose weights were kept (``best_iteration``: the best validation
    PSNR) and of the iterations trained (``trained``; the cap is the budget's), and how many of
    the seeds ``stayed_at_copy_last`` (:func:`stayed_at_copy_last`: never left the copy-last
    start; counted under that start only)."""
    if not len(res):
        return pd.DataFrame(columns=["data", "start", "label", "seeds", "kept_median", "kept_min",
                                     "kept_max", "trained_median", "stayed_at_copy_last"])
    a = v.ablation(table)
    runs = res[~v.is_baseline(res["method"])].drop_duplicates(["data", "start", "variant", "seed"])
    stayed = stayed_at_copy_last(res).rename("stayed").reset_index()
    runs = runs.merge(stayed, on=["data", "start", "variant", "seed"], how="left")
    out = runs.groupby(["data", "start", "variant"], sort=False).agg(
        seeds=("seed", "nunique"), kept_median=("best_iteration", "median"),
        kept_min=("best_iteration", "min"), kept_max=("best_iteration", "max"),
        trained_median=("trained", "median"),
        stayed_at_copy_last=("stayed", lambda x: int(x.fillna(False).astype(bool).sum()))).reset_index()
    out["stayed_at_copy_last"] = out["stayed_at_copy_last"].where(out["start"] == "copy_last")
    out.insert(3, "label", out["variant"].map(a.label))
    return out.drop(columns="variant")


def _checkpoints(table: str, res: pd.DataFrame, data: str, start: str, seed: int) -> dict:
    """{label: checkpoint path} of ``table``'s benchmark runs in ``res`` (:func:`results`;
    ``data``, ``start``, ``seed``, each at the learning rate chosen for it) whose checkpoint is
    in ``runs/``."""
    from .ablation import run_dir
    a = v.ablation(table)
    found = {}
    for key in a.variants:
        run = res[(res["variant"] == key) & (res["data"] == data) & (res["start"] == start)
                  & (res["seed"] == seed)] if len(res) else res
        if len(run):
            path = run_dir(table, key, data, seed, BUDGET, start, float(run["lr"].iloc[0]))
            if (path / "checkpoint.pt").is_file():
                found[a.label(key)] = path / "checkpoint.pt"
    return found


def strip(table: str, data: str = "digits", start: str | None = None, seed: int | None = None,
          window: int = 0) -> dict | None:
    """One test window of ``data`` predicted by each variant of ``table`` whose benchmark run
    (``seed``, ``start``, the learning rate chosen for it) has its checkpoint in ``runs/``
    (git-ignored: `make ablations` writes them; nothing is trained here), as
    :func:`stipkit.experiments.compare.window_strip` returns it, with its ``start`` and
    ``seed``; None when no variant's is there. ``start`` or ``seed`` None: the one (of the
    budget's) with the most such checkpoints, the budget's first on a tie."""
    from ..training.checkpoint import load_predictor
    from .compare import window_strip

    res = results(table)
    found = {(st, s): _checkpoints(table, res, data, st, s)
             for st in ([start] if start else BUDGET.ablation_starts)
             for s in ([seed] if seed is not None else BUDGET.ablation_seeds)}
    start, seed = max(found, key=lambda k: len(found[k]))  # max keeps the first of the most
    models = {label: load_predictor(path) for label, path in found[start, seed].items()}
    return {**window_strip(models, data, BUDGET, window), "start": start, "seed": seed} \
        if models else None


# the metrics read against the baselines (MSE says what PSNR says): name, unit, decimals
_METRIC_WORDS = {"psnr": ("PSNR", " dB", 2), "ssim": ("SSIM", "", 3), "lpips_x100": ("LPIPS×100", "", 2)}


def versus_baselines(bench_summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, start, metric) of :func:`summary`: the strongest baseline on that metric
    (highest PSNR/SSIM, lowest LPIPS) and its mean, how many of the variants with every seed
    beat it, and which (their means), formatted for reading."""
    from ..scoring.baselines import BASELINES
    from ..scoring.metrics import HIGHER_IS_BETTER

    rows = []
    metrics = [m for m in _METRIC_WORDS if f"{m}_mean" in bench_summary]
    for (data, start), g in bench_summary.groupby(["data", "start"], sort=False):
        base, models = g[g["method"].isin(BASELINES)], g[~g["method"].isin(BASELINES)]
        if base.empty or models.empty:
            continue
        for metric in metrics:
            col, (name, unit, dec) = f"{metric}_mean", _METRIC_WORDS[metric]
            higher = HIGHER_IS_BETTER.get(metric, True)
            best = base.loc[base[col].idxmax() if higher else base[col].idxmin()]
            won = models[models[col] > best[col]] if higher else models[models[col] < best[col]]
            rows.append(dict(data=data, start=start, metric=name, baseline=best["method"],
                             baseline_value=f"{best[col]:.{dec}f}{unit}", beat=len(won),
                             variants=len(models),
                             which=", ".join(f"{lab} {x:.{dec}f}{unit}"
                                             for lab, x in zip(won["label"], won[col]))))
    return pd.DataFrame(rows, columns=["data", "start", "metric", "baseline", "baseline_value",
                                       "beat", "variants", "which"])


def report(table: str, prefix: str, budget) -> dict[str, pd.DataFrame]:
    """What a notebook shows of ``table``'s benchmark: ``coverage``, ``summary``, ``verdicts``,
    ``stopping`` (:func:`stopping`) and ``baselines`` (:func:`versus_baselines`); all but the
    summary are also written to ``figures/<prefix>_benchmark_coverage``, ``..._verdicts``,
    ``..._stopping`` and ``..._baselines`` (.csv/.md) at a saving budget, where docs/results.md
    reads them."""
    from ..reports.tables import write_table
    res = results(table)
    out = {"coverage": coverage(res, table), "summary": summary(res, table),
           "verdicts": verdicts(res, table), "stopping": stopping(res, table)}
    out["baselines"] = versus_baselines(out["summary"])
    for key in ("coverage", "verdicts", "baselines", "stopping"):
        write_table(out[key], f"{prefix}_benchmark_{key}", budget)
    return out
