"""The one error of the configuration: :class:`ConfigError`, whose message names the field."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is out of its valid range; the message names the field."""


def _check(ok: bool, where: str, value, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{where}={value!r} is invalid: {valid}")
