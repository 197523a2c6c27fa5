"""STIP, the predictor (Sec. III-A, Alg. 1 lines 2-21): MGST-AE around a stack of memories.

Read top to bottom: ``STIP.encode`` (Alg. 1 line 6) and ``STIP.step`` (lines 7-19) are one time
step of Alg. 1; the loop over time around them (lines 2-21) is the kit's one rollout loop,
:meth:`Predictor.forward <stipkit.models.rollout.Predictor.forward>`, with the memory stack's
state at t = 0 (line 3, :meth:`Predictor.init_state`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GATED, ModelConfig
from .autoencoder import Decoder, Encoder
from .flow import flow_warp_step
from .memories import StackState, build_stack
from .rollout import Predictor


class STIP(Predictor):
    """The STIP predictor P of Alg. 1.

    Pluggable parts (all from :class:`~stipkit.config.ModelConfig`): the memory (``memory``), the
    encoder/decoder scheme (``sted``: two paths or one; ``mgir``: recall on/off) and every
    official-code departure. Without STED, one encoder feeds both T_E and S_E and one decoder
    reads the 1x1 merge of [T^N, S^N] (the official cell's unused ``conv_last`` has this shape).
    The memory stack (:class:`~stipkit.models.memories.MemoryStack`) owns the wiring between its
    units; STIP reads the bottom unit's temporal state (line 7) and the top unit's (line 12).
    The loop over time, scheduled sampling and the state at t = 0 are
    :class:`~stipkit.models.rollout.Predictor`'s, shared with STRPM and BeyondMSE.

    **Start** (``ModelConfig.init``, one field for every predictor): ``"default"`` keeps PyTorch's
    initialisation, as the official code; ``"copy_last"`` starts as the copy-last predictor,
    v̂_{t+1} = v_t exactly before training, by one of two routes (``ModelConfig.copy_route``):

    * with MGIR (``"recall"``, the small presets' STIP): :meth:`init_copy_last` -- pure
      initialisation; v_t rides Enc_S's levels e_0, e_1 (Eq. 1) and the recall lambda * E^{-N}
      into the last layer of Dec_S (Eq. 3), past zeroed maps that nothing else writes, to the
      Eq. 4 head. Whatever the memory computes cannot reach those maps, so the start is copy-last
      with every memory of :data:`~stipkit.models.memories.MEMORIES`;
    * without MGIR, or with ``init="copy_last_residual"`` / ``"copy_last_gated"`` (``"residual"``,
      as STRPM and BeyondMSE; the gated one scales the residual by :class:`MotionGate`): Eq. 4
      becomes a residual,
      v̂_{t+1} = v_t + W_1x1 * [T_D, S_D], with W_1x1 (both halves of :attr:`head`, the last
      layer) zero at the start: the decoders, the memory and the encoders are PyTorch's and
      receive gradients from the second step on (as a zero-initialised residual branch).
      ``init="flow_warp_gated"`` (the kit's, in neither paper) adds the gated residual to v_t
      warped along the Farnebäck flow from v_{t-1} (:func:`~stipkit.models.flow.flow_warp_step`)
      instead of v_t: it starts as the flow-warp baseline's first step, and a still clip (zero
      flow, a closed gate) is still copied exactly.

    **Memory "none"** (:class:`~stipkit.models.memories.NoMemory`, the kit's control): STIP is
    its encoder/decoder alone, T^N = T_E and S^N = S_E with no merge of line 7 (``merge_t`` is
    None); it sees only the current clip, no temporal memory, plus what MGIR's recall carries.
    """

    label = "STIP"  # the method's name in result tables
    PARTS = {  # child module -> what it is (parameter and FLOP tables), in forward order
        "encoders": "Encoders Enc_T, Enc_S (Eq. 1)",
        "merge_t": "Merge W_1×1[T_E, T] (Alg. 1 line 7)",
        "memory": "Memory units",
        "merge_ts": "Merge W_1×1[T^N, S^N] (no STED)",
        "decoders": "Decoders Dec_T, Dec_S (Eq. 3)",
        "head": "Fusion W_1×1 (Eq. 4)",
        "gate": "Motion gate (the kit's, not the paper's)",
    }

    def __init__(self, cfg: ModelConfig, input_length: int = 4):
        super().__init__(cfg, input_length)
        c, h, n = cfg.frame_channels, cfg.hidden, cfg.num_downsample
        self.streams = ("t", "s") if cfg.sted else ("t",)
        self.encoders = nn.ModuleDict({k: Encoder(c, h, cfg.clip_length, n) for k in self.streams})
        # memory "none" (the control): no state to merge T_E into; T_E goes straight to Dec_T
        self.memoryless = cfg.memory.name == "none"
        self.merge_t = None if self.memoryless else nn.Conv2d(2 * h, h, kernel_size=1)  # line 7
        self.memory = build_stack(cfg)  # K units and their wiring (Alg. 1 lines 8-11)
        self.merge_ts = None if cfg.sted else nn.Conv2d(2 * h, h, kernel_size=1)
        self.decoders = nn.ModuleDict(
            {k: Decoder(h, n, last_act=cfg.last_upsample_act) for k in self.streams})
        # Eq. 4, W_1x1 * [T_D, S_D], written as W_T * T_D + W_S * S_D (the same convolution split
        # by input channels; it spares materialising the concatenation at full resolution).
        self.head = nn.ModuleDict({k: nn.Conv2d(h, c, kernel_size=1, bias=(k == "t")) for k in self.streams})
        self.residual = cfg.copy_route == "residual"  # v̂ = v_t + Eq. 4 (class docstring)
        # init="copy_last_gated": v̂ = v_t + g * Eq. 4, g from the motion in the clip (MotionGate);
        # "flow_warp_gated": v_t warped along the flow from v_{t-1} first (models/flow.py)
        self.gate = MotionGate(cfg.width // cfg.patch) if cfg.init in GATED else None
        self.flow_base = cfg.init == "flow_warp_gated"
        if cfg.copy_route == "recall":
            self.init_copy_last()
        elif self.residual:
            self.init_zero_residual()
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
        checks it). It does not depend on the memory: Dec_S's layer before the last writes zeros
        into the copied maps and the last layer's copied outputs read nothing else, so every memory
        (and memory "none") starts copy-last.
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

    @torch.no_grad()
    def init_zero_residual(self) -> None:
        """The residual copy-last start (``copy_route == "residual"``: STIP without MGIR, or any
        STIP with ``init="copy_last_residual"`` or ``"copy_last_gated"``): the Eq. 4 head W_1x1
        (both its halves, weights and bias) starts at zero, so that
        v̂_{t+1} = v_t + W_1x1 * [T_D, S_D] = v_t. Every other weight keeps PyTorch's."""
        for head in self.head.values():
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()

    # ------------------------------------------- one time step (the hooks Predictor.forward calls)
    def encode(self, clip: list[torch.Tensor], keep: dict | None = None) -> dict:
        """Alg. 1 line 6, Eq. 1: (T_E, S_E) = (Enc_T(v_{t-L+1:t}), Enc_S(v_{t-L+1:t})).

        clip: the last L patched frames (B, C', H', W'), oldest first. Returns each stream's
        levels e_1..e_N (e_N feeds the memory; all are recalled by MGIR). keep: where to append
        Fig. 5 features (every level, e_0 included).
        """
        enc = {k: e(clip) for k, e in self.encoders.items()}
        if keep is not None:
            keep["levels"].append({"T_E": enc["t"], "S_E": enc["s"] if self.cfg.sted else enc["t"]})
        out = {k: levels[1:] for k, levels in enc.items()}
        if self.residual:  # v_t, the frame the residual start adds to (class docstring)
            out["last"] = flow_warp_step(clip[-2], clip[-1]) if self.flow_base else clip[-1]
        if self.gate is not None:
            out["gate"] = self.gate(clip)
        return out

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
        if not self.memoryless:
            bottom, key = state.units[0], self.memory.bottom_temporal  # line 7: T^1 <- W[T_E, T^1]
            state.units[0] = {**bottom, key: self.merge_t(torch.cat([t_e, bottom[key]], 1))}
        s, maps = self.memory(s_e, state)                               # lines 8-11, Eq. 2, 5-7
        if keep is not None:
            keep["maps"].append(maps)
        # memory "none": the stack is the identity, T^N = T_E and S^N = S_E
        top_t = t_e if self.memoryless else state.units[-1][self.memory.top_temporal]
        top_s = s
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
        if self.gate is not None:                                       # g * Eq. 4
            frame = frame * enc["gate"]
        if self.residual:                                               # v_t + Eq. 4
            frame = frame.add_(enc["last"])
        return frame


class MotionGate(nn.Module):
    """The kit's still-scene lever, in neither paper (``ModelConfig.init="copy_last_gated"``).

    The residual start's output, v̂_{t+1} = v_t + r, becomes v̂_{t+1} = v_t + g * r with

        m = maxpool_k( mean_c |v_t - v_{t-1}| ),     g = m^2 / (m^2 + sigma^2),

    per pixel, from the last two frames of the clip the model is given (in a rollout, its own
    predictions). Where nothing moved within a k x k window (m = 0) the frame is copied exactly,
    so a still scene stays still at every step; a change the model makes is read back as motion
    only where it exceeds sigma (learned, starting at 0.01 of the [0, 1] range). k is about an
    eighth of the frame's width (9 at 64 pixels): room for the motion of one step.
    """

    def __init__(self, width: int, sigma: float = 0.01):
        super().__init__()
        self.kernel = 2 * max(1, width // 16) + 1
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))

    def forward(self, clip: list[torch.Tensor]) -> torch.Tensor:
        m = (clip[-1] - clip[-2]).abs().mean(1, keepdim=True)
        m = F.max_pool2d(m, self.kernel, stride=1, padding=self.kernel // 2).square()
        return m / (m + torch.exp(2 * self.log_sigma))
