"""Time to quality: how fast the study preset learns on this machine, against copy-last.

Trains the ``study`` preset (its own iterations and schedule) on each dataset, scoring 64 evenly
spaced windows of the *validation* split (held-out time of the training clips; Moving Digits'
validation digits) every ``--evals``-th of the run with :func:`stipkit.experiments.study.quick_eval`
(4 given frames -> 6 predicted, PSNR), and reads the training clock from the history (``step_s``:
the iterations only, evaluation excluded). The test clips are never read here. Prints one table:

* ``copy-last t=5`` / ``copy-last mean``: the baseline's PSNR at the first predicted frame and
  over all six;
* ``min to t=5 >= copy-last``: training minutes until STIP's PSNR at t = 5 first reaches
  copy-last's (the model starts as copy-last when ``ModelConfig.init="copy_last"``; only
  evaluations after training began count);
* ``min to mean >= copy-last`` (and the iterations): until the mean over t = 5..10 first
  reaches copy-last's -- the iterations do not depend on the machine;
* ``min to targets``: until both of the study budget's first targets hold at once (t = 5 PSNR at least
  copy-last's minus 1 dB, mean PSNR above copy-last's);
* ``t=5 @ 5/10/15 min`` and ``mean @ 5/10/15 min``: STIP's PSNR at the last evaluation at or
  before that many minutes ("done" marks a run that had finished by then).

This is the number speed work should move. Nothing is asserted; timings depend on the machine
(they are noisy on a shared VM) and the thread count.

``--grid`` prints instead what `make ablations` (the benchmark budget's whole grid) costs, per
dataset (each at its preset: Moving Digits at ``ablation64``, the real clips at ``study``): the
runs it trains (learning-rate trials included, shared runs counted once) and, from the runs
already in ``benchmarks/results/benchmark*.csv`` at that preset, the measured CPU-hours per run and
in all (a run's ``wall_s`` at one thread; each run stops on validation, so its length is
measured, not assumed), or, before any run exists, an estimate at the iteration cap from
``--seconds-per-iteration PRESET=S`` (time it on an idle core: ``--time-one``).

    .venv/bin/python benchmarks/bench_learning.py                    # both datasets, ~30 min
    .venv/bin/python benchmarks/bench_learning.py --data digits --csv curve.csv
    .venv/bin/python benchmarks/bench_learning.py --history embedded=runs/levers/rollout_7/history.csv
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace

import pandas as pd
import torch

from stipkit.config import get_preset
from stipkit.data.build import default_dataset, spread
from stipkit.experiments.study import VAL_WINDOWS, quick_eval
from stipkit.training.train import train

MARKS = (5, 10, 15)  # minutes


def grid_runs(budget_name: str = "benchmark") -> pd.DataFrame:
    """Every run `make ablations` trains under the budget: one row per (table, variant, data,
    start, seed or learning-rate trial), runs shared between tables (``Ablation.same_as``) once.
    The seed-0 run at the chosen rate is one of the trials, so a (variant, data, start) costs
    ``len(lrs)`` trials plus ``seeds - 1`` runs."""
    from stipkit.config.budget import BUDGETS
    from stipkit.reports.ablation_tables import ABLATIONS
    b = BUDGETS[budget_name]
    lrs = b.ablation_lrs or (None,)
    rows = []
    for table, a in ABLATIONS.items():
        for v in a.variants:
            if v in a.same_as:
                continue
            for data in b.ablation_data:
                for start in b.ablation_starts or ("preset",):
                    rows += [dict(table=table, variant=v, data=data, start=start, kind="lr trial",
                                  lr=lr, seed=0) for lr in lrs]
                    rows += [dict(table=table, variant=v, data=data, start=start, kind="seed",
                                  lr=None, seed=s) for s in b.ablation_seeds if s != 0]
    return pd.DataFrame(rows)


def grid_cost(budget_name: str = "benchmark",
              seconds_per_iteration: dict[str, float] | None = None) -> pd.DataFrame:
    """The grid's size and CPU-hours, one row per dataset (each at its preset,
    ``Budget.ablation_preset_for``) and a total: measured from the runs trained so far at that
    preset (``wall_s`` at one thread: runs stop on validation, so their length is measured, not
    assumed), else estimated at the iteration cap from ``seconds_per_iteration[preset]``."""
    from stipkit.config.budget import BUDGETS
    from stipkit.experiments import ablation
    b = BUDGETS[budget_name]
    runs = grid_runs(budget_name)
    # the runs trained, as grid_runs counts them: the learning-rate trials, seeds 1-4
    run = ["table", "variant", "data", "start", "lr", "preset", "adam_eps"]   # a trial's columns
    results = ablation.load_results(b).drop_duplicates([*run, "seed"])
    trained = pd.concat([ablation.load_lr_trials(b).drop_duplicates(run),
                         results[results["seed"] != 0]])
    # only runs the grid still reads (today's preset, Adam epsilon and data), each once: a
    # variant's rows copied from another table's run (Ablation.same_as) are that run's
    from stipkit.reports.ablation_tables import ABLATIONS
    copied = [v in ABLATIONS[t].same_as for t, v in zip(trained["table"], trained["variant"])]
    trained = trained[ablation.current_setup(trained, b) & ~pd.Series(copied, index=trained.index)
                      & (trained["data_version"] == ablation.DATA_VERSION)]
    rows = []
    for data in b.ablation_data:
        preset = b.ablation_preset_for(data)
        n = int((runs["data"] == data).sum())
        done = trained[trained["data"] == data]["wall_s"]   # at its preset: current_setup
        row = {"data": data, "preset": preset, "runs in the grid": n, "runs trained": len(done)}
        spi = (seconds_per_iteration or {}).get(preset)
        if len(done):
            per_run, how = float(done.mean()), "measured mean"
        elif spi:
            per_run, how = spi * b.ablation_iterations, f"at the {b.ablation_iterations}-iteration cap, estimated"
        else:
            per_run, how = float("nan"), "not measured (--time-one)"
        row.update({"CPU-min per run": round(per_run / 60, 2), "how": how,
                    "CPU-hours": round(per_run * n / 3600, 1)})
        rows.append(row)
    table = pd.DataFrame(rows)
    total = {"data": "all", "preset": "", "runs in the grid": int(table["runs in the grid"].sum()),
             "runs trained": int(table["runs trained"].sum()), "CPU-min per run": float("nan"),
             "how": "", "CPU-hours": round(float(table["CPU-hours"].sum(min_count=len(table))), 1)}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table["wall hours on 2 cores (2 processes)"] = (table["CPU-hours"] / 2).round(1)
    return table.set_index("data")


def time_one(budget_name: str = "benchmark", data: str = "digits", iterations: int = 40) -> float:
    """Seconds per training iteration of the budget's ablation preset on ``data`` (STIP, one
    thread)."""
    import time
    from stipkit.config.budget import BUDGETS
    from stipkit.experiments import ablation
    torch.set_num_threads(1)
    b = BUDGETS[budget_name]
    cfg = ablation.variant_config("VI", "both", data, 0, b)
    cfg = replace(cfg, train=replace(cfg.train, patience=0))
    train_set = default_dataset(cfg, "train")
    with tempfile.TemporaryDirectory() as out:
        train(cfg, train_set, out, iterations=5, progress=False)          # warm-up
        t0 = time.perf_counter()
        train(cfg, train_set, out, iterations=5 + iterations, progress=False)
        return (time.perf_counter() - t0) / iterations


def learning_curve(data: str, preset: str = "study", evals: int = 20,
                   iterations: int | None = None, progress: bool = True) -> pd.DataFrame:
    """One training run of ``preset`` on ``data``; a row per evaluation: ``iteration``,
    ``minutes`` (training time so far) and the :func:`stipkit.experiments.study.quick_eval` columns."""
    cfg = replace(get_preset(preset), dataset=data)
    if iterations is not None:
        cfg = replace(cfg, train=replace(cfg.train, iterations=iterations))
    val_set = spread(default_dataset(cfg, "val"), VAL_WINDOWS)
    every = max(1, cfg.train.iterations // evals)
    with tempfile.TemporaryDirectory() as out:
        history = train(cfg, default_dataset(cfg, "train"), out, resume=False,
                        eval_fn=lambda p: quick_eval(p, cfg, val_set), eval_every=every,
                        ckpt_every=cfg.train.iterations, progress=progress)
    return curve_of(history, data)


def curve_of(history, data: str) -> pd.DataFrame:
    """The learning curve of a run's history (a DataFrame, or the path of a finished run's
    ``history.csv``: no training): a row per evaluation, ``data``, ``iteration``, ``minutes``
    (the run's own ``step_s`` clock, as good as the machine was quiet while it trained) and the
    :func:`stipkit.experiments.study.quick_eval` columns."""
    history = history.copy() if isinstance(history, pd.DataFrame) else pd.read_csv(history)
    history["minutes"] = history["step_s"].cumsum() / 60
    rows = history.dropna(subset=["eval_psnr_t1"])
    curve = rows[["iteration", "minutes"] + [c for c in rows if c.startswith("eval_")]]
    curve = curve.rename(columns=lambda c: c.removeprefix("eval_")).reset_index(drop=True)
    curve.insert(0, "data", data)
    return curve


def summary(curve: pd.DataFrame) -> dict:
    """The table row of one learning curve (see the module docstring)."""
    def first(ok: pd.Series):
        hit = curve.loc[ok, "minutes"]
        return round(float(hit.iloc[0]), 1) if len(hit) else f"not in {curve['minutes'].max():.1f}"

    t1, base1 = curve["psnr_t1"], curve["psnr_t1_copy_last"]
    mean, base_mean = curve["psnr_mean"], curve["psnr_mean_copy_last"]
    row = {"data": curve["data"].iloc[0], "iterations": int(curve["iteration"].max()),
           "train min": round(float(curve["minutes"].max()), 1),
           "copy-last t=5": round(float(base1.iloc[0]), 2),
           "copy-last mean": round(float(base_mean.iloc[0]), 2),
           "min to t=5 >= copy-last": first(t1 >= base1),
           "min to mean >= copy-last": first(mean >= base_mean),
           "iterations to mean >= copy-last": (int(curve.loc[mean >= base_mean, "iteration"].iloc[0])
                                               if (mean >= base_mean).any() else "never"),
           "min to targets": first((t1 >= base1 - 1) & (mean > base_mean))}
    finished = curve["minutes"].max()
    for key, col in (("t=5", "psnr_t1"), ("mean", "psnr_mean")):
        for m in MARKS:
            before = curve[curve["minutes"] <= m + 1e-9]
            value = f"{before[col].iloc[-1]:.2f}" if len(before) else "-"
            row[f"{key} @ {m} min"] = value + (" (done)" if len(before) and m > finished else "")
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["embedded", "digits"],
                    choices=["embedded", "digits"], help="datasets (default: both)")
    ap.add_argument("--preset", default="study", help="config preset (default: study)")
    ap.add_argument("--evals", type=int, default=20, help="evaluations per run (default: 20)")
    ap.add_argument("--iterations", type=int, help="override the preset's iterations")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--csv", help="also write every evaluation (the curves) to this CSV")
    ap.add_argument("--grid", action="store_true",
                    help="print the cost of `make ablations` (the benchmark grid) instead")
    ap.add_argument("--seconds-per-iteration", nargs="+", metavar="PRESET=SECONDS",
                    help="--grid: a preset's time per iteration at one thread, for the datasets "
                         "with no run yet (e.g. study=0.5)")
    ap.add_argument("--time-one", action="store_true",
                    help="--grid: time each dataset's preset here first (run it on an idle machine)")
    ap.add_argument("--history", nargs="+", metavar="DATA=PATH",
                    help="summarise finished runs from their history.csv instead of training "
                         "(e.g. embedded=runs/levers/rollout_7/history.csv)")
    args = ap.parse_args(argv)
    if args.history:
        pairs = [h.split("=", 1) for h in args.history]
        bad = [h for h, p in zip(args.history, pairs) if len(p) != 2]
        if bad:
            ap.error(f"--history takes DATA=PATH, got {bad[0]!r}")
        table = pd.DataFrame([summary(curve_of(path, data)) for data, path in pairs]).set_index("data").T
        print("time to quality of finished runs (their own training clock), PSNR in dB on the "
              "validation split (4 -> 6)")
        print(table.to_markdown())
        return
    if args.grid:
        from stipkit.config.budget import BUDGETS
        b = BUDGETS["benchmark"]
        try:
            spi = {k: float(v) for k, v in (pair.split("=", 1) for pair in
                                            args.seconds_per_iteration or [])}
        except ValueError:
            ap.error(f"--seconds-per-iteration takes PRESET=SECONDS, got {args.seconds_per_iteration}")
        if args.time_one:
            for data in b.ablation_data:
                preset = b.ablation_preset_for(data)
                spi[preset] = time_one("benchmark", data)
                print(f"{preset} on {data}, one thread: {spi[preset]:.3f} s per iteration")
        print(grid_cost("benchmark", spi).to_markdown())
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    curves = [learning_curve(d, args.preset, args.evals, args.iterations) for d in args.data]
    if args.csv:
        pd.concat(curves).to_csv(args.csv, index=False)
    table = pd.DataFrame([summary(c) for c in curves]).set_index("data").T
    print(f"\ntime to quality: preset {args.preset!r}, {torch.get_num_threads()} threads, "
          f"PSNR in dB on the validation split (4 -> 6)")
    print(table.to_markdown())


if __name__ == "__main__":
    main()
