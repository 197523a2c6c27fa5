"""Training-free baselines: what a model has to beat before its numbers mean anything.

Each baseline is a function ``fn(frames, input_length)`` of the whole clip ``(B, T, C, H, W)``
(a torch tensor on any device, or a numpy array) that sees only the ``input_length`` context
frames and returns predictions of the ``T - input_length`` future frames, ``(B, T -
input_length, C, H, W)``, of the same type, dtype and device as ``frames``. They are registered
in :data:`BASELINES` (in the order tables and plots list them) and scored beside every model by
:func:`stipkit.scoring.evaluate.evaluate`.

``copy-last`` (:func:`copy_last_baseline`)
    The last context frame, repeated for every future step. Exact on still scenes, hard to beat at
    the first predicted frame of slow real video.
``mean-frame`` (:func:`mean_frame_baseline`)
    The mean of the context frames, repeated for every future step: a constant prediction that
    hedges between where things were. On Moving Digits (small bright digits on black, moving fast)
    it beats copy-last, whose sharp digit lies in the wrong place and is penalised twice by MSE.
``flow-warp`` (:func:`flow_warp_baseline`)
    Constant-velocity optical-flow extrapolation. OpenCV's Farnebäck dense flow
    (``cv2.calcOpticalFlowFarneback``, parameters :data:`FARNEBACK`) is computed from the last
    context frame back to the one before it, on 8-bit grayscale versions; future step k
    backward-warps the last context frame by k times that flow (``cv2.remap``, bilinear, border
    replicate). It needs ``input_length >= 2``; with one context frame there is no motion to see
    and it returns copy-last, as it does (exactly) when the last two context frames are equal.

Backward warping, its sign and why ``cv2.remap``
------------------------------------------------
Farnebäck's ``flow = calcOpticalFlowFarneback(a, b)`` satisfies ``a(y, x) ≈ b(y + flow_y, x +
flow_x)``. With ``a`` the last context frame L and ``b`` the frame P before it, ``flow(p)`` points
from a pixel of L to where its content was one frame earlier, i.e. it is minus the velocity
*on L's own grid*. Under constant velocity step k is ``pred_k(p) = L(p - k v) = L(p + k
flow(p))``: every output pixel *reads* (backward warps) L, so the prediction has no holes and no
collisions, which forward splatting would have. (The flow field is taken at the output pixel p
rather than at its source: exact for uniform motion, the usual approximation elsewhere.)

The warp is ``cv2.remap`` with ``INTER_LINEAR`` and ``BORDER_REPLICATE`` on the CPU copy that the
flow needs anyway: its maps are absolute pixel coordinates, so there is no ``align_corners``
normalisation to get wrong (``torch.grid_sample`` would need one), and content entering the frame
takes the nearest edge pixel (near the truth on real video's smooth borders, where zero padding
would paint black bands). Integer sampling positions return the source pixels exactly, so a still
clip (zero flow) predicts its last frame exactly. Bilinear weights keep values in [0, 1].
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..models.flow import FARNEBACK, farneback_flow, remap

__all__ = ["BASELINES", "FARNEBACK", "copy_last_baseline", "mean_frame_baseline",
           "flow_warp_baseline", "farneback_flow"]

def _check(frames: Any, input_length: int, name: str = "frames") -> int:
    """Validate a clip (B, T, C, H, W) and ``input_length``; returns T."""
    if not isinstance(frames, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(frames).__name__}")
    if frames.ndim != 5:
        raise ValueError(f"{name} must be (B, T, C, H, W), got shape {tuple(frames.shape)}")
    total = frames.shape[1]
    if not 0 < input_length < total:
        raise ValueError(f"input_length must be in 1..{total - 1} for T = {total}, got {input_length}")
    return total


def _check_float(frames: Any, baseline: str) -> None:
    floating = (frames.is_floating_point() if isinstance(frames, torch.Tensor)
                else np.issubdtype(frames.dtype, np.floating))
    if not floating:
        raise TypeError(f"the {baseline} baseline needs float frames in [0, 1], got dtype "
                        f"{frames.dtype} (uint8 frames: x / 255)")


def _repeat(frame: Any, steps: int):
    """(B, 1, C, H, W) -> (B, steps, C, H, W), a copy, of the input's type."""
    reps = (1, steps, 1, 1, 1)
    return frame.repeat(*reps) if isinstance(frame, torch.Tensor) else np.tile(frame, reps)


def copy_last_baseline(frames: Any, input_length: int):
    """Predictions that repeat the last context frame -> ``(B, T - input_length, C, H, W)``.

    ``frames`` is the whole clip ``(B, T, C, H, W)`` (tensor or numpy array; the result
    has the same type); frame ``input_length - 1`` is repeated for every future step.
    """
    total = _check(frames, input_length)
    return _repeat(frames[:, input_length - 1:input_length], total - input_length)


def mean_frame_baseline(frames: Any, input_length: int):
    """Predictions that repeat the mean of the context frames -> ``(B, T - input_length, C, H, W)``.

    ``frames``: the whole clip ``(B, T, C, H, W)``, float (tensor on any device, or numpy array;
    the result has the same type, dtype and device). The mean over frames ``0 .. input_length -
    1`` is computed in float32 at least and repeated for every future step.
    """
    total = _check(frames, input_length)
    _check_float(frames, "mean-frame")
    context = frames[:, :input_length]
    if isinstance(frames, torch.Tensor):
        acc = torch.promote_types(frames.dtype, torch.float32)
        mean = context.to(acc).mean(dim=1, keepdim=True).to(frames.dtype)
    else:
        mean = context.mean(axis=1, keepdims=True, dtype=np.promote_types(frames.dtype, np.float32))
        mean = mean.astype(frames.dtype)
    return _repeat(mean, total - input_length)


def flow_warp_baseline(frames: Any, input_length: int, **params):
    """Constant-velocity Farnebäck extrapolation -> ``(B, T - input_length, C, H, W)``.

    The flow from the last context frame L to the one before it (:func:`farneback_flow`, on
    grayscale uint8 versions) is extrapolated linearly: future step k backward-warps L by k
    times the flow (``cv2.remap``, bilinear, border replicate; the sign convention and the
    choice of remap are in the module docstring). ``frames``: the whole clip ``(B, T, C, H,
    W)``, float in [0, 1], a tensor on any device (computed on the CPU in float32 and moved
    back) or a numpy array; the result has the same type, dtype and device. With
    ``input_length == 1`` it is :func:`copy_last_baseline` (no motion can be seen).
    ``params`` override :data:`FARNEBACK`.
    """
    total = _check(frames, input_length)
    _check_float(frames, "flow-warp")
    if input_length < 2:
        return copy_last_baseline(frames, input_length)
    is_torch = isinstance(frames, torch.Tensor)
    context = frames[:, input_length - 2:input_length]
    ctx = (context.detach().to("cpu", torch.float32).numpy() if is_torch
           else np.asarray(context, dtype=np.float32))
    b, _, c, h, w = ctx.shape
    steps = total - input_length
    out = np.empty((b, steps, c, h, w), dtype=np.float32)
    for i in range(b):
        previous, last = ctx[i, 0], ctx[i, 1]
        flow = farneback_flow(last, previous, **params)  # last(p) ≈ previous(p + flow(p))
        for k in range(1, steps + 1):
            out[i, k - 1] = remap(last, k * flow)
    if is_torch:
        return torch.from_numpy(out).to(device=frames.device, dtype=frames.dtype)
    return out.astype(frames.dtype, copy=False)


#: Every baseline by its method name in scores tables, in the order tables and plots list them.
BASELINES: dict[str, Callable[[Any, int], Any]] = {
    "copy-last": copy_last_baseline,
    "mean-frame": mean_frame_baseline,
    "flow-warp": flow_warp_baseline,
}
