"""STRPM, the predecessor of STIP (Chang et al., CVPR 2022, Sec. 3, Eq. 1-4; Fig. 2).

Three encoders and three decoders (temporal, spatial, spatiotemporal) around a stack of RPMs
(:class:`~stipkit.models.memories.RPM`, Eq. 5-9). STRPM is STIP's sibling: both are run by the
kit's one rollout loop (:meth:`Predictor.forward <stipkit.models.rollout.Predictor.forward>`,
whose memory-stack state at t = 0 STRPM keeps) and say what one time step does.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .autoencoder import Decoder, Encoder
from .memories import build_stack
from .rollout import Predictor


class STRPM(Predictor):
    r"""The STRPM predictor (STRPM Sec. 3.1, Fig. 2).

    One time step t, from the frame :math:`v_t` (the clip of ``clip_length`` frames; 1 in STRPM):

    .. math::
        (T_E, S_E, O_E) = (Enc_T(v_t), Enc_S(v_t), Enc_O(v_t))                  \qquad (1)

        (T_P, S_P, O_P) = RPM(T_E, S_E, O_E, \mathcal{T}, \mathcal{S})           \qquad (2)

        (T_D, S_D, O_D) = (Dec_T(T_P), Dec_S(S_P), Dec_O(O_P))                   \qquad (3)

        \hat v_{t+1} = O_D \odot \tanh(W_{1\times1} * [T_D, S_D])              \qquad (4)

    The RPM stack (Eq. 2) reads :math:`T_E, S_E, O_E` at its bottom unit and
    :math:`H_t^{k-1}` above; :math:`T_P = T_t^K` and :math:`S_P = S_t^K` are the top unit's
    temporal and spatial states and :math:`O_P = H_t^K` its hidden state.

    Choices where the paper is silent (from the official code): each encoder is a 1x1
    convolution to ``hidden`` channels and N stride-2 3x3 convolutions, each followed by ReLU
    (STIP's :class:`Encoder` with slope 0); each decoder is N 3x3 stride-2 deconvolutions with
    ReLU between them (none after the last) and a 1x1 convolution to the frame's channels
    (``to_frame``), so :math:`T_D, S_D, O_D` are frame-sized; no recall (MGIR is STIP's);
    PyTorch's default initialisation. *Departure* (``RPMConfig.decode_gate``): the official code
    decodes the top unit's output gate :math:`R_O` as :math:`O_P`.

    **Start** (``ModelConfig.init``, the field every predictor shares): ``"default"`` is PyTorch's
    initialisation (the official code's; the ``strpm-*`` presets keep it, and the official-weights
    equivalence tests need it). ``"copy_last"`` (``ModelConfig.copy_route == "residual"``) makes
    Eq. 4 a residual on the clip's last frame,

    .. math::
        \hat v_{t+1} = v_t + O_D \odot \tanh(W_{1\times1} * [T_D, S_D]),

    with :math:`W_{1\times1}` (``head``, the last layer; weights and bias) zero at the start:
    :math:`\tanh(0) = 0`, so every prediction is :math:`v_t` exactly and the rollout, fed its own
    predictions, is copy-last. The gradient reaches ``head`` at once
    (:math:`O_D \odot [T_D, S_D]` is not zero) and Eq. 1-3's weights, PyTorch's, from the
    second step on.

    **Memory "none"** (``memory=NoMemoryConfig()``, :class:`~stipkit.models.memories.NoMemory`;
    the RPM stack removed, the kit's control): Eq. 2 becomes the identity,
    :math:`(T_P, S_P, O_P) = (T_E, S_E, O_E)`, so the model sees only the current frame (no
    temporal memory); STRPM has no skip connections between its encoders and decoders.
    """

    label = "STRPM"
    PARTS = {
        "encoders": "Encoders Enc_T, Enc_S, Enc_O (STRPM Eq. 1)",
        "memory": "Memory units",
        "decoders": "Decoders Dec_T, Dec_S, Dec_O (Eq. 3)",
        "to_frame": "Decoder 1x1 to frame channels (Eq. 3)",
        "head": "Output W_1×1 [T_D, S_D] (Eq. 4)",
    }

    def __init__(self, cfg: ModelConfig, input_length: int = 4):
        super().__init__(cfg, input_length)
        c, h, n = cfg.frame_channels, cfg.hidden, cfg.num_downsample
        self.streams = ("t", "s", "o")
        self.encoders = nn.ModuleDict({k: Encoder(c, h, cfg.clip_length, n, slope=0.0)
                                       for k in self.streams})
        self.memory = build_stack(cfg)  # K RPMs (Eq. 5-9)
        self.decoders = nn.ModuleDict({k: Decoder(h, n, last_act=False, slope=0.0)
                                       for k in self.streams})
        self.to_frame = nn.ModuleDict({k: nn.Conv2d(h, c, kernel_size=1) for k in self.streams})
        self.head = nn.Conv2d(2 * c, c, kernel_size=1)  # W_1x1 of Eq. 4
        self.memoryless = cfg.memory.name == "none"  # no RPM stack: Eq. 2 is the identity
        self.residual = cfg.copy_route == "residual"  # v̂ = v_t + Eq. 4 (class docstring)
        if self.residual:
            with torch.no_grad():
                self.head.weight.zero_()
                self.head.bias.zero_()
        self.to(memory_format=torch.channels_last)

    def encode(self, clip: list[torch.Tensor], keep: dict | None = None) -> dict:
        """Eq. 1: each stream's deepest level (T_E, S_E, O_E); keep: Fig. 5 features."""
        enc = {k: e(clip) for k, e in self.encoders.items()}
        if keep is not None:
            keep["levels"].append({"T_E": enc["t"], "S_E": enc["s"]})
        out = {k: levels[-1] for k, levels in enc.items()}
        if self.residual:  # v_t, the frame the residual start adds to (class docstring)
            out["last"] = clip[-1]
        return out

    def maps(self) -> dict[str, str]:
        return {"S_E": "S_E (spatial encoder, STRPM Eq. 1)",
                "T_E": "T_E (temporal encoder, STRPM Eq. 1)", **self.memory.maps()}

    def step(self, enc: dict, state, keep: dict | None = None) -> torch.Tensor:
        """Eq. 2-4 for one time step; ``state`` (the RPM stack's) is updated in place."""
        if self.memoryless:                                              # Eq. 2 is the identity
            s_p, maps = self.memory(enc["s"], state)
            inputs = {"t": enc["t"], "s": s_p, "o": enc["o"]}
        else:
            state.shared["E"] = {"t": enc["t"], "o": enc["o"]}            # the bottom RPM's T_E, O_E
            s_p, maps = self.memory(enc["s"], state)                     # Eq. 2, 5-9
            top = state.units[-1]
            o_p = maps[-1]["R_O"] if self.cfg.memory.decode_gate else top["H"]
            inputs = {"t": top["T"], "s": s_p, "o": o_p}
        if keep is not None:
            keep["maps"].append(maps)
        d = {k: self.to_frame[k](self.decoders[k](inputs[k])) for k in self.streams}  # Eq. 3
        frame = d["o"] * torch.tanh(self.head(torch.cat([d["t"], d["s"]], 1)))       # Eq. 4
        return frame.add_(enc["last"]) if self.residual else frame
