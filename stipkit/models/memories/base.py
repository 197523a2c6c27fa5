"""The memory interface and the stack that wires memories together (STIP Alg. 1 lines 8-11).

A predictive memory is a recurrent unit that reads a spatial input from below and its own state
from the previous time step. How units are *wired* differs between the papers of Table VII:

* ConvLSTM, ConvGRU, STGRU: each unit k carries its own state over time, T_{t-1}^k -> T_t^k, and
  passes a spatial output up, S_t^{k-1} -> S_t^k;
* ST-LSTM (PredRNN): a spatiotemporal memory M zigzags through the stack: up the layers within a
  time step, then from the top unit at t-1 to the bottom unit at t;
* Causal-LSTM (PredRNN++): a gradient highway unit sits *between* the first two layers;
* E3D-LSTM and STRPM's RPM: a unit reads a window of its tau past states, and RPM also the
  theta states of the layers below it.

:class:`MemoryStack` implements all of these with one loop, and a unit says what it needs:

=================  ==========================================================================
``state``          its own state from t-1 (a dict of tensors), returned updated;
``ctx.shared``     the state that zigzags (a dict): what unit k writes, unit k+1 reads at the
                   same step; what the top unit writes, the bottom unit reads at the next step;
``ctx.past``       its ``window`` (tau) latest states, oldest first (the newest is ``state``);
``ctx.below``      the spatial outputs of the ``below`` (theta) layers under it at this step,
                   nearest last (the stack's input counts as the lowest).
=================  ==========================================================================

An extra unit between layers (the gradient highway) is one more :class:`Memory` in the list.
Each unit also names the internal maps it exposes (``MAPS``: e.g. STGRU's gates R_t and U_t) for
the Fig. 5 explorer, and which of its states is the *temporal* one (``TEMPORAL``): the state
Alg. 1 line 7 merges T_E into at the bottom and the temporal decoder reads at the top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

State = dict[str, torch.Tensor]


def lerp(start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor | float) -> torch.Tensor:
    """``torch.lerp`` (start + weight * (end - start)) with its operands promoted to one dtype.

    Under mixed precision (``torch.autocast``) a convolution's output is half precision while a
    LayerNorm's output or a carried state is float32, and ``torch.lerp`` refuses mixed dtypes.
    In float32 this is exactly ``torch.lerp``.
    """
    dtype = torch.promote_types(start.dtype, end.dtype)
    if isinstance(weight, torch.Tensor):
        dtype = torch.promote_types(dtype, weight.dtype)
        weight = weight.to(dtype)
    return torch.lerp(start.to(dtype), end.to(dtype), weight)


@dataclass
class Context:
    """What the stack hands a unit besides its input and state (see the module docstring)."""

    shared: State = field(default_factory=dict)
    past: list[State] = field(default_factory=list)
    below: list[torch.Tensor] = field(default_factory=list)


class Memory(nn.Module):
    """Base class of a predictive-memory unit.

    Subclasses implement ``init_state(x) -> State`` (the state at t = 0, Alg. 1 line 3) and
    ``forward(x, state, ctx) -> (x_out, state, maps)``; ``maps`` holds the tensors named in
    ``MAPS``. Optional: ``init_shared(x) -> State`` (the zigzag state at t = 0), and the instance
    attributes ``window`` (tau) and ``below`` (theta). ``from_config(cfg)`` builds one unit from
    a :class:`~stipkit.config.ModelConfig`; ``stack(cfg)`` the list of units of a whole stack
    (default: ``cfg.num_layers`` units).

    A registered memory also describes itself to the reports (no table lists it elsewhere):
    ``LABEL`` and ``TABLE7_ROW`` / ``IN_PAPER_TABLE7`` (its row in the ablation tables,
    :mod:`stipkit.reports.ablation_tables`), ``CHOICES``
    (:func:`stipkit.reports.departures.memory_choices`), ``WHY_DIFFERENT`` and
    ``AUTHORS_PARAMS_M`` (:func:`stipkit.reports.complexity.memory_table`), beside ``CITE``.
    """

    MAPS: ClassVar[dict[str, str]] = {}   # name -> what it is (the explorer's labels)
    TEMPORAL: ClassVar[str | None] = None  # the state T_E merges into / Dec_T reads (None: none)
    CITE: ClassVar[str] = ""               # its paper and equations, for tables ("Eq. 5-7")
    # The cell's revision: raised whenever its weights or outputs change at the same config, with
    # REVISION_NOTE saying what changed; a checkpoint of another revision is refused with it.
    REVISION: ClassVar[int] = 1
    REVISION_NOTE: ClassVar[str] = ""
    # What the reports say about it (stipkit.reports reads them off MEMORIES):
    LABEL: ClassVar[str] = ""              # its name in tables ("TrajGRU-L9"; "": the class's)
    # its row in the kit's Table VII ablation, rows ascending: the paper's row number (1 ConvGRU
    # ... 8 STGRU), a fraction for a memory the paper lacks (ConvLSTM 0.5); None: not a variant
    TABLE7_ROW: ClassVar[float | None] = None
    IN_PAPER_TABLE7: ClassVar[bool] = False  # STIP's Table VII has it (STGRU's claims are over these)
    # what its paper leaves open (or its authors' code does otherwise) and what stipkit chose,
    # rows (detail, paper / open, stipkit, config field or "-"): departures.memory_choices()
    CHOICES: ClassVar[tuple[tuple[str, str, str, str], ...]] = ()
    WHY_DIFFERENT: ClassVar[str] = ""      # why its count differs from Table VII's (memory_table)
    # one unit of its authors' code at Table VII's setting (hidden 128, kernel 5): parameters
    # without normalisation layers' in M = 2^20, counted from that code, and where (NaN: no
    # authors' code, or no one-unit cell in it; golden tests: tests/fixtures/README.md)
    AUTHORS_PARAMS_M: ClassVar[tuple[float, str]] = (math.nan, "")
    window: int = 0                        # tau: past states kept for ctx.past
    below: int = 0                         # theta: lower-layer outputs given in ctx.below

    @classmethod
    def from_config(cls, cfg) -> "Memory":
        raise NotImplementedError(f"{cls.__name__} must define from_config(cfg)")

    @classmethod
    def stack(cls, cfg) -> list["Memory"]:
        """The units of a stack of this memory: ``cfg.num_layers`` of them, bottom first."""
        return [cls.from_config(cfg) for _ in range(cfg.num_layers)]

    def init_state(self, x: torch.Tensor) -> State:
        raise NotImplementedError

    def init_shared(self, x: torch.Tensor) -> State:
        return {}


@dataclass
class StackState:
    """Everything a :class:`MemoryStack` carries from one time step to the next."""

    units: list[State]              # each unit's own state
    shared: State                   # the zigzag state (ctx.shared)
    past: list[list[State]]         # each unit's window of past states (empty when window = 0)


class MemoryStack(nn.ModuleList):
    """A stack of memory units, bottom first, and the wiring between them and across time.

    ``stack(x, state) -> (x_top, maps)`` runs one time step: ``x`` (the encoded frame, S_E) goes
    up through every unit; ``state`` is updated in place; ``maps`` is one dict per unit of the
    maps it exposes. State dict keys of the units are ``<k>.<param>``, as a plain ModuleList's.
    """

    def __init__(self, units):
        super().__init__(units)
        if len(self) == 0:
            raise ValueError("a MemoryStack needs at least one unit")
        for end, unit in (("bottom", self[0]), ("top", self[-1])):
            if unit.TEMPORAL is None:
                raise ValueError(f"the {end} unit of a stack ({type(unit).__name__}) must carry a "
                                 "temporal state (Memory.TEMPORAL)")

    def init_state(self, x: torch.Tensor) -> StackState:
        """The state at t = 0 for an input shaped like ``x`` (Alg. 1 line 3: zeros)."""
        units = [unit.init_state(x) for unit in self]
        shared: State = {}
        for unit in self:
            shared.update(unit.init_shared(x))
        past = [[s] if unit.window else [] for unit, s in zip(self, units)]
        return StackState(units, shared, past)

    def forward(self, x: torch.Tensor, state: StackState) -> tuple[torch.Tensor, list[dict]]:
        below, maps = [x], []
        for k, unit in enumerate(self):
            ctx = Context(shared=state.shared, past=state.past[k],
                          below=below[-unit.below:] if unit.below else [])
            x, state.units[k], m = unit(x, state.units[k], ctx)
            if unit.window:
                state.past[k] = (state.past[k] + [state.units[k]])[-unit.window:]
            below.append(x)
            maps.append(m)
        return x, maps

    @property
    def bottom_temporal(self) -> str:
        return self[0].TEMPORAL

    @property
    def top_temporal(self) -> str:
        return self[-1].TEMPORAL

    def maps(self) -> dict[str, str]:
        """Every map the stack's units expose: name -> description (bottom unit first)."""
        out: dict[str, str] = {}
        for unit in self:
            out.update(unit.MAPS)
        return out


__all__ = ["Context", "Memory", "MemoryStack", "StackState", "State", "lerp"]
