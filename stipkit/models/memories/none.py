"""No memory: the kit's control for "does the memory work?" (not a row of any paper's table)."""
from __future__ import annotations

import math

import torch

from .base import Context, Memory, State


class NoMemory(Memory):
    r"""The identity in place of a predictive memory: no recurrence, no parameters.

    One unit maps its input straight through, :math:`S_t^k = S_t^{k-1}`, and keeps no state, so a
    stack of them is the identity and the deepest encoder features of each step reach the
    decoders unchanged:

    * STIP (Alg. 1 lines 7-12): :math:`T^N = T_E` and :math:`S^N = S_E` (Eq. 1), decoded by
      Eq. 3 and fused by Eq. 4; the 1x1 merge of line 7, :math:`W_{1\times1} * [T_E, T_{t-1}^1]`,
      is left out, since there is no :math:`T_{t-1}` to merge into (``STIP.merge_t`` is None);
    * STRPM (its Eq. 2): :math:`(T_P, S_P, O_P) = (T_E, S_E, O_E)`, decoded by its Eq. 3-4.

    The model then sees only the current clip -- the frame :math:`v_t` (the last ``clip_length``
    frames: STIP's Enc_T / Enc_S read :math:`v_{t-L+1:t}`, L = 2 in the small presets; STRPM
    and Table VII's plain encoder/decoder L as configured) -- and no temporal memory across
    steps, plus whatever the encoder/decoder skip connections carry (STIP's MGIR recall, Eq. 3,
    when ``mgir`` is on). A memory that does not beat this control in the Table VII ablation has
    not shown that it uses the past.

    Memory interface (:mod:`stipkit.models.memories.base`): the state is empty. ``TEMPORAL`` names
    the temporal path ``"T"`` only because a :class:`~stipkit.models.memories.MemoryStack` needs
    its bottom and top units to have one: STIP and STRPM see that the memory is ``NoMemory``
    (``ModelConfig.memory.name == "none"``) and pass T_E (and O_E) to the decoders themselves.
    Exposed maps: none.
    """

    MAPS = {}
    TEMPORAL = "T"
    CITE = "identity, the kit's control"
    LABEL = "No memory"
    TABLE7_ROW = 0           # the first row of the kit's Table VII: the control every memory faces
    IN_PAPER_TABLE7 = False  # the kit's control, not a paper row
    CHOICES = (
        ("what replaces the memory",
         "- (not in the papers: the kit's control)",
         "the identity: T_E, S_E (STRPM: and O_E) go straight to the decoders; no state, no "
         "parameters, no merge of Alg. 1 line 7",
         "-"),
    )
    WHY_DIFFERENT = "not in Table VII: the kit's control, an identity with no parameters and no FLOPs."
    AUTHORS_PARAMS_M = (math.nan, "no authors' code (the kit's control)")

    @classmethod
    def from_config(cls, cfg) -> "NoMemory":
        """One unit (its section, ``NoMemoryConfig``, has no fields)."""
        return cls()

    def init_state(self, x: torch.Tensor) -> State:
        """Nothing is carried over time."""
        return {}

    def forward(self, x: torch.Tensor, state: State, ctx: Context | None = None):
        return x, {}, {}
