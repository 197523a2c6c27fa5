"""Why a still scene melts: the change a trained model adds at each step of a still rollout.

Four copies of a real frame in (16 frames of the validation split, as ``bench_levers.py``'s
still check), six predictions out; :func:`stipkit.scoring.evaluate.still_drift` reads each
step's change. The shipped ``study`` weights by default; ``--checkpoint`` adds others (e.g. a
lever's run kept with ``bench_levers.py --out``). ``--noise``: each given copy also with its own
Gaussian noise of these standard deviations (scored against the clean frame; copy-last's PSNR is
then the noise's, 48 dB at 0.004, 40 dB at 0.01), as a real camera's still frames differ: a
motion gate (``init="copy_last_gated"``, bench_levers.py's row ``gated``) copies an exact still
scene exactly, and this says what noise opens it.

    .venv/bin/python benchmarks/bench_still.py --checkpoint runs/levers/residual/checkpoint.pt \
        runs/levers/gated/checkpoint.pt --csv benchmarks/results/still-drift.csv
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
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.004, 0.01],
                    help="noise standard deviations of the given copies (default: 0 0.004 0.01)")
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
        for noise in args.noise:
            table = still_drift(predictor, frames, cfg.input_length, cfg.eval_length, noise)
            tables.append(table.assign(model=name, frames=len(frames), noise=noise))
    out = pd.concat(tables)[["model", "frames", "noise", "t", "psnr", "step_rms", "same_as_first",
                             "toward_mean"]]
    if args.csv:
        out.round(4).to_csv(args.csv, index=False)
    print("A still scene (four copies of a validation frame in): PSNR against it, the change added at "
          "each step (RMS), its correlation with the first step's change and with the scene's "
          "departure from its mean brightness (negative: a blur toward the mean)")
    print(out.round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
