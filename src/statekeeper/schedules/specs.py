"""When a schedule fires: a cron expression in a time zone, an interval, or one time.

A spec is stored as JSON (``to_json`` / ``parse_spec``) and answers one question:
the first fire time strictly after a moment (``next_after``), as Unix time. Cron
expressions are evaluated by cronsim (docs/decisions/0013-schedules.md) on the wall
clock of the spec's zone (``zoneinfo``): a fire that falls in an hour skipped by a
daylight-saving change runs at the end of the gap (it is not lost), and one in an hour
that repeats runs once, at its first occurrence. Intervals count real seconds from
their anchor and know nothing of zones.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from statekeeper.errors import InvalidSchedule

# Bounds that keep a spec sane (and its arithmetic in range).
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 24 * 3600.0
MAX_CRON_LENGTH = 200
# Unix time of the last second statekeeper schedules anything for (year 9999).
LATEST = 253402300799.0


@dataclass(frozen=True, slots=True)
class Spec:
    """One of ``cron`` (with ``timezone``), ``every`` (seconds, from ``anchor``) or ``at``."""

    cron: str | None = None
    timezone: str = "UTC"
    every: float | None = None
    anchor: float | None = None
    at: float | None = None

    def next_after(self, moment: float) -> float | None:
        """The first fire time strictly after ``moment`` (None: no more fires)."""
        if self.at is not None:
            return self.at if self.at > moment else None
        if self.every is not None:
            anchor = self.anchor if self.anchor is not None else 0.0
            steps = math.floor((moment - anchor) / self.every) + 1
            fire = anchor + steps * self.every
            while fire <= moment:  # rounding
                fire += self.every
            return fire if fire <= LATEST else None
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(math.floor(moment), zone)
        try:
            for found in CronSim(self.cron, start):
                fire = found.timestamp()
                if fire > moment:
                    return fire
        except (StopIteration, OverflowError, ValueError):
            return None
        return None

    def fires(self, after: float, until: float, limit: int) -> list[float]:
        """Fire times in (``after``, ``until``), at most ``limit`` of them."""
        found: list[float] = []
        moment = after
        while len(found) < limit:
            fire = self.next_after(moment)
            if fire is None or fire >= until:
                break
            found.append(fire)
            moment = fire
        return found

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        if self.cron is not None:
            return {"cron": self.cron, "timezone": self.timezone}
        if self.every is not None:
            shown: dict[str, Any] = {"every": self.every}
            if self.anchor is not None:
                shown["anchor"] = self.anchor
            return shown
        return {"at": self.at}


def _number(what: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSchedule(f"{what} must be a number, got {value!r}", field=what)
    if not low <= value <= high:
        raise InvalidSchedule(f"{what} must be from {low:g} to {high:g}, got {value!r}", field=what)
    return float(value)


def cron_spec(expression: object, timezone: object = "UTC") -> Spec:
    """A cron spec, checked: five fields (minute hour day month weekday; cronsim's
    extensions such as ``L`` and ``#`` allowed), in an IANA time zone."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule(f"cron must be a cron expression, got {expression!r}", field="cron")
    if len(expression) > MAX_CRON_LENGTH:
        raise InvalidSchedule(f"cron is longer than {MAX_CRON_LENGTH} characters", field="cron")
    if not isinstance(timezone, str) or not timezone or len(timezone) > 64:
        raise InvalidSchedule(f"timezone must be an IANA zone name, got {timezone!r}",
                              field="timezone")  # fmt: skip
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(f"unknown time zone {timezone!r}", field="timezone") from None
    text = " ".join(expression.split())
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError, KeyError, IndexError) as error:
        raise InvalidSchedule(f"invalid cron expression {text!r}: {error}", field="cron") from None
    return Spec(cron=text, timezone=timezone)


def interval_spec(every: object, anchor: object = None) -> Spec:
    seconds = _number("every", every, MIN_INTERVAL, MAX_INTERVAL)
    start = None if anchor is None else _number("anchor", anchor, 0.0, LATEST)
    return Spec(every=seconds, anchor=start)


def at_spec(at: object) -> Spec:
    return Spec(at=_number("at", at, 0.0, LATEST))


def parse_spec(found: object) -> Spec:
    """A spec from its JSON form (``{"cron": ..., "timezone": ...}``, ``{"every": ...,
    "anchor": ...}`` or ``{"at": ...}``), checked."""
    if isinstance(found, str):
        try:
            found = json.loads(found)
        except ValueError:
            raise InvalidSchedule("spec is not JSON", field="spec") from None
    if not isinstance(found, dict):
        raise InvalidSchedule("spec must be an object with cron, every or at", field="spec")
    kinds = [k for k in ("cron", "every", "at") if found.get(k) is not None]
    if len(kinds) != 1:
        raise InvalidSchedule("spec must give exactly one of cron, every or at", field="spec")
    allowed = {"cron": {"cron", "timezone"}, "every": {"every", "anchor"}, "at": {"at"}}[kinds[0]]
    extra = sorted(set(found) - allowed)
    if extra:
        raise InvalidSchedule(f"spec field {extra[0]!r} does not go with {kinds[0]!r}",
                              field="spec")  # fmt: skip
    if kinds[0] == "cron":
        return cron_spec(found["cron"], found.get("timezone", "UTC"))
    if kinds[0] == "every":
        return interval_spec(found["every"], found.get("anchor"))
    return at_spec(found["at"])


def iso(moment: float) -> str:
    """A fire time as compact UTC text (what run ids hold): 20261202T135000Z, with
    milliseconds when it has them."""
    seconds, millis = divmod(round(moment * 1000), 1000)
    t = time.gmtime(seconds)
    day = f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}"
    text = f"{day}T{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}"
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
