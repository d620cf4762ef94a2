"""A schedule as users see it, and its definition checked from what they give.

``Definition`` is what a schedule is (workflow, input, spec, overlap policy, jitter,
catch-up window, and the workflow queue its runs start in), checked once wherever it
comes from: ``@app.schedule``, the Python API, HTTP or the CLI. ``Schedule`` is a stored
schedule read back, with its state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from statekeeper.errors import InvalidSchedule, ValidationError
from statekeeper.identifiers import check_flow_key, check_queue_name
from statekeeper.schedules.policy import (
    DEFAULT_CATCHUP,
    MAX_CATCHUP,
    MAX_JITTER,
    check_overlap,
    check_seconds,
)
from statekeeper.schedules.specs import Spec, at_spec, cron_spec, interval_spec, parse_spec
from statekeeper.workflows.flow import check_priority

MAX_SCHEDULE_ID = 160  # a run id adds '@manual-' and a fire time (workflow ids: 200)
_SCHEDULE_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_SCHEDULE_ID}}}")
SCHEDULE_ID_RULE = f"1-{MAX_SCHEDULE_ID} letters, digits, '_', '.', ':' or '-'"


def check_schedule_id(id: object) -> str:
    if not isinstance(id, str) or not _SCHEDULE_ID.fullmatch(id):
        shown = id if not isinstance(id, str) or len(id) <= 80 else id[:80] + "..."
        raise InvalidSchedule(f"schedule id must be {SCHEDULE_ID_RULE}; got {shown!r}",
                              field="id")  # fmt: skip
    return id


def check_queue(queue: object, key: object, priority: object) -> tuple[str | None, str | None, int]:
    """A schedule's workflow queue, key and priority, checked as a start's are (the
    queue's name, the key's text and the priority's range); a key or a priority needs
    a queue."""
    checks = (("queue", queue, check_queue_name), ("key", key, check_flow_key),
              ("priority", priority, check_priority))  # fmt: skip
    checked: list[Any] = []
    for field, value, check in checks:
        try:
            checked.append(None if value is None else check(value))
        except ValidationError as error:
            raise InvalidSchedule(error.message, field=field) from None
    if queue is None and (key is not None or checked[2] not in (None, 0)):
        field = "key" if key is not None else "priority"
        raise InvalidSchedule(f"{field} applies to the runs in a workflow queue: give queue too",
                              field=field)  # fmt: skip
    return checked[0], checked[1], checked[2] or 0


def _seconds(value: object) -> object:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _moment(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidSchedule("at must be a time-zone-aware datetime", field="at")
        return value.timestamp()
    return value


def make_spec(
    cron: object = None,
    *,
    timezone: object = "UTC",
    every: object = None,
    anchor: object = None,
    at: object = None,
) -> Spec:
    """A spec from exactly one of ``cron`` (with ``timezone``), ``every`` (seconds or a
    timedelta, from ``anchor``) or ``at`` (Unix time or an aware datetime)."""
    given = [k for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None]
    if len(given) != 1:
        raise InvalidSchedule("give exactly one of cron, every or at", field="spec")
    if cron is not None:
        return cron_spec(cron, timezone)
    if every is not None:
        return interval_spec(_seconds(every), _moment(anchor))
    return at_spec(_moment(at))


@dataclass(frozen=True, slots=True)
class Definition:
    """What a schedule is; ``input`` is the workflow input (a JSON value)."""

    id: str
    workflow: str
    spec: Spec
    input: Any = None
    overlap: str = "skip"
    jitter: float = 0.0
    catchup: float = DEFAULT_CATCHUP
    queue: str | None = None  # the workflow queue its runs start in (None: due at once)
    key: str | None = None  # their key in the queue
    priority: int = 0  # their priority in the queue

    @classmethod
    def checked(
        cls,
        id: object,
        workflow: str,
        spec: Spec,
        *,
        input: Any = None,
        overlap: object = "skip",
        jitter: object = 0.0,
        catchup: object = DEFAULT_CATCHUP,
        queue: object = None,
        key: object = None,
        priority: object = 0,
    ) -> Definition:
        return cls(
            check_schedule_id(id), workflow, spec, input, check_overlap(overlap),
            check_seconds("jitter", _seconds(jitter), MAX_JITTER),
            check_seconds("catchup", _seconds(catchup), MAX_CATCHUP),
            *check_queue(queue, key, priority),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Declared:
    """A schedule declared in code (``@app.schedule``) on a workflow function, whose name
    is known once the worker starts (``workflow`` is the function or its name)."""

    workflow: Callable[..., Any] | str
    spec: Spec
    id: str | None
    input: Any
    overlap: str
    jitter: float
    catchup: float
    queue: str | None = None
    key: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule: its definition and state. Times are Unix seconds."""

    id: str
    workflow: str
    input: Any
    spec: Spec
    overlap: str
    jitter: float
    catchup: float
    paused: bool
    next_fire_at: float | None  # the next nominal fire time (None: nothing left to fire)
    due_at: float | None  # when a scheduler looks at it next (jitter and buffer included)
    last_run_id: str | None
    buffered: list[str]  # run ids waiting for the previous run to end
    created_at: float
    updated_at: float
    queue: str | None = None  # the workflow queue its runs start in (None: due at once)
    key: str | None = None  # their key in it
    priority: int = 0  # their priority in it

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "workflow": self.workflow, "input": self.input,
            "spec": self.spec.to_dict(), "overlap": self.overlap, "jitter": self.jitter,
            "catchup": self.catchup, "queue": self.queue, "key": self.key,
            "priority": self.priority, "paused": self.paused,
            "next_fire_at": self.next_fire_at, "due_at": self.due_at,
            "last_run_id": self.last_run_id, "buffered": list(self.buffered),
            "created_at": self.created_at, "updated_at": self.updated_at,
        }  # fmt: skip


def spec_of(stored: str) -> Spec:
    return parse_spec(stored)
