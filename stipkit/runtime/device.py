"""Where a run computes, and in what precision: device selection and mixed precision.

* :func:`pick_device` gives every CUDA device an index: a bare ``"cuda"`` (or no device) becomes
  ``cuda:LOCAL_RANK`` under torchrun and the current CUDA device otherwise, since
  ``torch.cuda.set_device`` and NCCL's ``device_id`` need one. Without CUDA it is the CPU.
* :class:`Precision` is ``--amp``: ``torch.autocast`` around the forward passes and the losses
  only (never around ``backward()`` or the optimizer steps), in bfloat16 where the device has it
  (Ampere and later GPUs; CPUs), else float16 with one ``torch.amp.GradScaler`` shared by the
  predictor's and the discriminator's optimizers (their gradients are unscaled before clipping;
  a step whose gradients overflowed is skipped and the scale lowered). Weights, optimizer states
  and the losses stay float32. Off (the default), everything is float32 and CPU runs are bitwise
  reproducible.
"""
from __future__ import annotations

import contextlib
import os

import torch


def pick_device(device=None, local_rank: int | None = None) -> torch.device:
    """The device a run uses, with an index on CUDA.

    ``device``: None (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    a ``torch.device``. ``local_rank``: the process's GPU under torchrun (default: the
    ``LOCAL_RANK`` environment variable when ``WORLD_SIZE`` > 1). A bare ``cuda`` becomes
    ``cuda:local_rank`` under torchrun, else ``cuda:torch.cuda.current_device()``; an explicit
    index is kept. A ``ValueError`` names the device when CUDA is absent or the index is out of
    range.
    """
    if local_rank is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r} is not a device name (valid: 'cpu', 'cuda', "
                         f"'cuda:N')") from e
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but CUDA is not available here "
                         "(use 'cpu')")
    index = device.index
    if index is None:
        index = local_rank if local_rank is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise ValueError(f"device cuda:{index} does not exist: this machine has {count} CUDA "
                         f"device(s), cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def default_device() -> torch.device:
    """:func:`pick_device` with nothing asked for: this process's GPU, else the CPU."""
    return pick_device()


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where ``device`` computes it natively (CPUs; CUDA GPUs from Ampere on), else
    float16 (older GPUs, with a GradScaler)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


class Precision:
    """Mixed precision for one training run (see the module docstring); ``enabled=False`` is
    plain float32 and every method a pass-through."""

    def __init__(self, device: torch.device, enabled: bool = False, dtype: torch.dtype | None = None):
        self.device_type = torch.device(device).type
        self.enabled = bool(enabled)
        self.dtype = (dtype or amp_dtype(torch.device(device))) if self.enabled else torch.float32
        use_scaler = self.enabled and self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device_type) if use_scaler else None

    def autocast(self):
        """The context for forward passes and losses."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def clip(self, optimizer, parameters, max_norm: float | None) -> None:
        """Clip the gradients' norm (unscaled first under a GradScaler); None: no clipping."""
        if max_norm is None:
            return
        if self.scaler:
            self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def step(self, optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)   # skipped when the gradients overflowed
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per iteration, after every optimizer stepped: the GradScaler's new scale."""
        if self.scaler:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)

    def __repr__(self) -> str:
        scaler = " + GradScaler" if self.scaler else ""
        return f"Precision({self.device_type}, {str(self.dtype).removeprefix('torch.')}{scaler})"


__all__ = ["Precision", "amp_dtype", "default_device", "pick_device"]
