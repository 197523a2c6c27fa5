"""The command line's parser: every command, flag and help text of ``python -m stipkit``
(:mod:`stipkit.__main__` runs the commands)."""
from __future__ import annotations

import argparse

from .config import DATASETS, LOSS_MODES

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
  python -m stipkit predict --pretrained study --video my.mp4 --out pred.mp4
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


def _start(text: str) -> int | str:
    """An argparse type: a frame index (an integer >= 0) or 'end'."""
    if text == "end":
        return text
    try:
        return _non_negative(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a frame index (an integer >= 0) or 'end', "
                                         f"got {text!r}") from None


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
                        "six real clips shipped with the kit, 'digits' = seeded Moving Digits; the "
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
                   help="score the validation split every N iterations (embedded, digits: their "
                        "val split; paper data: --val-list), logged as eval_* columns of "
                        "history.csv (default: 0, never); the test split is scored once, at the end")
    g.add_argument("--patience", type=_non_negative, metavar="N",
                   help="stop after N validation scores in a row without a better mean PSNR and "
                        "keep the best weights (TrainConfig.patience; needs --eval-every)")
    g.add_argument("--val-list", metavar="FILE",
                   help="paper data: a list file of validation windows (held out of --list)")
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
    t.set_defaults(func="train")

    e = sub.add_parser(
        "evaluate", help="per-step MSE/PSNR/SSIM/LPIPS of a checkpoint vs the training-free baselines",
        description="Roll a checkpoint out on the test split (the model sees the first "
                    "input_length frames only) and print per-time-step MSE, PSNR, SSIM and "
                    "LPIPS x100 for the model and the training-free baselines (copy-last, mean frame, "
                    "flow-warp).")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint.pt written by train")
    _data_args(e)
    e.add_argument("--batch-size", type=_positive, default=8, metavar="B", help="test batch size (default: 8)")
    e.add_argument("--csv", metavar="OUT", help="also write the tidy table (method, t, metrics) to this CSV file")
    e.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    _common_args(e)
    e.set_defaults(func="evaluate")

    p = sub.add_parser(
        "predict", help="draw predictions: PNG strips of test windows, or a video of your own clip",
        description="Without --video: write PNG strips of test windows (row 1 the inputs then the "
                    "ground-truth future, row 2 the predictions under their ground truth). With "
                    "--video: decode your clip (PyAV), resize it to the model's frames, give the "
                    "model the input_length frames from --start, predict --future frames, and "
                    "write a side-by-side video: the clip (ground truth where it goes on) | the "
                    "prediction | copy-last; the scores against the ground truth are printed.",
        epilog="examples:\n"
               "  python -m stipkit predict --pretrained study --video my.mp4 --out pred.mp4\n"
               "  python -m stipkit predict --checkpoint runs/study/checkpoint.pt --video my.mp4 "
               "--start end --future 10 --out future.gif\n"
               "  python -m stipkit predict --checkpoint runs/study/checkpoint.pt --num 4",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    w = p.add_mutually_exclusive_group(required=True)
    w.add_argument("--checkpoint", metavar="PATH", help="a checkpoint.pt written by train")
    w.add_argument("--pretrained", metavar="NAME",
                   help="weights shipped with the kit (stipkit/weights/NAME.pt, e.g. study)")
    _data_args(p)
    p.add_argument("--num", type=_positive, default=4, metavar="N",
                   help="number of strips, from windows spread over the test split (default: 4)")
    p.add_argument("--out", metavar="PATH",
                   help="strips: output folder (default: predictions/ beside the checkpoint); "
                        "--video: the video to write, .mp4 or .gif (default: "
                        "predictions/<clip>-pred.mp4)")
    p.add_argument("--scale", type=_positive, metavar="K",
                   help="enlarge the frames K times (default: 1 for strips, 4 for --video)")
    v = p.add_argument_group("your own video")
    v.add_argument("--video", metavar="FILE", help="a video file to predict (any format FFmpeg reads)")
    v.add_argument("--start", type=_start, default=0, metavar="N|end",
                   help="index of the first frame given to the model (default: 0); 'end' gives the "
                        "clip's last frames and predicts the unseen future")
    v.add_argument("--future", type=_positive, metavar="N",
                   help="frames to predict (default: the checkpoint's test horizon)")
    v.add_argument("--fps", type=float, metavar="F",
                   help="frame rate of the written video (default: the clip's, at most 10)")
    _common_args(p)
    p.set_defaults(func="predict")

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
    x.set_defaults(func="export")

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
    a.add_argument("--seeds", nargs="+", type=_non_negative, metavar="SEED",
                   help="default: the budget's ablation_seeds (benchmark: 0-4; study: 0-2)")
    a.add_argument("--variants", nargs="+", metavar="KEY", help="only these variants (default: all)")
    a.add_argument("--budget", default="study", choices=["ci", "study", "benchmark", "paper"],
                   help="benchmark: the kit-scale benchmark protocol (64x64, runs stopped on the "
                        "validation split, both starts, a learning rate per method, 5 seeds)")
    a.add_argument("--starts", nargs="+", choices=["copy_last", "default"],
                   help="ModelConfig.init of the runs (default: the budget's ablation_starts)")
    a.add_argument("--rerun", action="store_true", help="retrain runs already in the cache")
    a.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a.add_argument("--threads", type=_positive, metavar="N", help="torch CPU threads")
    a.set_defaults(func="ablate")
    return parser


# --------------------------------------------------------------------------- helpers
