"""Why a still scene melts: the change a trained model adds at each step of a still rollout.

Four copies of a real frame in (16 frames of the validation split, as ``bench_levers.py``'s
still check), six predictions out; :func:`stipkit.scoring.evaluate.still_drift` reads each
step's change. The shipped ``study`` weights by default; ``--checkpoint`` adds others (e.g. a
lever's run kept with ``bench_levers.py --out``).

    .venv/bin/python benchmarks/bench_still.py --csv benchmarks/results/still-drift.csv
    .venv/bin/python benchmarks/bench_still.py --checkpoint runs/levers/still_4/checkpoint.pt
"""
from __future__ import annotations

import argparse

import pandas as pd

import stipkit
from stipkit.scoring.evaluate import still_drift
from stipkit.training.checkpoint import load_predictor

from bench_levers import still_frames


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", default=[], help="checkpoints to read beside the shipped weights")
    ap.add_argument("--no-shipped", action="store_true", help="leave out the shipped study weights")
    ap.add_argument("--csv", help="write the table here")
    args = ap.parse_args(argv)
    models = [] if args.no_shipped else [("study (shipped)", *stipkit.pretrained("study"))]
    for path in args.checkpoint:
        models.append((path, *load_predictor(path)))  # CheckpointError names a missing file
    if not models:
        raise SystemExit("nothing to read: give --checkpoint or drop --no-shipped")
    tables = []
    for name, predictor, cfg in models:
        frames = still_frames(cfg)
        table = still_drift(predictor, frames, cfg.input_length, cfg.eval_length)
        tables.append(table.assign(model=name, frames=len(frames)))
    out = pd.concat(tables)[["model", "frames", "t", "psnr", "step_rms", "same_as_first", "toward_mean"]]
    if args.csv:
        out.round(4).to_csv(args.csv, index=False)
    print("A still scene (four copies of a validation frame in): PSNR against it, the change added at "
          "each step (RMS), its correlation with the first step's change and with the scene's "
          "departure from its mean brightness (negative: a blur toward the mean)")
    print(out.round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
