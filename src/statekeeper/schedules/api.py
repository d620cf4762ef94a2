"""``app.schedules``: create, change, pause, trigger and backfill schedules.

Every change reads the schedule's row and writes it back under the version it read
(``ScheduleOps.write``), retrying a few times if a scheduler or another operator
wrote in between; a change that moves the schedule's due time wakes the schedulers
(here at once, elsewhere through the database's notifications).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from statekeeper.constants import MAX_LIST_LIMIT
from statekeeper.errors import (
    ConfigurationError,
    InvalidSchedule,
    NotFound,
    ScheduleExists,
    ScheduleNotFound,
    StatekeeperError,
    TooManyRetries,
    ValidationError,
)
from statekeeper.identifiers import has_control
from statekeeper.observability import metrics
from statekeeper.queues.wakeups import Wakeups
from statekeeper.schedules.firing import Decision, Firing, stored_spec, traced
from statekeeper.schedules.model import Declared, Definition, Schedule, check_schedule_id
from statekeeper.schedules.policy import Plan, manual_run_id, run_id
from statekeeper.schedules.specs import Spec
from statekeeper.sealing import SCHEDULE
from statekeeper.storage import Storage
from statekeeper.storage.flow_ops import QueueLimits
from statekeeper.storage.schedule_ops import NewRun, ScheduleRow
from statekeeper.workflows.engine import WAKEUP_CHANNEL, Workflows
from statekeeper.workflows.flow import stored_queue

log = logging.getLogger("statekeeper.schedules")

SCHEDULES_CHANNEL = "statekeeper.schedules"  # the wake-up "queue" name of schedulers
MAX_BACKFILL = 1000  # fire times one backfill starts at most
MAX_NEXT = 1000  # fire times ``next_fire_times`` lists at most
_ATTEMPTS = 10  # writes tried against concurrent writers before TooManyRetries


class Schedules:
    """The schedules of one namespace (``app.schedules``)."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        workflows: Workflows,
        clock: Callable[[], float],
        wakeups: Wakeups,
    ) -> None:
        self._backend = backend
        self.workflows = workflows
        self.namespace = workflows.namespace
        self.clock = clock
        self._wakeups = wakeups
        self.firing = Firing(
            backend, self.namespace, workflows.payloads, workflows.versions.at_start
        )
        self.declared: dict[str, Declared] = {}

    # --- reading -------------------------------------------------------------------

    async def _view(self, row: ScheduleRow) -> Schedule:
        return Schedule(
            row.id, row.workflow, await self.firing.value_of(row), stored_spec(row.spec),
            row.overlap, row.jitter, row.catchup, bool(row.paused), row.next_fire_at,
            row.due_at, row.last_run_id, Plan.of(row.overlap, False, None, row.buffered).buffered,
            row.created_at, row.updated_at, row.queue, row.queue_key, row.priority,
        )  # fmt: skip

    async def _row(self, id: str) -> ScheduleRow:
        row = await self._backend().schedules.get(self.namespace, check_schedule_id(id))
        if row is None:
            raise ScheduleNotFound(f"there is no schedule {id!r}", id=id)
        return row

    async def get(self, id: str) -> Schedule:
        return await self._view(await self._row(id))

    async def list(self, *, after: str = "", limit: int = 100) -> builtins.list[Schedule]:
        """Schedules by id, from the first after ``after``."""
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise InvalidSchedule(f"limit must be 1 to {MAX_LIST_LIMIT}, got {limit!r}",
                                  field="limit")  # fmt: skip
        if not isinstance(after, str) or len(after) > 200 or has_control(after):
            raise InvalidSchedule(
                "after must be a schedule id (without control characters)", field="after"
            )
        rows = await self._backend().schedules.list(self.namespace, after=after, limit=limit)
        return [await self._view(row) for row in rows]

    async def next_fire_times(self, id: str, count: int = 10) -> builtins.list[float]:
        """The next ``count`` nominal fire times (Unix seconds), from the stored next one."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_NEXT:
            raise InvalidSchedule(f"count must be 1 to {MAX_NEXT}, got {count!r}", field="count")
        row = await self._row(id)
        if row.next_fire_at is None:
            return []
        spec = stored_spec(row.spec)
        return [row.next_fire_at, *spec.fires(row.next_fire_at, float("inf"), count - 1)]

    # --- defining ------------------------------------------------------------------

    async def _sealed_input(self, definition: Definition) -> bytes:
        """The input as a schedule's row stores it: sealed, or out of line (a blob)."""
        payloads = self.workflows.payloads
        plain = payloads.encode(f"input of schedule {definition.id!r}", definition.input)
        return await payloads.seal(plain, SCHEDULE, self.namespace, definition.id, "input")

    async def _queued(self, definition: Definition) -> Definition:
        """``definition`` with its queue checked (UnknownFlowQueue unless this process
        or a worker of the namespace declares it: then its stored start rules are
        checked) and, when it gives no key and the queue has a ``key=`` rule, its key
        taken from its input as a start's is. A fire takes no lock: a
        singleton='reject' or debounce queue (whose rules act on starts) is refused."""
        if definition.queue is None:
            return definition
        queue = await self.workflows.flow.known(definition.queue)
        if isinstance(queue, QueueLimits):  # declared by another process: as it stored it
            queue = stored_queue(queue)
        if queue.singleton == "reject" or queue.debounce is not None:
            raise InvalidSchedule(
                f"workflow queue {queue.name!r} rejects or debounces starts of a busy key, "
                "which a schedule's fires do not take part in: give the schedule an "
                "overlap policy instead (skip, buffer_one...) and a queue without them",
                field="queue",
            )
        try:
            key = self.workflows.flow.key_of(queue, definition.input, definition.key)
        except ValidationError as error:
            raise InvalidSchedule(error.message, field="key") from None
        except Exception as error:  # the queue's key function failed on this input
            raise InvalidSchedule(
                f"workflow queue {queue.name!r}: its key function failed on this schedule's "
                f"input: {type(error).__name__}: {error}",
                field="key",
            ) from None
        return dataclasses.replace(definition, key=key)

    async def create(self, definition: Definition, *, paused: bool = False) -> Schedule:
        """Store a new schedule (ScheduleExists if its id is taken); its first fire is
        the first of its spec after now."""
        await self.workflows.known(definition.workflow)
        definition = await self._queued(definition)
        now = self.clock()
        spec = definition.spec
        if spec.at is not None and spec.at <= now:
            raise InvalidSchedule("at must be in the future", field="at")
        if spec.every is not None and spec.anchor is None:
            spec = Spec(every=spec.every, anchor=now)
        fire = spec.next_after(now)
        row = ScheduleRow(
            definition.id, definition.workflow, await self._sealed_input(definition),
            spec.to_json(),
            definition.overlap, definition.jitter, definition.catchup, int(paused), fire,
            None, None, "[]", 0, now, now, definition.queue, definition.key, definition.priority,
        )  # fmt: skip
        row = row._replace(
            due_at=self.firing.due(row, fire, Plan.of(row.overlap, False, None, ""), now)
        )
        payloads = self.workflows.payloads
        created = await payloads.kept_by(
            row.input, self._backend().schedules.create(self.namespace, row, now)
        )
        if not created:
            await payloads.discard([row.input])
            raise ScheduleExists(f"schedule {definition.id!r} exists already", id=definition.id)
        self._changed()
        return await self._view(row)

    async def update(self, definition: Definition) -> Schedule:
        """Replace a schedule's definition, keeping its state (paused, last run, buffer);
        a new spec starts from its first fire after now. A new queue, key or priority
        holds for the fires from now on (runs waiting in a queue stay there)."""
        await self.workflows.known(definition.workflow)
        definition = await self._queued(definition)
        sealed = await self._sealed_input(definition)

        async def change(row: ScheduleRow, now: float) -> Decision:
            spec = definition.spec
            if spec.every is not None and spec.anchor is None:
                spec = Spec(every=spec.every, anchor=now)
            same = stored_spec(row.spec) == spec or (
                spec.every is not None and definition.spec.anchor is None
                and stored_spec(row.spec).every == spec.every
            )  # fmt: skip
            if same:
                spec = stored_spec(row.spec)
            fire = row.next_fire_at if same else spec.next_after(now)
            changed = row._replace(
                workflow=definition.workflow, input=sealed,
                spec=spec.to_json(), overlap=definition.overlap, jitter=definition.jitter,
                catchup=definition.catchup, queue=definition.queue, queue_key=definition.key,
                priority=definition.priority,
            )  # fmt: skip
            return self.firing.finish(changed, await self.firing.plan(changed), fire, now)

        changed = await self.workflows.payloads.kept_by(
            sealed, self._change(definition.id, change)
        )  # not stored: the input's blob, if any, goes
        return await self._view(changed)

    async def delete(self, id: str) -> None:
        """Delete a schedule; the runs it started carry on."""
        if not await self._backend().schedules.delete(self.namespace, check_schedule_id(id)):
            raise ScheduleNotFound(f"there is no schedule {id!r}", id=id)
        self._changed()

    async def pause(self, id: str) -> Schedule:
        """Fire nothing until resumed (a paused schedule is not due at all)."""

        async def change(row: ScheduleRow, now: float) -> Decision:
            paused = row._replace(paused=1)
            return self.firing.finish(paused, await self.firing.plan(paused), row.next_fire_at, now)

        return await self._view(await self._change(id, change))

    async def resume(self, id: str) -> Schedule:
        """Fire again from the first fire after now (fires while paused are not run)."""

        async def change(row: ScheduleRow, now: float) -> Decision:
            if not row.paused:
                return self.firing.finish(row, await self.firing.plan(row), row.next_fire_at, now)
            resumed = row._replace(paused=0)
            fire = stored_spec(row.spec).next_after(now)
            return self.firing.finish(resumed, await self.firing.plan(resumed), fire, now)

        return await self._view(await self._change(id, change))

    async def trigger(self, id: str) -> str | None:
        """Fire now, under the overlap policy: the id of the run started, or None if the
        fire was skipped or waits in the buffer."""
        started: builtins.list[str] = []

        async def change(row: ScheduleRow, now: float) -> Decision:
            plan = await self.firing.plan(row)
            plan.drain()
            plan.fire(manual_run_id(row.id, now))
            decision = self.firing.finish(row, plan, row.next_fire_at, now)
            started[:] = [r.id for r in decision.runs if r.id.startswith(f"{row.id}@manual-")]
            return decision

        await self._change(id, change)
        return started[0] if started else None

    async def backfill(self, id: str, start: float, end: float) -> builtins.list[str]:
        """Fire once for each fire time of the spec in [start, end), oldest first, under
        the overlap policy (a fire whose run exists already starts nothing new): the
        ids of the runs started."""
        for what, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidSchedule(f"{what} must be a Unix time, got {value!r}", field=what)
        if not start < end:
            raise InvalidSchedule("backfill start must be before end", field="start")
        started: builtins.list[str] = []

        async def change(row: ScheduleRow, now: float) -> Decision:
            spec = stored_spec(row.spec)
            if end > now:
                raise InvalidSchedule("backfill end must not be in the future", field="end")
            fires = spec.fires(start - 0.001, end, MAX_BACKFILL + 1)
            if len(fires) > MAX_BACKFILL:
                raise InvalidSchedule(
                    f"the range holds more than {MAX_BACKFILL} fire times; backfill it in parts",
                    field="end",
                )
            plan = await self.firing.plan(row)
            plan.drain()
            for fire in fires:
                plan.fire(run_id(row.id, fire))
            decision = self.firing.finish(row, plan, row.next_fire_at, now)
            started[:] = [r.id for r in decision.runs]
            return decision

        await self._change(id, change)
        return started

    async def _change(
        self, id: str, change: Callable[[ScheduleRow, float], Awaitable[Decision]]
    ) -> ScheduleRow:
        for _ in range(_ATTEMPTS):
            row = await self._row(id)
            now = self.clock()
            decision = await change(row, now)
            with contextlib.ExitStack() as spans:  # a trigger's or backfill's fire: a span
                [decision] = traced([decision], spans)
                saved = await self._backend().schedules.write(
                    self.namespace, decision.row, now, runs=decision.runs,
                    cancel=decision.cancel,
                )  # fmt: skip
            if saved is not None:
                for workflow, count in saved.items():  # the runs created, counted once
                    metrics.workflow_started(self.namespace, workflow, count)
                await self.admit(decision.runs)
                self._changed(started=bool(decision.runs or decision.cancel))
                return decision.row._replace(version=row.version + 1, updated_at=now)
        raise TooManyRetries(f"schedule {id!r} kept changing while it was being changed")

    async def admit(self, runs: Iterable[NewRun]) -> None:
        """After the commit that started ``runs``: admit what the queues of those started
        queued allow. A failure (or a crash before it) strands nothing: every worker's
        admission pass admits waiting runs of the queues it declares."""
        counts: dict[str, int] = {}
        for run in runs:
            if run.queue is not None:
                counts[run.queue] = counts.get(run.queue, 0) + 1
        if not counts:
            return
        try:
            await self.workflows.flow.admit_queues(counts)
        except StatekeeperError as error:
            log.warning(
                "admitting a schedule's queued runs failed; the next admission pass will",
                extra={"queues": sorted(counts), "error": error.message},
            )

    def _changed(self, *, started: bool = False) -> None:
        self._wakeups.notify(self.namespace, SCHEDULES_CHANNEL)
        if started:
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    def wake_event(self) -> Any:
        """The event the next change of a schedule here sets (schedulers wait on it)."""
        return self._wakeups.event(self.namespace, SCHEDULES_CHANNEL)

    # --- declared in code ----------------------------------------------------------

    def declare(self, declared: Declared) -> None:
        key = declared.id or self.workflows.name_of(declared.workflow)
        self.declared[key] = declared

    async def upsert_declared(self) -> builtins.list[str]:
        """Create the schedules declared in code, or bring them in line with the code (a
        paused one stays paused; an unchanged one is not touched): their ids. One whose
        declaration is refused (an unknown or unfit workflow queue, a bad input) is
        logged with its error and left out; the others go on."""
        ids: builtins.list[str] = []
        for declared in list(self.declared.values()):
            label = declared.id or str(
                getattr(declared.workflow, "__qualname__", declared.workflow)
            )
            try:
                workflow = self.workflows.name_of(declared.workflow)
                definition = await self._queued(Definition.checked(
                    declared.id or workflow, workflow, declared.spec, input=declared.input,
                    overlap=declared.overlap, jitter=declared.jitter,
                    catchup=declared.catchup, queue=declared.queue, key=declared.key,
                    priority=declared.priority,
                ))  # fmt: skip
            except (ValidationError, NotFound, ConfigurationError) as refused:
                log.error(
                    "a declared schedule is refused; it does not fire",
                    exc_info=refused,
                    extra={"schedule": label, "error": refused.message},
                )  # fmt: skip
                continue
            stored = await self._backend().schedules.get(self.namespace, definition.id)
            if stored is None:
                with contextlib.suppress(ScheduleExists):  # another worker's, meanwhile
                    await self.create(definition)
            elif not await self._same(stored, definition):
                await self.update(definition)
            ids.append(definition.id)
        return ids

    async def _same(self, row: ScheduleRow, definition: Definition) -> bool:
        spec = stored_spec(row.spec)
        wanted = definition.spec
        same_spec = spec == wanted or (
            wanted.every is not None and wanted.anchor is None and spec.every == wanted.every
        )
        return (
            same_spec and row.workflow == definition.workflow
            and row.overlap == definition.overlap and row.jitter == definition.jitter
            and row.catchup == definition.catchup and row.queue == definition.queue
            and row.queue_key == definition.key and row.priority == definition.priority
            and await self.firing.value_of(row) == definition.input
        )  # fmt: skip
