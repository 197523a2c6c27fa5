"""Time to quality: how fast the study preset learns on this machine, against copy-last.

Trains the ``study`` preset (its own iterations and schedule) on each dataset, scoring the whole
test split every ``--evals``-th of the run with :func:`stipkit.experiments.study.quick_eval` (4 given frames
-> 6 predicted, PSNR), and reads the training clock from the history (``step_s``: the
iterations only, evaluation excluded). Prints one table:

* ``copy-last t=5`` / ``copy-last mean``: the baseline's PSNR at the first predicted frame and
  over all six;
* ``min to t=5 >= copy-last``: training minutes until STIP's PSNR at t = 5 first reaches
  copy-last's (the model starts as copy-last when ``ModelConfig.init="copy_last"``; only
  evaluations after training began count);
* ``min to targets``: until both of issue 8's targets hold at once (t = 5 PSNR at least
  copy-last's minus 1 dB, mean PSNR above copy-last's);
* ``t=5 @ 5/10/15 min`` and ``mean @ 5/10/15 min``: STIP's PSNR at the last evaluation at or
  before that many minutes ("done" marks a run that had finished by then).

This is the number speed work should move. Nothing is asserted; timings depend on the machine
(they are noisy on a shared VM) and the thread count.

    .venv/bin/python benchmarks/bench_learning.py                    # both datasets, ~30 min
    .venv/bin/python benchmarks/bench_learning.py --data digits --csv curve.csv
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace

import pandas as pd
import torch

from stipkit.config import get_preset
from stipkit.data.build import default_dataset
from stipkit.experiments.study import quick_eval
from stipkit.training.train import train

MARKS = (5, 10, 15)  # minutes


def learning_curve(data: str, preset: str = "study", evals: int = 20,
                   iterations: int | None = None, progress: bool = True) -> pd.DataFrame:
    """One training run of ``preset`` on ``data``; a row per evaluation: ``iteration``,
    ``minutes`` (training time so far) and the :func:`stipkit.experiments.study.quick_eval` columns."""
    cfg = replace(get_preset(preset), dataset=data)
    if iterations is not None:
        cfg = replace(cfg, train=replace(cfg.train, iterations=iterations))
    test_set = default_dataset(cfg, "test")
    every = max(1, cfg.train.iterations // evals)
    with tempfile.TemporaryDirectory() as out:
        history = train(cfg, default_dataset(cfg, "train"), out, resume=False,
                        eval_fn=lambda p: quick_eval(p, cfg, test_set), eval_every=every,
                        ckpt_every=cfg.train.iterations, progress=progress)
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
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    curves = [learning_curve(d, args.preset, args.evals, args.iterations) for d in args.data]
    if args.csv:
        pd.concat(curves).to_csv(args.csv, index=False)
    table = pd.DataFrame([summary(c) for c in curves]).set_index("data").T
    print(f"\ntime to quality: preset {args.preset!r}, {torch.get_num_threads()} threads, "
          f"PSNR in dB on the whole test split (4 -> 6)")
    print(table.to_markdown())


if __name__ == "__main__":
    main()
