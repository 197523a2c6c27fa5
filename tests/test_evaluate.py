"""stipkit.scoring.evaluate: the 4 -> k rollout, per-step scores vs copy-last, tables, strips."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from stipkit.training.checkpoint import save_checkpoint
from stipkit.config import get_preset
from stipkit.config.budget import BUDGETS
from stipkit.data import EmbeddedVideo, MovingDigits, build
from stipkit.scoring.baselines import BASELINES
from stipkit.scoring.evaluate import (check_targets, evaluate, evaluate_checkpoint, evaluation_table,
                                      model_method, per_clip, rollout_dataset, save_strip,
                                      still_drift, still_rollout, strongest_baseline)
from stipkit.scoring.metrics import copy_last_baseline, sequence_metrics, summarize
from stipkit.models import build_model

COLUMNS = ["method", "t", "mse", "psnr", "ssim", "lpips_x100"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    return get_preset("ci")  # 32x32, input_length 2, eval_length 4


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return build_model(cfg)[0]


@pytest.fixture(scope="module")
def digits():
    # 6 frames per window: longer than the rollouts below, which must slice what they need
    return MovingDigits(num_sequences=5, total_length=6, resolution=(32, 32), seed=3, split="test")


def stacked(dataset, total_length):
    return torch.stack([dataset[i] for i in range(len(dataset))])[:, :total_length]


class FutureCorrupted(Dataset):
    """The same windows with every frame after ``input_length`` replaced by noise."""

    def __init__(self, base, input_length):
        self.base, self.input_length = base, input_length

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x = self.base[i].clone()
        g = torch.Generator().manual_seed(i)
        x[self.input_length:] = torch.rand(x[self.input_length:].shape, generator=g)
        return x


def test_columns_time_steps_and_methods(model, digits):
    df = evaluate(model, digits, 2, 4, batch_size=2, progress=False)
    assert list(df.columns) == COLUMNS
    assert list(df["method"]) == [m for m in ("STIP", "copy-last", "mean-frame", "flow-warp")
                                  for _ in (3, 4)]
    assert list(df["t"]) == [3, 4] * 4  # the paper's 1-based frame numbers of the predictions
    assert np.isfinite(df[["mse", "ssim", "lpips_x100"]].to_numpy()).all()


def test_scores_equal_the_metrics_of_the_rollout_and_of_copy_last(model, digits):
    """Batching (3 batches of 2, 2, 1) changes nothing: the means are over the whole split."""
    il, total = 2, 5
    df = evaluate(model, digits, il, total, batch_size=2, progress=False)
    frames = stacked(digits, total)
    with torch.inference_mode():
        preds = model(frames[:, :il], input_length=il, total_length=total).predictions[:, il - 1:]
    for method, pred in (("STIP", preds), *((b, fn(frames, il)) for b, fn in BASELINES.items())):
        direct = summarize(sequence_metrics(pred, frames, il)).reset_index()
        got = df[df["method"] == method].drop(columns="method").reset_index(drop=True)
        assert list(got["t"]) == [3, 4, 5]
        pd.testing.assert_frame_equal(got, direct[got.columns], check_exact=False, rtol=1e-6)


def test_per_sample_rows(model, digits):
    rows = evaluate(model, digits, 2, 4, batch_size=2, progress=False, per_sample=True)
    assert len(rows) == 4 * len(digits) * 2  # methods (STIP, 3 baselines) x samples x steps
    assert sorted(rows["sample"].unique()) == list(range(len(digits)))


def test_rollout_does_not_see_the_future(model, digits):
    il, total = 2, 5
    clean = list(rollout_dataset(model, digits, il, total, batch_size=5, progress=False))
    dirty = list(rollout_dataset(model, FutureCorrupted(digits, il), il, total, batch_size=5,
                                 progress=False))
    (f1, p1), (f2, p2) = clean[0], dirty[0]
    assert f1.shape == (5, total, 3, 32, 32) and p1.shape == (5, total - il, 3, 32, 32)
    assert not torch.equal(f1[:, il:], f2[:, il:])  # the ground truth did change ...
    assert torch.equal(p1, p2)                     # ... the predictions did not
    # and the copy-last baseline only reads frame input_length too
    assert torch.equal(copy_last_baseline(f1, il), copy_last_baseline(f2, il))


def test_rollout_restores_mode_and_checks_lengths(model, digits):
    model.train()
    next(rollout_dataset(model, digits, 2, 4, progress=False))
    assert model.training
    with pytest.raises(ValueError, match="fewer than total_length=8"):
        next(rollout_dataset(model, digits, 2, 8, progress=False))
    with pytest.raises(ValueError, match="input_length"):
        next(rollout_dataset(model, digits, 4, 4, progress=False))
    model.eval()


def test_crop(cfg, model, digits):
    full = evaluate(model, digits, 2, 4, progress=False)
    same = evaluate(model, digits, 2, 4, progress=False, crop=(32, 32))
    pd.testing.assert_frame_equal(full, same)
    # a 40x48 model scored on the central 32x40 (LPIPS' AlexNet needs >= 31 pixels a side)
    torch.manual_seed(0)
    wide = build_model(replace(cfg, model=replace(cfg.model, height=40, width=48)))[0]
    data = MovingDigits(num_sequences=3, total_length=4, resolution=(40, 48), seed=3, split="test")
    frames = stacked(data, 4)
    base = copy_last_baseline(frames, 2)[..., 4:36, 4:44]
    direct = summarize(sequence_metrics(base, frames[:, 2:, :, 4:36, 4:44], 2))
    cropped = evaluate(wide, data, 2, 4, progress=False, crop=(32, 40))
    got = cropped[cropped["method"] == "copy-last"].set_index("t").drop(columns="method")
    pd.testing.assert_frame_equal(got, direct, check_exact=False, rtol=1e-6)


def test_evaluation_table(model, digits):
    table = evaluation_table(evaluate(model, digits, 2, 5, progress=False))
    assert list(table.index) == [3, 4, 5, "mean"]
    assert list(table.columns.names) == ["metric", "method"]
    assert list(table.columns)[:4] == [("mse", m) for m in ("STIP", *BASELINES)]
    assert table.shape == (4, 16)
    assert table.loc["mean", ("psnr", "STIP")] == pytest.approx(table.loc[[3, 4, 5], ("psnr", "STIP")].mean())


def test_evaluate_checkpoint_equals_evaluate(tmp_path, cfg, model, digits):
    path = save_checkpoint(tmp_path / "checkpoint.pt", predictor=model, config=replace(cfg, dataset="digits"))
    got = evaluate_checkpoint(path, digits, batch_size=4, device="cpu", progress=False)
    want = evaluate(model, digits, cfg.input_length, cfg.eval_length, progress=False)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)


def test_embedded_test_split(model):
    df = evaluate(model, EmbeddedVideo("test", resolution=(32, 32), total_length=4), 2, 4,
                  progress=False)
    assert set(df["method"]) == {"STIP", *BASELINES} and sorted(set(df["t"])) == [3, 4]


def test_save_strip(tmp_path, model, digits):
    frames, preds = next(rollout_dataset(model, digits, 2, 5, batch_size=2, progress=False))
    path = save_strip(tmp_path / "a" / "strip.png", frames, preds, 2, sample=1)
    with Image.open(path) as im:
        assert im.size == (5 * 32 + 4 * 2, 2 * 32 + 2) and im.mode == "RGB"
        px = np.asarray(im)
    assert (px[34:, :66] == 255).all()  # blank under the inputs
    np.testing.assert_array_equal(px[:32, :32], (frames[1, 0].permute(1, 2, 0).numpy() * 255).round())
    # the full model output (T - 1 frames) is accepted, the image is enlarged by scale
    with torch.inference_mode():
        full = model(frames[:, :2], input_length=2, total_length=5).predictions
    big = save_strip(tmp_path / "big.png", frames, full, 2, sample=1, scale=2)
    with Image.open(big) as im:
        assert im.size == (2 * (5 * 32 + 4 * 2), 2 * (2 * 32 + 2))
    with pytest.raises(ValueError, match="predictions have 2 frames"):
        save_strip(tmp_path / "bad.png", frames, preds[:, :2], 2)


# --------------------------------------------------------------------------- against copy-last
def _scores(rows):
    return pd.DataFrame([{"method": m, "t": t, "psnr": p, "lpips_x100": l} for m, t, p, l in rows])


def test_check_targets_embedded_and_digits():
    df = _scores([("STIP", 5, 35.5, 2.0), ("copy-last", 5, 36.2, 1.3),
                  ("STIP", 6, 31.0, 3.0), ("copy-last", 6, 30.8, 2.9)])
    t = check_targets(df, "embedded").set_index("target")
    first = t.loc["psnr at t=5 >= copy-last - 1 dB"]
    assert first["holds"] and first["margin"] == pytest.approx(0.3)
    mean = t.loc["mean psnr over t=5..6 above copy-last's (dB)"]
    assert not mean["holds"] and mean["margin"] == pytest.approx(-0.25)
    d = check_targets(df, "digits")
    assert len(d) == 4 and d["holds"].tolist() == [False, True, False, False]
    assert d.loc[1, "margin"] == pytest.approx(0.2) and d.loc[2, "margin"] == pytest.approx(-0.7)
    with pytest.raises(ValueError, match="method 'mine'"):
        check_targets(df, "digits", method="mine")


def test_still_rollout_and_per_clip():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, patch=1, hidden=12, init="copy_last"))
    from stipkit.models import build_model
    torch.manual_seed(0)
    predictor, _ = build_model(cfg)  # starts as copy-last: a still scene stays exactly still
    frames = torch.rand(3, 3, 32, 32)
    still = still_rollout(predictor, frames, 2, 5)
    assert still["t"].tolist() == [3, 4, 5] and (still["psnr"] > 100).all()
    with torch.no_grad():
        for p in predictor.memory.parameters():
            p.add_(0.5)
        predictor.head["t"].weight.fill_(0.01)  # now the memory path adds something
    drift = still_rollout(predictor, frames, 2, 5)
    assert (drift["psnr"] < 100).all()

    test_set = build.test_split(cfg, BUDGETS["ci"])
    table = per_clip(predictor, cfg, test_set)
    assert table.index.names == ["clip", "t"] and set(table.index.get_level_values("t")) == {3, 4}
    assert table["windows"].groupby("clip").first().sum() == len(test_set)
    assert (table["margin"] == table["ours"] - table["copy_last"]).all()
    assert list(table.columns) == ["windows", "ours", "copy_last", "margin", "mean_frame",
                                   "flow_warp"]


class _Blur(torch.nn.Module):
    """A stand-in predictor that pulls each prediction ``pull`` of the way to its mean brightness."""

    def __init__(self, pull=0.1):
        super().__init__()
        self.pull, self.w = pull, torch.nn.Parameter(torch.zeros(()))

    def forward(self, frames, input_length, total_length, future_only=True):
        x, out = frames[:, input_length - 1], []
        for _ in range(total_length - input_length):
            x = x + self.pull * (x.mean(dim=(1, 2, 3), keepdim=True) - x) + self.w
            out.append(x)
        return SimpleNamespace(predictions=torch.stack(out, 1))


def test_still_drift_names_a_blur_added_again_at_every_step():
    torch.manual_seed(0)
    frames = torch.rand(3, 3, 16, 16)
    drift = still_drift(_Blur(), frames, 4, 10)
    assert drift["t"].tolist() == list(range(5, 11))
    assert drift["same_as_first"].min() > 0.999 and drift["toward_mean"].max() < -0.999
    assert drift["step_rms"].is_monotonic_decreasing and drift["psnr"].is_monotonic_decreasing
    # the same change each step: the error grows about linearly, PSNR falls ~20 log10(k)
    assert drift["psnr"][0] - drift["psnr"][1] == pytest.approx(20 * np.log10(1.9), abs=0.05)
    pd.testing.assert_series_equal(drift["psnr"], still_rollout(_Blur(), frames, 4, 10)["psnr"])
    exact = still_drift(_Blur(pull=0.0), frames, 4, 10)  # copy-last adds nothing
    assert (exact["step_rms"] == 0).all() and exact[["same_as_first", "toward_mean"]].isna().all().all()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) still frames, got shape \(3, 16, 16\)"):
        still_drift(_Blur(), frames[0], 4, 10)


def test_a_noisy_still_scene_is_scored_against_the_clean_one():
    """``noise``: each given copy gets its own noise (seeded); copy-last then repeats the last noisy
    copy, so its PSNR against the clean scene is the noise's, about 20 log10(1 / sigma)."""
    torch.manual_seed(0)
    frames = 0.25 + 0.5 * torch.rand(3, 3, 16, 16)  # away from 0 and 1: the clamp does not bite
    copy = _Blur(pull=0.0)
    noisy = still_rollout(copy, frames, 4, 7, noise=0.01)
    assert noisy["psnr"].tolist() == pytest.approx([40.0] * 3, abs=0.3)
    pd.testing.assert_frame_equal(noisy, still_rollout(copy, frames, 4, 7, noise=0.01))  # seeded
    assert (still_rollout(copy, frames, 4, 7)["psnr"] == float("inf")).all()
    drift = still_drift(copy, frames, 4, 7, noise=0.01)  # the noise itself is the first change
    assert drift["step_rms"][0] == pytest.approx(0.01, rel=0.05) and (drift["step_rms"][1:] == 0).all()


# --------------------------------------------------------------------------- the baselines
def test_evaluate_chooses_baselines_in_their_order(model, digits):
    df = evaluate(model, digits, 2, 4, progress=False, baselines=("flow-warp", "copy-last"))
    assert list(dict.fromkeys(df["method"])) == ["STIP", "copy-last", "flow-warp"]
    only = evaluate(model, digits, 2, 4, progress=False, baselines="mean-frame")
    assert list(dict.fromkeys(only["method"])) == ["STIP", "mean-frame"]
    none = evaluate(model, digits, 2, 4, progress=False, baselines=())
    assert list(dict.fromkeys(none["method"])) == ["STIP"]
    full = evaluate(model, digits, 2, 4, progress=False)
    pd.testing.assert_frame_equal(df, full[full["method"] != "mean-frame"].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"unknown \['optical-flow'\]; valid baselines are "
                                         r"\['copy-last', 'mean-frame', 'flow-warp'\]"):
        evaluate(model, digits, 2, 4, progress=False, baselines=("copy-last", "optical-flow"))


def test_model_method_and_strongest_baseline():
    df = _scores([("STIP", 5, 30.0, 9.0), ("copy-last", 5, 28.0, 8.0), ("mean-frame", 5, 29.0, 12.0),
                  ("flow-warp", 5, 31.0, 10.0), ("STIP", 6, 29.0, 9.0), ("copy-last", 6, 27.0, 8.5),
                  ("mean-frame", 6, 29.5, 12.0), ("flow-warp", 6, 28.0, 10.0)])
    assert model_method(df) == "STIP"
    assert strongest_baseline(df) == "flow-warp"               # 29.5 > 29.25 > 27.5 dB
    assert strongest_baseline(df[df["t"] == 6]) == "mean-frame"
    assert strongest_baseline(df, "lpips_x100") == "copy-last"  # lower is better
    old = df[df["method"].isin(["STIP", "copy-last"])]          # a table cached before them
    assert model_method(old) == "STIP" and strongest_baseline(old) == "copy-last"
    with pytest.raises(ValueError, match="metric='psnr_db' is unknown: valid metrics are"):
        strongest_baseline(df, "psnr_db")
    with pytest.raises(ValueError, match="no 'ssim' column"):
        strongest_baseline(df, "ssim")
    with pytest.raises(ValueError, match="no baseline rows"):
        strongest_baseline(df[df["method"] == "STIP"])
    with pytest.raises(ValueError, match="found methods \\['STIP', 'PredRNN'\\]"):
        model_method(pd.concat([df, df.assign(method=df["method"].replace("STIP", "PredRNN"))]))
