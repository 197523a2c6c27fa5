"""Cost of every memory of Table VII on this machine; prints tables, asserts nothing.

    python benchmarks/bench_memories.py [--preset ablation] [--samples 10] [--repeats 3]

* one unit at Table VII's setting (hidden 128, kernel 5, 16x16, one sample): parameters and
  multiply-accumulates (``stipkit.reports.complexity.memory_table``) beside the paper's;
* the whole model of each memory at ``--preset`` (Table VII's plain encoder/decoder): parameters,
  MACs of one time step, and the best-of-``--repeats`` time to predict ``--samples`` windows
  (``stipkit.reports.complexity.model_table``);
* one training iteration of each model at the preset (batch of the preset, 4 -> 1): seconds,
  the cost that decides how many ablation runs fit on a CPU.
Run it on an idle machine: other processes share the cores and the timings.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from stipkit.reports import complexity
from stipkit.reports.ablation_tables import ABLATIONS, table7_config
from stipkit.models import build_model
from stipkit.training.train import make_optimizers, train_step


def train_seconds(preset: str, repeats: int) -> dict[str, float]:
    out = {}
    for name in ABLATIONS["VII"].variants:
        cfg = table7_config(complexity.as_config(preset), name)
        torch.manual_seed(0)
        p, d = build_model(cfg)
        op, od, *_ = make_optimizers(p, d, cfg.train)
        x = torch.rand(cfg.train.batch_size, cfg.train_length, cfg.model.img_channels,
                       cfg.model.height, cfg.model.width)
        train_step(x, p, d, op, od, cfg.train, cfg.input_length)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            train_step(x, p, d, op, od, cfg.train, cfg.input_length)
            best = min(best, time.perf_counter() - t0)
        out[name] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ablation")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    print("One unit at Table VII's setting (M = 2^20 parameters, G = 2^30 MACs):")
    print(complexity.memory_table().drop(columns="why_different").to_string(index=False, float_format=fmt))
    print(f"\nWhole models at the {args.preset!r} preset, {torch.get_num_threads()} threads:")
    models = complexity.model_table(args.preset, samples=args.samples, repeats=args.repeats)
    models["train_step_s"] = models.memory.map(train_seconds(args.preset, args.repeats))
    print(models.to_string(index=False, float_format=fmt))


if __name__ == "__main__":
    main()
