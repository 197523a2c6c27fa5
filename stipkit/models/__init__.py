"""Models: encoders/decoders (MGST-AE), memories, the STIP predictor and the discriminator."""
from .autoencoder import Decoder, Encoder
from .compile import compile_steps, is_compiled
from .discriminator import Discriminator
from .memories import MEMORIES, STGRU, build_memory
from .stip import STIP, Rollout


def build_model(cfg):
    """(predictor, discriminator) for a :class:`~stipkit.config.Config`."""
    return STIP(cfg.model, input_length=cfg.input_length), Discriminator(cfg.model)


__all__ = ["STIP", "Rollout", "Discriminator", "Encoder", "Decoder", "STGRU", "MEMORIES",
           "build_memory", "build_model", "compile_steps", "is_compiled"]
