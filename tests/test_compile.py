"""torch.compile of STIP's time steps (stipkit.models.compile_steps): the numbers of eager mode.

Each compile takes 10-30 s here (ci preset), so the tests share as few compiles as they can.
"""
import copy
import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch

from stipkit.config import get_preset
from stipkit.data import MovingDigits
from stipkit.scoring.evaluate import evaluate
from stipkit.models import STIP, build_model, compile_steps, is_compiled
from stipkit.training.train import train

CFG = get_preset("ci")
CFG = replace(CFG, train=replace(CFG.train, loss="mse+gan+lp"))  # every term of Alg. 1


@pytest.fixture(autouse=True)
def no_quiet_eager_fallback():
    """Past dynamo's recompile limit torch runs eager without a word; here that is a failure."""
    import torch._dynamo.config as dynamo_config
    with dynamo_config.patch(fail_on_recompile_limit_hit=True):
        yield


def _frames(seed=0, b=2, t=4):
    g = torch.Generator().manual_seed(seed)
    m = CFG.model
    return torch.rand(b, t, m.img_channels, m.height, m.width, generator=g)


def _model(seed=0) -> STIP:
    torch.manual_seed(seed)
    return build_model(CFG)[0]


def _nudge(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)


def test_inference_snapshot_equals_eager_and_keeps_its_weights(one_thread):
    model, x = _model(), _frames()
    with torch.inference_mode():
        ref = model(x).predictions
        snap = compile_steps(model, inference=True)
        out = snap(x).predictions
    assert is_compiled(snap) and not is_compiled(model) and snap is not model
    assert torch.allclose(out, ref, atol=1e-5, rtol=0), (out - ref).abs().max()
    _nudge(model)  # the snapshot is a copy: later training does not reach it
    with torch.inference_mode():
        assert not torch.allclose(model(x).predictions, ref, atol=1e-3)
        assert torch.allclose(snap(x).predictions, out, atol=1e-6, rtol=0)


def test_training_compile_in_place_equals_eager_gradients(one_thread):
    eager = _model(seed=1)
    compiled = compile_steps(copy.deepcopy(eager))
    assert is_compiled(compiled)
    x = _frames(seed=1)
    mask = torch.tensor([[1.0], [0.0]])  # scheduled sampling: one true frame, one own prediction
    for net in (eager, compiled):
        net.zero_grad()
        pred = net(x, mask).predictions
        torch.nn.functional.mse_loss(pred, x[:, 1:]).backward()
    a = dict(eager.named_parameters())
    for name, p in compiled.named_parameters():
        assert p.grad is not None, f"{name} got no gradient in the compiled model"
        scale = a[name].grad.abs().max().clamp_min(1e-6)
        err = (p.grad - a[name].grad).abs().max() / scale
        assert err < 1e-4, f"{name}: relative gradient difference {err:.2e}"
    # A snapshot of a model compiled in place must run its own copy, not the original's steps.
    with torch.inference_mode():
        before = compiled(x).predictions
        snap = compile_steps(compiled, inference=True)
        _nudge(compiled)
        assert torch.allclose(snap(x).predictions, before, atol=1e-5, rtol=0)


def test_evaluate_compiled_equals_eager(one_thread):
    model = _model(seed=2)
    data = MovingDigits(3, CFG.eval_length, (CFG.model.height, CFG.model.width), seed=0)
    kw = dict(input_length=CFG.input_length, total_length=CFG.eval_length, batch_size=2,
              progress=False)
    eager = evaluate(model, data, **kw)
    compiled = evaluate(model, data, compile=True, **kw)
    cols = ["mse", "psnr", "ssim", "lpips_x100"]
    assert (compiled[cols] - eager[cols]).abs().max().max() < 1e-3
    assert not is_compiled(model)  # evaluate compiled a snapshot; the model itself is untouched


def test_train_with_compile_follows_eager(tmp_path, one_thread):
    data = MovingDigits(16, CFG.train_length, (CFG.model.height, CFG.model.width), seed=0)
    kw = dict(iterations=3, progress=False)
    eager = train(CFG, data, tmp_path / "eager", **kw)
    compiled = train(CFG, data, tmp_path / "compiled", compile=True, **kw)
    for col in ("mse", "d", "gan_p", "lp", "total"):
        a, b = eager[col].to_numpy(), compiled[col].to_numpy()
        assert abs(a - b).max() <= 1e-3 * abs(a).max(), (col, a, b)


def test_torchrun_with_compile_follows_eager(tmp_path):
    """Two processes (DDP, gloo), compiled steps: the same losses as the eager two-process run."""
    hist = {}
    for flag in ("", "--compile"):
        out = tmp_path / (flag or "eager")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "stipkit", "train", "--preset", "ci", "--iterations", "3", "--data", "digits",
               "--batch-size", "1", "--out", str(out), "--no-progress", "--device", "cpu",
               "--loss", "mse+gan+lp"]
        res = subprocess.run(cmd + ([flag] if flag else []), capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        hist[flag] = pd.read_csv(out / "history.csv")
    for col in ("mse", "d", "total"):
        diff = (hist[""][col] - hist["--compile"][col]).abs().max()
        assert diff <= 1e-4 * hist[""][col].abs().max(), (col, diff)


def test_only_stip_models():
    with pytest.raises(TypeError, match="Linear"):
        compile_steps(torch.nn.Linear(2, 2))
