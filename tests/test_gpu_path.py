"""The paper-scale GPU path, checked on this CPU: one test per class of GPU defect.

* device selection, with ``torch.cuda`` patched (indices, LOCAL_RANK, world sizes 1 and 2, the
  order set_device -> init_process_group(nccl, device_id));
* mixed precision: ``train_step`` under ``torch.autocast("cpu", torch.bfloat16)`` for every
  memory and loss mode, and a forward + losses on fake CUDA tensors (``FakeTensorMode``: no GPU
  needed, the real CUDA autocast rules) in float16 and bfloat16 for every preset family;
* one GradScaler for both optimizers: gradients unscaled before clipping, overflowing steps
  skipped;
* evaluation under DDP (gloo): sharded across the ranks, equal to one process's scores, and a
  slow evaluation under a short collective timeout does not stall the other rank;
* the metrics on the model's device, chunked by memory (SSIM equal to scikit-image's).

The DDP runs of the other model families (STRPM, BeyondMSE, TrajGRU, MotionRNN) are in
tests/test_train.py beside STIP's. Runs on a real GPU are tests/test_cuda.py (marker ``cuda``).
"""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import stipkit.training.train as train_mod
from stipkit.scoring import metrics
from stipkit.reports.ablation_tables import table7_config
from stipkit.config import get_preset
from stipkit.runtime.device import Precision, amp_dtype, pick_device
from stipkit.training.losses import gan_d_loss, predictor_loss
from stipkit.models import build_model
from stipkit.models.beyondmse import beyondmse_config
from stipkit.models.memories import MEMORIES
from stipkit.training.train import train_step

from _helpers import tiny

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- device selection
@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda as a machine with two GPUs whose current device is cuda:1 would show it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_cuda_device_gets_an_index(two_gpus):
    assert pick_device() == torch.device("cuda", 1)             # the current device
    assert pick_device("cuda") == torch.device("cuda", 1)
    assert pick_device("cuda:0") == torch.device("cuda", 0)     # an explicit index is kept
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"cuda:2 does not exist.*2 CUDA device"):
        pick_device("cuda:2")
    with pytest.raises(ValueError, match="not a device name"):
        pick_device("gpu")


def test_torchrun_binds_each_rank_to_its_local_gpu(two_gpus):
    two_gpus.setenv("WORLD_SIZE", "2")
    for local in (0, 1):
        two_gpus.setenv("LOCAL_RANK", str(local))
        assert pick_device() == torch.device("cuda", local)
        assert pick_device("cuda") == torch.device("cuda", local)  # --device cuda, too


def test_no_cuda_means_the_cpu_and_a_clear_error_when_cuda_is_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


@pytest.mark.parametrize("world", [1, 2])
def test_set_device_comes_before_the_process_group_with_its_device_id(two_gpus, world):
    calls = []
    two_gpus.setenv("WORLD_SIZE", str(world))
    two_gpus.setenv("RANK", str(world - 1))
    two_gpus.setenv("LOCAL_RANK", str(world - 1))
    two_gpus.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    two_gpus.setattr(train_mod.dist, "is_initialized", lambda: False)
    two_gpus.setattr(train_mod.dist, "init_process_group",
                     lambda backend, **kw: calls.append(("init", backend, kw)))
    got = train_mod.init_distributed(None, timeout_s=42)
    device = torch.device("cuda", world - 1 if world > 1 else 1)
    assert got == (world, world - 1, device)
    assert calls[0] == ("set_device", device)
    if world == 1:
        assert len(calls) == 1                              # no process group for one process
    else:
        (_, backend, kw), = calls[1:]
        assert backend == "nccl" and kw["device_id"] == device and kw["timeout"].total_seconds() == 42


# --------------------------------------------------------------------------- mixed precision
def _small(cfg):
    return replace(cfg, train=replace(cfg.train, batch_size=2, ema=0.0), input_length=2,
                   train_length=4)


def _frames(cfg, batch=2):
    g = torch.Generator().manual_seed(0)
    m = cfg.model
    return torch.rand(batch, cfg.train_length, m.frame_channels, m.height, m.width, generator=g)


def _step(cfg, precision):
    torch.manual_seed(0)
    predictor, disc = build_model(cfg)
    opt_p = torch.optim.Adam(predictor.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in predictor.parameters()]
    logs = train_step(_frames(cfg), predictor, disc, opt_p, opt_d, cfg.train, cfg.input_length,
                      precision=precision)
    moved = any(not torch.equal(a, b) for a, b in zip(before, predictor.parameters()))
    return logs, moved


@pytest.mark.parametrize("loss", ["mse", "mse+gan", "mse+gan+lp"])
@pytest.mark.parametrize("memory", sorted(MEMORIES))
def test_train_step_under_bfloat16_autocast_for_every_memory_and_loss(memory, loss):
    cfg = _small(table7_config(tiny(get_preset("ci")), memory))
    cfg = replace(cfg, train=replace(cfg.train, loss=loss, grad_clip=1.0))
    precision = Precision(torch.device("cpu"), enabled=True)
    assert precision.dtype == torch.bfloat16 and precision.scaler is None
    logs, moved = _step(cfg, precision)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    assert moved and ("d" in logs) == (loss != "mse")


def _families():
    ci = tiny(get_preset("ci"))
    return {"stip": ci, "stip-official": tiny(get_preset("ci-official")),
            "strpm": tiny(get_preset("strpm-ci")), "strpm-official": tiny(get_preset("strpm-ci-official")),
            "beyondmse": beyondmse_config(get_preset("ci")),
            **{m: table7_config(ci, m) for m in ("trajgru", "motionrnn", "e3d_lstm", "reversible")}}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("family", list(_families()))
def test_fake_cuda_forward_and_losses_under_cuda_autocast(family, dtype):
    """CUDA's autocast rules, on fake CUDA tensors: the rollout, D and every loss term of the
    family's loss mode (GAN terms included) run, and the losses come out float32."""
    cfg = _small(_families()[family])
    loss = cfg.train.loss if cfg.train.loss != "mse" else "mse+gan+lp"
    predictor, disc = build_model(cfg)
    with FakeTensorMode(allow_non_fake_inputs=True):
        predictor, disc = predictor.to("cuda"), disc.to("cuda")
        frames = _frames(cfg).to("cuda")
        with mock.patch("torch.cuda.is_available", return_value=True), \
                mock.patch("torch.cuda.is_bf16_supported", return_value=True), \
                torch.autocast("cuda", dtype=dtype):
            pred = predictor(frames, input_length=cfg.input_length).predictions
            terms = predictor_loss(pred, frames[:, 1:], disc, mode=loss,
                                   reduction=cfg.train.gan_reduction)
            logit, _ = disc(torch.cat([frames[:, 1:], pred.detach()]))
            d_loss = gan_d_loss(*logit.chunk(2), cfg.train.gan_reduction)
            assert logit.dtype == dtype              # D ran in half precision ...
    assert pred.device.type == "cuda"
    assert {t.dtype for t in (*terms.values(), d_loss)} == {torch.float32}   # ... its losses not
    assert "gan_p" in terms


def test_float16_scaler_unscales_before_clipping_and_skips_overflowing_steps():
    """One GradScaler for P and D (float16, as on GPUs without bfloat16), exercised on the CPU."""
    cfg = _small(tiny(get_preset("ci")))
    cfg = replace(cfg, train=replace(cfg.train, loss="mse+gan", grad_clip=1e-3))
    precision = Precision(torch.device("cpu"), enabled=True, dtype=torch.float16)
    assert precision.scaler is not None
    scale = precision.scaler.get_scale()
    seen = {}
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm):  # the gradients the clip sees are unscaled (of the loss's size)
        params = list(params)
        seen["norm"] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
        return real_clip(params, max_norm)

    with mock.patch("torch.nn.utils.clip_grad_norm_", clip):
        logs, moved = _step(cfg, precision)
    assert moved and 0 < seen["norm"] < scale / 100
    # an overflow: inf gradients are found, the step is skipped and the scale halves
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=1.0)
    before = precision.scaler.get_scale()
    precision.backward((w * float("inf")).sum())
    precision.step(opt)
    precision.update()
    assert torch.equal(w.detach(), torch.ones(3)) and precision.scaler.get_scale() == before / 2


def test_amp_dtype_is_bfloat16_on_cpu_and_float16_on_old_gpus(monkeypatch):
    assert amp_dtype(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert amp_dtype(torch.device("cuda", 0)) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert amp_dtype(torch.device("cuda", 0)) == torch.bfloat16


def test_gan_losses_from_logits_equal_bce_on_probabilities():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(3, 5, generator=g) * 3, torch.randn(3, 5, generator=g) * 3
    bce = torch.nn.functional.binary_cross_entropy
    pr, pf = torch.sigmoid(real), torch.sigmoid(fake)
    want = bce(pr, torch.ones_like(pr)) + bce(pf, torch.zeros_like(pf))
    assert torch.allclose(gan_d_loss(real, fake, "frame"), want, atol=1e-6)
    mr, mf = pr.mean(1), pf.mean(1)      # the official code averages D's probabilities over time
    want = bce(mr, torch.ones_like(mr)) + bce(mf, torch.zeros_like(mf))
    assert torch.allclose(gan_d_loss(real, fake, "clip_mean"), want, atol=1e-6)


# --------------------------------------------------------------------------- DDP evaluation
def test_sharded_evaluation_under_gloo_equals_one_process_and_a_slow_evaluation_does_not_stall(tmp_path):
    """Two ranks (gloo, collective timeout 6 s) train 2 iterations and evaluate after each on a
    test split whose windows take 0.5 s each to read: 24 windows, 12 s for one process alone,
    twice the timeout (the old rank-0-only evaluation left the other rank waiting in the next
    all-reduce past it). Sharded, each rank reads 12 windows; the scores equal one process's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_eval_worker.py"), str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    history = pd.read_csv(tmp_path / "ddp" / "history.csv")
    assert history["eval_psnr"].notna().sum() == 2

    sys.path.insert(0, str(HERE))
    from ddp_eval_worker import config, test_set                        # noqa: E402
    from stipkit.training.checkpoint import load_predictor
    from stipkit.scoring.evaluate import evaluate
    predictor, cfg = load_predictor(tmp_path / "ddp" / "checkpoint.pt")
    df = evaluate(predictor, test_set(delay=0.0), cfg.input_length, cfg.eval_length, progress=False)
    ours = df[df["method"] == "STIP"]["psnr"].mean()
    assert abs(history["eval_psnr"].iloc[-1] - ours) < 1e-9
    assert cfg.model == config().model and cfg.train.loss == config().train.loss


# --------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("shape", [(3, 3, 64, 48), (4, 1, 32, 32), (2, 3, 7, 9)])
def test_ssim_in_torch_equals_scikit_image(shape):
    from skimage.metrics import structural_similarity
    g = torch.Generator().manual_seed(1)
    a = torch.rand(shape, generator=g)
    b = (a + 0.2 * torch.randn(shape, generator=g)).clamp(0, 1)
    got = metrics.ssim(a, b)
    for i in range(shape[0]):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        want = structural_similarity(x[0], y[0], data_range=1.0) if shape[1] == 1 else \
            structural_similarity(x, y, data_range=1.0, channel_axis=0)
        assert abs(got[i].item() - want) < 1e-12


def test_metrics_are_the_same_in_chunks_of_any_size(monkeypatch):
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(2, 5, 3, 32, 32, generator=g), torch.rand(2, 5, 3, 32, 32, generator=g)
    whole = metrics.sequence_metrics(pred, target)
    monkeypatch.setattr(metrics, "CHUNK_BYTES", 1)        # one frame a chunk
    assert metrics.frames_per_chunk((3, 32, 32)) == 1
    pd.testing.assert_frame_equal(metrics.sequence_metrics(pred, target), whole, atol=1e-6, rtol=0)


def test_chunks_shrink_with_the_resolution():
    assert metrics.frames_per_chunk((3, 64, 64)) == 64
    assert metrics.frames_per_chunk((3, 2160, 3840)) == 1       # 4K: a frame at a time
    assert 1 < metrics.frames_per_chunk((3, 512, 512)) < 64
