"""Workflow operations, written once for both adapters (queries in
``queries/workflows*.sql``). The hot path, recording a step under the runner's fence, is
a unit of work (``unit.py``): one statement on PostgreSQL, one writer job on SQLite.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from statekeeper.constants import WORKFLOW_ACTIVE, WORKFLOW_CANCEL_REQUESTED, child_event
from statekeeper.errors import DuplicateEvent, WorkflowFinished, WorkflowNotFound
from statekeeper.storage.rows import (
    Finished,
    HistoryEntry,
    JournalEntry,
    LeasedWorkflow,
    WorkflowRow,
)
from statekeeper.storage.runner import Finishing, Operations, Scripted, Statement

MAX_ROWS = 2**31 - 1  # a LIMIT that is none

# How long a continued run keeps an update it settled (seconds): its caller reads the
# outcome within a poll, so this is slack for a caller that stalls.
SETTLED_UPDATES_KEPT = 3600.0


class WorkflowOps(Operations):
    """``contracts.WorkflowStorage``: the block's operations over an adapter's statements."""

    async def create(
        self,
        namespace: str,
        id: str,
        name: str,
        input: bytes,
        parent_id: str | None,
        now: float,
        *,
        deadline: float | None = None,
        version: str | None = None,
        trace: str | None = None,
    ) -> bool:
        """Create a pending workflow (timing out at ``deadline``, if given; stamped with
        application ``version``; started in ``trace``); False when the id exists already."""
        statement = self._bind(
            "wf_create", namespace=namespace, id=id, name=name, input=input,
            parent_id=parent_id, now=now, deadline=deadline, version=version, trace=trace,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot start workflow {id!r}", "found"))

    async def get(self, namespace: str, id: str) -> WorkflowRow | None:
        statement = self._bind("wf_get", namespace=namespace, id=id)
        row = await self._db.run_read(statement, f"cannot read workflow {id!r}", "row")
        return None if row is None else WorkflowRow(*row)

    async def lease(
        self,
        namespace: str,
        names: Sequence[str],
        *,
        owner: str,
        lease_end: float,
        limit: int,
        now: float,
        versions: Sequence[str] | None = None,
        stamps: Mapping[str, str] | None = None,
    ) -> list[LeasedWorkflow]:
        """Lease due workflows of ``names``; with ``versions``, only runs of those
        application versions or of none (pinned); without, of any version. A run with
        no version yet takes the one ``stamps`` gives its workflow's name."""
        statement = self._bind(
            "wf_lease", owner=owner, lease_end=lease_end, now=now, namespace=namespace,
            limit=limit, any_version=int(versions is None), **self._list_arg("names", names),
            **self._list_arg("versions", versions or ()),
            version_map=json.dumps(dict(stamps or {})),
        )  # fmt: skip
        rows = await self._db.run_many(statement, "cannot lease workflows", write=True)
        return [LeasedWorkflow(*row) for row in rows]

    async def journal(self, namespace: str, id: str) -> list[JournalEntry]:
        statement = self._bind("wf_journal", namespace=namespace, id=id)
        rows = await self._db.run_many(statement, f"cannot read the journal of {id!r}")
        return [JournalEntry(*row) for row in rows]

    async def renew(
        self, namespace: str, id: str, fence: int, lease_end: float, now: float
    ) -> bool | None:
        """Renew the lease; None if lost, else whether cancellation was requested."""
        statement = self._bind(
            "wf_renew", lease_end=lease_end, now=now, namespace=namespace, id=id, fence=fence
        )
        row = await self._db.run_write(statement, f"cannot renew workflow {id!r}", "row")
        return None if row is None else row[0] == WORKFLOW_CANCEL_REQUESTED

    async def suspend(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        status: str,
        wake_at: float | None,
        waiting_for: str | None,
        now: float,
    ) -> bool:
        statement = self._bind(
            "wf_suspend", status=status, waiting_for=waiting_for, now=now, namespace=namespace,
            id=id, wake_at=wake_at, fence=fence,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot suspend workflow {id!r}", "found"))

    def _finish_settling(self, finish: Statement, unapplied: Statement, returning: str,
                         values: dict[str, Any] | None) -> Statement:  # fmt: skip
        """PostgreSQL: the finish and the settling of its pending updates as one
        statement (one round trip, its own transaction): the settling runs only when the
        finish found its row; ``returning`` (a query over ``finished``, written with the
        finish's :parameters or ``values``) is what it returns."""
        (sql, args), (settle_sql, settle_args) = finish, unapplied
        params = self._queries["wf_finish"].params
        where = {name: f"${index + 1}" for index, name in enumerate(params)}
        own = self._queries["wfm_finish_updates"].params
        # Its parameters are the finish's (namespace, id, now), renumbered in one pass.
        renamed = re.sub(r"\$(\d+)", lambda m: where[own[int(m.group(1)) - 1]], settle_sql)
        del settle_args
        bound = list(args)

        def place(name: str) -> str:
            if name not in where:  # one of ``values``, bound after the finish's own
                bound.append((values or {})[name])
                where[name] = f"${len(bound)}"
            return where[name]

        result = re.sub(r"(?<!:):([a-z_]+)", lambda m: place(m.group(1)), returning)
        composed = (
            f"WITH finished AS ({sql}), settled AS ({renamed} "
            f"AND EXISTS (SELECT 1 FROM finished) RETURNING 1) {result}"
        )
        return composed, tuple(bound)

    async def finish(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        status: str,
        output: bytes | None,
        error: str | None,
        parent_id: str | None,
        parent_event: bytes | None,
        now: float,
        purge_at: float | None = None,
        finishing: Finishing | None = None,
    ) -> Finished:
        """Finish the workflow while the fence holds (not done if the lease was lost),
        with the run its end took (``Finishing.returning``), if any. A child's end is
        delivered to its parent as event ``child:<id>`` with the data ``parent_event``
        (built, and sealed, by the caller), atomically."""
        finish = self._bind(
            "wf_finish", status=status, output=output, error=error, now=now,
            namespace=namespace, id=id, fence=fence, purge_at=purge_at,
        )  # fmt: skip
        # The updates it has not applied are settled as not applied (workflow_messages.sql),
        # and a run of a workflow queue gives its slot back (flow_ops.finishing).
        unapplied = self._bind("wfm_finish_updates", namespace=namespace, id=id, now=now)
        script: list[Scripted]
        takes = finishing is not None and finishing.returning is not None
        if self._db.dialect == "postgres":
            returning, values = "SELECT parent_id FROM finished", None
            if finishing is not None and finishing.returning is not None:
                returning, values = finishing.returning, finishing.values
            composed = self._finish_settling(finish, unapplied, returning, values)
            script = [(composed, "row" if takes else "found", True)]
        else:
            after = [] if finishing is None else finishing.after
            script = [(finish, "found", True), *after, (unapplied, "rowcount", False)]
        if parent_id is not None:
            event = child_event(id)
            script.append((self._bind(
                "wf_event_insert", namespace=namespace, id=parent_id, event=event,
                data=parent_event, now=now,
            ), "rowcount", False))  # fmt: skip
            script.append((self._bind(
                "wf_event_wake", now=now, namespace=namespace, id=parent_id, event=event
            ), "rowcount", False))  # fmt: skip
        done = await self._db.run_atomic(script, f"cannot finish workflow {id!r}")
        if done is None:
            return Finished(False)
        taken = done[0] if takes else None
        return Finished(True, None if taken is None or taken[0] is None else LeasedWorkflow(*taken))

    async def event(
        self, namespace: str, id: str, event: str, data: bytes | None, now: float
    ) -> None:
        """Deliver an event: DuplicateEvent if it was delivered before, WorkflowNotFound if
        there is no such workflow, WorkflowFinished if it has finished. Whether the event
        is stored is decided by the statement that stores it (wf_event_insert); only a
        refusal reads on, to say why."""
        insert = self._bind(
            "wf_event_insert", namespace=namespace, id=id, event=event, data=data, now=now
        )
        wake = self._bind("wf_event_wake", now=now, namespace=namespace, id=id, event=event)
        what = f"cannot deliver event {event!r} to workflow {id!r}"
        done = await self._db.run_atomic([(insert, "found", True), (wake, "rowcount", False)], what)
        if done is None:
            row = await self.get(namespace, id)
            if row is None:
                raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
            if (await self.event_data(namespace, id, event))[0]:
                raise DuplicateEvent(
                    f"event {event!r} was delivered to workflow {id!r} already",
                    id=id, event=event,
                )  # fmt: skip
            ended = row.status if row.status not in WORKFLOW_ACTIVE else "finished; since retried"
            raise WorkflowFinished(
                f"workflow {id!r} has finished ({ended}): event {event!r} was not delivered",
                id=id, event=event,
            )  # fmt: skip

    async def event_data(self, namespace: str, id: str, event: str) -> tuple[bool, bytes | None]:
        statement = self._bind("wf_event_get", namespace=namespace, id=id, event=event)
        row = await self._db.run_read(statement, f"cannot read events of {id!r}", "row")
        return (False, None) if row is None else (True, row[0])

    async def heartbeat(self, namespace: str, id: str, event: str, now: float) -> bool:
        """Record that ``event`` (a callback's heartbeat) beat at ``now``; False if the
        workflow has finished or does not exist."""
        statement = self._bind("wf_heartbeat", namespace=namespace, id=id, event=event, now=now)
        return bool(
            await self._db.run_write(statement, f"cannot record a heartbeat of {id!r}", "found")
        )

    async def event_received(self, namespace: str, id: str, event: str) -> float | None:
        """When ``event`` was received (last, for a heartbeat); None if it was not."""
        statement = self._bind("wf_event_received", namespace=namespace, id=id, event=event)
        found = await self._db.run_read(statement, f"cannot read events of {id!r}", "first")
        return None if found is None else float(found)

    async def cancel(self, namespace: str, id: str, now: float) -> str | None:
        statement = self._bind("wf_cancel", now=now, namespace=namespace, id=id)
        state: str | None = await self._db.run_write(statement, f"cannot cancel {id!r}", "first")
        return state

    async def pause(self, namespace: str, id: str, now: float) -> str | None:
        """Pause a workflow that has not finished (a paused one stays paused): its status;
        None if it has finished, does not exist, or is being cancelled."""
        statement = self._bind("wf_pause", now=now, namespace=namespace, id=id)
        state: str | None = await self._db.run_write(statement, f"cannot pause {id!r}", "first")
        return state

    async def resume(self, namespace: str, id: str, now: float) -> str | None:
        """Clear a workflow's pause: its status; None if it was not paused."""
        statement = self._bind("wf_resume", now=now, namespace=namespace, id=id)
        state: str | None = await self._db.run_write(statement, f"cannot resume {id!r}", "first")
        return state

    async def retry(self, namespace: str, id: str, now: float) -> bool:
        """Make a failed or timed-out workflow pending again (without its deadline);
        False if it is neither."""
        forget = self._bind("wf_forget_failed_steps", namespace=namespace, id=id)
        retry = self._bind("wf_retry", now=now, namespace=namespace, id=id)
        done = await self._db.run_atomic(
            [(retry, "found", True), (forget, "rowcount", False), *self._requeue(namespace, id)],
            f"cannot retry {id!r}",
        )
        return done is not None

    async def rewind(self, namespace: str, id: str, position: int, now: float) -> bool:
        """Make a failed or timed-out workflow pending again, its journal kept only
        before ``position`` (what was done from there runs again); False if it is
        neither failed nor timed out."""
        keys = {"namespace": namespace, "id": id, "position": position}
        forget = self._bind("wf_forget_steps_from", **keys)
        # Before the journal's position 0 could change: it says which run wrote them.
        streamed = self._bind("wfs_forget_from", **keys)
        retry = self._bind("wf_retry", now=now, namespace=namespace, id=id)
        done = await self._db.run_atomic(
            [(retry, "found", True), (streamed, "rowcount", False), (forget, "rowcount", False),
             *self._requeue(namespace, id)],
            f"cannot rewind {id!r}",
        )  # fmt: skip
        return done is not None

    def _requeue(self, namespace: str, id: str) -> list[Scripted]:
        """A retried run of a workflow queue waits for admission again (flow.sql)."""
        keys = {"namespace": namespace, "id": id}
        return [
            (self._bind("flow_requeue", **keys), "rowcount", False),
            (self._bind("flow_requeue_hold", **keys), "rowcount", False),
        ]

    async def continue_as_new(
        self, namespace: str, id: str, fence: int, input: bytes, now: float
    ) -> bool:
        """Start a running workflow over with ``input`` while the fence holds, in one
        transaction: its journal deleted, the events it consumed (and its callbacks')
        deleted, the others kept, its count of continues (journal position 0) up by
        one, and the workflow due at once. False (nothing changed)
        if the lease was lost."""
        keys = {"namespace": namespace, "id": id}
        kept_after = now - SETTLED_UPDATES_KEPT
        script: list[Scripted] = [
            (self._bind("wf_continue", input=input, now=now, fence=fence, **keys), "found", True),
            (self._bind("wf_continue_events", **keys), "rowcount", False),
            # The messages its journal consumed (before the journal goes).
            (self._bind("wfm_continue_messages", **keys), "rowcount", False),
            # Its settled updates (but those settled lately, whose callers may still read).
            (
                self._bind("wfm_continue_updates", settled_before=kept_after, **keys),
                "rowcount",
                False,
            ),
            (self._bind("wf_continue_steps", **keys), "rowcount", False),
            (self._bind("wf_continue_count", now=now, **keys), "rowcount", False),
        ]
        what = f"cannot continue workflow {id!r} as new"
        return await self._db.run_atomic(script, what) is not None

    async def purge(self, namespace: str, id: str) -> bool:
        """Delete a finished workflow with its journal and events, in one transaction;
        False (nothing deleted) if it does not exist or has not finished."""
        script: list[Scripted] = [
            (self._bind("wf_purge", namespace=namespace, id=id), "found", True),
            (self._bind("wf_purge_steps", namespace=namespace, id=id), "rowcount", False),
            (self._bind("wf_purge_events", namespace=namespace, id=id), "rowcount", False),
            (self._bind("wf_attr_purge", namespace=namespace, id=id), "rowcount", False),
            # Its mailbox, updates and published values (workflow_message_ops).
            *[
                (self._bind(name, namespace=namespace, id=id), "rowcount", False)
                for name in (
                    "wfm_purge_messages",
                    "wfm_purge_updates",
                    "wfm_purge_values",
                    "wfs_purge",
                )
            ],
            (self._bind("flow_forget", namespace=namespace, id=id), "rowcount", False),
        ]
        return await self._db.run_atomic(script, f"cannot purge workflow {id!r}") is not None

    async def trace(self, namespace: str, id: str) -> str | None:
        """The trace context workflow ``id`` was started in (None: none recorded)."""
        statement = self._bind("wf_trace", namespace=namespace, id=id)
        found = await self._db.run_read(statement, f"cannot read the trace of {id!r}", "first")
        return None if found is None else str(found)

    async def active_counts(self, namespace: str) -> list[tuple[str, str, int]]:
        """Active runs of ``namespace``: (status, name, how many)."""
        statement = self._bind("wf_active_counts", namespace=namespace)
        rows = await self._db.run_many(statement, "cannot count workflows")
        return [(str(status), str(name), int(count)) for status, name, count in rows]

    async def due_summary(self, namespace: str, now: float) -> tuple[int, float | None]:
        """How many runs of ``namespace`` are due at ``now``, and the earliest due time."""
        statement = self._bind("wf_due_summary", namespace=namespace, now=now)
        row = await self._db.run_read(statement, "cannot count due workflows", "row")
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def created_per_minute(self, namespace: str, since: float) -> list[tuple[int, str, int]]:
        """Runs of ``namespace`` created since ``since``: (minute from ``since``,
        status, how many)."""
        statement = self._bind("wf_created_per_minute", namespace=namespace, hour_start=since)
        rows = await self._db.run_many(statement, "cannot count workflows")
        return [(int(minute), str(status), int(count)) for minute, status, count in rows]

    async def list(
        self,
        namespace: str,
        *,
        status: str | None,
        name: str | None,
        before: tuple[float, str],
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """Workflows created before ``before`` (created_at, id), newest first."""
        query = "wf_list" + {
            (False, False): "", (True, False): "_by_status", (False, True): "_by_name",
            (True, True): "_by_status_and_name",
        }[(status is not None, name is not None)]  # fmt: skip
        filters = {"status": status} if status is not None else {}
        if name is not None:
            filters["name"] = name
        statement = self._bind(
            query, namespace=namespace, before_time=before[0], before_id=before[1], limit=limit,
            **filters,
        )  # fmt: skip
        return await self._db.run_in_order(statement, "cannot list workflows")

    async def history(
        self, namespace: str, id: str, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[HistoryEntry]:
        """The journal's entries after position ``after`` (at most ``limit``)."""
        statement = self._bind(
            "wf_history", namespace=namespace, id=id, after=max(after, 0),
            limit=MAX_ROWS if limit is None else limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot read the history of {id!r}")
        return [HistoryEntry(*row) for row in rows]

    async def runs(self, namespace: str, id: str) -> int:
        """How many times workflow ``id`` continued as new (0: in its first run)."""
        statement = self._bind("wf_runs", namespace=namespace, id=id)
        found = await self._db.run_read(statement, f"cannot read workflow {id!r}", "first")
        return 0 if found is None else int(found)

    async def next_due(self, namespace: str) -> float | None:
        statement = self._bind("wf_next_due", namespace=namespace)
        due = await self._db.run_read(statement, "cannot read workflows", "first")
        return None if due is None else float(due)

    async def move_version(
        self,
        namespace: str,
        from_version: str | None,
        to_version: str,
        now: float,
        *,
        name: str | None = None,
        id: str | None = None,
    ) -> builtins.list[str]:
        """Give the unfinished runs of ``from_version`` (of workflow ``name`` only, if
        given) application version ``to_version``; with ``id``, that one run (from any
        version when ``from_version`` is None). The ids moved."""
        if id is not None:
            statement = self._bind(
                "wf_move_version_of", namespace=namespace, id=id, from_version=from_version,
                to_version=to_version, now=now,
            )  # fmt: skip
        else:
            statement = self._bind(
                "wf_move_version", namespace=namespace, from_version=from_version,
                to_version=to_version, name=name, now=now,
            )  # fmt: skip
        rows = await self._db.run_many(statement, "cannot move workflow versions", write=True)
        return [str(row[0]) for row in rows]

    async def fork(
        self,
        namespace: str,
        new_id: str,
        name: str,
        input: bytes,
        entries: Sequence[HistoryEntry],
        now: float,
        *,
        version: str | None,
        mailbox: Sequence[tuple[str, int, bytes | None, float]] = (),
        values: Sequence[tuple[str, bytes]] = (),
        queued: tuple[str, str | None, int] | None = None,
    ) -> bool:
        """Create workflow ``new_id`` (pending, due now) with journal ``entries``, the
        ``mailbox`` messages (topic, number, data, sent at) and the published ``values``
        (key, value), in one transaction; False (nothing written) if ``new_id`` exists
        already. With ``queued`` (queue, key, priority) it waits in that workflow queue
        instead of being due (the caller admits it)."""
        keys = {"namespace": namespace, "id": new_id}
        create = "wf_create" if queued is None else "flow_create_workflow"
        script: builtins.list[Scripted] = [(self._bind(
            create, name=name, input=input, parent_id=None, now=now, deadline=None,
            version=version, trace=None, **keys,
        ), "found", True)]  # fmt: skip
        if queued is not None:
            queue, key, priority = queued
            script.append((self._bind(
                "flow_enqueue", queue=queue, key=key, priority=priority, not_before=now,
                lock=None, now=now, **keys,
            ), "found", True))  # fmt: skip
        for e in entries:
            script.append((self._bind(
                "wf_fork_step", position=e.position, kind=e.kind, step_name=e.name,
                input=e.input, output=e.output, error=e.error, attempts=e.attempts,
                started_at=e.started_at, finished_at=e.finished_at, **keys,
            ), "rowcount", False))  # fmt: skip
        for topic, seq, data, sent_at in mailbox:
            script.append((self._bind(
                "wfm_copy_message", topic=topic, seq=seq, data=data, sent_at=sent_at, **keys
            ), "rowcount", False))  # fmt: skip
        for key, value in values:
            script.append((self._bind(
                "wfm_put_value", key=key, value=value, now=now, **keys
            ), "rowcount", False))  # fmt: skip
        return await self._db.run_atomic(script, f"cannot fork into {new_id!r}") is not None

    async def purge_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` finished runs whose purge time has passed (in every
        namespace), with their journals, events, attributes and messages, in one
        transaction; how many."""
        script: builtins.list[Scripted] = [
            (self._bind(query, now=now, limit=limit), "rowcount", False)
            for query in (
                "wf_expired_mark",
                "wf_expired_steps",
                "wf_expired_events",
                "wf_expired_attributes",
                "wf_expired_messages",
                "wf_expired_updates",
                "wf_expired_values",
                "wf_expired_streams",
                "wf_expired_flow_runs",
                "wf_expired_runs",
            )
        ]
        done = await self._db.run_atomic(script, "cannot purge expired workflows")
        return 0 if done is None else int(done[-1])
