"""Parsing one environment variable into a checked value, for ``app.settings``.

Each helper returns the default when the variable is unset or empty, and raises
``ConfigError`` (its message starts with the variable's name) for anything it cannot take,
so ``app.settings`` can stop the worker at start naming the variable.
"""
from __future__ import annotations

from typing import Mapping


class ConfigError(ValueError):
    """An invalid setting; the message starts with the variable's name."""


def _number(env: Mapping[str, str], name: str, default, cast):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number ({cast.__name__}), got {raw!r}") from None


def env_int(env: Mapping[str, str], name: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
    value = _number(env, name, default, int)
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0) -> float:
    value = _number(env, name, default, float)
    if not value >= lo:  # also refuses nan
        raise ConfigError(f"{name} must be a number >= {lo}, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0/true/false), got {raw!r}")
