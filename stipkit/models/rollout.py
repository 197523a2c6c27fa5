"""The rollout every predictor shares (Alg. 1 lines 2-21): one loop over time around one step.

Read top to bottom: :class:`Rollout` is what a rollout returns; :class:`Predictor` is the base
class of every predictor of the kit (:class:`~stipkit.models.STIP`,
:class:`~stipkit.models.STRPM`, :class:`~stipkit.models.beyondmse.BeyondMSE`, siblings); its
:meth:`Predictor.forward` is the one rollout loop (training, evaluation, notebooks and the
official-weights loaders all call it). A predictor says what one time step does through four
hooks:

* ``encode(clip, keep)``: the clip of the last ``clip_length`` patched frames -> whatever
  ``step`` reads (STIP: Alg. 1 line 6, Eq. 1);
* ``step(enc, state, keep)``: one time step -> the predicted patched frame, updating ``state``
  in place (STIP: Alg. 1 lines 7-19);
* ``init_state(inp)``: the recurrent state at t = 0 (Alg. 1 line 3; the default is a memory
  stack's, ``self.memory``);
* ``maps()``: the Fig. 5 maps it exposes, name -> description.

``keep`` (None unless ``return_features``) is where the hooks leave Fig. 5 features, one entry
per time step: ``keep["levels"]`` takes ``{name: [level 0, ..., level N]}`` (encoder features,
e.g. STIP's ``T_E``, ``S_E``), ``keep["maps"]`` takes ``[{name: map} for each unit]`` (memory
maps, e.g. STGRU's ``R_t``, ``U_t``); the rollout stacks them over time (:meth:`Predictor._stack`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..config import ModelConfig


@dataclass
class Rollout:
    """What :meth:`Predictor.forward` returns.

    predictions: (B, T-1, C, H, W), the frames v_2..v_T (not clamped); with ``future_only``
      (B, T-input_length, C, H, W), the frames v_{input_length+1}..v_T.
    features: only when asked for (Fig. 5), else None. Keys, in the order the hooks gave them:
      encoder features (STIP, STRPM: ``"T_E"``, ``"S_E"``): lists over encoder levels 0..N of
      (B, T-1, hidden, H_l, W_l); then one key per map the model exposes (``maps()``; STGRU:
      ``"R_t"``, ``"U_t"``): (B, T-1, K, C, H_N, W_N), over every unit that exposes it and every
      time step. Without STED both of STIP's encoder keys hold the single shared encoder's
      features; BeyondMSE has no encoder, only its scales' predictions ``"Y_k"``.
    """

    predictions: torch.Tensor
    features: dict | None = None


class Predictor(nn.Module):
    """A video predictor P: frames (B, T, C, H, W) -> :class:`Rollout` of v_2..v_T.

    A subclass builds its modules in ``__init__(cfg, input_length=4)`` (after
    ``super().__init__(cfg, input_length)``), implements the hooks ``encode``, ``step`` and
    ``maps`` (and ``init_state`` when its state is not a memory stack's) and declares:

    * ``label``: its name in result tables;
    * ``PARTS``: its child modules, described, in forward order (parameter and FLOP tables);
    * ``STEPS``: the methods that do one time step's work (:func:`compile_steps` compiles them;
      the rollout loop stays Python).
    """

    label: ClassVar[str]
    PARTS: ClassVar[dict[str, str]]
    STEPS: ClassVar[tuple[str, ...]] = ("encode", "step")

    def __init__(self, cfg: ModelConfig, input_length: int = 4):
        super().__init__()
        self.cfg = cfg
        self.input_length = input_length  # the default of forward's input_length

    # ---------------------------------------------------------------- the hooks
    def encode(self, clip: list[torch.Tensor], keep: dict | None = None):
        """The clip v_{t-L+1:t} (``clip_length`` patched frames (B, C', H', W'), oldest first)
        -> what :meth:`step` reads."""
        raise NotImplementedError

    def step(self, enc, state, keep: dict | None = None) -> torch.Tensor:
        """One time step from the encoded clip; updates ``state`` in place and returns the
        predicted patched frame (B, C', H', W')."""
        raise NotImplementedError

    def maps(self) -> dict[str, str]:
        """The features this model exposes to the Fig. 5 explorer: name -> description."""
        raise NotImplementedError

    def init_state(self, inp: torch.Tensor):
        """Alg. 1 line 3: the memory stack's state at t = 0 (zeros at the latent size) for a
        batch shaped like the patched frame ``inp``. A predictor without a memory stack
        (``self.memory``) overrides it."""
        lat = inp.new_zeros(inp.shape[0], self.cfg.hidden, *self.cfg.latent_size).contiguous(
            memory_format=torch.channels_last)
        return self.memory.init_state(lat)

    # ---------------------------------------------------------------- the rollout
    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None, *,
                input_length: int | None = None, total_length: int | None = None,
                return_features: bool = False, future_only: bool = False) -> Rollout:
        """Predict v_2..v_T from frames (B, T, C, H, W) in [0, 1].

        Steps t < input_length read the given frame; later steps read the model's own previous
        prediction, or -- scheduled sampling -- the true frame where ``mask`` (B, T-input_length-1)
        is 1. ``total_length`` (default T) may exceed T when no mask is given: the model then
        rolls out into the unseen future. uint8 frames (0..255) are accepted and scaled one step
        at a time, which keeps 4K inference small; predictions are float. ``future_only`` keeps
        only the predictions of the frames after the given ones, v_{input_length+1}..v_T (what
        evaluation scores; at 4K it spares 100 MB a frame).
        """
        input_length = self.input_length if input_length is None else input_length
        b, t_given = frames.shape[:2]
        total = t_given if total_length is None else total_length
        self._check(frames, mask, input_length, total)
        keep = {"levels": [], "maps": []} if return_features else None
        clip, state, pred, out = None, None, None, None
        skip = input_length - 1 if future_only else 0  # predictions not kept: v_2..v_input_length
        for t in range(total - 1):
            if t < input_length:
                inp = self.patchify(frames[:, t])
            elif mask is None:
                inp = pred
            else:
                m = mask[:, t - input_length].view(b, 1, 1, 1).to(pred.dtype)
                inp = m * self.patchify(frames[:, t]) + (1 - m) * pred
            pred = None  # (frees the last prediction early when it is not the input)
            if clip is None:  # t = 0: pad the first clip, T_0^k = 0 (Alg. 1 line 3)
                pad = inp if self.cfg.clip_padding == "replicate" else torch.zeros_like(inp)
                clip = [pad] * (self.cfg.clip_length - 1)
                state = self.init_state(inp)
                out = inp.new_empty(b, total - 1 - skip, *frames.shape[2:])
            clip.append(inp)                      # v_{t-L+1:t}, oldest first
            enc = self.encode(clip, keep)         # line 6
            clip.pop(0)                           # the oldest frame has served
            pred = self.step(enc, state, keep)    # lines 7-19
            if t >= skip:
                self.unpatchify_into(out[:, t - skip], pred)
        return Rollout(out, self._stack(keep) if keep is not None else None)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Table I "Patch": PixelUnshuffle(x) -- (C, H, W) to (C*p*p, H/p, W/p) -- as float and
        channels_last, in one copy; uint8 frames (0..255) are scaled to [0, 1]."""
        p = self.cfg.patch
        b, c, h, w = x.shape
        blocks = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)  # (b, h', w', c, i, j)
        y = torch.empty(blocks.shape, dtype=torch.get_default_dtype() if x.dtype == torch.uint8
                        else x.dtype, device=x.device).copy_(blocks)
        if x.dtype == torch.uint8:
            y.mul_(1 / 255)
        return y.view(b, h // p, w // p, c * p * p).permute(0, 3, 1, 2)     # channels_last view

    def unpatchify_into(self, dst: torch.Tensor, x: torch.Tensor) -> None:
        """dst (B, C, H, W) <- PixelShuffle(x), written in place (no full-size temporary)."""
        p = self.cfg.patch
        b, c, h, w = dst.shape
        dst.view(b, c, h // p, p, w // p, p).copy_(
            x.view(b, c, p, p, h // p, w // p).permute(0, 1, 4, 2, 5, 3))

    @staticmethod
    def _stack(keep: dict) -> dict:
        """Features over time (dim 1): encoder levels stay lists over levels; memory maps get a
        unit axis at dim 2, over the units that expose them."""
        out = {}
        for name in dict.fromkeys(name for per_step in keep["levels"] for name in per_step):
            out[name] = [torch.stack(level, 1) for level in zip(*(s[name] for s in keep["levels"]))]
        for name in dict.fromkeys(name for per_unit in keep["maps"] for m in per_unit for name in m):
            steps = [torch.stack([m[name] for m in per_unit if name in m], 1)
                     for per_unit in keep["maps"]]
            out[name] = torch.stack(steps, 1)
        return out

    def _check(self, frames, mask, input_length, total) -> None:
        """The input checks: frame shape, input_length, enough given frames, mask shape."""
        cfg = self.cfg
        want = (cfg.img_channels, cfg.height, cfg.width)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != want:
            raise ValueError(f"frames must be (B, T, C, H, W) with (C, H, W)={want} for this model, "
                             f"got {tuple(frames.shape)}")
        if not 1 <= input_length < total:
            raise ValueError(f"input_length={input_length} must be in [1, total_length-1={total - 1}]")
        need = total - 1 if mask is not None else min(input_length, total - 1)
        if frames.shape[1] < need:
            raise ValueError(f"frames has T={frames.shape[1]} but the rollout needs at least {need} "
                             f"given frames (input_length={input_length}, total_length={total}, "
                             f"mask {'given' if mask is not None else 'not given'})")
        if mask is not None and tuple(mask.shape) != (frames.shape[0], total - input_length - 1):
            raise ValueError(f"mask must be (B, total_length-input_length-1)="
                             f"{(frames.shape[0], total - input_length - 1)}, got {tuple(mask.shape)}")
