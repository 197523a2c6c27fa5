"""Predictions on your own video: ``python -m stipkit predict --video my.mp4 --out pred.mp4``.

The model is given ``input_length`` consecutive frames of the clip (decoded with PyAV and
resized to the model's frames: shorter side first, then a center crop, as the kit's data does),
and rolls out ``future`` frames from them, seeing nothing after the window -- the evaluation
protocol of :mod:`stipkit.scoring.evaluate` on one window. Where the clip goes on after the window,
its real frames are the ground truth, and the prediction and the baselines are scored on them with
:func:`stipkit.scoring.metrics.sequence_metrics` (the kit's one metrics function); where it does
not (``start="end"``: the last frames of the clip given, the unseen future predicted), there is no
ground truth and no score.

    pred = predict_video(predictor, cfg, "my.mp4", start=0)
    pred.scores()                     # PSNR / SSIM / LPIPS x100 by t: the model and the baselines
    stipkit.plots.video.write_video(pred, "pred.mp4")   # given | predicted | copy-last
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import Config
from ..data.frames import DataError, to_tensor
from ..data.video import load_video, video_fps, video_size
from .baselines import BASELINES
from .evaluate import label_of
from .metrics import sequence_metrics


@dataclass
class VideoPrediction:
    """One window of a video and what the model made of it; frames are ``(T, C, H, W)`` in [0, 1].

    ``given``: the ``input_length`` frames the model saw; ``predicted``: its ``future`` frames;
    ``truth``: the clip's real frames after the window (fewer than ``future``, or none, where the
    clip ends first); ``baselines``: each training-free baseline's prediction (copy-last first).
    ``start`` is the index of the first given frame in the clip, ``fps`` the clip's frame rate."""
    path: Path
    method: str
    given: torch.Tensor
    predicted: torch.Tensor
    truth: torch.Tensor
    baselines: dict[str, torch.Tensor]
    start: int
    fps: float

    @property
    def input_length(self) -> int:
        return len(self.given)

    @property
    def future(self) -> int:
        return len(self.predicted)

    def scores(self, lpips: bool = True) -> pd.DataFrame:
        """Per predicted frame with ground truth: ``method``, ``t`` (the frame's 1-based place in
        the window, ``input_length + 1 ..``), ``mse``, ``psnr``, ``ssim``, ``lpips_x100``; the model
        first, then each baseline. Empty where the clip has no frames after the window."""
        k = len(self.truth)
        if k == 0:
            return pd.DataFrame(columns=["method", "t", "mse", "psnr", "ssim"]
                                + (["lpips_x100"] if lpips else []))
        tables = []
        for method, frames in {self.method: self.predicted, **self.baselines}.items():
            df = sequence_metrics(frames[None, :k], self.truth[None], lpips_net=lpips)
            df["t"] = df["t"] + self.input_length
            tables.append(df.drop(columns="sample").assign(method=method))
        df = pd.concat(tables, ignore_index=True)
        return df[["method"] + [c for c in df.columns if c != "method"]]


def _check_start(start: int | str, frames: int, input_length: int, path: Path) -> int:
    last = frames - input_length
    if start == "end":
        return last
    if isinstance(start, bool) or not isinstance(start, int):
        raise ValueError(f"start must be a frame index (an int) or 'end', got {start!r}")
    if not 0 <= start <= last:
        raise ValueError(f"start={start} is outside the clip: {path} has {frames} frames and the "
                         f"model is given {input_length}, so start must be in 0..{last} (or 'end')")
    return start


def predict_video(predictor, cfg: Config, path: str | os.PathLike, start: int | str = 0,
                  future: int | None = None, device: str | torch.device | None = None
                  ) -> VideoPrediction:
    """Decode ``path``, give the model frames ``start .. start + input_length - 1`` and predict
    ``future`` frames (default: the config's test horizon, ``eval_length - input_length``).

    ``start="end"`` gives the model the clip's last frames: a prediction of the unseen future.
    Raises :class:`~stipkit.data.frames.DataError` naming the file for an unreadable video, one
    shorter than the model's ``input_length``, or one smaller than the model's frames (it would
    have to be enlarged); ``ValueError`` for a ``start`` outside the clip or a bad ``future``."""
    path = Path(path)
    L, H, W = cfg.input_length, cfg.model.height, cfg.model.width
    future = cfg.eval_length - L if future is None else future
    if isinstance(future, bool) or not isinstance(future, int) or future < 1:
        raise ValueError(f"future must be a positive number of frames, got {future!r}")
    h, w = video_size(path)  # unreadable / missing file: DataError naming it
    if h < H or w < W:
        raise DataError(f"{path}: the video is {h}x{w} (height x width), smaller than the "
                        f"model's {H}x{W} frames ({cfg.name!r}); use a checkpoint trained at "
                        f"{h}x{w} or below, or a larger video")
    # decode no further than the window needs (all of it for "end")
    max_frames = start + L + future if isinstance(start, int) and not isinstance(start, bool) \
        and start >= 0 else None
    clip = load_video(path, (H, W), max_frames=max_frames)
    if len(clip) < L:
        raise DataError(f"{path}: the video has {len(clip)} frames; the model needs at least "
                        f"input_length = {L} given frames")
    start = _check_start(start, len(clip), L, path)
    frames = to_tensor(clip[start:start + L + future])
    if cfg.model.img_channels == 1:  # a grey model (its config says so): the luma of the clip
        frames = (frames * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    given, truth = frames[:L], frames[L:]
    param = next(predictor.parameters())
    device = torch.device(device) if device is not None else param.device
    was_training = predictor.training
    predictor.eval()
    try:
        with torch.inference_mode():
            out = predictor.to(device)(given[None].to(device, param.dtype), input_length=L,
                                       total_length=L + future, future_only=True).predictions
    finally:
        predictor.train(was_training)
    predicted = out[0].float().clamp(0, 1).cpu()
    # the baselines read only the given frames: the clip is padded with the last one to length
    padded = torch.cat([given, given[-1:].expand(future, -1, -1, -1)])[None]
    baselines = {name: fn(padded, L)[0].clamp(0, 1) for name, fn in BASELINES.items()}
    return VideoPrediction(path=path, method=label_of(predictor), given=given, predicted=predicted,
                           truth=truth, baselines=baselines, start=start, fps=video_fps(path))
