"""Predictive memories (Table VII). Each is built from a ModelConfig by a factory in MEMORIES.

Interface: ``init_state(s) -> state`` and ``forward(s, state) -> (s_out, state, gates)``, where
``s`` is the spatial stream flowing up the stack (S_t^{k-1} -> S_t^k), ``state[0]`` the temporal
state carried over time (T_{t-1}^k -> T_t^k) and ``gates`` a dict of the unit's gate maps.
"""
from .stgru import STGRU

MEMORIES = {
    "stgru": lambda cfg: STGRU(cfg.hidden, cfg.latent_size, cfg.filter_size, cfg.update_gate_bias),
}


def build_memory(cfg):
    return MEMORIES[cfg.memory](cfg)


__all__ = ["MEMORIES", "STGRU", "build_memory"]
