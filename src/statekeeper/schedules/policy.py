"""What a schedule does at a fire: overlap policies, jitter, run ids.

Deciding is pure: a ``Plan`` starts from whether the schedule's last run is still
active and which fires wait in its buffer, and each fire (and each drain of the
buffer) adds the runs to start and the runs to cancel. The scheduler then writes the
plan in one transaction with the schedule's next fire time.

Overlap policies, when a fire comes while the schedule's previous run is active:
- ``skip``: the fire is dropped.
- ``buffer_one``: the fire waits for the previous run to end (one at most; later fires
  are dropped while one waits).
- ``buffer_all``: every fire waits, and they start one after another.
- ``cancel_other``: the previous run is asked to cancel, and the fire starts at once.
- ``allow_all``: the fire starts at once; runs overlap.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from statekeeper.errors import InvalidSchedule
from statekeeper.schedules.specs import iso

OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "allow_all")
# Fires that may wait in a buffer_all schedule's buffer; later ones are dropped.
MAX_BUFFERED = 1000
MAX_JITTER = 24 * 3600.0
MAX_CATCHUP = 366 * 24 * 3600.0
DEFAULT_CATCHUP = 60.0


def check_overlap(overlap: object) -> str:
    if not isinstance(overlap, str) or overlap not in OVERLAP_POLICIES:
        raise InvalidSchedule(
            f"overlap must be one of {', '.join(OVERLAP_POLICIES)}; got {overlap!r}",
            field="overlap",
        )
    return overlap


def check_seconds(what: str, value: object, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSchedule(f"{what} must be a number of seconds, got {value!r}", field=what)
    if not 0 <= value <= high:
        raise InvalidSchedule(f"{what} must be from 0 to {high:g} seconds, got {value!r}",
                              field=what)  # fmt: skip
    return float(value)


def jitter_offset(schedule_id: str, fire: float, jitter: float) -> float:
    """How long after ``fire`` the schedule is due: in [0, jitter), the same for the same
    schedule and fire time in every process (a hash of both), spread across schedules."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.blake2b(f"{schedule_id}|{fire!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * jitter


def run_id(schedule_id: str, fire: float) -> str:
    """The id of the run of ``schedule_id`` for the fire at ``fire``: the fire time is the
    run's idempotency key, so however many schedulers decide that fire, one run exists."""
    return f"{schedule_id}@{iso(fire)}"


def fire_time_of(run: str) -> float | None:
    """The fire time a scheduled run's id names (None for a manual run's, or another id)."""
    text = run.rpartition("@")[2]
    try:
        stamp = text[:-1] if text.endswith("Z") else ""
        when = datetime.strptime(stamp.split(".")[0], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        millis = int(stamp.split(".")[1]) / 1000 if "." in stamp else 0.0
    except (ValueError, IndexError):
        return None
    return when.timestamp() + millis


def manual_run_id(schedule_id: str, now: float) -> str:
    """The id of a run started by ``trigger`` at ``now`` (never a scheduled fire's)."""
    return f"{schedule_id}@manual-{iso(now)}"


@dataclass
class Plan:
    """The runs one schedule starts and cancels in one write."""

    overlap: str
    active: bool  # the last run (or one started here) has not finished
    last_run_id: str | None
    buffered: list[str]
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, overlap: str, active: bool, last_run_id: str | None, buffered: str) -> Plan:
        waiting = json.loads(buffered) if buffered and buffered != "[]" else []
        return cls(overlap, active, last_run_id, [str(r) for r in waiting])

    def _start(self, run: str) -> None:
        self.started.append(run)
        self.last_run_id = run
        self.active = True

    def drain(self) -> None:
        """Start the first buffered fire if the previous run has ended."""
        if self.buffered and not self.active:
            self._start(self.buffered.pop(0))

    def fire(self, run: str) -> None:
        """A fire whose run would be ``run``, under the overlap policy."""
        if not self.active or self.overlap == "allow_all":
            self._start(run)
        elif self.overlap == "cancel_other":
            previous = self.last_run_id
            if previous in self.started:  # started in this same write: never started
                self.started.remove(previous)
                self.dropped.append(previous)
            elif previous is not None and previous not in self.cancelled:
                self.cancelled.append(previous)
            self._start(run)
        elif (self.overlap == "buffer_one" and not self.buffered) or (
            self.overlap == "buffer_all" and len(self.buffered) < MAX_BUFFERED
        ):
            self.buffered.append(run)
        else:
            self.dropped.append(run)

    def buffer_text(self) -> str:
        if not self.buffered:
            return "[]"
        return json.dumps(self.buffered, separators=(",", ":"))
