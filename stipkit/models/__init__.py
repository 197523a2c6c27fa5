"""Models: encoders/decoders (MGST-AE), memories, the predictors and the discriminator.

:data:`MODELS` is the registry of predictors: ``ModelConfig.name`` -> class. A predictor class
subclasses :class:`Predictor` (``rollout.py``: the one rollout loop, whose ``forward(frames,
mask, ...)`` returns a :class:`Rollout`), takes ``(ModelConfig, input_length=...)``, implements
its hooks (``encode``, ``step``, ``maps``, ``init_state``) and declares ``label`` (its name in
result tables), ``PARTS`` (its child modules, described) and ``STEPS`` (the methods
:func:`compile_steps` compiles).
"""
from ..config import ConfigError
from .autoencoder import Decoder, Encoder
from .beyondmse import BeyondMSE, MultiScaleDiscriminator
from .compile import compile_steps, is_compiled
from .discriminator import Discriminator
from .memories import MEMORIES, STGRU, Memory, MemoryStack, build_stack
from .rollout import Predictor, Rollout
from .stip import STIP
from .strpm import STRPM

#: name (``ModelConfig.name``) -> predictor class
MODELS = {
    "stip": STIP,
    "beyondmse": BeyondMSE,
    "strpm": STRPM,
}


def build_predictor(cfg, input_length: int = 4):
    """The predictor a :class:`~stipkit.config.ModelConfig` names (``cfg.name``)."""
    if cfg.name not in MODELS:
        raise ConfigError(f"ModelConfig.name={cfg.name!r} is invalid: registered models are "
                          f"{sorted(MODELS)}")
    return MODELS[cfg.name](cfg, input_length=input_length)


def build_model(cfg):
    """(predictor, discriminator) for a :class:`~stipkit.config.Config`; BeyondMSE's is its
    multi-scale discriminator."""
    disc = MultiScaleDiscriminator if cfg.model.name == "beyondmse" else Discriminator
    return build_predictor(cfg.model, cfg.input_length), disc(cfg.model)


__all__ = ["MODELS", "Predictor", "STIP", "STRPM", "Rollout", "Discriminator", "Encoder", "Decoder", "STGRU", "MEMORIES",
           "Memory", "MemoryStack", "build_stack", "build_predictor", "build_model",
           "compile_steps", "is_compiled"]
