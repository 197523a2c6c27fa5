"""Dense optical flow and backward warping (OpenCV's Farnebäck and ``cv2.remap``), shared by the
flow-warp baseline (:func:`stipkit.scoring.baselines.flow_warp_baseline`, where the sign
convention and the choice of remap are explained) and the flow-warped start of STIP
(``ModelConfig.init="flow_warp_gated"``, :func:`flow_warp_step`), which begins training as that
baseline's first step. Computed on the CPU in float32, outside autograd: a fixed function of the
frames the model is given."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["FARNEBACK", "farneback_flow", "remap", "flow_warp_step"]

#: Farnebäck parameters for 32-128 px frames. Up to 3 coarser pyramid levels, halving: OpenCV
#: never coarsens below 32 px, so 32 px frames are searched at full resolution only, 64 px ones
#: at 32 and 64 px and 128 px ones at 32, 64 and 128 px (motions of several pixels per frame are
#: one or two pixels at the top; 256 px frames would get their 32 px level too); a 15 px box
#: averaging window (OpenCV's example; on smooth blobs and on textures shifted 2 px per frame it
#: beat 9 px windows at 32 and 64 px,
#: by up to 2 dB, and equalled them at 128 px and on Moving Digits); 3 iterations per level; the
#: polynomial expansion over 5x5 neighbourhoods with its recommended sigma 1.1 (7 / 1.5 gave the
#: same); no Gaussian window (flags 0), which was up to 2 dB worse on 32 px frames.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1,
                 flags=0)

# ITU-R BT.601 luma, as cv2.cvtColor(..., COLOR_RGB2GRAY)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gray_u8(frame: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) uint8 grayscale (C = 1 or 3; RGB order)."""
    gray = frame[0] if frame.shape[0] == 1 else np.tensordot(_LUMA, frame[:3], axes=1)
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)


def farneback_flow(frame: np.ndarray, reference: np.ndarray, **params) -> np.ndarray:
    """Dense Farnebäck flow ``(H, W, 2)`` float32, (x, y) in pixels, with ``frame(p) ≈
    reference(p + flow(p))``; both (C, H, W) float numpy in [0, 1], compared as 8-bit grayscale.
    Identical grayscale frames give exactly zero flow (Farnebäck itself returns up to ~0.1 px of
    spurious motion near the borders of a still pair). ``params`` override :data:`FARNEBACK`."""
    import cv2  # opencv-python-headless; imported here so that the rest of the kit needs none

    a, b = _gray_u8(frame), _gray_u8(reference)
    if np.array_equal(a, b):
        return np.zeros((*a.shape, 2), np.float32)
    return cv2.calcOpticalFlowFarneback(a, b, None, **{**FARNEBACK, **params})


def remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (C, H, W) float32 backward-warped by ``flow`` (H, W, 2): out(p) = image(p +
    flow(p)), bilinear, border replicate (``cv2.remap``). Zero flow returns ``image`` exactly."""
    import cv2

    c, h, w = image.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))  # (H, W, C) for OpenCV
    warped = cv2.remap(hwc, grid_x + flow[..., 0], grid_y + flow[..., 1],
                       interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(h, w, c).transpose(2, 0, 1)  # C = 1 comes back 2-D


@torch.no_grad()
def flow_warp_step(previous: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """One step of constant-velocity flow extrapolation for a batch: ``last`` (B, C, H, W)
    backward-warped by the Farnebäck flow from ``last`` to ``previous`` -- the flow-warp
    baseline's first predicted frame. Same dtype and device as ``last``; no gradient (the flow
    is not differentiable). Identical frames give ``last`` exactly. On the ``meta`` device
    (shape tracing: notebook 02's diagrams) there are no pixels to warp: an empty tensor of
    ``last``'s shape comes back."""
    if last.is_meta:
        return torch.empty_like(last)
    a = previous.detach().to("cpu", torch.float32).numpy()
    b = last.detach().to("cpu", torch.float32).numpy()
    out = np.stack([remap(b[i], farneback_flow(b[i], a[i])) for i in range(len(b))])
    return torch.from_numpy(out).to(device=last.device, dtype=last.dtype)
