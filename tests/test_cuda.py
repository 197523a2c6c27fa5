"""On a real GPU (marker ``cuda``; skipped where there is none, as on the kit's CPU machines):
two iterations of training and an evaluation from the command line, for STIP (``ci``) and STRPM
(``strpm-ci``), in float32 and with ``--amp``; with two or more GPUs, the same under torchrun
(NCCL). ``pytest -m cuda`` runs only these."""
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]


def _run(args, tmp_path, launcher=()):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=900,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "amp"])
@pytest.mark.parametrize("preset", ["ci", "strpm-ci"])
def test_train_and_evaluate_on_one_gpu(tmp_path, preset, amp):
    out = tmp_path / "run"
    _run([sys.executable, "-m", "stipkit", "train", "--preset", preset, "--data", "digits",
          "--iterations", "2", "--eval-every", "2", "--device", "cuda", "--out", str(out),
          "--no-progress", *(["--amp"] if amp else [])], tmp_path)
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 2 and history["total"].notna().all()
    assert history["eval_psnr"].notna().any()
    _run([sys.executable, "-m", "stipkit", "evaluate", "--checkpoint", str(out / "checkpoint.pt"),
          "--data", "digits", "--device", "cuda", "--no-progress"], tmp_path)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="torchrun with NCCL needs two GPUs")
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "amp"])
def test_torchrun_with_nccl_on_two_gpus(tmp_path, amp):
    out = tmp_path / "run"
    _run(["-m", "stipkit", "train", "--preset", "ci", "--data", "digits", "--iterations", "2",
          "--eval-every", "2", "--out", str(out), "--no-progress", *(["--amp"] if amp else [])],
         tmp_path, launcher=(sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2"))
    assert len(pd.read_csv(out / "history.csv")) == 2
