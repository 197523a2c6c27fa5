"""Predictive memories (Table VII): one module per memory, registered in :data:`MEMORIES`.

The interface every memory implements and the stack that wires units together are in
:mod:`stipkit.models.memories.base`; a memory's hyper-parameters are its section of the
config (``stipkit.config.memories.MemoryConfig`` subclasses, e.g. ``STGRUConfig``). Each class
also carries what the tables say about it (label, Table VII row, open choices, the authors'
count: see :class:`~stipkit.models.memories.base.Memory`), so that the reports read everything
off :data:`MEMORIES`. Adding a memory: docs/layout.md, "Adding a memory".
"""
from ...config import ConfigError
from ...config.memories import memory_names
from .base import Context, Memory, MemoryStack, StackState
from .stgru import STGRU
from .convlstm import ConvLSTM
from .convgru import ConvGRU
from .dgru import DGRU
from .stlstm import STLSTM
from .causal_lstm import CausalLSTM
from .trajgru import TrajGRU
from .e3d_lstm import E3DLSTM
from .reversible import ReversiblePM
from .rpm import RPM
from .motion_gru import MotionGRU, MotionRNN
from .none import NoMemory

#: name (``ModelConfig.memory.name``) -> the unit's class
MEMORIES: dict[str, type[Memory]] = {
    "stgru": STGRU,
    "convlstm": ConvLSTM,
    "convgru": ConvGRU,
    "dgru": DGRU,
    "stlstm": STLSTM,
    "causal_lstm": CausalLSTM,
    "trajgru": TrajGRU,
    "e3d_lstm": E3DLSTM,
    "reversible": ReversiblePM,
    "rpm": RPM,
    "motionrnn": MotionRNN,
    "none": NoMemory,  # the kit's control: no memory (the identity)
}


def build_stack(cfg) -> MemoryStack:
    """The memory stack of a :class:`~stipkit.config.ModelConfig`: ``MEMORIES[name].stack(cfg)``."""
    name = cfg.memory.name
    if name not in MEMORIES:
        raise ConfigError(f"ModelConfig.memory.name={name!r} has a config section but no module in "
                          f"stipkit.models.memories.MEMORIES (registered: {sorted(MEMORIES)}; "
                          f"config sections: {memory_names()})")
    return MemoryStack(MEMORIES[name].stack(cfg))


__all__ = ["MEMORIES", "Context", "Memory", "MemoryStack", "StackState", "STGRU", "build_stack",
           "ReversiblePM", "RPM",
           "MotionRNN", "MotionGRU",
           "TrajGRU", "E3DLSTM",
           "STLSTM", "CausalLSTM",
           "ConvLSTM", "ConvGRU", "DGRU", "NoMemory"]
