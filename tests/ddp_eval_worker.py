"""Run by tests/test_gpu_path.py under `torchrun --nproc_per_node=2` (gloo on CPU): training with
an evaluation after every iteration on a test split that is slow to read, under a short
collective timeout."""
import sys
import time
from dataclasses import replace

import torch

from stipkit.config import get_preset
from stipkit.data import MovingDigits
from stipkit.scoring.evaluate import evaluate

DELAY_S, TIMEOUT_S = 0.5, 6.0


class SlowDigits(MovingDigits):
    """Moving Digits whose every window takes ``delay`` seconds to read (a large test split)."""

    def __init__(self, *args, delay: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay = delay

    def __getitem__(self, i):
        time.sleep(self.delay)
        return super().__getitem__(i)


def config():
    cfg = get_preset("ci")
    return replace(cfg, train=replace(cfg.train, batch_size=2, loss="mse", ema=0.0))


def test_set(delay: float = DELAY_S):
    cfg = config()
    return SlowDigits(num_sequences=24, total_length=cfg.eval_length, resolution=(32, 32), seed=1,
                      delay=delay)


if __name__ == "__main__":
    from stipkit.training.train import train

    cfg, out = config(), sys.argv[1]
    data = MovingDigits(num_sequences=16, total_length=cfg.train_length, resolution=(32, 32), seed=0)
    tests = test_set()

    def eval_fn(predictor):
        df = evaluate(predictor, tests, cfg.input_length, cfg.eval_length, batch_size=4,
                      progress=False)
        return df[df["method"] == "STIP"][["psnr"]].mean().to_dict()

    train(cfg, data, out, iterations=2, progress=False, device="cpu", eval_fn=eval_fn,
          eval_every=1, dist_timeout_s=TIMEOUT_S)
    torch.distributed.destroy_process_group()
