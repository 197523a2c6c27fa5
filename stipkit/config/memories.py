"""Each predictive memory's own config section (``ModelConfig.memory``), one frozen dataclass each.

A section holds only that memory's hyper-parameters; what every memory shares (``hidden``,
``filter_size``, ``num_layers``) stays in :class:`~stipkit.config.ModelConfig`. A subclass of
:class:`MemoryConfig` registers itself under its ``name``, the key of
``stipkit.models.memories.MEMORIES``, when it is defined: here (the kit's memories, which the
presets use) or in the memory's own module, whose import (``stipkit.models.memories``) makes
:func:`memory_config` and ``stipkit.config.from_dict`` know it. Plain data: this module imports
no model code. Where a paper leaves a value open the default is stipkit's choice, said in the
field's comment (and in the memory's docstring and the departures table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .errors import ConfigError, _check


@dataclass(frozen=True)
class MemoryConfig:
    """Base of every memory section; a subclass registers itself by its ``name``."""

    name: ClassVar[str] = ""
    registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        MemoryConfig.registry[cls.name] = cls

    def _positive(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            _check(isinstance(v, int) and v > 0, f"{type(self).__name__}.{n}", v,
                   "must be a positive integer")

    def _flags(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            _check(isinstance(v, bool), f"{type(self).__name__}.{n}", v, "must be True or False")

    def _finite(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            _check(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < float("inf"),
                   f"{type(self).__name__}.{n}", v, "must be a finite number")


@dataclass(frozen=True)
class STGRUConfig(MemoryConfig):
    """STGRU, STIP's memory (Eq. 5-7)."""

    name: ClassVar[str] = "stgru"
    update_bias: float = 0.0  # *departure*: the official code adds +1 inside U_t's sigmoid


@dataclass(frozen=True)
class ConvLSTMConfig(MemoryConfig):
    """ConvLSTM (Shi et al., 2015)."""

    name: ClassVar[str] = "convlstm"
    forget_bias: float = 1.0  # added inside the forget gate's sigmoid (PredRNN's code); paper: 0
    peephole: bool = True     # Eq. 3's peepholes W_c? o C (PredRNN's/OpenSTL's baselines drop them)

    def __post_init__(self) -> None:
        self._flags("peephole")


@dataclass(frozen=True)
class ConvGRUConfig(MemoryConfig):
    """ConvGRU (Ballas et al., 2016; Shi et al., 2017)."""

    name: ClassVar[str] = "convgru"


@dataclass(frozen=True)
class TrajGRUConfig(MemoryConfig):
    """TrajGRU (Shi et al., 2017): L learned links (Table VII: TrajGRU-L9)."""

    name: ClassVar[str] = "trajgru"
    links: int = 9
    flow_kernel: int = 5      # the flow network's kernels (HKO-7 traj_rnn.py: 5x5, a literal)
    warp: str = "paper"       # "paper": H[i+V, j+U]; "code": H[i-V, j-U] (HKO-7's GridGenerator(-flow))
    zero_flows: bool = True   # the flow network's output layer starts at zero (HKO-7's INIT_GRID)

    def __post_init__(self) -> None:
        self._positive("links", "flow_kernel")
        _check(self.flow_kernel % 2 == 1, "TrajGRUConfig.flow_kernel", self.flow_kernel,
               "must be odd (padding k//2 keeps the map size; HKO-7: 5)")
        _check(self.warp in ("paper", "code"), "TrajGRUConfig.warp", self.warp,
               "must be one of ('paper', 'code') (the first is the paper's; see stipkit.reports.departures)")
        self._flags("zero_flows")


@dataclass(frozen=True)
class DGRUConfig(MemoryConfig):
    """dGRU, the double-mapping GRU of Folded RNNs (Oliu et al., 2018)."""

    name: ClassVar[str] = "dgru"


@dataclass(frozen=True)
class STLSTMConfig(MemoryConfig):
    """ST-LSTM of PredRNN (Wang et al., 2017), with the zigzag memory M."""

    name: ClassVar[str] = "stlstm"
    forget_bias: float = 1.0  # PredRNN's code; the paper has none
    gate_bias: bool = False   # learned gate biases (Eq. 3's b); PredRNN's code has none

    def __post_init__(self) -> None:
        self._finite("forget_bias")
        self._flags("gate_bias")


@dataclass(frozen=True)
class CausalLSTMConfig(MemoryConfig):
    """Causal-LSTM of PredRNN++ (Wang et al., 2018), with the gradient highway unit."""

    name: ClassVar[str] = "causal_lstm"
    forget_bias: float = 1.0  # PredRNN++'s code; the paper has none
    highway: bool = True      # the gradient highway unit between the first two layers
    # True: the authors' cell (Yunbo426/predrnn-pp layers/CausalLSTMCell.py): W_3 filter_size
    # wide, g' without M, o_t with H_{t-1}. False (default, the tables'): Eq. 1 as written.
    authors_code: bool = False

    def __post_init__(self) -> None:
        self._flags("highway", "authors_code")


@dataclass(frozen=True)
class E3DLSTMConfig(MemoryConfig):
    """E3D-LSTM (Wang et al., 2019): clip-shaped states of depth tau, 3D convolutions on every
    path, and a recall over every past cell, as the authors' code (see ``E3DLSTM``)."""

    name: ClassVar[str] = "e3d_lstm"
    window: int = 2        # tau: the depth of the states, the input clip and the 3D kernels (code: 2)
    history: int = 0       # past cells recalled: 0 = all since t = 0 (the authors'), n = the n latest
    zigzag: bool = True    # M goes up and on in time (paper); False: every unit reads M_0 (both codes)
    gate_norm: bool = True  # LayerNorm after the X, H, M convolutions (the code; OpenSTL's layer_norm)
    forget_bias: float = 1.0  # inside F'_t's sigmoid (the code); the paper has none
    code: str = "google"   # "openstl": OpenSTL's port where it departs from google/e3d_lstm's cell

    def __post_init__(self) -> None:
        self._positive("window")
        h = self.history
        _check(isinstance(h, int) and not isinstance(h, bool) and h >= 0, "E3DLSTMConfig.history",
               h, "must be a non-negative integer (0: every past cell)")
        self._flags("zigzag", "gate_norm")
        self._finite("forget_bias")
        _check(self.code in ("google", "openstl"), "E3DLSTMConfig.code", self.code,
               "must be 'google' (the authors' TensorFlow cell) or 'openstl' (OpenSTL's port)")


@dataclass(frozen=True)
class ReversibleConfig(MemoryConfig):
    """Reversible predictive module of CrevNet (Yu et al., 2020): each half, and the ConvRNN in
    it, is ``hidden`` channels wide (the authors' cell width; see ReversiblePM)."""

    name: ClassVar[str] = "reversible"
    attention_kernel: int = 3  # the attention's middle convolution (authors' layers.py: 3x3)

    def __post_init__(self) -> None:
        self._positive("attention_kernel")
        _check(self.attention_kernel % 2 == 1, "ReversibleConfig.attention_kernel",
               self.attention_kernel, "must be odd (padding k//2 keeps the map size; authors: 3)")


@dataclass(frozen=True)
class RPMConfig(MemoryConfig):
    """RPM, the residual predictive memory of STRPM (Chang et al., 2022, Eq. 5-9)."""

    name: ClassVar[str] = "rpm"
    tau: int = 5       # past temporal states attended to (STRPM Sec. 4 and official code: 5)
    theta: int = 5     # lower-layer spatial states attended to (STRPM Sec. 4: 5)
    residual: bool = True  # STRPM Table 3: RPM with / without the residual
    forget_bias: float = 0.0  # added inside the gate of the ATT terms (official code: 1; paper: 0)
    # ATT_T, ATT_S: "conv" (paper and official code): a merging convolution of the states is ATT;
    # "softmax": the kit's own variant, that convolution as the query of per-position weights
    attention: str = "conv"
    # --- departures of the official STRPM code (paper or stipkit's reading is the default) ---
    temporal_states: str = "past"     # "repeat_last": tau copies of T_{t-1} (official list aliasing)
    spatial_states: str = "layers"    # "zigzag": S_t^0 = S_{t-1}^K and the window along the path
    stif_gate: bool = False           # official: the bottom STIF 1x1 also reads the gate R_O
    decode_gate: bool = False         # official: Dec_O decodes the top unit's R_O, not H_t^K

    def __post_init__(self) -> None:
        self._positive("tau", "theta")
        self._flags("residual", "stif_gate", "decode_gate")
        for name, valid in (("attention", ("conv", "softmax")),
                            ("temporal_states", ("past", "repeat_last")),
                            ("spatial_states", ("layers", "zigzag"))):
            v = getattr(self, name)
            _check(v in valid, f"RPMConfig.{name}", v,
                   f"must be one of {valid} (the first is the paper's; see stipkit.reports.departures)")


@dataclass(frozen=True)
class MotionRNNConfig(MemoryConfig):
    """MotionRNN (Wu et al., 2021): ST-LSTM layers with a MotionGRU between each two."""

    name: ClassVar[str] = "motionrnn"
    forget_bias: float = 1.0  # in the ST-LSTM's f_t, f'_t (PredRNN's code); the paper has none
    gate_bias: bool = False   # learned ST-LSTM gate biases; MotionRNN's code has none
    neighbourhood: int = 3    # k: each position warps k x k neighbours (official code: 3)
    momentum: float = 0.5     # alpha of the motion trend D_t (MotionRNN: 0.5)
    highway: bool = True      # the motion highway (1 - o_t) H_t^{l-1} into each layer
    # H_{t-1}^l of a layer's next step: "merged", the MotionGRU's output X_t^l (the code);
    # "own", the ST-LSTM's own output (stipkit before revision 2)
    carry: str = "merged"

    def __post_init__(self) -> None:
        real = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        self._finite("forget_bias")
        self._flags("gate_bias")
        _check(self.carry in ("merged", "own"), "MotionRNNConfig.carry", self.carry,
               "must be 'merged' (the code: the MotionGRU's output is the next H) or 'own'")
        self._positive("neighbourhood")
        _check(self.neighbourhood % 2 == 1, "MotionRNNConfig.neighbourhood", self.neighbourhood,
               "must be odd, so that the k x k neighbours centre on the position (e.g. 1 or 3)")
        _check(real(self.momentum) and 0 < self.momentum <= 1, "MotionRNNConfig.momentum",
               self.momentum, "must be in (0, 1]")
        self._flags("highway")


@dataclass(frozen=True)
class NoMemoryConfig(MemoryConfig):
    """No memory: the kit's control (not a paper's row). The deepest encoder features go straight
    to the decoders, with no recurrence and no parameters (``stipkit.models.memories.NoMemory``)."""

    name: ClassVar[str] = "none"


def memory_names() -> list[str]:
    """The names of every memory section (``ModelConfig.memory.name``)."""
    return sorted(MemoryConfig.registry)


def memory_config(name: str, **fields_) -> MemoryConfig:
    """The config section of memory ``name`` (defaults, optionally overridden)."""
    if name not in MemoryConfig.registry:
        raise ConfigError(f"ModelConfig.memory={name!r} is invalid: must be one of {memory_names()} "
                          "(a section defined in its memory's module registers when "
                          "stipkit.models.memories is imported)")
    return MemoryConfig.registry[name](**fields_)
