"""Image-quality metrics for video prediction: MSE, PSNR, SSIM and LPIPS.

This module is the ONE place metrics are computed; training (validation), evaluation
and the notebooks all call :func:`sequence_metrics` (or :func:`frame_metrics` for a
batch of single frames), so numbers are comparable everywhere.

Conventions
-----------
* Images are float in [0, 1], frames as ``(N, C, H, W)`` and clips as
  ``(B, T, C, H, W)``, with C = 3 (RGB) or C = 1 (grayscale). Torch tensors or numpy
  arrays are accepted; results are CPU ``float64`` tensors (one value per image).
* Every metric runs on the device its input lies on (a GPU's frames are scored on that GPU),
  a chunk of frames at a time, each chunk sized so that its float64 / AlexNet working memory
  stays near :data:`CHUNK_BYTES` whatever the resolution (4K frames go one or two at a time).
* ``data_range`` is 1 for PSNR and SSIM.
* LPIPS is lpips v0.1 with the AlexNet trunk (``lpips.LPIPS(net="alex")``), the variant
  the STIP/STRPM papers report. Its ImageNet AlexNet weights come from the local cache
  written once by ``python -m stipkit.scoring.lpips_weights`` (``make setup``); they are never
  downloaded from here and never replaced by random weights: if the cache is missing,
  :class:`~stipkit.scoring.lpips_weights.LPIPSWeightsMissing` is raised.
  Grayscale frames are repeated to 3 channels for LPIPS only (AlexNet needs RGB);
  MSE, PSNR and SSIM use the single channel as it is.
* Per-frame LPIPS values are raw distances in :func:`lpips` and :func:`frame_metrics`;
  :func:`sequence_metrics` reports them x100 in a column named ``lpips_x100``, the scale
  the papers' tables print.
* MSE is the *per-pixel mean* squared error over C, H, W. The official STIP/PredRNN
  evaluation code instead reports ``np.square(x - gx).sum()`` per frame (squared error
  summed over all pixels and channels, on [0, 1] images): multiply our value by
  ``C * H * W`` to get that number.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np
import torch

from . import lpips_weights as _weights
# re-exported for older callers: the baselines live in stipkit.scoring.baselines
from .baselines import copy_last_baseline
from .lpips_weights import LPIPSWeightsMissing

__all__ = [
    "METRIC_COLUMNS",
    "HIGHER_IS_BETTER",
    "LPIPSWeightsMissing",
    "get_lpips_model",
    "mse",
    "psnr",
    "ssim",
    "lpips",
    "frame_metrics",
    "sequence_metrics",
    "summarize",
    "copy_last_baseline",
    "frames_per_chunk",
    "CHUNK_BYTES",
]

#: Metric columns of :func:`sequence_metrics`' DataFrame, in order.
METRIC_COLUMNS = ("mse", "psnr", "ssim", "lpips_x100")
#: Direction of each metric (for plots and "best model" tables).
HIGHER_IS_BETTER = {"mse": False, "psnr": True, "ssim": True, "lpips": False,
                    "lpips_x100": False}

# Values outside [0, 1] by more than this are taken as a wrong scale ([0, 255], [-1, 1]).
_RANGE_SLACK = 0.05
# Working memory one chunk of frames may take, the most frames a chunk holds, and above how
# many frames a progress bar is shown.
CHUNK_BYTES = 512 * 2**20
_MAX_CHUNK = 64
_PROGRESS_MIN_FRAMES = 512
# Bytes of working memory per input value: float64 SSIM keeps about 12 maps of the frame's size;
# LPIPS' AlexNet keeps both images' features (conv1 alone: 64 channels at 1/4 x 1/4, float32).
_SSIM_BYTES_PER_VALUE = 12 * 8
_LPIPS_BYTES_PER_VALUE = 48 * 4


def frames_per_chunk(frame_shape: Sequence[int], bytes_per_value: int = _LPIPS_BYTES_PER_VALUE,
                     budget: int | None = None) -> int:
    """How many frames of ``frame_shape`` (C, H, W) one chunk holds: ``budget`` (default
    :data:`CHUNK_BYTES`) over the working memory of one frame, between 1 and 64."""
    per_frame = math.prod(int(v) for v in frame_shape) * bytes_per_value
    return max(1, min(_MAX_CHUNK, (budget or CHUNK_BYTES) // max(per_frame, 1)))

# One LPIPS module per device, built on first use (see get_lpips_model).
LPIPS_MODELS: dict[str, torch.nn.Module] = {}


# ------------------------------------------------------------------------ LPIPS model


def get_lpips_model(device: str | torch.device | None = None) -> torch.nn.Module:
    """The shared LPIPS v0.1 / AlexNet module (eval mode, no grad), built once.

    Raises :class:`LPIPSWeightsMissing` if ``python -m stipkit.scoring.lpips_weights`` has not
    been run (the cache directory is ``$STIPKIT_CACHE/lpips`` or
    ``~/.cache/stipkit/lpips``).
    """
    device = torch.device(device if device is not None else "cpu")
    key = str(device)
    if key not in LPIPS_MODELS:
        if "cpu" not in LPIPS_MODELS:
            LPIPS_MODELS["cpu"] = _weights.build_lpips_alex(_weights.load_features())
        if device.type != "cpu":
            LPIPS_MODELS[key] = copy.deepcopy(LPIPS_MODELS["cpu"]).to(device)
    return LPIPS_MODELS[key]


# ---------------------------------------------------------------------- input checks


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not t.is_floating_point():
        raise TypeError(
            f"{name} must hold floats in [0, 1], got dtype {t.dtype} (uint8 frames: x / 255)"
        )
    return t


def _check_range(t: torch.Tensor, name: str) -> None:
    if t.numel() == 0:
        return
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise ValueError(
            f"{name} must hold images in [0, 1], but its values span [{lo:.3g}, {hi:.3g}] "
            "(rescale [0, 255] or [-1, 1] data first)"
        )


def _frames_pair(pred: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two (N, C, H, W) batches in [0, 1]; return float tensors."""
    out = []
    for x, name in ((pred, "pred"), (target, "target")):
        t = _as_tensor(x, name)
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(
                f"{name} must be (N, C, H, W) with C = 3 (RGB) or 1 (grayscale), "
                f"got shape {tuple(t.shape)}"
            )
        _check_range(t, name)
        out.append(t)
    if out[0].shape != out[1].shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(out[0].shape)} vs {tuple(out[1].shape)}"
        )
    return out[0], out[1]


# ---------------------------------------------------------------------- frame metrics


def mse(pred: Any, target: Any) -> torch.Tensor:
    """Per-image mean squared error over C, H, W -> ``(N,)`` float64.

    Note: the official STIP code reports the *sum* of squared errors per frame
    (``np.square(x - gx).sum()``); that equals this value times ``C * H * W``.
    """
    p, t = _frames_pair(pred, target)
    t = t.to(p.device)
    step = frames_per_chunk(p.shape[1:], 2 * 8)  # float64 copies, a chunk at a time
    out = [(p[i:i + step].to(torch.float64) - t[i:i + step].to(torch.float64))
           .square().flatten(1).mean(dim=1).cpu() for i in range(0, p.shape[0], step)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _psnr_from_mse(m: torch.Tensor) -> torch.Tensor:
    with np.errstate(divide="ignore"):
        return torch.from_numpy(10.0 * np.log10(1.0 / m.numpy()))


def psnr(pred: Any, target: Any) -> torch.Tensor:
    """Per-image PSNR in dB with data_range 1: ``10 * log10(1 / mse)`` -> ``(N,)``.

    Identical images give ``inf`` (no cap is applied); averages that include such frames
    are ``inf`` too, so filter them if that matters.
    """
    return _psnr_from_mse(mse(pred, target))


def ssim(pred: Any, target: Any) -> torch.Tensor:
    """Per-image SSIM -> ``(N,)`` float64, computed on the input's device.

    scikit-image's ``structural_similarity`` with ``data_range=1.0`` and its defaults (7x7
    uniform window, K1 = 0.01, K2 = 0.03, sample covariances, the 3-pixel border left out of
    the mean), written in torch so that it runs where the frames are (equal to scikit-image's
    to 1e-12; ``tests/test_metrics.py`` checks it). RGB images average the per-channel SSIMs
    (scikit-image's ``channel_axis``). Frames must be at least 7x7 pixels.
    """
    p, t = _frames_pair(pred, target)
    if min(p.shape[-2:]) < _SSIM_WIN:
        raise ValueError(f"SSIM needs frames of at least {_SSIM_WIN}x{_SSIM_WIN} pixels, got "
                         f"{tuple(p.shape[-2:])}")
    t = t.to(p.device)
    step = frames_per_chunk(p.shape[1:], _SSIM_BYTES_PER_VALUE)
    out = [_ssim_chunk(p[i:i + step].to(torch.float64), t[i:i + step].to(torch.float64)).cpu()
           for i in range(0, p.shape[0], step)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


_SSIM_WIN = 7


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of (N, C, H, W) float64 pairs, as scikit-image computes it (see :func:`ssim`)."""
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    n = _SSIM_WIN ** 2
    cov_norm = n / (n - 1)                     # sample covariance, scikit-image's default
    mean = lambda v: torch.nn.functional.avg_pool2d(v, _SSIM_WIN, stride=1)  # noqa: E731
    ux, uy = mean(x), mean(y)                  # 'valid' windows = scikit-image's cropped border
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(2).mean(2).mean(1)        # per channel, then over channels


def lpips(pred: Any, target: Any, net: torch.nn.Module | None = None) -> torch.Tensor:
    """Per-image LPIPS distance (v0.1, AlexNet) -> ``(N,)`` float64, NOT scaled x100.

    ``pred``/``target``: ``(N, 3, H, W)`` (or ``(N, 1, H, W)``, repeated to 3 channels)
    float in [0, 1]; they are mapped to [-1, 1] as lpips expects. Runs on ``pred``'s
    device under ``torch.inference_mode`` (no gradients: this is a metric, not a loss).
    ``net`` overrides the shared module from :func:`get_lpips_model`.
    Raises :class:`LPIPSWeightsMissing` if the set-up step has not been run.
    """
    p, t = _frames_pair(pred, target)
    model = net if net is not None else get_lpips_model(p.device)
    device = next(model.parameters()).device
    out, step = [], frames_per_chunk((3, *p.shape[2:]))
    with torch.inference_mode():
        for start in range(0, p.shape[0], step):
            a = p[start:start + step].to(device=device, dtype=torch.float32)
            b = t[start:start + step].to(device=device, dtype=torch.float32)
            if a.shape[1] == 1:
                a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
            out.append(model(2 * a - 1, 2 * b - 1).reshape(-1).to("cpu", torch.float64))
    if not out:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat(out)


def frame_metrics(
    pred: Any, target: Any, lpips_net: bool | torch.nn.Module = True
) -> dict[str, torch.Tensor]:
    """All metrics for a batch of frames -> ``{"mse", "psnr", "ssim", "lpips"}``, each ``(N,)``.

    ``lpips`` here is the raw distance (no x100). ``lpips_net=False`` skips LPIPS (the key
    is then absent); an ``nn.Module`` is used instead of the shared LPIPS module.
    """
    p, t = _frames_pair(pred, target)
    m = mse(p, t)
    result = {"mse": m, "psnr": _psnr_from_mse(m), "ssim": ssim(p, t)}
    if lpips_net is not False and lpips_net is not None:
        net = lpips_net if isinstance(lpips_net, torch.nn.Module) else None
        result["lpips"] = lpips(p, t, net=net)
    return result


# ------------------------------------------------------------------- sequence metrics


def sequence_metrics(
    pred: Any,
    target: Any,
    input_length: int | None = None,
    *,
    lpips_net: bool | torch.nn.Module = True,
    progress: bool | None = None,
):
    """Per-frame metrics of predicted clips -> ``pandas.DataFrame``, one row per (sample, t).

    Parameters
    ----------
    pred
        ``(B, T, C, H, W)`` predicted frames in [0, 1]. Clamped to [0, 1] first, as the
        official evaluation does with the network output.
    target
        The ground truth for the same frames, ``(B, T, C, H, W)`` -- or the whole clip
        ``(B, input_length + T, C, H, W)``, whose first ``input_length`` (context) frames
        are then dropped.
    input_length
        Number of context frames before the first prediction. With it, ``t`` is the
        paper's frame index, the 1-based position in the full clip
        (``input_length + 1 .. input_length + T``, e.g. 11..30 for KTH 10 -> 20);
        without it, ``t`` is the 1-based prediction step ``1 .. T``.
    lpips_net
        ``False`` skips LPIPS (no ``lpips_x100`` column); a module overrides the shared one.
    progress
        Show a tqdm bar; default: only for more than 512 frames.

    Returns
    -------
    DataFrame with columns ``sample`` (0-based index in the batch), ``t``, ``mse``
    (per-pixel mean; x C*H*W for the official per-frame sum), ``psnr`` (dB, inf for exact
    frames), ``ssim`` and ``lpips_x100`` (LPIPS v0.1 AlexNet distance **x100**, as the
    papers' tables print it). Pass it to :func:`summarize` for per-time-step means.
    """
    import pandas as pd

    p = _as_tensor(pred, "pred")
    t = _as_tensor(target, "target")
    for x, name in ((p, "pred"), (t, "target")):
        if x.ndim != 5 or x.shape[2] not in (1, 3):
            raise ValueError(
                f"{name} must be (B, T, C, H, W) with C = 3 or 1, got shape {tuple(x.shape)}"
            )
    if input_length is not None:
        input_length = int(input_length)
        if input_length < 0:
            raise ValueError(f"input_length must be >= 0, got {input_length}")
        if t.shape[1] == p.shape[1] + input_length and input_length > 0:
            t = t[:, input_length:]
    if p.shape != t.shape:
        raise ValueError(
            f"pred {tuple(p.shape)} and target {tuple(t.shape)} must match (target may also "
            "be the whole clip, input_length frames longer)"
        )
    p = p.clamp(0.0, 1.0)
    _check_range(t, "target")

    b, steps = p.shape[:2]
    flat_p, flat_t = p.reshape(b * steps, *p.shape[2:]), t.reshape(b * steps, *t.shape[2:])
    n = flat_p.shape[0]
    if progress is None:
        progress = n > _PROGRESS_MIN_FRAMES
    step = frames_per_chunk((3, *flat_p.shape[2:]))
    chunks = range(0, n, step)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="metrics", unit="chunk", total=math.ceil(n / step))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in chunks:
        sl = slice(start, start + step)
        for key, value in frame_metrics(flat_p[sl], flat_t[sl], lpips_net=lpips_net).items():
            parts.setdefault(key, []).append(value)

    first_t = (input_length + 1) if input_length is not None else 1
    columns: dict[str, Any] = {
        "sample": np.repeat(np.arange(b), steps),
        "t": np.tile(np.arange(first_t, first_t + steps), b),
    }
    for key in ("mse", "psnr", "ssim"):
        columns[key] = torch.cat(parts[key]).numpy() if parts else np.zeros(0)
    if "lpips" in parts:
        columns["lpips_x100"] = 100.0 * torch.cat(parts["lpips"]).numpy()
    elif lpips_net is not False and lpips_net is not None:  # empty input
        columns["lpips_x100"] = np.zeros(0)
    return pd.DataFrame(columns)


def summarize(df, by: str | Sequence[str] = "t"):
    """Mean of each metric column per time step (or per ``by`` columns) -> DataFrame.

    Indexed by ``by``; averages every column of :data:`METRIC_COLUMNS` present (plus a raw
    ``lpips`` column if someone added one). ``psnr`` means are ``inf`` if an exact frame
    is included. For one number per metric over all frames use ``df[METRIC_COLUMNS].mean()``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    cols = [c for c in (*METRIC_COLUMNS, "lpips") if c in df.columns and c not in keys]
    return df.groupby(keys, sort=True)[cols].mean()

