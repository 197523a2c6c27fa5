"""Speed and memory of the STIP predictor on this machine; prints tables, asserts nothing.

    python benchmarks/bench_model.py [--presets study ucfsport] [--no-sjtu4k] [--repeats 3]
                                     [--compile] [--breakdown]

* train step: one Alg. 1 iteration (D update, then P update with mse+gan+lp), 4 -> 6 frames;
  study preset at batch 8, ucfsport at batch 1 (as the official code trains).
* forward: the same rollout under ``torch.inference_mode``.
* FLOP/s: FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` on stipkit's forward /
  train step, divided by the time, as a fraction of the measured fp32 matmul FLOP/s.
* sjtu4k: inference of one 8-frame sequence (2176x3840, 4 -> 4), each in a fresh process:
  wall time and peak resident memory (VmHWM), the input included. ``stipkit-float`` is handed
  all 8 frames as float32, like the official code; ``-given4`` only the 4 given frames, and
  keeps only the 4 future predictions, as ``stipkit.scoring.evaluate`` does (the future frames are never
  read without a scheduled-sampling mask, and the predictions of given frames are not scored);
  ``uint8`` the 8 frames as bytes (scaled one step at a time).
* ``--compile``: stipkit with ``stipkit.models.compile_steps`` (minutes of compiling first).
* ``--breakdown``: the share of the time spent in convolution kernels, and the FLOP/s fraction
  the model would reach if everything but the convolutions took no time.

Each code is timed in turns (stipkit, official, stipkit, ...) and the best of ``--repeats`` is
kept, so that a shared machine's drift reaches both alike.

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
from stipkit.models import build_model, compile_steps
from stipkit.training.train import make_optimizers, train_step

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


def matmul_flops(n: int = 4096, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / best_time(lambda: a @ b, repeats)


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- stipkit
def stipkit_case(preset: str, batch: int, total: int = 10, compiled: bool = False):
    """(train step, forward) of stipkit; ``compiled``: the train step compiled in place and the
    forward on a frozen compiled snapshot (``stipkit.models.compile_steps``)."""
    cfg = get_preset(preset)
    cfg = replace(cfg, train=replace(cfg.train, loss="mse+gan+lp"))
    torch.manual_seed(0)
    pred, disc = build_model(cfg)
    opt_p, opt_d, _, _ = make_optimizers(pred, disc, cfg.train)
    infer = pred
    if compiled:
        infer = compile_steps(pred, inference=True)
        compile_steps(pred)
    m = cfg.model
    frames = torch.rand(batch, total, m.img_channels, m.height, m.width)
    mask = torch.zeros(batch, total - cfg.input_length - 1)

    def step():
        train_step(frames, pred, disc, opt_p, opt_d, cfg.train, cfg.input_length, mask)

    def forward():
        with torch.inference_mode():
            infer(frames)
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
        given = 4 if which.endswith("-given4") else 8  # evaluate() hands the model 4 frames only
        shape = (1, given, m.img_channels, m.height, m.width)
        frames = (torch.randint(0, 256, shape, dtype=torch.uint8) if "uint8" in which
                  else torch.rand(shape))

        def forward():
            with torch.inference_mode():
                pred(frames, total_length=8, future_only=given == 4)
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
    for which in (["stipkit-float", "stipkit-float-given4", "stipkit-uint8"]
                  + (["official"] if OFFICIAL else [])):
        out = subprocess.run([sys.executable, __file__, "--sjtu4k-child", which],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"code": which, "seconds": round(r["seconds"], 2),
                     "peak RSS (GB)": round(r["peak_gb"], 2),
                     "RSS before forward (GB)": round(r["before_gb"], 2)})
    return rows


def interleaved_times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, taking turns (a, b, c, a, b, c, ...), after one
    warm-up call each. Taking turns puts every code under the same drift of a shared machine."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


FRACTION = "FLOP/s / matmul"
BOUND = "bound: FLOP/s / matmul if only convolutions took time"
CONV_OPS = ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution_backward",
            "aten::convolution", "aten::addmm", "aten::mm")


def conv_seconds(fn) -> tuple[float, float]:
    """(seconds in convolution / linear kernels, seconds in all ops) of one call, from the
    profiler's self times (the transposed convolutions run inside ``aten::_convolution``)."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    return conv / 1e6, sum(e.self_cpu_time_total for e in events) / 1e6


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["study", "ucfsport"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true",
                    help="also time stipkit with compile_steps (takes minutes to compile)")
    ap.add_argument("--breakdown", action="store_true",
                    help="profile stipkit (eager) once and print the convolutions-only bound")
    ap.add_argument("--no-sjtu4k", action="store_true")
    ap.add_argument("--sjtu4k-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.sjtu4k_child:
        return sjtu4k_child(a.sjtu4k_child)
    peak = matmul_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul (4096^3): "
          f"{peak / 1e9:.1f} GFLOP/s")
    rows, bounds = [], []
    for preset in a.presets:
        b = BATCH[preset]
        cases = {"stipkit": stipkit_case(preset, b)}
        flops = {"train step": count_flops(cases["stipkit"][0]),
                 "forward": count_flops(cases["stipkit"][1])}
        if a.compile:
            torch._dynamo.config.fail_on_recompile_limit_hit = True  # never time eager as compiled
            t0 = time.perf_counter()
            cases["stipkit compiled"] = stipkit_case(preset, b, compiled=True)
            for fn in cases["stipkit compiled"]:
                fn()  # compile now, outside the timed calls
            print(f"{preset}: compiled in {time.perf_counter() - t0:.0f} s")
        if OFFICIAL:
            cases["official"] = official_case(preset, b)
        for i, what in enumerate(("train step", "forward")):
            times = interleaved_times({code: fns[i] for code, fns in cases.items()}, a.repeats)
            for code, ts in times.items():
                row = {"preset": preset, "batch": b, "what": what, "code": code,
                       "seconds": round(min(ts), 3), "GFLOP": round(flops[what] / 1e9, 1),
                       FRACTION: flops[what] / min(ts)}  # FLOP/s; divided by peak below
                if OFFICIAL:
                    row.update({"speed-up (official/stipkit)": "", "per-round range": ""})
                if OFFICIAL and code != "official":
                    ratios = [o / t for o, t in zip(times["official"], ts)]
                    row["speed-up (official/stipkit)"] = round(min(times["official"]) / min(ts), 2)
                    row["per-round range"] = f"{min(ratios):.2f}-{max(ratios):.2f}"
                rows.append(row)
            if a.breakdown:
                conv, total = conv_seconds(cases["stipkit"][i])
                bounds.append({"preset": preset, "what": what, "conv s": round(conv, 3),
                               "all ops s": round(total, 3), "conv share": round(conv / total, 2),
                               BOUND: flops[what] / conv})  # FLOP/s; divided by peak below
    # The machine is shared: the fractions use the best matmul rate seen, at the start or the end.
    peak = max(peak, matmul_flops())
    print(f"fp32 matmul, best of the start and the end of the run: {peak / 1e9:.1f} GFLOP/s")
    for row in rows:
        row[FRACTION] = round(row[FRACTION] / peak, 2)
    for row in bounds:
        row[BOUND] = round(row[BOUND] / peak, 2)
    print(pd.DataFrame(rows).to_string(index=False))
    if bounds:
        print("\nWhere the time goes (stipkit eager, one profiled call; profiler self times):")
        print(pd.DataFrame(bounds).to_string(index=False))
    if not a.no_sjtu4k:
        print("\nsjtu4k inference, one 8-frame sequence (fresh process each):")
        print(pd.DataFrame(sjtu4k_rows()).to_string(index=False))


if __name__ == "__main__":
    main()
