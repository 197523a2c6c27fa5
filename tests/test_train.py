import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import stipkit.training.train as train_mod
from _helpers import family_config, small_config, small_dataset
from stipkit.config import get_preset
from stipkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from stipkit.training.train import RunMismatch, TrainingDiverged, sampling_eta, sampling_mask, train

HERE = Path(__file__).resolve().parent


def params(path):
    return load_checkpoint(path)["predictor"]


TIMINGS = ("data_s", "step_s")  # wall-clock seconds in the history rows


def assert_same_checkpoint(a, b):
    """Every tensor and value of two checkpoints is equal (bitwise), the optimizers' and
    schedulers' states and the RNG state included; only the history's timings may differ."""
    def untimed(ckpt):
        rows = [{k: v for k, v in r.items() if k not in TIMINGS} for r in ckpt["extra"]["history"]]
        return {**ckpt, "extra": {**ckpt["extra"], "history": rows}}

    def same(x, y, where):
        assert type(x) is type(y), (where, type(x), type(y))
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), where
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), (where, set(x) ^ set(y))
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{where}[{i}]")
        else:
            assert x == y or (x != x and y != y), (where, x, y)  # NaN equals NaN here

    same(untimed(a), untimed(b), "checkpoint")


def assert_same(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0:
            assert torch.equal(a[k], b[k]), k
        else:
            assert (a[k] - b[k]).abs().max() <= atol, (k, (a[k] - b[k]).abs().max())


@pytest.mark.parametrize("loss", ["mse", "mse+gan", "mse+gan+lp"])
def test_loss_modes_train_and_log(tmp_path, loss):
    hist = train(small_config(loss=loss), small_dataset(), tmp_path, iterations=3, progress=False)
    assert list(hist["iteration"]) == [1, 2, 3]
    assert ("d" in hist) == (loss != "mse") and ("lp" in hist) == (loss == "mse+gan+lp")
    assert (tmp_path / "history.csv").exists() and (tmp_path / "checkpoint.pt").exists()
    assert hist["lr"].iloc[-1] == pytest.approx(small_config().train.lr * 0.5)  # decayed at it 2
    assert (hist["threads"] == torch.get_num_threads()).all()  # bitwise repeats need equal threads


def test_resume_equals_uninterrupted_run_bitwise(tmp_path):
    """Bitwise on the CPU (pinned here). On a GPU, cuDNN's and TF32's kernels differ from the
    CPU's by about 1e-3 and need not repeat bitwise: a resumed GPU run is close, not equal."""
    cfg, data = small_config(), small_dataset()
    train(cfg, data, tmp_path / "full", iterations=6, progress=False, device="cpu")
    train(cfg, data, tmp_path / "cut", iterations=4, progress=False, device="cpu")
    hist = train(cfg, data, tmp_path / "cut", iterations=6, progress=False, device="cpu")
    assert list(hist["iteration"]) == list(range(1, 7))
    assert_same(params(tmp_path / "full" / "checkpoint.pt"), params(tmp_path / "cut" / "checkpoint.pt"))
    full, cut = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert full["opt_p"]["state"][0]["exp_avg"].equal(cut["opt_p"]["state"][0]["exp_avg"])
    assert_same(full["discriminator"], cut["discriminator"])
    assert_same_checkpoint(full, cut)


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path):
    cfg, data = small_config(), small_dataset()
    train(cfg, data, tmp_path / "full", iterations=12, progress=False, ckpt_every=1, device="cpu")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from _helpers import small_config, small_dataset\n"
            "from stipkit.training.train import train\n"
            "train(small_config(), small_dataset(), %r, iterations=100000, progress=False, ckpt_every=1,"
            " device='cpu')\n"
            % (str(HERE), str(tmp_path / "killed")))
    proc = subprocess.Popen([sys.executable, "-c", code])
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ckpt.exists() and load_checkpoint(ckpt)["iteration"] >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reached = load_checkpoint(ckpt)["iteration"]   # still a valid checkpoint after kill -9
    assert 3 <= reached < 12
    train(cfg, data, tmp_path / "killed", iterations=12, progress=False, ckpt_every=1, device="cpu")
    assert_same(params(tmp_path / "full" / "checkpoint.pt"), params(ckpt))
    # every tensor and value: optimizers, schedulers, RNG state (before, numpy's global state was
    # saved too: the killed process's start-up entropy, as nothing draws from it), history
    assert_same_checkpoint(load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(ckpt))


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_step = train_mod.train_step
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        logs = real_step(*a, **k)
        return {**logs, "mse": float("nan")} if calls["n"] == 4 else logs

    monkeypatch.setattr(train_mod, "train_step", flaky)
    with pytest.raises(TrainingDiverged, match=r"iteration 3: loss became non-finite .*mse"):
        train(small_config(), small_dataset(), tmp_path, iterations=10, ckpt_every=2, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 2


def test_resume_refuses_another_configuration(tmp_path):
    train(small_config(), small_dataset(), tmp_path, iterations=1, progress=False)
    other = replace(small_config(), model=replace(small_config().model, hidden=16))
    with pytest.raises(RunMismatch, match=r"another configuration .*model.hidden"):
        train(other, small_dataset(), tmp_path, iterations=2, progress=False)


def test_checkpoint_whose_weights_do_not_fit_its_config(tmp_path):
    from stipkit.training.checkpoint import load_predictor
    train(small_config(), small_dataset(), tmp_path, iterations=1, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    ckpt["predictor"]["head.weight"] = ckpt["predictor"].pop("head.t.weight")
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old.pt: its weights do not fit"):
        load_predictor(tmp_path / "old.pt")
    model, cfg = load_predictor(tmp_path / "checkpoint.pt")
    assert cfg == replace(small_config(), train=replace(small_config().train, iterations=1))


def test_truncated_and_foreign_checkpoints_give_clear_errors(tmp_path):
    train(small_config(), small_dataset(), tmp_path, iterations=1, progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"trunc.pt cannot be read safely"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"net_param": {}}, tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="official STIPHR checkpoint"):
        load_checkpoint(tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_are_read_with_weights_only(tmp_path, monkeypatch):
    seen = {}
    real_load = torch.load

    def spy(*a, **k):
        seen.update(k)
        return real_load(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    save_checkpoint(tmp_path / "ok.pt", predictor=torch.nn.Linear(2, 2))
    load_checkpoint(tmp_path / "ok.pt")
    assert seen.get("weights_only") is True
    torch.save({"format": "stipkit-checkpoint", "version": 1, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only=True refused it"):
        load_checkpoint(tmp_path / "evil.pt")


def test_scheduled_sampling_follows_the_official_schedule():
    tc = replace(get_preset("study").train, sampling_start=1.0, sampling_rate=0.25, sampling_stop_iter=3)
    assert [sampling_eta(tc, i) for i in range(5)] == [0.75, 0.5, 0.25, 0.0, 0.0]
    m = sampling_mask(tc, 0, 4000, 1)
    assert abs(m.mean().item() - 0.75) < 0.03
    assert torch.equal(m, sampling_mask(tc, 0, 4000, 1))


@pytest.mark.parametrize("family", ["stip", "strpm", "beyondmse", "trajgru", "motionrnn"])
def test_ddp_two_processes_equal_one_process_on_the_combined_batch(tmp_path, family):
    """In float64, so that the only difference -- the order of the gradient sums -- stays far
    below 1e-6 (in float32 Adam amplifies that rounding on near-zero gradients to ~5e-6).
    Every model family: DDP needs each parameter to get a gradient in every iteration."""
    k = 3
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_worker.py"), str(tmp_path / "ddp"), "2", str(k), "float64", family]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    torch.set_default_dtype(torch.float64)
    try:
        train(family_config(family, batch_size=4), small_dataset(), tmp_path / "single",
              iterations=k, progress=False, device="cpu")
        init = params_init(family)
    finally:
        torch.set_default_dtype(torch.float32)
    ddp, single = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt"), load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    assert ddp["iteration"] == single["iteration"] == k
    assert_same(ddp["predictor"], single["predictor"], atol=1e-6)
    assert_same(ddp["discriminator"], single["discriminator"], atol=1e-6)
    assert next(iter(single["predictor"].values())).dtype == torch.float64
    moved = max((single["predictor"][n] - v).abs().max().item() for n, v in init.items())
    assert moved > 1e-4  # the comparison is not vacuous: the weights did move


def params_init(family="stip"):
    torch.manual_seed(small_config().train.seed)
    from stipkit.models import build_model
    return build_model(family_config(family))[0].state_dict()


def test_lr_factor_exponential_is_the_official_step_decay():
    """Official: after iteration k (1-based) with k >= decay_start and k % decay_interval == 0,
    the rates are multiplied by lr_decay. lr_factor(done) is the product of those steps so far."""
    from stipkit.training.train import lr_factor
    for start in (0, 1, 5, 7):
        cfg = replace(small_config().train, decay_interval=3, lr_decay=0.5, decay_start=start)
        rate = 1.0
        for done in range(20):
            assert lr_factor(cfg, done) == pytest.approx(rate), (start, done)
            k = done + 1
            if k >= start and k % 3 == 0:
                rate *= 0.5


def test_lr_factor_warmup_and_cosine():
    from stipkit.training.train import lr_factor
    cfg = replace(small_config().train, lr_schedule="cosine", iterations=100, warmup=10)
    f = [lr_factor(cfg, i) for i in range(101)]
    assert f[0] == pytest.approx(0.1 * 1.0) and f[9] == pytest.approx(math.cos(math.pi * 9 / 100) / 2 + 0.5)
    assert f[50] == pytest.approx(0.5) and f[100] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # falls after the warm-up


def test_training_uses_the_schedule(tmp_path):
    cfg = small_config(loss="mse")
    cfg = replace(cfg, train=replace(cfg.train, lr_schedule="cosine", warmup=2))
    hist = train(cfg, small_dataset(), tmp_path, iterations=4, progress=False)
    from stipkit.training.train import lr_factor
    expected = [cfg.train.lr * lr_factor(replace(cfg.train, iterations=4), i) for i in range(4)]
    assert hist["lr"].tolist() == pytest.approx(expected)


def test_ema_is_scored_saved_resumed_and_loaded(tmp_path):
    """TrainConfig.ema: the moving average is what eval_fn sees and load_predictor returns,
    and a resumed run continues it bitwise."""
    from stipkit.training.checkpoint import load_predictor
    cfg = small_config(loss="mse")
    cfg = replace(cfg, train=replace(cfg.train, ema=0.5))
    seen = []
    train(cfg, small_dataset(), tmp_path / "full", iterations=4, progress=False,
          eval_fn=lambda p: seen.append({k: v.clone() for k, v in p.state_dict().items()}) or {},
          eval_every=4)
    ckpt = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert ckpt["ema_updates"] == 4
    assert_same(seen[-1], ckpt["ema"])
    assert any(not torch.equal(ckpt["ema"][k], ckpt["predictor"][k]) for k in ckpt["ema"])
    model, _ = load_predictor(tmp_path / "full" / "checkpoint.pt")
    assert_same(model.state_dict(), ckpt["ema"])
    train(cfg, small_dataset(), tmp_path / "cut", iterations=2, progress=False)
    train(cfg, small_dataset(), tmp_path / "cut", iterations=4, progress=False)
    assert_same(load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["ema"], ckpt["ema"])
    assert_same_checkpoint(load_checkpoint(tmp_path / "cut" / "checkpoint.pt"), ckpt)
