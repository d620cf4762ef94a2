"""Flow control's operations (``queries/flow*.sql``), written once for both adapters.

A run started into a workflow queue is written with its place in the queue in one
transaction, which also tries to admit it (or a run ahead of it); a run's end gives its
slot back and admits the next in the transaction that finishes it (``release_script``).
Admission is decided by the database, so the limits hold across workers: on SQLite by
the one writer; on PostgreSQL in ``sk_flow_pass`` (schema/postgres.sql), under a
per-queue advisory lock, except where one run's end hands its slot to the next (the
count of running runs unchanged; per-key limits held by unique key slots) and a start
finds its queue full (the queue's start gate, shared).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from statekeeper.errors import ConflictError
from statekeeper.storage.runner import Finishing, Operations, Scripted, Take

ADMIT_BATCH = 16  # runs one admission pass admits at most
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE: a start found its lock held


class QueueLimits(NamedTuple):
    """A workflow queue's limits as stored (None: no limit)."""

    name: str
    concurrency: int | None
    per_key_concurrency: int | None
    rate_limit: int | None
    rate_period: float | None
    key_rate_limit: int | None
    key_rate_period: float | None
    updated_at: float
    # Its start rules: 'reject', 'queue' (singleton), 'debounce' or None; the input field
    # a start's key is taken from (None: none, or a function of the input).
    start_rule: str | None = None
    key_field: str | None = None


class FlowRun(NamedTuple):
    """A run's place in its queue."""

    queue: str
    key: str | None
    priority: int
    state: str  # waiting, admitted, done
    not_before: float
    admitted_at: float | None


class FlowOps(Operations):
    """``contracts.FlowStorage``: the block's operations over an adapter's statements."""

    async def declare(self, namespace: str, limits: QueueLimits) -> None:
        statement = self._bind(
            "flow_declare", namespace=namespace, name=limits.name,
            concurrency=limits.concurrency, per_key_concurrency=limits.per_key_concurrency,
            rate_limit=limits.rate_limit, rate_period=limits.rate_period,
            key_rate_limit=limits.key_rate_limit, key_rate_period=limits.key_rate_period,
            now=limits.updated_at, start_rule=limits.start_rule, key_field=limits.key_field,
        )  # fmt: skip
        what = f"cannot declare workflow queue {limits.name!r}"
        await self._db.run_write(statement, what, "rowcount")

    def _admit(self, namespace: str, queue: str | None, released: str | None, now: float,
               count: int) -> list[Scripted]:  # fmt: skip
        """The statements that admit up to ``count`` runs (one call on PostgreSQL)."""
        statement = self._bind(
            "flow_admit", namespace=namespace, queue=queue, released=released, now=now, max=count
        )
        if self._db.dialect == "postgres":
            return [(statement, "first", False)]
        script: list[Scripted] = []
        if released is not None:
            release = self._bind("flow_release", namespace=namespace, released=released)
            script.append((release, "rowcount", False))
        return script + [(statement, "found", False)] * count

    @staticmethod
    def _admitted(results: list[Any], dialect: str) -> int:
        if dialect == "postgres":
            return int(results[-1] or 0)
        return sum(1 for found in results if found is True)

    async def enqueue(
        self,
        namespace: str,
        *,
        id: str,
        name: str,
        input: bytes,
        deadline: float | None,
        queue: str,
        key: str | None,
        priority: int,
        not_before: float,
        lock: str | None,
        now: float,
        version: str | None = None,
        trace: str | None = None,
    ) -> tuple[str, int] | None:
        """Create a queued workflow (started in ``trace``) with its place in ``queue`` and
        admit what its limits allow, in one transaction: ("created", how many were
        admitted). ("exists", 0) when the id is taken; None when ``lock`` is held (nothing
        is written)."""
        create = self._bind(
            "flow_create_workflow", namespace=namespace, id=id, name=name, input=input,
            deadline=deadline, now=now, version=version, trace=trace,
        )  # fmt: skip
        place = self._bind(
            "flow_enqueue", namespace=namespace, id=id, queue=queue, key=key,
            priority=priority, not_before=not_before, lock=lock, now=now,
        )  # fmt: skip
        what = f"cannot start workflow {id!r} in queue {queue!r}"
        if self._db.dialect == "postgres":
            return await self._enqueue_postgres(
                namespace, id, queue, now, what, name=name, input=input, deadline=deadline,
                key=key, priority=priority, not_before=not_before, lock=lock, version=version,
                trace=trace,
            )  # fmt: skip
        script = [(create, "found", True), (place, "found", True)]
        done = await self._db.run_atomic(script + self._admit(namespace, queue, None, now, 1), what)
        if done is not None:
            return "created", self._admitted(done[2:], self._db.dialect)
        if await self._exists(namespace, id):  # the caller compares the two starts
            return "exists", 0
        return None

    async def _enqueue_postgres(
        self, namespace: str, id: str, queue: str, now: float, what: str, **values: Any
    ) -> tuple[str, int] | None:
        """``enqueue`` in one statement: the start with its admission (flow_start)."""
        start = self._bind("flow_start", namespace=namespace, id=id, queue=queue, now=now, **values)
        try:
            created, _, admitted = await self._db.run_write(start, what, "row")
        except ConflictError as error:
            if error.details.get("driver_code") == UNIQUE_VIOLATION:
                return None  # the lock is held
            raise
        if created is None:
            return "exists", 0
        if admitted == -1:  # a slot opened while the queue looked full: admit now
            return "created", await self.admit(namespace, queue, now, 1)
        return "created", int(admitted or 0)

    async def _exists(self, namespace: str, id: str) -> bool:
        statement = self._bind("wf_get", namespace=namespace, id=id)
        return bool(await self._db.run_read(statement, f"cannot read workflow {id!r}", "found"))

    async def lock_holder(self, namespace: str, queue: str, lock: str) -> tuple[str, str] | None:
        """The run holding ``lock`` in ``queue``, and its state; None if none does."""
        statement = self._bind("flow_lock_holder", namespace=namespace, queue=queue, lock=lock)
        row = await self._db.run_read(statement, f"cannot read workflow queue {queue!r}", "row")
        return None if row is None else (str(row[0]), str(row[1]))

    async def debounce(
        self, namespace: str, id: str, lock: str, input: bytes, not_before: float, now: float
    ) -> bool:
        """Give the waiting debounced run ``id`` this start's input and wait on until
        ``not_before``; False if it is no longer waiting (admitted since)."""
        touch = self._bind(
            "flow_debounce", namespace=namespace, id=id, lock=lock, not_before=not_before
        )
        replace = self._bind("flow_replace_input", namespace=namespace, id=id, input=input, now=now)
        script: list[Scripted] = [(touch, "found", True), (replace, "rowcount", False)]
        return await self._db.run_atomic(script, f"cannot debounce workflow {id!r}") is not None

    async def admit(self, namespace: str, queue: str, now: float, count: int = ADMIT_BATCH) -> int:
        """Admit up to ``count`` waiting runs of ``queue`` that its limits allow now."""
        script = self._admit(namespace, queue, None, now, count)
        done = await self._db.run_atomic(script, f"cannot admit runs of queue {queue!r}")
        return 0 if done is None else self._admitted(done, self._db.dialect)

    async def admit_run(self, namespace: str, id: str, now: float) -> int:
        """Admit what the queue run ``id`` waits in allows now (0 if it waits in none)."""
        statement = self._bind("flow_waiting_queue", namespace=namespace, id=id)
        queue = await self._db.run_read(statement, f"cannot read workflow {id!r}", "first")
        return 0 if queue is None else await self.admit(namespace, str(queue), now)

    def finishing(self, namespace: str, id: str, now: float, take: Take | None = None) -> Finishing:
        """What ends run ``id`` (``WorkflowOps.finish``) beside its finish: its slot given
        back and the next run of its queue admitted, in the same transaction. On
        PostgreSQL the finish statement calls sk_flow_pass for the row it ended (none
        when the fence no longer holds: nothing is released), so the queue is touched by
        one statement; with ``take``, the run admitted is leased to that runner and
        returned (SQLite admits it only: its runner leases it)."""
        if self._db.dialect != "postgres":
            return Finishing(self.release_script(namespace, id, now))
        taking = (
            "SELECT t.taken_id, t.taken_name, t.taken_input, t.taken_fence, t.taken_cancel, "
            "t.taken_parent, t.taken_created, t.taken_deadline, t.taken_trace FROM finished "
            "LEFT JOIN LATERAL sk_flow_pass(:namespace, NULL, :id, "
            "CAST(:now AS DOUBLE PRECISION), 1, CAST(:owner AS TEXT), "
            "CAST(:lease_end AS DOUBLE PRECISION), CAST(:names AS TEXT[]), "
            "CAST(:versions AS TEXT[]), CAST(CAST(:stamps AS TEXT) AS JSONB)) AS t ON TRUE"
        )
        values = dict.fromkeys(("owner", "lease_end", "names", "versions", "stamps"))
        if take is not None:  # (without one, p_owner is NULL: nothing is taken)
            values.update(take._asdict(), stamps=json.dumps(take.stamps))
        return Finishing([], taking, values)

    def release_script(self, namespace: str, id: str, now: float) -> list[Scripted]:
        """Statements for the transaction that ends run ``id``: its slot back, and the
        next run of its queue admitted (nothing, for a run in no queue)."""
        return self._admit(namespace, None, id, now, 1)

    async def run(self, namespace: str, id: str) -> FlowRun | None:
        statement = self._bind("flow_run", namespace=namespace, id=id)
        row = await self._db.run_read(statement, f"cannot read workflow {id!r}", "row")
        return None if row is None else FlowRun(*row)

    async def queues(self, namespace: str) -> list[QueueLimits]:
        statement = self._bind("flow_queues", namespace=namespace)
        rows = await self._db.run_many(statement, "cannot read the workflow queues")
        return [QueueLimits(*row) for row in rows]

    async def counts(self, namespace: str, queue: str, since: float) -> tuple[int, int, int]:
        """(waiting, admitted now, admitted since ``since``) of ``queue``."""
        statement = self._bind("flow_queue_counts", namespace=namespace, queue=queue, since=since)
        row = await self._db.run_read(statement, f"cannot read workflow queue {queue!r}", "row")
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def forget_script(self, namespace: str, id: str) -> list[Scripted]:
        """The statement that drops a purged run's place in its queue."""
        return [(self._bind("flow_forget", namespace=namespace, id=id), "rowcount", False)]

    async def queue_limits(
        self, namespace: str, queue: str, per_group: int | None, concurrency: int | None
    ) -> None:
        """Let at most ``per_group`` messages of one group of message queue ``queue`` be
        in hand at a time (None: one, FIFO groups; messages sent from then on follow
        it), and at most ``concurrency`` messages of the queue (None: no limit)."""
        what = f"cannot set the concurrency of queue {queue!r}"
        if per_group is None and concurrency is None:
            statement = self._bind("flow_queue_limits_clear", namespace=namespace, queue=queue)
        else:
            statement = self._bind(
                "flow_queue_limits", namespace=namespace, queue=queue,
                per_group=per_group or 1, concurrency=concurrency,
            )  # fmt: skip
        await self._db.run_write(statement, what, "rowcount")
