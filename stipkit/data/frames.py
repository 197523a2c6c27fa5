"""Frame helpers shared by every dataset: the ``DataError`` they raise, resizing, the SJTU4K
edge padding (``pad_to`` / ``crop_to``) and the uint8 frames -> float tensor conversion."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class DataError(ValueError):
    """Bad input data: the message names the file (and list line) and what was expected."""


def cover_size(size: tuple[int, int], resolution: tuple[int, int]) -> tuple[int, int]:
    """The size a ``size`` frame is scaled to so that it just covers ``resolution`` (the scale
    :func:`resize_frames` uses before its center crop), aspect ratio kept."""
    (h, w), (H, W) = size, resolution
    s = max(H / h, W / w)
    return max(H, round(h * s)), max(W, round(w * s))


def resize_frames(frames: np.ndarray, resolution: tuple[int, int], crop: bool = True) -> np.ndarray:
    """Resize uint8 frames ``(N, h, w, C)`` to ``(N, H, W, C)``, deterministically.

    ``crop=True``: scale so the frame covers ``H x W`` (shorter side first, see
    :func:`cover_size`), then center-crop, so nothing is stretched. ``crop=False``: plain resize
    to ``H x W`` (aspect ratio changes; this is what STIP does, e.g. UCF Sports 720x480 ->
    512x512). Downscaling uses area averaging (no aliasing), upscaling bilinear.
    """
    H, W = resolution
    n, h, w, _ = frames.shape
    if (h, w) == (H, W):
        return frames
    size = cover_size((h, w), (H, W)) if crop else (H, W)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if size[0] * size[1] <= h * w:
        x = F.interpolate(x, size=size, mode="area")
    else:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - H) // 2, (size[1] - W) // 2
    x = x[:, :, top:top + H, left:left + W]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _spatial_axes(x) -> tuple[int, int]:
    # torch tensors are channels-first (..., C, H, W); numpy frames are channels-last (..., H, W, C)
    return (-2, -1) if isinstance(x, torch.Tensor) else (-3, -2)


def pad_to(x, H: int, W: int):
    """Center-pad ``x`` to ``H x W`` by edge replication (the STIP SJTU4K trick, Table I).

    SJTU4K frames are 2160x3840 but the model works at 2176x3840, so 8 rows are added at the
    top and 8 at the bottom, copying the first/last row. Works on torch tensors
    ``(..., H, W)`` (channels first) and numpy arrays ``(..., H, W, C)`` (channels last).
    ``crop_to`` undoes it exactly, e.g. to score predictions at 2160 rows.
    """
    ah, aw = _spatial_axes(x)
    h, w = x.shape[ah], x.shape[aw]
    if h > H or w > W:
        raise DataError(f"pad_to: input is {h}x{w}, larger than the target {H}x{W}; use crop_to")
    for axis, n, N in ((ah, h, H), (aw, w, W)):
        if n == N:
            continue
        # indices -top..n+bottom clamped into [0, n-1] == edge replication
        idx = np.clip(np.arange(N) - (N - n) // 2, 0, n - 1)
        if isinstance(x, torch.Tensor):
            x = x.index_select(x.dim() + axis, torch.as_tensor(idx, device=x.device))
        else:
            x = np.take(x, idx, axis=axis)
    return x


def crop_to(x, H: int, W: int):
    """Center-crop ``x`` to ``H x W`` (inverse of ``pad_to``; same layouts as ``pad_to``)."""
    ah, aw = _spatial_axes(x)
    h, w = x.shape[ah], x.shape[aw]
    if h < H or w < W:
        raise DataError(f"crop_to: input is {h}x{w}, smaller than the target {H}x{W}; use pad_to")
    top, left = (h - H) // 2, (w - W) // 2
    index = [slice(None)] * x.ndim
    index[ah], index[aw] = slice(top, top + H), slice(left, left + W)
    return x[tuple(index)]


def to_tensor(frames: np.ndarray, channel_order: str = "rgb") -> torch.Tensor:
    """uint8 ``(T, H, W, C)`` -> float32 ``(T, C, H, W)`` in [0, 1], optionally RGB -> BGR."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if channel_order == "bgr":
        x = x.flip(1)
    elif channel_order != "rgb":
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return x.float().div_(255.0)
