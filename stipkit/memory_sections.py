"""Each predictive memory's own config section (``ModelConfig.memory``), one frozen dataclass each.

A section holds only that memory's hyper-parameters; what every memory shares (``hidden``,
``filter_size``, ``num_layers``) stays in :class:`~stipkit.config.ModelConfig`. A subclass of
:class:`MemoryConfig` registers itself under its ``name``, the key of
``stipkit.models.memories.MEMORIES``. Plain data: this module imports no model code. Where a
paper leaves a value open the default is stipkit's choice, said in the field's comment (and in
the memory's docstring and the departures table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config_errors import ConfigError, _check


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
        _check(isinstance(self.peephole, bool), "ConvLSTMConfig.peephole", self.peephole,
               "must be True or False")


@dataclass(frozen=True)
class ConvGRUConfig(MemoryConfig):
    """ConvGRU (Ballas et al., 2016; Shi et al., 2017)."""

    name: ClassVar[str] = "convgru"


@dataclass(frozen=True)
class TrajGRUConfig(MemoryConfig):
    """TrajGRU (Shi et al., 2017): L learned links (Table VII: TrajGRU-L9)."""

    name: ClassVar[str] = "trajgru"
    links: int = 9

    def __post_init__(self) -> None:
        self._positive("links")


@dataclass(frozen=True)
class DGRUConfig(MemoryConfig):
    """dGRU, the double-mapping GRU of Folded RNNs (Oliu et al., 2018)."""

    name: ClassVar[str] = "dgru"


@dataclass(frozen=True)
class STLSTMConfig(MemoryConfig):
    """ST-LSTM of PredRNN (Wang et al., 2017), with the zigzag memory M."""

    name: ClassVar[str] = "stlstm"
    forget_bias: float = 1.0  # PredRNN's code; the paper has none


@dataclass(frozen=True)
class CausalLSTMConfig(MemoryConfig):
    """Causal-LSTM of PredRNN++ (Wang et al., 2018), with the gradient highway unit."""

    name: ClassVar[str] = "causal_lstm"
    forget_bias: float = 1.0  # PredRNN++'s code; the paper has none
    highway: bool = True      # the gradient highway unit between the first two layers


@dataclass(frozen=True)
class E3DLSTMConfig(MemoryConfig):
    """E3D-LSTM (Wang et al., 2019): 3D convolutions over a window of tau states."""

    name: ClassVar[str] = "e3d_lstm"
    window: int = 2  # tau: past states recalled by self-attention (and the 3D kernel's depth)

    def __post_init__(self) -> None:
        self._positive("window")


@dataclass(frozen=True)
class ReversibleConfig(MemoryConfig):
    """Reversible predictive module of CrevNet (Yu et al., 2020)."""

    name: ClassVar[str] = "reversible"


@dataclass(frozen=True)
class RPMConfig(MemoryConfig):
    """RPM, the residual predictive memory of STRPM (Chang et al., 2022, Eq. 5-9)."""

    name: ClassVar[str] = "rpm"
    tau: int = 5       # past temporal states attended to (STRPM Sec. 4 and official code: 5)
    theta: int = 5     # lower-layer spatial states attended to (STRPM Sec. 4: 5)
    residual: bool = True  # STRPM Table 3: RPM with / without the residual
    forget_bias: float = 0.0  # added inside the gate of the ATT terms (official code: 1; paper: 0)
    # --- departures of the official STRPM code (paper or stipkit's reading is the default) ---
    attention: str = "softmax"        # "conv": the merging convolution's output is ATT (official)
    temporal_states: str = "past"     # "repeat_last": tau copies of T_{t-1} (official list aliasing)
    spatial_states: str = "layers"    # "zigzag": S_t^0 = S_{t-1}^K and the window along the path
    stif_gate: bool = False           # official: the bottom STIF 1x1 also reads the gate R_O
    decode_gate: bool = False         # official: Dec_O decodes the top unit's R_O, not H_t^K

    def __post_init__(self) -> None:
        self._positive("tau", "theta")
        for name in ("residual", "stif_gate", "decode_gate"):
            v = getattr(self, name)
            _check(isinstance(v, bool), f"RPMConfig.{name}", v, "must be True or False")
        for name, valid in (("attention", ("softmax", "conv")),
                            ("temporal_states", ("past", "repeat_last")),
                            ("spatial_states", ("layers", "zigzag"))):
            v = getattr(self, name)
            _check(v in valid, f"RPMConfig.{name}", v,
                   f"must be one of {valid} (the first is the paper's; see stipkit.departures)")


@dataclass(frozen=True)
class MotionRNNConfig(MemoryConfig):
    """MotionRNN (Wu et al., 2021): ST-LSTM layers with a MotionGRU between each two."""

    name: ClassVar[str] = "motionrnn"
    forget_bias: float = 1.0  # in the ST-LSTM's f_t, f'_t (PredRNN's code); the paper has none
    neighbourhood: int = 3    # k: each position warps k x k neighbours (official code: 3)
    momentum: float = 0.5     # alpha of the motion trend D_t (MotionRNN: 0.5)
    highway: bool = True      # the motion highway (1 - o_t) H_t^l into the layer above

    def __post_init__(self) -> None:
        real = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        _check(real(self.forget_bias) and abs(self.forget_bias) < float("inf"),
               "MotionRNNConfig.forget_bias", self.forget_bias, "must be a finite number")
        self._positive("neighbourhood")
        _check(self.neighbourhood % 2 == 1, "MotionRNNConfig.neighbourhood", self.neighbourhood,
               "must be odd, so that the k x k neighbours centre on the position (e.g. 1 or 3)")
        _check(real(self.momentum) and 0 < self.momentum <= 1, "MotionRNNConfig.momentum",
               self.momentum, "must be in (0, 1]")
        _check(isinstance(self.highway, bool), "MotionRNNConfig.highway", self.highway,
               "must be True or False")


def memory_names() -> list[str]:
    """The names of every memory section (``ModelConfig.memory.name``)."""
    return sorted(MemoryConfig.registry)


def memory_config(name: str, **fields_) -> MemoryConfig:
    """The config section of memory ``name`` (defaults, optionally overridden)."""
    if name not in MemoryConfig.registry:
        raise ConfigError(f"ModelConfig.memory={name!r} is invalid: must be one of {memory_names()}")
    return MemoryConfig.registry[name](**fields_)
