"""What each lever gives: the changes that made the study preset learn, measured one at a time.

Issue 8 asked for the levers to be measured rather than assumed. Each row here is one training
run of ``stipkit.training.train.train`` at the same iteration budget on the embedded real clips, scored
on 64 windows of the *validation* split (4 given -> 6 predicted frames) by
:func:`stipkit.experiments.study.quick_eval` (choices are made there; the test clips are never
read here), and at the end on a still scene (four copies of a validation frame in). The
rows climb a ladder from the old study preset to today's: each adds one change to the row it
names as its base. Every row trains with MSE only (the old preset used Alg. 1's GAN + LP terms;
the issue measured that MSE alone gives it the same PSNR) except ``gan_lp``, which puts them
back. Single runs on a shared 2-core machine: differences under ~0.5 dB are noise.

    .venv/bin/python benchmarks/bench_levers.py --jobs 2 --csv benchmarks/results/levers.csv
    .venv/bin/python benchmarks/bench_levers.py --only old copy_last --iterations 200   # quick look
    .venv/bin/python benchmarks/bench_levers.py --jobs 2 --iterations 3000 --only rollout_7 gated \
        --val-clip vtest --csv benchmarks/results/levers-heldout-val.csv   # a scene never trained on
    .venv/bin/python benchmarks/bench_levers.py --jobs 1 --iterations 1000 --only gated \
        --val-clip box --csv benchmarks/results/levers-heldout-val.csv --append  # another length
    .venv/bin/python benchmarks/bench_levers.py --baselines \
        --csv benchmarks/results/levers-heldout-baselines.csv  # the baselines on those clips

``--val-clip``: validate on a training clip held out of training *whole* instead of on the late
windows of the training clips, which reward fitting those scenes (docs/study.md, "Not shipped").

Every run uses one torch thread; ``--jobs 2`` runs two at a time. The CSV (one row per run, the
final and the best evaluation, the seconds per iteration) is what notebook 03 shows.
"""
from __future__ import annotations

import argparse
import fcntl
import io
import multiprocessing as mp
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from stipkit.config import Config, get_preset
from stipkit.experiments.study import VAL_WINDOWS


# The old study preset (as of 2026-11-22, before issue 8): patch 2, 2 downsampling layers,
# PyTorch's initialisation, a constant learning rate of 1e-3, one center crop per window.
def _old() -> Config:
    cfg = get_preset("study")
    model = replace(cfg.model, patch=2, num_downsample=2, hidden=32, num_layers=4,
                    recall_weight=0.1, init="default")
    train = replace(cfg.train, lr=1e-3, lr_schedule="exponential", warmup=0, ema=0.0, crops=1,
                    flips=False, reverse=False, scheduled_sampling=True)
    return replace(cfg, model=model, train=train, train_length=5)


def _m(**kw):
    return lambda cfg: replace(cfg, model=replace(cfg.model, **kw))


def _t(**kw):
    return lambda cfg: replace(cfg, train=replace(cfg.train, **kw))


# name: (base row, change, what it is)
LADDER = {
    "old": (None, lambda cfg: cfg, "the old study preset: patch 2, 2 DL, default init, lr 1e-3"),
    "recall_1": ("old", _m(recall_weight=1.0), "lambda = 1 instead of 0.1 (Eq. 3)"),
    "patch1": ("old", _m(patch=1, num_downsample=3),
               "patch 1, 3 DL: finest recall 32x32x32 (2.7x the frame's values)"),
    "cosine": ("patch1", _t(lr_schedule="cosine", warmup=300),
               "warm-up 300 iterations, cosine decay to 0"),
    "copy_last": ("cosine", _m(init="copy_last"), "copy-last initialisation"),
    "crops_flips": ("copy_last", _t(crops=5, flips=True), "5 crop positions and mirrors"),
    "reverse": ("crops_flips", _t(reverse=True), "and every window played backwards"),
    "ema": ("reverse", _t(ema=0.995), "moving average of the weights (0.995)"),
    "train_10": ("ema", lambda c: replace(c, train_length=10, train=replace(
        c.train, sampling_stop_iter=max(1, c.train.iterations // 2),
        sampling_rate=1 / max(1, c.train.iterations // 2))),
        "train 4 -> 6 (the official length), scheduled sampling over the first half"),
    "lr_5e-4": ("ema", _t(lr=5e-4), "peak learning rate 5e-4"),
    "batch_16": ("ema", _t(batch_size=16), "batch 16 (same iterations: twice the samples)"),
    "gan_lp": ("ema", _t(loss="mse+gan+lp"), "the paper's loss, Eq. 9 (the others: MSE)"),
    "still_8": ("ema", _t(still_every=8), "one training window in eight made still"),
    "rollout_7": ("still_8", lambda c: replace(c, train_length=7, train=replace(
        c.train, sampling_stop_iter=max(1, c.train.iterations // 2),
        sampling_rate=1 / max(1, c.train.iterations // 2))),
        "train 4 -> 3: the model fed its own predictions (scheduled sampling over the first half)"),
    "eps_16": ("rollout_7", _t(adam_eps=1e-16),
               "Adam's epsilon 1e-16: the zeroed layers of the copy-last start (the temporal head, "
               "the recall's free maps) pass normalised updates below them"),
    "rollout_10": ("rollout_7", lambda c: replace(c, train_length=10),
                   "train 4 -> 6, the whole horizon scored, on its own predictions (scheduled "
                   "sampling over the first half)"),
    "still_4": ("rollout_7", _t(still_every=4), "one training window in four made still"),
    "rollout_gan_lp": ("rollout_7", _t(loss="mse+gan+lp"),
                       "the paper's loss, Eq. 9, against MSE's blur toward the mean (bench_still.py)"),
    "residual": ("rollout_7", _m(init="copy_last_residual"),
                 "copy-last by a residual, v_t + Eq. 4 (its head zero at the start), instead of along "
                 "the recall: training cannot wear the copy into a blur"),
    "gated": ("rollout_7", _m(init="copy_last_gated"),
              "copy-last by a residual gated by the motion seen, v_t + g * Eq. 4 (MotionGate, the "
              "kit's): a still input is copied exactly"),
    "flow_gated": ("gated", _m(init="flow_warp_gated"),
                   "the gated residual added to v_t warped along its Farnebaeck flow from v_{t-1} "
                   "(the kit's, in neither paper): it starts as the flow-warp baseline's first step"),
    # the benchmark's scale (budget "benchmark", preset ablation64: 3 STGRUs of 16 channels,
    # batch 4), and the study recipe's levers brought to it one at a time
    "a64": (None, lambda c: _t(iterations=c.train.iterations)(get_preset("ablation64")),
            "the ablation64 preset as the benchmark runs it (3 x 16 channels, batch 4)"),
    "a64_rollout": ("a64", lambda c: replace(c, train_length=7, train=replace(
        c.train, still_every=8, sampling_stop_iter=max(1, c.train.iterations // 2),
        sampling_rate=1 / max(1, c.train.iterations // 2))),
        "the study recipe's data levers: one window in eight still, train 4 -> 3 on its own predictions"),
    "a64_ema": ("a64_rollout", _t(ema=0.995, warmup=300),
                "the study preset's averaging and warm-up (ema 0.995, 300 iterations)"),
    "a64_h32": ("a64_ema", _m(hidden=32, num_layers=4),
                "the study preset's width and depth (4 x 32 channels) at batch 4"),
}


def config_of(name: str, iterations: int) -> Config:
    base, change, _ = LADDER[name]
    cfg = _t(loss="mse", iterations=iterations)(_old()) if base is None else config_of(base, iterations)
    return change(cfg)


# The rule that picks the study recipe among the ladder's best rows (docs/study.md,
# "Leave-one-clip-out", stated before its last runs finished): each candidate is trained with one
# training clip held out whole (--val-clip), for every training clip in turn; its score is its final
# mean PSNR over t = 5...10 on that clip, averaged over the clips. Single runs: a candidate must be
# ahead of the incumbent by TIE_DB to replace it.
TIE_DB = 0.5


def held_out_label(clip: str) -> str:
    """The ``val`` label of a run validated on training clip ``clip`` held out of training whole."""
    return f"clip {clip}, held out of training"


def held_out_scores(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Final mean PSNR (t = 5...10) of each ``--val-clip`` run in ``table``: one row per training
    clip held out, one column per value of ``by`` ("lever" or "iterations"). Every candidate must
    have been run with every training clip held out."""
    from stipkit.data.video import TRAIN_CLIPS
    scores = table.pivot_table(index="val", columns=by, values="psnr_mean", aggfunc="last")
    if set(scores.index) != {held_out_label(c) for c in TRAIN_CLIPS} or scores.isna().any().any():
        raise ValueError(f"leave-one-clip-out needs every candidate run with each of the training "
                         f"clips {TRAIN_CLIPS} held out; the table has\n{scores}")
    return scores


def choose_recipe(table: pd.DataFrame, incumbent: str = "rollout_7", iterations: int = 3000) -> str:
    """The lever row the study preset should be, from a leave-one-clip-out table (the rows of
    ``--val-clip`` runs, e.g. ``benchmarks/results/levers-heldout-val.csv``) at ``iterations``."""
    scores = held_out_scores(table[table["iterations"] == iterations], by="lever")
    if incumbent not in scores:
        raise ValueError(f"choose_recipe: the incumbent {incumbent!r} was not run at {iterations} "
                         f"iterations; the table has {list(scores)}")
    means = scores.mean()
    best = means.idxmax()
    return best if means[best] - means[incumbent] >= TIE_DB else incumbent


def choose_iterations(table: pd.DataFrame, lever: str = "gated") -> int:
    """The iteration count of the study preset (docs/study.md, "The iteration count"): of the
    counts ``lever`` was run at with each training clip held out, the fewest whose mean score is
    within TIE_DB of the best one's. Within one run's noise the cheaper recipe ships: every user
    who re-trains the study model waits for it."""
    means = held_out_scores(table[table["lever"] == lever], by="iterations").mean()
    return int(min(n for n, m in means.items() if means.max() - m < TIE_DB))


def still_frames(cfg: Config, n: int = 16, held_out: tuple[str, ...] = ()) -> torch.Tensor:
    """``n`` real frames of the validation split (evenly spaced), for the still-scene check."""
    from stipkit.data.build import default_dataset, spread
    val = spread(default_dataset(cfg, "val", held_out=held_out), n)
    return torch.stack([val[i][cfg.input_length - 1] for i in range(len(val))])


def row_name(name: str, extra_clips: dict | None = None, seed: int = 0) -> str:
    """The table's name of a run of row ``name``: ``<name>+<clip>...`` when trained on extra
    clips, ``...@seed<N>`` when seeded otherwise than the rows' 0 (so that
    ``held_out_scores`` never mixes such a run into ``name``'s own scores)."""
    return "+".join([name, *(extra_clips or {})]) + (f"@seed{seed}" if seed else "")


def run(name: str, iterations: int, evals: int, out_root: str | None = None,
        val_clip: str | None = None, extra_clips: dict | None = None, seed: int = 0) -> dict:
    """Train row ``name`` (on the training clips and ``extra_clips``, ``{name: path}``, if
    given: its row is then ``<name>+<clip>+...``; with another ``seed`` than the rows' 0, the
    row is ``<name>@seed<seed>``: run-to-run noise) and score it on the validation split."""
    from stipkit.data.build import default_dataset, spread
    from stipkit.experiments.study import quick_eval
    from stipkit.scoring.evaluate import still_rollout
    from stipkit.training.checkpoint import load_predictor
    from stipkit.training.train import train

    torch.set_num_threads(1)
    cfg = config_of(name, iterations)
    cfg = replace(cfg, train=replace(cfg.train, seed=seed)) if seed else cfg
    left_out = (val_clip,) if val_clip else ()
    val_set = spread(default_dataset(cfg, "val", held_out=left_out), VAL_WINDOWS)
    start = time.perf_counter()
    lever = row_name(name, extra_clips, seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{out_root}/{lever}{f'-without-{val_clip}' if val_clip else ''}" if out_root else tmp
        train_set = default_dataset(cfg, "train", held_out=left_out, extra_clips=extra_clips)
        hist = train(cfg, train_set, out, resume=bool(out_root),
                     progress=False, eval_fn=lambda p: quick_eval(p, cfg, val_set),
                     eval_every=max(1, iterations // evals), ckpt_every=max(1, iterations // evals))
        model, _ = load_predictor(f"{out}/checkpoint.pt")
        still = still_rollout(model, still_frames(cfg, held_out=left_out), cfg.input_length,
                              cfg.eval_length, per_frame=True)
    ev = hist.dropna(subset=["eval_psnr_t1"])
    last = ev.iloc[-1]
    best = ev.loc[ev["eval_psnr_mean"].idxmax()]
    print(f"{lever}: t=5 {last['eval_psnr_t1']:.2f}, mean {last['eval_psnr_mean']:.2f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    base, change = (name, "and the training clips " + ", ".join(extra_clips)) if extra_clips \
        else (LADDER[name][0] or "-", LADDER[name][2])
    return {"lever": lever, "base": base, "change": change,
            **({"val": held_out_label(val_clip)} if val_clip else {}),
            "iterations": iterations, "s_per_iteration_1thread": round(float(hist["step_s"].median()), 3),
            "psnr_t5": round(float(last["eval_psnr_t1"]), 2),
            "psnr_mean": round(float(last["eval_psnr_mean"]), 2),
            "best_psnr_mean": round(float(best["eval_psnr_mean"]), 2),
            "best_at": int(best["iteration"]),
            "copy_last_t5": round(float(last["eval_psnr_t1_copy_last"]), 2),
            "copy_last_mean": round(float(last["eval_psnr_mean_copy_last"]), 2),
            "still_t5_min": round(float(still[still["t"] == cfg.input_length + 1]["psnr"].min()), 2),
            "still_min": round(float(still["psnr"].min()), 2)}


def held_out_baselines(clip: str, iterations: int = 3000) -> list[dict]:
    """The training-free baselines on the windows a ``--val-clip clip`` run is scored on (the same
    VAL_WINDOWS of the clip held out), by the kit's one metrics function: so that the
    leave-one-clip-out table can be read against the strongest baseline, not copy-last alone."""
    from stipkit.data.build import default_dataset, spread
    from stipkit.scoring.baselines import BASELINES
    from stipkit.scoring.metrics import sequence_metrics

    cfg = config_of("gated", iterations)
    val = spread(default_dataset(cfg, "val", held_out=(clip,)), VAL_WINDOWS)
    frames = torch.stack([val[i] for i in range(len(val))])
    il = cfg.input_length
    rows = []
    for name, baseline in BASELINES.items():
        df = sequence_metrics(baseline(frames, il), frames[:, il:], il, progress=False)
        per_t = df.groupby("t")[["psnr", "lpips_x100"]].mean()
        rows.append({"val": held_out_label(clip), "method": name, "windows": len(val),
                     "psnr_t5": round(float(per_t["psnr"].iloc[0]), 2),
                     "psnr_mean": round(float(per_t["psnr"].mean()), 2),
                     "lpips_x100_t5": round(float(per_t["lpips_x100"].iloc[0]), 2)})
    return rows


def append_rows(path: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``rows`` to the table in ``path`` (created if missing) and return the whole table;
    locked, as runs of other clips may append to it at the same time."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read()
        table = pd.concat([pd.read_csv(io.StringIO(text)), rows], ignore_index=True) \
            if text.strip() else rows
        fh.truncate(0)
        table.to_csv(fh, index=False)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000, help="per run (default: 2000)")
    ap.add_argument("--evals", type=int, default=10, help="evaluations per run (default: 10)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time, 1 thread each (default: 2)")
    ap.add_argument("--only", nargs="+", choices=list(LADDER), help="these rows only")
    ap.add_argument("--csv", help="write the table here")
    ap.add_argument("--append", action="store_true", help="add the rows to --csv's table rather than "
                    "replace it")
    ap.add_argument("--out", help="keep each run's checkpoint in OUT/<row> (OUT/<row>-without-<clip> "
                    "with --val-clip) and resume from it")
    from stipkit.data.video import TRAIN_CLIPS
    ap.add_argument("--val-clip", choices=TRAIN_CLIPS, help="validate on this train clip held out of training whole "
                    "(leave-one-clip-out: a scene never trained on) instead of the late windows of "
                    "the training clips")
    ap.add_argument("--extra-clip", nargs="+", default=[], metavar="NAME=PATH",
                    help="train on these clips too (a data lever: e.g. the candidates of "
                    "`python -m stipkit.assets.clips.remake --candidates --out DIR`); the row "
                    "becomes <row>+<NAME>...")
    ap.add_argument("--seed", type=int, default=0, help="train with this seed (default 0, the "
                    "rows' seed); another makes the row <row>@seed<N>, for the noise between runs")
    ap.add_argument("--baselines", action="store_true", help="no training: score the baselines on "
                    "each training clip held out, as the --val-clip runs are scored (to --csv)")
    args = ap.parse_args(argv)
    if args.baselines:
        table = pd.DataFrame([r for c in TRAIN_CLIPS for r in held_out_baselines(c, args.iterations)])
        if args.csv:
            table.to_csv(args.csv, index=False)
        print(table.to_markdown(index=False))
        return
    extra = {}
    for item in args.extra_clip:
        clip, sep, path = item.partition("=")
        if not (sep and clip and path) or not Path(path).is_file():
            ap.error(f"--extra-clip {item!r}: expected NAME=PATH of an existing video file")
        extra[clip] = path
    names = args.only or list(LADDER)
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.starmap(run, [(n, args.iterations, args.evals, args.out, args.val_clip,
                                   extra or None, args.seed) for n in names])
    table = pd.DataFrame(rows)
    table.attrs["command"] = "benchmarks/bench_levers.py " + " ".join(argv or [])
    if args.csv and args.append:
        table = append_rows(args.csv, table)
    elif args.csv:
        table.to_csv(args.csv, index=False)
    print(f"\n{len(rows)} runs of {args.iterations} iterations in "
          f"{(time.perf_counter() - start) / 60:.0f} min; PSNR (dB) on the embedded validation split "
          "(still_*: four copies of a validation frame in, the worst frame's PSNR against it)")
    print(table.drop(columns=["change"]).to_markdown(index=False))


if __name__ == "__main__":
    main()
