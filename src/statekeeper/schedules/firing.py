"""Turning a schedule's row into the write that fires it.

``Firing.decide`` reads nothing but, where the overlap policy needs it, whether the
schedule's last run is still active; it returns the row to save (next fire time, due
time, last run, buffer) with the runs to create and to cancel. The storage writes them
in one transaction under the version the row was read at, so a fire is decided once
however many schedulers look at it, and a crash leaves it either done or still due.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statekeeper.blobs import Payloads
from statekeeper.blobs.refs import is_ref
from statekeeper.constants import WORKFLOW_ACTIVE
from statekeeper.observability import tracing
from statekeeper.schedules.policy import Plan, jitter_offset, run_id
from statekeeper.schedules.specs import Spec, parse_spec
from statekeeper.sealing import SCHEDULE, WORKFLOW
from statekeeper.storage import Storage
from statekeeper.storage.schedule_ops import NewRun, ScheduleRow

# Most fires one schedule decides in one write (missed fires within a long catch-up
# window are worked through over several writes).
MAX_FIRES_PER_WRITE = 100
# How often a schedule whose fires wait in its buffer looks whether its run has ended.
BUFFER_RECHECK = 1.0


@functools.lru_cache(maxsize=4096)
def stored_spec(text: str) -> Spec:
    return parse_spec(text)


@dataclass(frozen=True, slots=True)
class Decision:
    row: ScheduleRow
    runs: list[NewRun]
    cancel: list[str]
    plan: Plan


class Firing:
    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        payloads: Payloads,
        version_of: Callable[[str], str | None] = lambda name: None,
    ) -> None:
        self._backend = backend
        self.namespace = namespace
        self.payloads = payloads  # a schedule's input may be stored out of line
        self._version_of = version_of  # the code version a run of a workflow carries

    async def active(self, run: str | None) -> bool:
        if run is None:
            return False
        found = await self._backend().workflows.get(self.namespace, run)
        return found is not None and found.status in WORKFLOW_ACTIVE

    async def value_of(self, row: ScheduleRow) -> object:
        """The schedule's input (read from its blob if it is stored out of line)."""
        where = (SCHEDULE, self.namespace, row.id, "input")
        return await self.payloads.value(row.input, None, f"input of schedule {row.id!r}", *where)

    def runs(self, row: ScheduleRow, ids: Sequence[str]) -> list[NewRun]:
        """The runs of fires ``ids``: each with the schedule's input sealed for it, or
        sharing its blob when it is stored out of line (never read here)."""
        if not ids:
            return []
        version, stored, sealer = self._version_of(row.workflow), row.input, self.payloads.sealer
        plain = (
            None
            if is_ref(stored)
            else sealer.open(stored, SCHEDULE, self.namespace, row.id, "input")
        )
        return [
            NewRun(
                r,
                row.workflow,
                stored
                if plain is None
                else sealer.seal(plain, WORKFLOW, self.namespace, r, "input"),
                version,
                row.queue,
                row.queue_key,
                row.priority,
            )
            for r in ids
        ]

    def due(self, row: ScheduleRow, fire: float | None, plan: Plan, now: float) -> float | None:
        """When the schedule is next due: its next fire plus jitter, or sooner while a
        fire waits in its buffer; None when paused or nothing is left."""
        if row.paused:
            return None
        found = [] if fire is None else [fire + jitter_offset(row.id, fire, row.jitter)]
        if plan.buffered:
            found.append(now + BUFFER_RECHECK)
        return min(found) if found else None

    async def plan(self, row: ScheduleRow) -> Plan:
        needs_active = row.overlap != "allow_all" or row.buffered not in ("", "[]")
        active = await self.active(row.last_run_id) if needs_active else False
        return Plan.of(row.overlap, active, row.last_run_id, row.buffered)

    def finish(self, row: ScheduleRow, plan: Plan, fire: float | None, now: float) -> Decision:
        saved = row._replace(
            next_fire_at=fire, due_at=self.due(row, fire, plan, now),
            last_run_id=plan.last_run_id, buffered=plan.buffer_text(),
        )  # fmt: skip
        return Decision(saved, self.runs(row, plan.started), list(plan.cancelled), plan)

    async def decide(self, row: ScheduleRow, now: float) -> Decision:
        """The fires of ``row`` due at ``now``: those older than its catch-up window
        skipped, the others run under its overlap policy, and its buffer drained."""
        spec = stored_spec(row.spec)
        plan = await self.plan(row)
        plan.drain()
        fire = row.next_fire_at
        count = 0
        while fire is not None and count < MAX_FIRES_PER_WRITE and not row.paused:
            if fire < now - row.catchup:  # missed too long ago: skipped
                fire = spec.next_after(max(fire, now - row.catchup - 0.001))
                continue
            if fire + jitter_offset(row.id, fire, row.jitter) > now:
                break
            plan.fire(run_id(row.id, fire))
            fire = spec.next_after(fire)
            count += 1
        return self.finish(row, plan, fire, now)


def traced(decisions: list[Decision], spans: contextlib.ExitStack) -> list[Decision]:
    """``decisions`` with the runs of each in the trace of a span of its fire's own
    (``fire schedule <id>``, kept open on ``spans`` until the fire is written): every run
    of it, each time it resumes, joins that trace. All the spans are made before any is
    current, each a child of the span current here: in the scheduler none (a fire started
    by time is a root), in an operator's trigger or backfill the request's. As given when
    no trace is recorded (nothing else is done)."""
    if not tracing.enabled():
        return decisions
    firing = [d for d in decisions if d.runs]
    made = [  # (every span made before any is entered: roots, or siblings)
        tracing.span(f"fire schedule {d.row.id}", kind="producer", attributes=_fired(d))
        for d in firing
    ]
    traced: dict[int, Decision] = {}
    for decision, span in zip(firing, made, strict=True):
        spans.enter_context(span)
        trace = tracing.traceparent()
        runs = [dataclasses.replace(run, trace=trace) for run in decision.runs]
        traced[id(decision)] = dataclasses.replace(decision, runs=runs)
    return [traced.get(id(d), d) for d in decisions]


def _fired(decision: Decision) -> dict[str, object]:
    return {"statekeeper.schedule_id": decision.row.id, "statekeeper.runs": len(decision.runs)}
