"""The ablations of STIP Sec. IV-E (Tables VI-VIII), and STRPM's, at kit scale: runs, cache, verdicts.

Read top to bottom:

1. :data:`ABLATIONS` (defined in :mod:`stipkit.reports.ablation_tables`) -- each table as data: its
   variants (config changes of the budget's ablation preset), the prediction steps its numbers
   average over, and the paper's claims; besides Tables VI-VIII, the method comparison
   (``"compare"``, notebook 09) and STRPM's Tables 3 and 4 (``"STRPM-3"``, ``"STRPM-4"``);
2. :func:`variant_config` and :func:`run_variant` -- one variant, one dataset, one seed: train
   with :func:`stipkit.training.train.train` (the one loop), score with :func:`stipkit.scoring.evaluate.evaluate`
   (the one metrics function, copy-last beside); :func:`run_table` runs many and keeps the
   results in the CSV cache (:func:`results_path`) with the command and wall time that made them;
3. :func:`summary` (mean +- std over seeds, copy-last included) and :func:`verdicts` (each claim
   of the paper: *holds* / *does not hold* / *not separable from noise*, by :data:`RULE`).

Every run trains 4 -> 1 (Table I) and is scored 4 -> 6; a table reads the steps it reports
(Table VI: the first prediction; VII: the first four; VIII: all six). Every function takes the
:class:`~stipkit.config.budget.Budget` that the notebook or the ``ablate`` command resolved once.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..config import Config, get_preset
from ..config.budget import REPO, RUNS, Budget
from ..config.memories import memory_config
from ..reports.ablation_tables import ABLATIONS, METRICS, Ablation

#: How a claim "A beats B" is decided over seeds (also printed by the notebooks and README).
RULE = ("a claim 'A beats B' holds when the difference of the means over seeds, in the claimed "
        "direction, exceeds twice its standard error sqrt(s_A^2/n_A + s_B^2/n_B); it does not "
        "hold when the difference exceeds twice the standard error the other way; otherwise it "
        "is not separable from noise at this scale (always so with one seed). A claim over "
        "several pairs holds when every pair holds and does not hold when any pair does not.")
HIGHER_IS_BETTER = {"mse": False, "psnr": True, "ssim": True, "lpips_x100": False}
DATA = ("embedded", "digits")
LIVE = "notebook"  # the `command` of rows written by a notebook's live run


def ablation(table: str) -> Ablation:
    if table not in ABLATIONS:
        raise ValueError(f"table={table!r} is unknown: valid tables are {list(ABLATIONS)}")
    return ABLATIONS[table]


# --------------------------------------------------------------------------- 2. runs

def variant_config(table: str, variant: str, data: str, seed: int, budget: Budget) -> Config:
    """The config of one run: the budget's ablation preset with the variant's changes."""
    a = ablation(table)
    if variant not in a.variants:
        raise ValueError(f"variant={variant!r} is not in Table {table}: valid are {list(a.variants)}")
    _, model_kw, train_kw = a.variants[variant]
    base = get_preset(budget.ablation_preset)
    model_kw = dict(model_kw)
    if "memory" in model_kw:
        model_kw["memory"] = memory_config(model_kw["memory"], **model_kw.pop("memory_fields", {}))
    train = replace(base.train, iterations=budget.ablation_iterations, seed=seed, **train_kw)
    return replace(base, name=f"{base.name}-{table}-{variant}", dataset=data,
                   model=replace(base.model, **model_kw), train=train,
                   eval_length=max(base.eval_length, base.input_length + 1))


def run_dir(table: str, variant: str, data: str, seed: int, budget: Budget) -> Path:
    """Where a run's checkpoint lives (git-ignored; a finished run is loaded, not retrained).
    A variant that is the same run as another table's (``Ablation.same_as``) shares its place."""
    if variant in ablation(table).same_as:
        return run_dir(*ablation(table).same_as[variant], data, seed, budget)
    slug = variant.replace("+", "_")
    rev = run_revision(table, variant, budget)
    slug += f"-r{rev}" if rev > 1 else ""   # a corrected cell never resumes an older cell's run
    return RUNS / "ablations" / f"{budget.name}-{table}-{slug}-{data}-s{seed}"


def run_revision(table: str, variant: str, budget: Budget) -> int:
    """The revision (``Memory.REVISION``) of the memory cell a variant trains: a cached run of
    another revision was made by a cell that has since changed."""
    from ..models.memories import MEMORIES
    cls = MEMORIES.get(variant_config(table, variant, DATA[0], 0, budget).model.memory.name)
    return cls.REVISION if cls is not None else 1


def stale_runs(results: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """The cached runs (table, variant, data, seed) whose memory cell has changed since they were
    trained (their ``revision`` is not the cell's current one): they are retrained by
    :func:`run_table` and left out of its results."""
    cols = ["table", "variant", "data", "seed", "revision"]
    if not len(results):
        return pd.DataFrame(columns=cols + ["current"])
    runs = results[cols].drop_duplicates()
    current = {(t, v): run_revision(t, v, budget)
               for t, v in runs[["table", "variant"]].drop_duplicates().itertuples(index=False)
               if v in ablation(t).variants}
    runs = runs.assign(current=[current.get((t, v), r) for t, v, r in
                                runs[["table", "variant", "revision"]].itertuples(index=False)])
    return runs[runs["revision"] != runs["current"]].reset_index(drop=True)


def results_path(budget: Budget) -> Path:
    """The results cache of a budget: committed for ``study`` (benchmarks/results), else under runs/."""
    if budget.name == "study":
        return REPO / "benchmarks" / "results" / "ablations.csv"
    return RUNS / "ablations" / f"{budget.name}-results.csv"


def run_variant(table: str, variant: str, data: str, seed: int, budget: Budget, *,
                progress: bool = True, command: str = LIVE) -> pd.DataFrame:
    """Train (or load the finished checkpoint of) one run and score it 4 -> 6 beside copy-last.

    Returns one row per (method, t): ``method`` is the variant key or ``copy-last``, with the
    columns of :func:`stipkit.scoring.evaluate.evaluate` and the run's ``table``, ``variant``, ``data``,
    ``seed``, ``preset``, ``iterations``, ``wall_s`` (training + scoring, seconds) and ``command``.
    """
    from ..data.build import dataset, test_split
    from ..scoring.evaluate import BASELINE, evaluate
    from ..training.checkpoint import load_predictor
    from ..training.train import train

    if variant in ablation(table).same_as:  # the same run as another table's variant
        src_table, src_variant = ablation(table).same_as[variant]
        df = run_variant(src_table, src_variant, data, seed, budget, progress=progress, command=command)
        return df.assign(table=table, variant=variant,
                         method=df["method"].where(df["method"] == "copy-last", variant))
    cfg = variant_config(table, variant, data, seed, budget)
    out = run_dir(table, variant, data, seed, budget)
    t0 = time.perf_counter()
    train(cfg, dataset(cfg, budget, "train", data), out, progress=progress)
    predictor, cfg = load_predictor(out / "checkpoint.pt")
    df = evaluate(predictor, test_split(cfg, budget, data), cfg.input_length, cfg.eval_length,
                  progress=False)
    df["method"] = df["method"].where(df["method"] == BASELINE, variant)
    meta = dict(table=table, variant=variant, data=data, seed=seed, preset=budget.ablation_preset,
                iterations=cfg.train.iterations, wall_s=round(time.perf_counter() - t0, 1),
                command=command, revision=run_revision(table, variant, budget))
    return df.assign(**meta)[list(meta) + [c for c in df.columns]]


def load_results(budget: Budget) -> pd.DataFrame:
    """The cached results of a budget (empty when none)."""
    path = results_path(budget)
    if not path.exists():
        return pd.DataFrame(columns=["table", "variant", "data", "seed", "method", "t", "revision",
                                     *METRICS])
    df = pd.read_csv(path)
    # runs cached before cells had revisions were made by revision-1 cells
    df["revision"] = df["revision"].fillna(1).astype(int) if "revision" in df else 1
    return df


def _key(df: pd.DataFrame) -> pd.Series:
    return df["table"].astype(str) + "|" + df["variant"] + "|" + df["data"] + "|" + df["seed"].astype(str)


def save_results(new: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """Merge ``new`` runs into the cache (a run's rows replace that run's old rows); returns all."""
    import fcntl

    from ..runtime.files import atomic_write
    path = results_path(budget)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:  # several `ablate` processes may share it
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _merge(new, budget, path, atomic_write)


def _merge(new: pd.DataFrame, budget: Budget, path: Path, atomic_write) -> pd.DataFrame:
    old = load_results(budget)
    keep = old[~_key(old).isin(set(_key(new)))] if len(old) else old
    merged = pd.concat([keep, new], ignore_index=True) if len(keep) else new.copy()
    merged = merged.sort_values(["table", "variant", "data", "seed", "method", "t"], kind="stable")
    atomic_write(path, merged.to_csv(index=False, float_format="%.6g"))
    return merged


def run_table(table: str, data=DATA, seeds=(0,), *, budget: Budget, variants=None, progress=True,
              command: str = LIVE, reuse: bool = True) -> pd.DataFrame:
    """Run every variant of ``table`` on each dataset and seed; returns the table's results.

    With ``reuse`` a run already in the cache with the same preset and iterations is read, not
    retrained; each finished run is saved to the cache at once (an interrupted call loses
    nothing finished).
    """
    from tqdm.auto import tqdm
    a = ablation(table)
    variants = list(a.variants) if variants is None else list(variants)
    cached = load_results(budget)
    jobs = [(v, d, s) for d in data for s in seeds for v in variants]
    def done(t, v, d, s):
        hit = cached[(cached["table"] == t) & (cached["variant"] == v) & (cached["data"] == d)
                     & (cached["seed"] == s)] if len(cached) else cached
        ok = len(hit) and (hit["preset"] == budget.ablation_preset).all() and \
            (hit["iterations"] == budget.ablation_iterations).all() and \
            (hit["revision"] == run_revision(t, v, budget)).all()
        return hit if ok else None

    for v, d, s in tqdm(jobs, desc=f"Table {table}", disable=not progress, dynamic_ncols=True):
        if reuse and done(table, v, d, s) is not None:
            continue
        src = a.same_as.get(v)
        hit = done(*src, d, s) if reuse and src else None
        if hit is not None:  # the same run is cached under its own table: reuse its rows
            new = hit.assign(table=table, variant=v, method=hit["method"].where(hit["method"] == "copy-last", v))
        else:
            new = run_variant(table, v, d, s, budget, progress=False, command=command)
        cached = save_results(new, budget)
    res = load_results(budget)
    res = res[res["table"] == table]
    stale = stale_runs(res, budget)
    if len(stale):
        warnings.warn(f"Table {table}: {len(stale)} cached runs were trained by memory cells that "
                      f"have changed since ({sorted(set(stale['variant']))}, revision "
                      f"{sorted(set(stale['revision']))} -> {sorted(set(stale['current']))}); they "
                      f"are left out (stipkit.experiments.ablation.stale_runs lists them; `make ablations` "
                      f"retrains them)", stacklevel=2)
        key = _key(stale.assign(seed=stale["seed"]))
        res = res[~_key(res).isin(set(key))]
    return res.reset_index(drop=True)


def notebook_results(table: str, budget: Budget, progress: bool = True) -> pd.DataFrame:
    """What notebooks 04-06 show: the budget's live seeds of every variant trained here (a
    finished checkpoint in runs/ is loaded instead), merged with the other seeds of the cache."""
    return run_table(table, budget.ablation_data, budget.ablation_live_seeds, budget=budget,
                     progress=progress, command=LIVE, reuse=False)


def command_line() -> str:
    """The command that is running (stored with the results it makes)."""
    return " ".join(["python -m stipkit" if sys.argv[0].endswith("__main__.py") else
                     os.path.basename(sys.argv[0]), *sys.argv[1:]])


# --------------------------------------------------------------------------- 3. summary, verdicts
def per_run(results: pd.DataFrame, table: str) -> pd.DataFrame:
    """One row per (data, variant or copy-last, seed): the table's metrics averaged over its steps."""
    a = ablation(table)
    r = results[results["table"] == table]
    if a.steps is not None:
        first = r["t"].min()
        r = r[r["t"] < first + a.steps]
    r = r.assign(method=r["method"].where(r["method"] == "copy-last", r["variant"]))
    runs = r.groupby(["data", "method", "variant", "seed"], sort=False)[list(METRICS)].mean().reset_index()
    base = runs[runs["method"] == "copy-last"].drop(columns="variant").drop_duplicates(["data", "seed"])
    return pd.concat([runs[runs["method"] != "copy-last"].drop(columns="method").rename(
        columns={"variant": "method"}), base], ignore_index=True)


def summary(results: pd.DataFrame, table: str) -> pd.DataFrame:
    """Mean, std and number of seeds per (data, method) for the table's metrics; copy-last last.

    ``beats_copy_last`` says whether the variant's mean PSNR is above copy-last's."""
    a, runs = ablation(table), per_run(results, table)
    agg = runs.groupby(["data", "method"], sort=False)[list(a.metrics)].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" if s != "count" else f"n_{m}" for m, s in agg.columns]
    agg = agg.rename(columns={f"n_{a.metrics[0]}": "seeds"}).drop(
        columns=[f"n_{m}" for m in a.metrics[1:]]).reset_index()
    agg.insert(2, "label", agg["method"].map(a.label))
    base = runs[runs["method"] == "copy-last"].groupby("data")["psnr"].mean()
    psnr = runs.groupby(["data", "method"])["psnr"].mean()
    agg["beats_copy_last"] = [None if m == "copy-last" else bool(psnr[(d, m)] > base[d])
                              for d, m in zip(agg["data"], agg["method"])]
    order = {m: i for i, m in enumerate([*a.variants, "copy-last"])}
    return agg.sort_values(["data", "method"], key=lambda s: s.map(order) if s.name == "method" else s,
                           kind="stable").reset_index(drop=True)


def compare(runs: pd.DataFrame, data: str, metric: str, better: str, worse: str) -> dict:
    """One pair of a claim under :data:`RULE`: the difference (claimed direction positive)."""
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    x = runs[(runs["data"] == data) & (runs["method"] == better)][metric]
    y = runs[(runs["data"] == data) & (runs["method"] == worse)][metric]
    d = sign * (x.mean() - y.mean())
    se = math.sqrt(x.var() / len(x) + y.var() / len(y)) if min(len(x), len(y)) > 1 else math.nan
    if not (len(x) and len(y)):
        verdict = "not run"
    elif math.isnan(se) or abs(d) <= 2 * se:
        verdict = "not separable from noise"
    else:
        verdict = "holds" if d > 0 else "does not hold"
    return dict(diff=d, se=se, verdict=verdict, seeds=min(len(x), len(y)))


def verdicts(results: pd.DataFrame, table: str) -> pd.DataFrame:
    """Each claim of the table on each dataset: verdict by :data:`RULE`, with the evidence
    (the pairs' differences in the claimed direction, +- standard error)."""
    a, runs = ablation(table), per_run(results, table)
    rows = []
    for data in dict.fromkeys(runs["data"]):
        for c in a.claims:
            pairs = {w: compare(runs, data, c.metric, c.better, w) for w in c.worse}
            vs = [p["verdict"] for p in pairs.values()]
            overall = ("not run" if "not run" in vs else "does not hold" if "does not hold" in vs
                       else "holds" if all(v == "holds" for v in vs) else "not separable from noise")
            evidence = "; ".join(f"vs {a.label(w)}: {p['diff']:+.3g} ± {p['se']:.2g}"
                                 for w, p in pairs.items())
            rows.append(dict(table=table, data=data, claim=c.text, metric=c.metric, verdict=overall,
                             seeds=min(p["seeds"] for p in pairs.values()), evidence=evidence))
    return pd.DataFrame(rows)


def paper_rows(table: str) -> pd.DataFrame:
    """The paper's numbers for the table (labelled as the paper's), wide: one row per variant."""
    from ..reports.paper import PAPER_ABLATIONS
    a, p = ablation(table), PAPER_ABLATIONS[PAPER_ABLATIONS["table"] == table]
    wide = p.pivot_table(index="variant", columns=["dataset", "metric"], values="value", sort=False)
    wide.index = [f"{a.label(v)} (paper)" for v in wide.index]
    return wide


def copy_last_report(results: pd.DataFrame, table: str) -> str:
    """In plain words, per dataset: which variants beat copy-last in mean PSNR over the table's
    steps (over seeds), and the best one against it."""
    s, lines = summary(results, table), []
    for data, g in s.groupby("data", sort=False):
        base = g.loc[g["method"] == "copy-last", "psnr_mean"].item()
        models = g[g["method"] != "copy-last"]
        best = models.loc[models["psnr_mean"].idxmax()]
        won = list(models.loc[models["beats_copy_last"].astype(bool), "label"])
        verdict = ("every variant beats copy-last" if len(won) == len(models) else
                   "no variant beats copy-last" if not won else f"{', '.join(won)} beat(s) copy-last, "
                   "the others do not")
        lines.append(f"{data}: {verdict} in PSNR (best: {best['label']} {best['psnr_mean']:.2f} dB "
                     f"vs copy-last {base:.2f} dB, {int(best['seeds'])} seed(s))")
    return "\n".join(lines)
