"""The kit-scale benchmark's committed results, read for the notebooks and the docs.

`make ablations` (budget ``benchmark``: the ``ablation64`` preset, runs stopped on the validation
split, a learning rate per method chosen on it, both starts, seeds 0-4) writes every finished run
to ``benchmarks/results/benchmark.csv``. These functions read that file without training
anything: :func:`results` (a table's current runs), :func:`coverage` (how far the grid has got:
seeds per variant, dataset and start), :func:`summary` and :func:`verdicts` (the scores of the
variants, and the claims between them, that have the protocol's
:data:`~stipkit.reports.stats.MIN_SEEDS` seeds; runs of a variant with fewer are left out, never
read early).
"""
from __future__ import annotations

import pandas as pd

from ..config.budget import BUDGETS
from ..reports.stats import MIN_SEEDS
from . import verdicts as v
from .ablation import current_runs, load_results

BUDGET = BUDGETS["benchmark"]


def results(table: str) -> pd.DataFrame:
    """The benchmark's current runs of ``table`` (at its preset and cap, on today's data and cells),
    every start; empty when none has run."""
    v.ablation(table)  # checks the name
    res = load_results(BUDGET)
    if not len(res):
        return res
    res = res[(res["table"] == table) & (res["preset"] == BUDGET.ablation_preset)
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


def report(table: str, prefix: str, budget) -> dict[str, pd.DataFrame]:
    """What a notebook shows of ``table``'s benchmark: ``coverage``, ``summary`` and ``verdicts``
    (above); the coverage and the verdicts are also written to
    ``figures/<prefix>_benchmark_coverage`` and ``..._verdicts`` (.csv/.md) at a saving budget,
    where docs/results.md reads them."""
    from ..reports.tables import write_table
    res = results(table)
    out = {"coverage": coverage(res, table), "summary": summary(res, table),
           "verdicts": verdicts(res, table)}
    write_table(out["coverage"], f"{prefix}_benchmark_coverage", budget)
    write_table(out["verdicts"], f"{prefix}_benchmark_verdicts", budget)
    return out
