"""stipkit.scoring.baselines: copy-last, mean-frame and flow-warp (training-free predictions)."""
import numpy as np
import pytest
import torch

from stipkit.scoring import baselines, metrics
from stipkit.scoring.baselines import (BASELINES, copy_last_baseline, flow_warp_baseline,
                                       mean_frame_baseline)

pytestmark = pytest.mark.usefixtures("one_thread")


def texture(n: int = 64, steps: int = 6, dx: int = 2, dy: int = 1, channels: int = 1,
            seed: int = 0) -> torch.Tensor:
    """(1, steps, channels, n, n) float32: a smooth random texture translating by (dx, dy) pixels
    per frame (content moves right and down), cut from a larger field so nothing wraps."""
    g = torch.Generator().manual_seed(seed)
    pad = (steps + 1) * max(dx, dy) + 4
    field = torch.rand(1, channels, (n + 2 * pad) // 4, (n + 2 * pad) // 4, generator=g)
    field = torch.nn.functional.interpolate(field, size=(n + 2 * pad, n + 2 * pad), mode="bicubic",
                                            align_corners=False)
    field = (field - field.min()) / (field.max() - field.min())
    frames = [field[0, :, pad - dy * t:pad - dy * t + n, pad - dx * t:pad - dx * t + n]
              for t in range(steps)]
    return torch.stack(frames)[None].contiguous()


def blob(n: int = 64, steps: int = 6, dx: float = 2.0) -> torch.Tensor:
    """(1, steps, 1, n, n): a Gaussian blob (sigma n/10) on grey, moving dx pixels per frame."""
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32),
                            torch.arange(n, dtype=torch.float32), indexing="ij")
    s = n / 10
    frames = [0.2 + 0.7 * torch.exp(-((xx - n / 3 - dx * t) ** 2 + (yy - n / 2) ** 2) / (2 * s * s))
              for t in range(steps)]
    return torch.stack(frames)[None, :, None]


def mean_psnr(pred, target) -> float:
    return float(metrics.psnr(pred.flatten(0, 1), target.flatten(0, 1)).mean())


# --------------------------------------------------------------------------- registry, shapes
def test_registry_order_and_metrics_reexport():
    assert list(BASELINES) == ["copy-last", "mean-frame", "flow-warp"]
    assert BASELINES["copy-last"] is copy_last_baseline is metrics.copy_last_baseline
    assert BASELINES["mean-frame"] is mean_frame_baseline
    assert BASELINES["flow-warp"] is flow_warp_baseline
    for name in BASELINES:  # the module docstring explains every baseline
        assert f"``{name}``" in baselines.__doc__


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_type_and_dtype(name, dtype, channels):
    clip = texture(32, steps=7, channels=channels).to(dtype).repeat(2, 1, 1, 1, 1)
    out = BASELINES[name](clip, 3)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.device == clip.device
    assert out.shape == (2, 4, channels, 32, 32)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    as_np = BASELINES[name](clip.numpy(), 3)
    assert isinstance(as_np, np.ndarray) and as_np.dtype == clip.numpy().dtype
    np.testing.assert_allclose(as_np, out.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", list(BASELINES))
def test_half_precision_and_non_square_frames(name):
    clip = torch.rand(2, 5, 3, 24, 40).to(torch.bfloat16)
    out = BASELINES[name](clip, 2)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 3, 24, 40)


@pytest.mark.parametrize("name", list(BASELINES))
def test_result_is_on_the_input_device(name):
    device = "cuda" if torch.cuda.is_available() else "meta"
    if device == "meta":
        pytest.skip("no CUDA device here (tests/test_cuda.py covers the GPU)")
    clip = texture(32).to(device)
    out = BASELINES[name](clip, 3)
    assert out.device == clip.device
    torch.testing.assert_close(out.cpu(), BASELINES[name](clip.cpu(), 3))


# --------------------------------------------------------------------------- values
def test_copy_last_and_mean_frame_values():
    clip = torch.rand(2, 6, 3, 8, 8, dtype=torch.float64)
    base = copy_last_baseline(clip, 4)
    assert torch.equal(base, clip[:, 3:4].expand(-1, 2, -1, -1, -1))
    mean = mean_frame_baseline(clip, 4)
    torch.testing.assert_close(mean, clip[:, :4].mean(1, keepdim=True).expand(-1, 2, -1, -1, -1))
    np.testing.assert_allclose(mean_frame_baseline(clip.numpy(), 4), mean.numpy())
    # with one context frame both are that frame; the future frames are never read
    one = clip.clone()
    one[:, 1:] = 0.5
    assert torch.equal(mean_frame_baseline(one, 1), copy_last_baseline(clip, 1))
    mean.add_(1)  # a copy, not a view of the clip
    assert float(clip.max()) <= 1


def test_future_frames_are_never_read():
    clip = texture(32, steps=6)
    noisy = clip.clone()
    noisy[:, 3:] = torch.rand_like(noisy[:, 3:])
    for fn in BASELINES.values():
        assert torch.equal(fn(clip, 3), fn(noisy, 3))


@pytest.mark.parametrize("channels", [1, 3])
def test_flow_warp_returns_a_still_clip_exactly(channels):
    still = texture(64, steps=1, channels=channels).expand(-1, 6, -1, -1, -1).contiguous()
    out = flow_warp_baseline(still, 4)
    torch.testing.assert_close(out, still[:, 4:], atol=1e-6, rtol=0)
    assert mean_psnr(out, still[:, 4:]) > 100


@pytest.mark.parametrize("n", [32, 64, 128])
def test_flow_warp_follows_a_translating_texture(n):
    """2 px right and 1 px down per frame: flow-warp tracks it, copy-last and mean-frame lag.
    A wrong sign (forward instead of backward warping) would be worse than copy-last."""
    clip = torch.cat([texture(n, steps=7, seed=s) for s in range(2)])
    target = clip[:, 4:]
    warp = mean_psnr(flow_warp_baseline(clip, 4), target)
    copy = mean_psnr(copy_last_baseline(clip, 4), target)
    mean = mean_psnr(mean_frame_baseline(clip, 4), target)
    assert warp > max(copy, mean) + 8, (warp, copy, mean)
    # the first step is best; errors grow as the constant-velocity guess is extrapolated
    per_step = [mean_psnr(flow_warp_baseline(clip, 4)[:, k:k + 1], target[:, k:k + 1])
                for k in range(3)]
    assert per_step[0] > copy + 10 and per_step == sorted(per_step, reverse=True)


def test_flow_warp_sign_on_a_moving_blob():
    """The predicted blob's centre of mass moves on by 2 px per step, in the direction of motion."""
    clip = blob(64, steps=6, dx=2.0)
    out = flow_warp_baseline(clip, 3)[0, :, 0] - 0.2
    xs = torch.arange(64, dtype=torch.float32)
    centre = [(float((f.sum(0) * xs).sum() / f.sum())) for f in out]
    truth = [float(((clip[0, t, 0] - 0.2).sum(0) * xs).sum() / (clip[0, t, 0] - 0.2).sum())
             for t in range(3, 6)]
    last = float(((clip[0, 2, 0] - 0.2).sum(0) * xs).sum() / (clip[0, 2, 0] - 0.2).sum())
    assert last < centre[0] < centre[1] < centre[2]  # forward; a sign error would move it back
    assert centre[0] == pytest.approx(truth[0], abs=0.3)
    assert centre == pytest.approx(truth, abs=1.0)    # smooth blobs' flow is a little short
    assert mean_psnr(flow_warp_baseline(clip, 3), clip[:, 3:]) > \
        mean_psnr(copy_last_baseline(clip, 3), clip[:, 3:]) + 10


def test_flow_warp_with_one_context_frame_is_copy_last():
    clip = texture(32, steps=4)
    assert torch.equal(flow_warp_baseline(clip, 1), copy_last_baseline(clip, 1))


def test_flow_warp_params_override_farneback():
    clip = texture(64, steps=6)
    default = flow_warp_baseline(clip, 4)
    assert torch.equal(default, flow_warp_baseline(clip, 4, **baselines.FARNEBACK))
    assert not torch.equal(default, flow_warp_baseline(clip, 4, winsize=5))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", list(BASELINES))
def test_errors_name_the_value_and_what_is_valid(name):
    fn = BASELINES[name]
    with pytest.raises(TypeError, match="torch.Tensor or numpy array, got list"):
        fn([[0.0]], 1)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\), got shape \(4, 3, 8, 8\)"):
        fn(torch.rand(4, 3, 8, 8), 2)
    for bad in (0, 5):
        with pytest.raises(ValueError, match=f"input_length must be in 1..4 for T = 5, got {bad}"):
            fn(torch.rand(1, 5, 1, 8, 8), bad)


@pytest.mark.parametrize("name", ["mean-frame", "flow-warp"])
def test_integer_frames_are_refused(name):
    with pytest.raises(TypeError, match=f"the {name} baseline needs float frames in \\[0, 1\\], "
                                        "got dtype uint8"):
        BASELINES[name](np.zeros((1, 4, 1, 8, 8), np.uint8), 2)
