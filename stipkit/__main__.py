"""Command line: ``python -m stipkit train | evaluate | predict`` (also installed as ``stipkit``).

Every command prints ``--help``. Bad inputs (unknown preset, a config value out of range, a
missing flag, file or checkpoint) end with a one-line ``error:`` message naming the culprit and
exit code 2; a training run whose loss diverges exits with code 1.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from .cli import CLIError, build_parser
from .config import PAPER_DATASETS

def _check_data_flags(data: str, list_file, root, list_flag: str = "--list") -> None:
    if data in PAPER_DATASETS:
        for value, flag, what in ((list_file, list_flag, "FILE (the official list file)"),
                                  (root, "--root", "DIR (the folder holding the frames)")):
            if value is None:
                raise CLIError(f"--data {data} needs {flag} {what}")


def _dataset(cfg, split, args, list_file):
    from .data.build import default_dataset

    return default_dataset(cfg, split, data=cfg.dataset, list_file=list_file, root=args.root,
                           skip_bad=args.skip_bad)


def _header(cfg, n: int) -> str:
    future = cfg.eval_length - cfg.input_length
    return (f"Test split of {cfg.dataset}: {n} windows, {cfg.input_length} -> {future} frames "
            f"(t = {cfg.input_length + 1}..{cfg.eval_length}); STIP vs copy-last frame")


# --------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .config import get_preset
    from .data.build import default_crop
    from .scoring.evaluate import evaluate, evaluate_checkpoint, format_table, model_method
    from .scoring.metrics import METRIC_COLUMNS
    from .training.train import RunMismatch, train

    cfg = get_preset(args.preset)
    overrides = {"batch_size": args.batch_size, "loss": args.loss, "seed": args.seed,
                 "iterations": args.iterations, "patience": args.patience}
    cfg = replace(cfg, dataset=args.data or cfg.dataset,
                  train=replace(cfg.train, **{k: v for k, v in overrides.items() if v is not None}))
    _check_data_flags(cfg.dataset, args.list, args.root)
    paper = cfg.dataset in PAPER_DATASETS
    if cfg.train.patience and not args.eval_every:
        raise CLIError(f"--patience {cfg.train.patience} needs --eval-every N (the validation "
                       "scores it stops on)")
    if args.eval_every and paper and not args.val_list:
        raise CLIError(f"--eval-every on {cfg.dataset} needs --val-list FILE (validation windows "
                       "held out of --list); the test split is only scored at the end")
    out = Path(args.out or Path("runs") / args.preset)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    progress = not args.no_progress

    train_set = _dataset(cfg, "train", args, args.list)
    test_set = None
    if not paper or args.test_list:
        test_set = _dataset(cfg, "test", args, args.test_list)  # every rank scores its shard
    crop = default_crop(cfg)
    eval_fn = None
    if args.eval_every:
        from .data.build import spread
        from .experiments.study import VAL_WINDOWS
        val_set = spread(_dataset(cfg, "val", args, args.val_list), VAL_WINDOWS)

        def eval_fn(predictor):  # the validation split: never the test split
            df = evaluate(predictor, val_set, cfg.input_length, cfg.eval_length,
                          batch_size=cfg.train.batch_size, progress=False, crop=crop,
                          baselines=())
            cols = [c for c in METRIC_COLUMNS if c in df.columns]
            means = df[df["method"] == model_method(df)][cols].mean().to_dict()
            return {**means, "psnr_mean": means["psnr"]}  # TrainConfig.select's default

    try:
        history = train(cfg, train_set, out, resume=not args.no_resume, eval_fn=eval_fn,
                        eval_every=args.eval_every, ckpt_every=args.ckpt_every, device=args.device,
                        progress=progress, amp=args.amp, compile=args.compile,
                        workers=args.workers, dist_timeout_s=args.dist_timeout)
    except RunMismatch as e:
        raise CLIError(f"{_one_line(e)} (here: --no-resume, or another --out)") from e
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if not rank0:
        return 0
    ckpt = out / "checkpoint.pt"
    print(f"checkpoint: {ckpt}\nhistory:    {out / 'history.csv'}")
    if len(history) and "total" in history:
        print(f"{len(history)} iterations; last loss {history['total'].iloc[-1]:.4g}")
    if test_set is None:
        print(f"no --test-list given: skipped the final evaluation on the {cfg.dataset} test split")
        return 0
    df = evaluate_checkpoint(ckpt, test_set, batch_size=cfg.train.batch_size, device=args.device,
                             progress=progress, compile=args.compile)
    print(_header(cfg, len(test_set)))
    print(format_table(df))
    return 0


def _load(args):
    from .training.checkpoint import load_predictor

    if getattr(args, "pretrained", None):
        from .training.zoo import pretrained
        predictor, cfg = pretrained(args.pretrained)  # CheckpointError names the valid ones
    else:
        predictor, cfg = load_predictor(args.checkpoint)  # CheckpointError: one line, exit code 2
    cfg = replace(cfg, dataset=args.data or cfg.dataset)
    _check_data_flags(cfg.dataset, args.list, args.root)
    return predictor, cfg


def cmd_evaluate(args) -> int:
    from .data.build import default_crop
    from .runtime.device import pick_device
    from .scoring.evaluate import evaluate, format_table

    predictor, cfg = _load(args)
    test_set = _dataset(cfg, "test", args, args.list)
    df = evaluate(predictor, test_set, cfg.input_length, cfg.eval_length,
                  batch_size=args.batch_size, device=pick_device(args.device),
                  progress=not args.no_progress, crop=default_crop(cfg), compile=args.compile)
    print(f"checkpoint: {args.checkpoint}")
    print(_header(cfg, len(test_set)))
    print(format_table(df))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def cmd_predict(args) -> int:
    if args.video:
        return _predict_video(args)
    for flag in ("start", "future", "fps"):
        if getattr(args, flag) not in (None, 0):
            raise CLIError(f"--{flag} needs --video (without it, predict draws strips of test windows)")
    import numpy as np
    from torch.utils.data import Subset

    from .scoring.evaluate import rollout_dataset, save_strip
    from .runtime.device import pick_device

    predictor, cfg = _load(args)
    test_set = _dataset(cfg, "test", args, args.list)
    n = min(args.num, len(test_set))
    picks = sorted(set(np.linspace(0, len(test_set) - 1, n).round().astype(int).tolist()))
    where = Path(args.checkpoint).parent if args.checkpoint else Path("predictions") / args.pretrained
    out = Path(args.out) if args.out else where / "predictions" if args.checkpoint else where
    batches = rollout_dataset(predictor, Subset(test_set, picks), cfg.input_length,
                              cfg.eval_length, batch_size=min(8, len(picks)),
                              device=pick_device(args.device), progress=not args.no_progress)
    done = 0
    for frames, preds in batches:
        for b in range(len(frames)):
            path = save_strip(out / f"sample_{picks[done]:04d}.png", frames, preds,
                              cfg.input_length, sample=b, scale=args.scale or 1)
            print(path)
            done += 1
    if n < args.num:
        print(f"(the test split has only {n} windows)")
    return 0


def _predict_video(args) -> int:
    from .plots.video import FORMATS, write_video
    from .runtime.device import pick_device
    from .scoring.evaluate import format_table
    from .scoring.own_video import predict_video

    if args.data or args.list or args.root:
        raise CLIError("--video predicts your clip: --data, --list and --root do not apply")
    out = Path(args.out) if args.out else Path("predictions") / f"{Path(args.video).stem}-pred.mp4"
    if out.suffix.lower() not in FORMATS:  # before any decoding
        raise CLIError(f"--out {out}: the video must end in {' or '.join(FORMATS)}")
    predictor, cfg = _load(args)
    pred = predict_video(predictor, cfg, args.video, start=args.start, future=args.future,
                         device=pick_device(args.device))
    write_video(pred, out, scale=args.scale or 4, fps=args.fps)
    L = pred.input_length
    print(f"{args.video}: frames {pred.start}..{pred.start + L - 1} given, {pred.future} predicted "
          f"(t = {L + 1}..{L + pred.future}) at {cfg.model.height}x{cfg.model.width}; "
          f"{len(pred.truth)} of them have ground truth in the clip")
    scores = pred.scores()
    if len(scores):
        print(format_table(scores))
    else:
        print("(no ground truth after the window: nothing to score)")
    print(f"wrote {out}")
    return 0


def cmd_ablate(args) -> int:
    from .config.budget import current_budget
    from .experiments import ablation

    budget = current_budget(args.budget)  # resolved once, here: everything below takes the Budget
    for table in args.table:
        a = ablation.ablation(table)
        if args.variants:
            bad = [v for v in args.variants if v not in a.variants]
            if len(bad) == len(args.variants):
                raise CLIError(f"--variants {' '.join(bad)}: none is in Table {table} "
                               f"(valid: {' '.join(a.variants)})")
        variants = [v for v in a.variants if not args.variants or v in args.variants]
        res = ablation.run_table(table, args.data, args.seeds or budget.ablation_seeds,
                                 budget=budget, variants=variants, starts=args.starts,
                                 progress=not args.no_progress, command=ablation.command_line(),
                                 reuse=not args.rerun)
        for start in dict.fromkeys(res["start"]) if len(res) else []:
            print(f"Table {table}: {a.title} (start: {start})")
            print(ablation.summary(res, table, start).to_string(
                index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {ablation.results_path(budget)}")
    return 0


def cmd_export(args) -> int:
    from .scoring.evaluate import evaluate_checkpoint, format_table
    from .training.zoo import export

    scores = evaluate_checkpoint(args.checkpoint, progress=not args.no_progress)
    record = export(args.checkpoint, args.name, command=args.command, folder=args.folder,
                    scores=scores)
    folder = Path(args.folder) if args.folder else Path(__file__).resolve().parent / "weights"
    print(f"wrote {folder / record['file']} ({record['bytes']:,} bytes, sha256 "
          f"{record['sha256'][:12]}...) and {folder / (args.name + '.json')}")
    print(format_table(scores))
    return 0


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 training diverged, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and argparse errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 2

    from .training.checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .scoring.lpips_weights import LPIPSWeightsMissing
    from .training.train import TrainingDiverged

    prog = f"{parser.prog} {args.command}"
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "export": cmd_export, "ablate": cmd_ablate}
    try:
        return commands[args.func](args) or 0
    except TrainingDiverged as e:
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except (CLIError, ConfigError, DataError, CheckpointError, LPIPSWeightsMissing, ValueError,
            OSError) as e:
        if os.environ.get("STIPKIT_TRACEBACK"):
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, OSError) and not isinstance(e, CLIError) and getattr(e, "filename", None):
        text = f"{e.strerror or text}: {e.filename}"
    return text or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
