"""Training throughput at the study preset on the embedded real clips.

Runs ``stipkit.training.train.train`` for a few warm-up iterations plus ``--iterations`` timed ones and
reads its history (``data_s``: batch assembly and copy to the device; ``step_s``: the whole
iteration, data included). Prints a table; asserts nothing. Target: data time < 10% of the step.

    .venv/bin/python benchmarks/bench_train.py                 # ~20 iterations, < 2 min on CPU
    .venv/bin/python benchmarks/bench_train.py --iterations 5 --preset ci --threads 1
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import torch

from stipkit.config import get_preset
from stipkit.data.build import default_dataset
from stipkit.runtime.device import default_device
from stipkit.training.train import train


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="study", help="config preset (default: study)")
    ap.add_argument("--data", default="embedded", help="embedded or digits (default: embedded)")
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations (default: 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up iterations (default: 3)")
    ap.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--threads", type=int,
                    help="torch CPU threads (default: torch's; on a busy machine 1 can be far faster)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = replace(get_preset(args.preset), dataset=args.data)
    if args.batch_size:
        cfg = replace(cfg, train=replace(cfg.train, batch_size=args.batch_size))
    t0 = time.perf_counter()
    train_set = default_dataset(cfg, "train")
    setup_s = time.perf_counter() - t0
    device = torch.device(args.device) if args.device else default_device()

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        hist = train(cfg, train_set, out, iterations=args.warmup + args.iterations, resume=False,
                     ckpt_every=10**9, device=device, progress=False)
        total_s = time.perf_counter() - t0
    timed = hist.iloc[args.warmup:]
    step, data = timed["step_s"].mean(), timed["data_s"].mean()
    m = cfg.model
    print(f"bench_train: preset {cfg.name}, {cfg.dataset} ({len(train_set)} windows, loaded in "
          f"{setup_s:.1f} s), {m.height}x{m.width}, batch {cfg.train.batch_size}, "
          f"{cfg.train_length} frames, loss {cfg.train.loss}, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"{args.warmup} warm-up + {len(timed)} timed iterations, {total_s:.1f} s in all "
          "(incl. the final checkpoint)")
    rows = [("iterations/s", f"{1 / step:.3f}"),
            ("mean step time", f"{1000 * step:.1f} ms"),
            ("mean data time", f"{1000 * data:.2f} ms"),
            ("data-time share", f"{100 * data / step:.2f} %  (target < 10 %)"),
            ("samples/s", f"{cfg.train.batch_size / step:.2f}")]
    width = max(len(k) for k, _ in rows)
    print("-" * (width + 30))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if device.type == "cpu" and load > cores:
        print(f"note: the machine is busy (load {load:.1f} on {cores} cores): CPU timings are "
              "inflated; with several threads they can be much worse, try --threads 1")


if __name__ == "__main__":
    main()
