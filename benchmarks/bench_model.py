"""Speed and memory of the STIP predictor on this machine; prints tables, asserts nothing.

    python benchmarks/bench_model.py [--presets study ucfsport] [--no-sjtu4k] [--repeats 3]

* train step: one Alg. 1 iteration (D update, then P update with mse+gan+lp), 4 -> 6 frames;
  study preset at batch 8, ucfsport at batch 1 (as the official code trains).
* forward: the same rollout under ``torch.inference_mode``.
* FLOP/s: FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` on stipkit's forward /
  train step, divided by the time, as a fraction of the measured fp32 matmul FLOP/s.
* sjtu4k: inference of one 8-frame sequence (2176x3840, 4 -> 4), each in a fresh process:
  wall time and peak resident memory (ru_maxrss).

With ``STIPKIT_OFFICIAL_DIR`` pointing at a checkout of github ZhengChang467/STIPHR, the official
code is timed the same way (its model with identical sizes, random weights) and the ratio
official_time / stipkit_time is printed. The official code is imported from that folder at run
time only; nothing of it is part of stipkit.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from dataclasses import replace

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from stipkit.config import get_preset
from stipkit.models import build_model
from stipkit.train import make_optimizers, train_step

OFFICIAL = os.environ.get("STIPKIT_OFFICIAL_DIR")
BATCH = {"study": 8, "ucfsport": 1, "human36m": 1, "sjtu4k": 1}


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_flops(n: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / best_time(lambda: a @ b, repeats)


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- stipkit
def stipkit_case(preset: str, batch: int, total: int = 10):
    cfg = get_preset(preset)
    cfg = replace(cfg, train=replace(cfg.train, loss="mse+gan+lp"))
    torch.manual_seed(0)
    pred, disc = build_model(cfg)
    opt_p, opt_d, _, _ = make_optimizers(pred, disc, cfg.train)
    m = cfg.model
    frames = torch.rand(batch, total, m.img_channels, m.height, m.width)
    mask = torch.zeros(batch, total - cfg.input_length - 1)

    def step():
        train_step(frames, pred, disc, opt_p, opt_d, cfg.train, cfg.input_length, mask)

    def forward():
        with torch.inference_mode():
            pred(frames)
    return step, forward


# ----------------------------------------------------------------------------- official
def official_case(preset: str, batch: int, total: int = 10):
    """The official model and its training step (model_factory.Model.train), same sizes."""
    sys.path.insert(0, OFFICIAL)
    from core.models.Discriminator import Discriminator  # noqa: PLC0415
    from core.models.STIP import RNN  # noqa: PLC0415
    m = get_preset(preset).model
    p = m.patch
    args = types.SimpleNamespace(
        img_height=m.height, img_width=m.width, img_channel=m.img_channels, patch_size=p,
        sr_size=2 ** m.num_downsample, num_layers=m.num_layers, num_hidden=m.hidden,
        filter_size=(m.filter_size, m.filter_size), stride=1, time=2, time_stride=1, tau=5,
        input_length=4, total_length=total, alpha=m.recall_weight, device="cpu")
    torch.manual_seed(0)
    net = RNN(m.num_layers, [m.hidden] * m.num_layers, args)
    disc = Discriminator(m.height // p, m.width // p, m.frame_channels, m.disc_hidden)
    opt, opt_d = torch.optim.Adam(net.parameters(), 5e-3), torch.optim.Adam(disc.parameters(), 5e-4)
    frames = torch.rand(batch, total, m.frame_channels, m.height // p, m.width // p)
    mask = torch.zeros(batch, total - 5, m.height // p, m.width // p, m.frame_channels)
    mse, bce = torch.nn.MSELoss(), torch.nn.BCELoss()
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    def step():  # as the official Model.train (without its .cuda() labels)
        nxt, _ = net(frames, mask)
        gt = frames[:, 1:]
        disc.zero_grad()
        d_gen, _ = disc(nxt.detach())
        d_gt, _ = disc(gt)
        d_loss = bce(d_gen, zeros) + bce(d_gt, ones)
        d_loss.backward(retain_graph=True)
        opt_d.step()
        opt.zero_grad()
        d_pre, f_gen = disc(nxt)
        _, f_gt = disc(gt)
        loss = mse(nxt, gt) + 0.01 * mse(f_gen, f_gt) + 0.001 * bce(d_pre, ones)
        loss.backward()
        opt.step()

    def forward():
        with torch.inference_mode():
            net(frames, mask)
    return step, forward


# ----------------------------------------------------------------------------- sjtu4k memory
def sjtu4k_child(which: str) -> None:
    """Run in a fresh process: one 8-frame sequence at 2176x3840, print JSON."""
    cfg = get_preset("sjtu4k")
    m = cfg.model
    torch.manual_seed(0)
    if which == "official":
        _, forward = official_case("sjtu4k", 1, total=8)
    else:
        pred, _ = build_model(cfg)
        pred.eval()
        shape = (1, 8, m.img_channels, m.height, m.width)
        frames = (torch.randint(0, 256, shape, dtype=torch.uint8) if which == "stipkit-uint8"
                  else torch.rand(shape))

        def forward():
            with torch.inference_mode():
                pred(frames)
    base = peak_rss_gb()
    t0 = time.perf_counter()
    forward()
    dt = time.perf_counter() - t0
    peak = peak_rss_gb()
    print(json.dumps({"seconds": dt, "peak_gb": peak, "before_gb": base}))


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited from the
    parent across fork + exec)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 2 ** 20


def sjtu4k_rows() -> list[dict]:
    rows = []
    for which in ["stipkit-float", "stipkit-uint8"] + (["official"] if OFFICIAL else []):
        out = subprocess.run([sys.executable, __file__, "--sjtu4k-child", which],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"code": which, "seconds": round(r["seconds"], 2),
                     "peak RSS (GB)": round(r["peak_gb"], 2),
                     "RSS before forward (GB)": round(r["before_gb"], 2)})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["study", "ucfsport"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sjtu4k", action="store_true")
    ap.add_argument("--sjtu4k-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.sjtu4k_child:
        return sjtu4k_child(a.sjtu4k_child)
    peak = matmul_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul (4096^3): "
          f"{peak / 1e9:.1f} GFLOP/s")
    rows = []
    for preset in a.presets:
        b = BATCH[preset]
        step, forward = stipkit_case(preset, b)
        flops = {"train step": count_flops(step), "forward": count_flops(forward)}
        times = {"train step": best_time(step, a.repeats), "forward": best_time(forward, a.repeats)}
        off = {}
        if OFFICIAL:
            o_step, o_forward = official_case(preset, b)
            off = {"train step": best_time(o_step, a.repeats), "forward": best_time(o_forward, a.repeats)}
        for what in ("train step", "forward"):
            row = {"preset": preset, "batch": b, "what": what, "stipkit s": round(times[what], 3),
                   "GFLOP": round(flops[what] / 1e9, 1),
                   "FLOP/s / matmul": round(flops[what] / times[what] / peak, 2)}
            if off:
                row["official s"] = round(off[what], 3)
                row["speed-up (official/stipkit)"] = round(off[what] / times[what], 2)
            rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))
    if not a.no_sjtu4k:
        print("\nsjtu4k inference, one 8-frame sequence (fresh process each):")
        print(pd.DataFrame(sjtu4k_rows()).to_string(index=False))


if __name__ == "__main__":
    main()
