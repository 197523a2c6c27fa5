"""stipkit: a study kit for STIP (Chang et al., 2022) and its predecessor STRPM (CVPR 2022).

Layout follows the architecture:
data -> models (encoders/decoders, memories, discriminator) -> losses -> train -> evaluate -> viz.
"""

__version__ = "0.1.0"


def pretrained(name: str = "study"):
    """``(predictor, Config)`` of the weights shipped in ``stipkit/weights/``, checked against
    their provenance: ``study`` (the study preset on the real clips, ``make pretrain``) or
    ``study-digits`` (on Moving Digits, ``make pretrain-digits``); see
    :func:`stipkit.training.zoo.pretrained`."""
    from .training.zoo import pretrained as load

    return load(name)
