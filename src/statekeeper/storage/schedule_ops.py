"""Schedule operations, written once for both adapters (queries in
``queries/schedules.sql``). A fire is one transaction: the schedule's row moves on (under
the version the scheduler read) and the runs it decided are created with it, so a crash
between the two never loses a fire nor doubles one. A write answers the runs it created,
by workflow name (a run whose id exists already is not created again): what is counted
as started.
"""

from __future__ import annotations

import builtins
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from statekeeper.storage.runner import Operations, Scripted, Statement


class ScheduleRow(NamedTuple):
    """One stored schedule; ``spec`` and ``buffered`` are JSON text, ``input`` sealed."""

    id: str
    workflow: str
    input: bytes
    spec: str
    overlap: str
    jitter: float
    catchup: float
    paused: int
    next_fire_at: float | None
    due_at: float | None
    last_run_id: str | None
    buffered: str
    version: int
    created_at: float
    updated_at: float
    queue: str | None = None  # the workflow queue its runs start in (None: none)
    queue_key: str | None = None  # their key in it
    priority: int = 0  # their priority in it


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run a schedule starts: its id (derived from the fire time), workflow and input,
    and the workflow queue it waits in for admission (None: it is due at once)."""

    id: str
    workflow: str
    input: bytes
    version: str | None = None  # the application version the run carries (wf_create)
    queue: str | None = None
    key: str | None = None
    priority: int = 0
    trace: str | None = None  # the trace context of its fire (None without traces)


Writes = Sequence[tuple[ScheduleRow, Sequence[NewRun], Sequence[str]]]
# Where a script's created runs are counted: the place of each statement that creates
# runs, and the workflow they are runs of (None: the statement returns their names).
Counted = list[tuple[int, str | None]]


class Batch(NamedTuple):
    """A batch's statements, bound (``ScheduleOps.prepare_many``), and where they count
    the runs they create."""

    script: list[Scripted]
    counted: Counted


# A batch bound, or a batch of one as given (written by ``ScheduleOps.write``).
Prepared = Batch | tuple[str, Writes, float]


class ScheduleOps(Operations):
    """``contracts.ScheduleStorage``: the block's operations over an adapter's statements."""

    async def create(self, namespace: str, row: ScheduleRow, now: float) -> bool:
        """Store a new schedule; False when the id is taken."""
        statement = self._bind(
            "sch_create", namespace=namespace, id=row.id, workflow=row.workflow,
            input=row.input, spec=row.spec, overlap=row.overlap, jitter=row.jitter,
            catchup=row.catchup, paused=row.paused, next_fire_at=row.next_fire_at,
            due_at=row.due_at, now=now, queue=row.queue, queue_key=row.queue_key,
            priority=row.priority,
        )  # fmt: skip
        return bool(
            await self._db.run_write(statement, f"cannot create schedule {row.id!r}", "found")
        )

    async def get(self, namespace: str, id: str) -> ScheduleRow | None:
        statement = self._bind("sch_get", namespace=namespace, id=id)
        row = await self._db.run_read(statement, f"cannot read schedule {id!r}", "row")
        return None if row is None else ScheduleRow(*row)

    async def list(self, namespace: str, *, after: str, limit: int) -> builtins.list[ScheduleRow]:
        """Schedules by id, those after ``after`` first."""
        statement = self._bind("sch_list", namespace=namespace, after=after, limit=limit)
        rows = await self._db.run_in_order(statement, "cannot list schedules")
        return [ScheduleRow(*row) for row in rows]

    async def delete(self, namespace: str, id: str) -> bool:
        statement = self._bind("sch_delete", namespace=namespace, id=id)
        return bool(await self._db.run_write(statement, f"cannot delete schedule {id!r}", "found"))

    async def claim(
        self, namespace: str, *, now: float, lease_end: float, limit: int
    ) -> builtins.list[ScheduleRow]:
        """The schedules due at ``now`` (at most ``limit``), claimed until ``lease_end``."""
        statement = self._bind(
            "sch_claim", namespace=namespace, now=now, lease_end=lease_end, limit=limit
        )
        rows = await self._db.run_many(statement, "cannot claim due schedules", write=True)
        return [ScheduleRow(*row) for row in rows]

    async def next_due(self, namespace: str) -> float | None:
        statement = self._bind("sch_next_due", namespace=namespace)
        due = await self._db.run_read(statement, "cannot read schedules", "first")
        return None if due is None else float(due)

    def _write(self, namespace: str, row: ScheduleRow, now: float) -> Scripted:
        return (self._bind(
            "sch_write", namespace=namespace, id=row.id, workflow=row.workflow,
            input=row.input, spec=row.spec, overlap=row.overlap, jitter=row.jitter,
            catchup=row.catchup, paused=row.paused, next_fire_at=row.next_fire_at,
            due_at=row.due_at, last_run_id=row.last_run_id, buffered=row.buffered,
            version=row.version, now=now, queue=row.queue, queue_key=row.queue_key,
            priority=row.priority,
        ), "found", True)  # fmt: skip

    def _cancels(
        self, namespace: str, cancel: Sequence[str], now: float
    ) -> builtins.list[Scripted]:
        return [
            (self._bind("wf_cancel", now=now, namespace=namespace, id=run_id), "rowcount", False)
            for run_id in cancel
        ]

    def _created(self, namespace: str, run: NewRun, now: float) -> Statement:
        """A run due now (its queue None): sch_create_run, bound."""
        return self._bind(
            "sch_create_run", namespace=namespace, id=run.id, name=run.workflow,
            input=run.input, now=now, version=run.version, trace=run.trace,
        )  # fmt: skip

    def _runs(self, namespace: str, runs: Sequence[NewRun], now: float, at: int) -> Batch:
        """The statements that create ``runs`` one by one, the first at place ``at`` of
        its script."""
        script: builtins.list[Scripted] = []
        counted: Counted = []
        for run in runs:
            if run.queue is None:
                script.append((self._created(namespace, run, now), "rowcount", False))
            else:
                script.extend(
                    (made, "rowcount", False) for made in self._queued(namespace, run, now)
                )
            counted.append((at + len(script) - 1, run.workflow))  # (its workflow's insert)
        return Batch(script, counted)

    def _queued(self, namespace: str, run: NewRun, now: float) -> tuple[Statement, Statement]:
        """A run started queued: its place in its queue (if its workflow is new) and its
        workflow, not due until admitted, written in that order. Admission follows the
        commit (the caller's)."""
        place = self._bind(
            "sch_place_run", namespace=namespace, id=run.id, queue=run.queue, key=run.key,
            priority=run.priority, now=now,
        )  # fmt: skip
        create = self._bind(
            "sch_create_queued_run", namespace=namespace, id=run.id, name=run.workflow,
            input=run.input, now=now, version=run.version, trace=run.trace,
        )  # fmt: skip
        return place, create

    async def write(
        self,
        namespace: str,
        row: ScheduleRow,
        now: float,
        *,
        runs: Sequence[NewRun] = (),
        cancel: Sequence[str] = (),
    ) -> Counter[str] | None:
        """Save ``row`` if the stored version is still ``row.version`` and, in the same
        transaction, cancel the runs ``cancel`` and create ``runs`` (an id that exists
        already is left alone: the fire time is the run's idempotency key): the runs
        created, by workflow. None, with nothing done, if the schedule changed or was
        deleted since it was read."""
        script = [self._write(namespace, row, now), *self._cancels(namespace, cancel, now)]
        created = self._runs(namespace, runs, now, len(script))
        done = await self._db.run_atomic(
            script + created.script, f"cannot save schedule {row.id!r}"
        )
        return None if done is None else _started(done, created.counted)

    def _save_all(
        self,
        namespace: str,
        writes: Sequence[tuple[ScheduleRow, Sequence[NewRun], Sequence[str]]],
        now: float,
    ) -> Statement:
        rows = [row for row, _, _ in writes]
        return self._bind(
            "sch_write_many", namespace=namespace, now=now, ids=[r.id for r in rows],
            versions=[r.version for r in rows], next_fire_ats=[r.next_fire_at for r in rows],
            due_ats=[r.due_at for r in rows], last_run_ids=[r.last_run_id for r in rows],
            buffereds=[r.buffered for r in rows],
        )  # fmt: skip

    async def write_many(
        self,
        namespace: str,
        writes: Sequence[tuple[ScheduleRow, Sequence[NewRun], Sequence[str]]],
        now: float,
    ) -> Counter[str] | None:
        """Several ``write``s in one transaction, each statement run once over the whole
        batch: all of them (the runs created, by workflow), or (one schedule having
        changed since it was read) none (None)."""
        return await self.write_prepared(self.prepare_many(namespace, writes, now))

    async def write_prepared(self, prepared: Prepared) -> Counter[str] | None:
        """Run what ``prepare_many`` made (as ``write_many``)."""
        if isinstance(prepared, Batch):
            done = await self._db.run_atomic(prepared.script, "cannot save schedules")
            return None if done is None else _started(done, prepared.counted)
        namespace, writes, now = prepared
        started: Counter[str] = Counter()
        for row, runs, cancel in writes:  # (one at most)
            created = await self.write(namespace, row, now, runs=runs, cancel=cancel)
            if created is None:
                return None
            started += created
        return started

    def prepare_many(
        self,
        namespace: str,
        writes: Sequence[tuple[ScheduleRow, Sequence[NewRun], Sequence[str]]],
        now: float,
    ) -> Prepared:
        """The statements of ``write_many``, bound (a scheduler binds them before the
        fire is due, and only runs them at its time)."""
        if len(writes) <= 1:
            return namespace, writes, now
        if self._db.dialect == "postgres":
            pairs: dict[str, Any] = {
                "ids": [row.id for row, _, _ in writes],
                "versions": [row.version for row, _, _ in writes],
            }
        else:
            pairs = {"pairs_json": json.dumps([[row.id, row.version] for row, _, _ in writes])}
        check = self._bind("sch_check_versions", namespace=namespace, count=len(writes), **pairs)
        script: builtins.list[Scripted] = [(check, "found", True)]
        counted: Counted = []
        cancels = self._cancels(namespace, [r for _, _, cancel in writes for r in cancel], now)
        started = [run for _, runs, _ in writes for run in runs]
        creates = [run for run in started if run.queue is None]
        queued = [run for run in started if run.queue is not None]
        if self._db.dialect == "postgres":  # set-wise: one statement each
            script.append((self._save_all(namespace, writes, now), "rowcount", False))
            script.extend(cancels)
            for name, runs in (("sch_create_runs", creates), ("sch_create_queued_runs", queued)):
                if not runs:
                    continue
                extra = {} if runs is creates else {
                    "queues": [r.queue for r in runs], "keys": [r.key for r in runs],
                    "priorities": [r.priority for r in runs],
                }  # fmt: skip
                counted.append((len(script), None))  # (the names of the runs it created)
                script.append((self._bind(
                    name, namespace=namespace, now=now, run_ids=[r.id for r in runs],
                    names=[r.workflow for r in runs], inputs=[r.input for r in runs],
                    versions=[r.version for r in runs], traces=[r.trace for r in runs],
                    **extra,
                ), "first", False))  # fmt: skip
        else:  # one statement over the batch's rows, in the writer's own process
            saves = tuple(self._write(namespace, row, now)[0][1] for row, _, _ in writes)
            script.append(((self._queries["sch_write"].sql, saves), "many", False))
            script.extend(cancels)
            steps = [self._queued(namespace, run, now) for run in queued]
            if steps:  # every place first, in the batch's order (see sch_place_run) ...
                places = tuple(place[1] for place, _ in steps)
                script.append(((self._queries["sch_place_run"].sql, places), "many", False))
            # ... then the workflows, a statement per kind and workflow name: its row count
            # is the runs of that workflow it created.
            made = [(self._created(namespace, r, now), r.workflow) for r in creates]
            made += [(create, r.workflow) for (_, create), r in zip(steps, queued, strict=True)]
            groups: dict[tuple[str, str], builtins.list[tuple[Any, ...]]] = {}
            for (sql, arguments), workflow in made:
                groups.setdefault((sql, workflow), []).append(arguments)
            for (sql, workflow), rows in groups.items():
                counted.append((len(script), workflow))
                script.append(((sql, tuple(rows)), "many", False))
        return Batch(script, counted)


def _started(results: Sequence[Any], counted: Counted) -> Counter[str]:
    """The runs a script created, by workflow: the row counts of the statements that
    create runs of one workflow, the names returned by those that create several."""
    started: Counter[str] = Counter()
    for at, workflow in counted:
        found = results[at]
        if workflow is None:
            started.update(found or ())
        elif found:
            started[workflow] += int(found)
    return started
