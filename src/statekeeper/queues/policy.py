"""Retry policy: how often a failing message is retried, and how long it waits."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from statekeeper.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Retry:
    """At most ``max_attempts`` deliveries; before attempt n+1 the message waits a
    random time in [0, min(max_delay, initial_interval * backoff_rate**(n-1))]
    (exponential backoff with full jitter), or exactly that bound without jitter.
    """

    max_attempts: int = 5
    initial_interval: float = 1.0
    backoff_rate: float = 2.0
    max_delay: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("initial_interval", "backoff_rate", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative number, got {value!r}")
        if self.backoff_rate < 1:
            raise ConfigurationError(f"backoff_rate must be at least 1, got {self.backoff_rate}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        try:
            bound = self.initial_interval * self.backoff_rate**exponent
        except OverflowError:
            bound = math.inf
        return min(self.max_delay, bound)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before the next attempt, after failed attempt ``attempt``."""
        ceiling = self.ceiling(attempt)
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling
