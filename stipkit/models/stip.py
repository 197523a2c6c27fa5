"""STIP, the predictor (Sec. III-A, Alg. 1 lines 2-21): MGST-AE around a stack of memories.

Read top to bottom: ``STIP.forward`` is the one rollout loop of the kit (training, evaluation,
notebooks and the official-weights loader all call it); ``STIP.step`` is one time step of
Alg. 1 (lines 6-19).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig
from .autoencoder import Decoder, Encoder
from .memories import StackState, build_stack


@dataclass
class Rollout:
    """What :meth:`STIP.forward` returns.

    predictions: (B, T-1, C, H, W), the frames v_2..v_T (not clamped); with ``future_only``
      (B, T-input_length, C, H, W), the frames v_{input_length+1}..v_T.
    features: only when asked for (Fig. 5), else None. Keys:
      ``"T_E"``, ``"S_E"``: lists over encoder levels 0..N of (B, T-1, hidden, H_l, W_l);
      one key per map the memory exposes (``STIP.maps()``; STGRU: ``"R_t"``, ``"U_t"``):
      (B, T-1, K, C, H_N, W_N), over every unit that exposes it and every time step.
      Without STED both encoder keys hold the single shared encoder's features.
    """

    predictions: torch.Tensor
    features: dict | None = None


class STIP(nn.Module):
    """The STIP predictor P of Alg. 1.

    Pluggable parts (all from :class:`~stipkit.config.ModelConfig`): the memory (``memory``), the
    encoder/decoder scheme (``sted``: two paths or one; ``mgir``: recall on/off) and every
    official-code departure. Without STED, one encoder feeds both T_E and S_E and one decoder
    reads the 1x1 merge of [T^N, S^N] (the official cell's unused ``conv_last`` has this shape).
    The memory stack (:class:`~stipkit.models.memories.MemoryStack`) owns the wiring between its
    units; STIP reads the bottom unit's temporal state (line 7) and the top unit's (line 12).
    """

    label = "STIP"  # the method's name in result tables
    STEPS = ("encode", "step")  # the methods that do one time step's work (compile_steps)
    PARTS = {  # child module -> what it is (parameter and FLOP tables), in forward order
        "encoders": "Encoders Enc_T, Enc_S (Eq. 1)",
        "merge_t": "Merge W_1×1[T_E, T] (Alg. 1 line 7)",
        "memory": "Memory units",
        "merge_ts": "Merge W_1×1[T^N, S^N] (no STED)",
        "decoders": "Decoders Dec_T, Dec_S (Eq. 3)",
        "head": "Fusion W_1×1 (Eq. 4)",
    }

    def __init__(self, cfg: ModelConfig, input_length: int = 4):
        super().__init__()
        self.cfg = cfg
        self.input_length = input_length
        c, h, n = cfg.frame_channels, cfg.hidden, cfg.num_downsample
        self.streams = ("t", "s") if cfg.sted else ("t",)
        self.encoders = nn.ModuleDict({k: Encoder(c, h, cfg.clip_length, n) for k in self.streams})
        self.merge_t = nn.Conv2d(2 * h, h, kernel_size=1)  # Alg. 1 line 7: W_1x1 * [T_E, T^1]
        self.memory = build_stack(cfg)  # K units and their wiring (Alg. 1 lines 8-11)
        self.merge_ts = None if cfg.sted else nn.Conv2d(2 * h, h, kernel_size=1)
        self.decoders = nn.ModuleDict(
            {k: Decoder(h, n, last_act=cfg.last_upsample_act) for k in self.streams})
        # Eq. 4, W_1x1 * [T_D, S_D], written as W_T * T_D + W_S * S_D (the same convolution split
        # by input channels; it spares materialising the concatenation at full resolution).
        self.head = nn.ModuleDict({k: nn.Conv2d(h, c, kernel_size=1, bias=(k == "t")) for k in self.streams})
        if cfg.init == "copy_last":
            self.init_copy_last()
        # channels_last is oneDNN's (and cuDNN's) preferred layout: on CPU it makes the 1x1 and
        # transposed convolutions several times faster (benchmarks/bench_model.py).
        self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def init_copy_last(self) -> None:
        """Start as the copy-last-frame predictor: v̂_{t+1} = v_t exactly, before any training.

        The paper does not say how STIP is initialised (the official code keeps PyTorch's
        defaults). ``ModelConfig.init="copy_last"`` routes the clip's last frame along the MGIR
        path of the spatial stream (the only one without STED): e_0 and e_1 of Enc_S carry v_t
        (:meth:`Encoder.init_copy`), the last layer of Dec_S puts it back together from the
        recalled lambda * S_E^{-N} (:meth:`Decoder.init_copy`), and its 1x1 head (Eq. 4) passes
        it through; the temporal head starts at zero. Every other weight -- the temporal
        encoder and decoder, the memory -- keeps its default, and every weight trains: the model
        begins where copy-last is and learns what changes.
        Valid when MGIR is on, N >= 2 and 4 * C * patch^2 <= hidden (:class:`ModelConfig`
        checks it).
        """
        cfg = self.cfg
        c = cfg.frame_channels
        stream = "s" if cfg.sted else "t"  # appearance: the spatial stream (STED, Sec. III-A1)
        self.encoders[stream].init_copy(c, gain=1 / cfg.recall_weight)
        self.decoders[stream].init_copy(c, weight=cfg.recall_weight)
        for head in self.head.values():
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()
        self.head[stream].weight[:, :c, 0, 0] = torch.eye(c)

    # ---------------------------------------------------------------- one time step
    def encode(self, clip: list[torch.Tensor], keep: dict | None = None) -> dict:
        """Alg. 1 line 6, Eq. 1: (T_E, S_E) = (Enc_T(v_{t-L+1:t}), Enc_S(v_{t-L+1:t})).

        clip: the last L patched frames (B, C', H', W'), oldest first. Returns each stream's
        levels e_1..e_N (e_N feeds the memory; all are recalled by MGIR). keep: where to append
        Fig. 5 features (every level, e_0 included).
        """
        enc = {k: e(clip) for k, e in self.encoders.items()}
        if keep is not None:
            keep["T_E"].append(enc["t"])
            keep["S_E"].append(enc["s"] if self.cfg.sted else enc["t"])
        return {k: levels[1:] for k, levels in enc.items()}

    def maps(self) -> dict[str, str]:
        """The features this model exposes to the Fig. 5 explorer: name -> description."""
        return {"S_E": "S_E (spatial encoder, Eq. 1)", "T_E": "T_E (temporal encoder, Eq. 1)",
                **self.memory.maps()}

    def step(self, enc: dict, state: StackState, keep: dict | None = None) -> torch.Tensor:
        """Alg. 1 lines 7-19 for one time step: run the memories, decode, fuse.

        enc: the encoded clip (:meth:`encode`). state: the memory stack's state, updated in
        place. Returns the predicted patched frame (B, C', H', W').
        """
        cfg = self.cfg
        t_e = enc["t"][-1]
        s_e = enc["s"][-1] if cfg.sted else t_e
        bottom, key = state.units[0], self.memory.bottom_temporal      # line 7: T^1 <- W[T_E, T^1]
        state.units[0] = {**bottom, key: self.merge_t(torch.cat([t_e, bottom[key]], 1))}
        s, maps = self.memory(s_e, state)                               # lines 8-11, Eq. 2, 5-7
        if keep is not None:
            keep["maps"].append(maps)
        top_t, top_s = state.units[-1][self.memory.top_temporal], s
        if cfg.sted:  # T^N -> Dec_T, S^N -> Dec_S (official: swapped)
            inputs = {"t": top_s, "s": top_t} if cfg.swap_decoder_states else {"t": top_t, "s": top_s}
        else:
            inputs = {"t": self.merge_ts(torch.cat([top_t, top_s], 1))}
        frame = None
        for k in self.streams:                                          # lines 12-18, Eq. 3
            decoded = self.decoders[k](inputs[k], enc[k] if cfg.mgir else None,
                                       cfg.recall_weight, cfg.recall_deepest)
            y = self.head[k](decoded)                                   # line 19, Eq. 4
            frame = y if frame is None else frame.add_(y)
        return frame

    def init_state(self, inp: torch.Tensor):
        """Alg. 1 line 3: the memory stack's state at t = 0 (zeros at the latent size) for a
        batch shaped like the patched frame ``inp``. A predictor that reuses this rollout with
        other state overrides it."""
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
        keep = {"T_E": [], "S_E": [], "maps": []} if return_features else None
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
        """Features over time: encoder levels (lists) and memory maps (a unit axis at dim 2)."""
        levels = lambda seq: [torch.stack(level, 1) for level in zip(*seq)]  # noqa: E731
        out = {"T_E": levels(keep["T_E"]), "S_E": levels(keep["S_E"])}
        names = dict.fromkeys(name for per_unit in keep["maps"][0] for name in per_unit)
        for name in names:  # (B, K, ...) per step, over the units that expose the map
            steps = [torch.stack([m[name] for m in per_unit if name in m], 1)
                     for per_unit in keep["maps"]]
            out[name] = torch.stack(steps, 1)
        return out

    def _check(self, frames, mask, input_length, total) -> None:
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
