"""Run by tests/test_train.py under `torchrun --nproc_per_node=2` (gloo on CPU)."""
import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _helpers import family_config, small_dataset  # noqa: E402

from stipkit.training.train import train  # noqa: E402

if __name__ == "__main__":
    out, per_rank_batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_default_dtype(getattr(torch, sys.argv[4]))
    family = sys.argv[5] if len(sys.argv) > 5 else "stip"
    cfg = family_config(family, batch_size=per_rank_batch)
    train(cfg, small_dataset(), out, iterations=iters, progress=False, device="cpu")
    torch.distributed.destroy_process_group()
