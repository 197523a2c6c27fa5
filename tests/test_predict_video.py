"""Predictions on your own video: stipkit.scoring.own_video, stipkit.plots.video and
``python -m stipkit predict --video``, on clips the tests write themselves."""
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stipkit.__main__ import main
from stipkit.data import DataError, load_video, to_tensor
from stipkit.plots.video import side_by_side, write_video
from stipkit.scoring.own_video import predict_video
from stipkit.training.checkpoint import load_predictor

pytestmark = pytest.mark.usefixtures("one_thread")


def write_clip(path, frames: int = 14, size=(48, 64), fps: int = 12):
    """A bright square moving right over a gradient, H.264."""
    h, w = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.height, s.width, s.pix_fmt = h, w, "yuv420p"
        for t in range(frames):
            f = np.zeros((h, w, 3), np.uint8)
            f[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
            f[h // 3:h // 3 + 10, 2 + 2 * t:12 + 2 * t] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A 1-iteration ci run (32x32 frames, 2 given -> 2 predicted)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--preset", "ci", "--iterations", "1", "--data", "digits", "--out",
                 str(out), "--no-progress", "--device", "cpu", "--threads", "1"]) == 0
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_predict_a_window_with_ground_truth(ckpt, clip):
    predictor, cfg = load_predictor(ckpt)
    pred = predict_video(predictor, cfg, clip, start=5, future=3)
    L = cfg.input_length
    assert pred.given.shape == (L, 3, 32, 32) and pred.predicted.shape == (3, 3, 32, 32)
    assert len(pred.truth) == 3 and pred.fps == pytest.approx(12)
    frames = to_tensor(load_video(clip, (32, 32)))  # the kit's own decoding and resizing
    assert torch.equal(pred.given, frames[5:5 + L]) and torch.equal(pred.truth, frames[5 + L:8 + L])
    assert torch.equal(pred.baselines["copy-last"], pred.given[-1:].expand(3, -1, -1, -1))
    scores = pred.scores(lpips=False)
    assert list(dict.fromkeys(scores["method"])) == ["STIP", "copy-last", "mean-frame", "flow-warp"]
    assert sorted(set(scores["t"])) == [L + 1, L + 2, L + 3]
    # the same PSNR as a direct computation of copy-last against the ground truth
    cl = scores[(scores["method"] == "copy-last") & (scores["t"] == L + 1)]["psnr"].item()
    mse = ((pred.given[-1] - pred.truth[0]) ** 2).mean().item()
    assert cl == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)


def test_the_unseen_future_has_no_score(ckpt, clip):
    predictor, cfg = load_predictor(ckpt)
    pred = predict_video(predictor, cfg, clip, start="end", future=4)
    assert pred.start == 14 - cfg.input_length and len(pred.truth) == 0 and pred.future == 4
    assert pred.scores().empty
    frames = side_by_side(pred, scale=2)
    assert frames.shape[0] == cfg.input_length + 4 and frames.dtype == np.uint8
    assert frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_written_video_has_every_frame(ckpt, clip, tmp_path, suffix):
    predictor, cfg = load_predictor(ckpt)
    pred = predict_video(predictor, cfg, clip, start=0)
    out = write_video(pred, tmp_path / f"pred{suffix}", scale=2)
    expected = side_by_side(pred, scale=2)
    if suffix == ".gif":
        with Image.open(out) as im:
            assert im.n_frames == len(expected) and im.size == expected.shape[2:0:-1]
    else:
        decoded = load_video(out)
        assert decoded.shape == expected.shape
        # lossy, but the same pictures
        assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 8


def test_cli_predict_video(ckpt, clip, tmp_path, capsys):
    out = tmp_path / "pred.mp4"
    assert main(["predict", "--checkpoint", str(ckpt), "--video", str(clip), "--start", "3",
                 "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and f"wrote {out}" in text
    assert "frames 3..4 given" in text and "copy-last" in text and "flow-warp" in text
    assert main(["predict", "--checkpoint", str(ckpt), "--video", str(clip), "--start", "end",
                 "--out", str(tmp_path / "future.gif")]) == 0
    assert "nothing to score" in capsys.readouterr().out


def test_cli_predict_video_with_the_shipped_weights(clip, tmp_path, capsys):
    """--pretrained study: 64x64 frames, so the clip (48x64) is too small for it."""
    assert main(["predict", "--pretrained", "study", "--video", str(clip), "--out",
                 str(tmp_path / "p.mp4")]) == 2
    err = capsys.readouterr().err
    assert "48x64" in err and "64x64" in err and str(clip) in err
    big = write_clip(tmp_path / "big.mp4", frames=12, size=(72, 96))
    assert main(["predict", "--pretrained", "study", "--video", str(big), "--out",
                 str(tmp_path / "p.gif")]) == 0
    assert "frames 0..3 given, 6 predicted" in capsys.readouterr().out


@pytest.mark.parametrize("make, args, names", [
    (None, [], ["no_such.mp4", "not found"]),
    ("garbage", [], ["bad.mp4", "unreadable"]),
    ("short", [], ["short.mp4", "1 frames", "input_length = 2"]),
    ("clip", ["--start", "13"], ["start=13", "0..12"]),
    ("clip", ["--start", "-1"], ["--start", "'end'"]),
    ("clip", ["--out", "x.avi"], ["x.avi", ".mp4"]),
    ("clip", ["--data", "digits"], ["--data"]),
])
def test_cli_predict_video_bad_inputs(ckpt, clip, tmp_path, capsys, make, args, names):
    path = {None: tmp_path / "no_such.mp4", "clip": clip, "garbage": tmp_path / "bad.mp4",
            "short": tmp_path / "short.mp4"}[make]
    if make == "garbage":
        path.write_bytes(b"not a video")
    elif make == "short":
        write_clip(path, frames=1)
    argv = ["predict", "--checkpoint", str(ckpt), "--video", str(path)]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "o.mp4")]
    assert main(argv + args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)


def test_video_flags_need_video(ckpt, capsys):
    assert main(["predict", "--checkpoint", str(ckpt), "--future", "3"]) == 2
    assert "--future needs --video" in capsys.readouterr().err


def test_predict_video_checks_its_arguments(ckpt, clip):
    predictor, cfg = load_predictor(ckpt)
    with pytest.raises(ValueError, match="future"):
        predict_video(predictor, cfg, clip, future=0)
    with pytest.raises(ValueError, match="start"):
        predict_video(predictor, cfg, clip, start="last")
    with pytest.raises(DataError, match="not found"):
        predict_video(predictor, cfg, clip.parent / "nope.mp4")


def test_a_grey_model_gets_the_luma_of_the_clip(clip):
    from dataclasses import replace

    from stipkit.config import get_preset
    from stipkit.models import build_model
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, img_channels=1))
    torch.manual_seed(0)
    predictor = build_model(cfg)[0]
    pred = predict_video(predictor, cfg, clip, start=0, future=2)
    assert pred.given.shape[1] == 1 and pred.predicted.shape[1] == 1
    assert side_by_side(pred, scale=1).shape[-1] == 3    # drawn as grey RGB
