"""Checks of ``App(...)``'s numeric options: a bad value is a ConfigurationError naming
the option, raised by the constructor before anything opens."""

from __future__ import annotations

from typing import Any

from statekeeper.errors import ConfigurationError


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_seconds(name: str, value: Any, *, rule: str = "a positive number of seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be {rule}, got {value!r}")
    return float(value)


def optional_seconds(name: str, value: Any) -> float | None:
    """A positive number of seconds, or None."""
    if value is None:
        return None
    return positive_seconds(name, value, rule="a positive number of seconds or None")
