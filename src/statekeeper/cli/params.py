"""Option values shared by the verbs, checked before any work (as click callbacks: a
bad value is a usage error, exit 2): points in time and durations."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import click

YEAR = 366 * 24 * 3600.0


def time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A point in time: ISO-8601 (UTC unless it names an offset) or Unix seconds."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither an ISO-8601 time nor Unix seconds"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
    if not math.isfinite(seconds):
        raise click.BadParameter(f"{value!r} is not a finite time")
    return seconds


def seconds_option(
    *, zero: bool = True, maximum: float = YEAR
) -> Callable[[click.Context, click.Parameter, str | float | None], float | None]:
    """A duration: a finite number of seconds from 0 (or above 0, without ``zero``)
    to ``maximum``."""

    def check(
        ctx: click.Context, param: click.Parameter, value: str | float | None
    ) -> float | None:
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number of seconds") from None
        low_ok = seconds >= 0 if zero else seconds > 0
        if not (math.isfinite(seconds) and low_ok and seconds <= maximum):
            low = "from 0" if zero else "above 0"
            raise click.BadParameter(
                f"{value!r} is not a number of seconds {low} and at most {maximum:.0f}"
            )
        return seconds

    return check
