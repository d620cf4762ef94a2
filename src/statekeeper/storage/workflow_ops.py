"""Workflow storage, for both adapters.

Each backend supplies ``run_write``/``run_read`` (one statement) and ``run_atomic``
(several statements in one transaction, abandoned when a required one finds no
row). The hot path, the checkpoint of a step, is one statement on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from statekeeper.constants import child_event
from statekeeper.errors import DuplicateEvent, WorkflowNotFound
from statekeeper.storage.runner import Scripted, StatementRunner


class WorkflowRow(NamedTuple):
    id: str
    name: str
    status: str
    input: bytes
    output: bytes | None
    error: str | None
    fence: int
    lease_expires_at: float | None
    wake_at: float | None
    waiting_for: str | None
    parent_id: str | None
    cancel_requested: int
    created_at: float
    updated_at: float


class LeasedWorkflow(NamedTuple):
    id: str
    name: str
    input: bytes
    fence: int
    cancel_requested: int
    parent_id: str | None
    created_at: float


class JournalEntry(NamedTuple):
    position: int
    kind: str
    name: str
    output: bytes | None
    error: str | None


class HistoryEntry(NamedTuple):
    position: int
    kind: str
    name: str
    input: bytes | None
    output: bytes | None
    error: str | None
    attempts: int
    started_at: float | None
    finished_at: float


class WorkflowOps(StatementRunner):
    """Mixed into both backends; PostgreSQL adds a one-statement checkpoint."""

    async def workflow_create(
        self, namespace: str, id: str, name: str, input: bytes, parent_id: str | None, now: float
    ) -> bool:
        """Create a pending workflow; False when the id exists already."""
        statement = self._bind(
            "wf_create", namespace=namespace, id=id, name=name, input=input,
            parent_id=parent_id, now=now,
        )  # fmt: skip
        return bool(await self.run_write(statement, f"cannot start workflow {id!r}", "found"))

    async def workflow_get(self, namespace: str, id: str) -> WorkflowRow | None:
        statement = self._bind("wf_get", namespace=namespace, id=id)
        row = await self.run_read(statement, f"cannot read workflow {id!r}", "row")
        return None if row is None else WorkflowRow(*row)

    async def workflow_lease(
        self,
        namespace: str,
        names: Sequence[str],
        *,
        owner: str,
        lease_end: float,
        limit: int,
        now: float,
    ) -> list[LeasedWorkflow]:
        statement = self._bind(
            "wf_lease", owner=owner, lease_end=lease_end, now=now, namespace=namespace,
            limit=limit, **self._list_arg("names", names),
        )  # fmt: skip
        rows = await self.run_many(statement, "cannot lease workflows", write=True)
        return [LeasedWorkflow(*row) for row in rows]

    async def workflow_journal(self, namespace: str, id: str) -> list[JournalEntry]:
        statement = self._bind("wf_journal", namespace=namespace, id=id)
        rows = await self.run_many(statement, f"cannot read the journal of {id!r}")
        return [JournalEntry(*row) for row in rows]

    async def workflow_checkpoint(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        position: int,
        kind: str,
        step_name: str,
        input: bytes | None,
        output: bytes | None,
        error: str | None,
        attempts: int,
        started_at: float | None,
        lease_end: float,
        now: float,
    ) -> bool | None:
        """Record a step while the fence holds, renewing the lease. None if the lease is
        lost; else whether cancellation was requested."""
        values = {
            "namespace": namespace, "id": id, "fence": fence, "position": position,
            "kind": kind, "step_name": step_name, "input": input, "output": output,
            "error": error, "attempts": attempts, "started_at": started_at,
            "lease_end": lease_end, "now": now,
        }  # fmt: skip
        what = f"cannot checkpoint workflow {id!r}"
        if "wf_checkpoint" in self._queries:  # one statement where the dialect can
            row = await self.run_write(self._bind("wf_checkpoint", **values), what, "row")
            if row is None or row[0] is None or not row[1]:
                return None
            return bool(row[0])
        renew = self._bind(
            "wf_checkpoint_renew", lease_end=lease_end, now=now, namespace=namespace, id=id,
            fence=fence,
        )  # fmt: skip
        record = self._bind(
            "wf_record_step",
            **{k: v for k, v in values.items() if k not in ("fence", "lease_end")},
        )
        done = await self.run_atomic([(renew, "first", True), (record, "rowcount", False)], what)
        return None if done is None else bool(done[0])

    async def workflow_renew(
        self, namespace: str, id: str, fence: int, lease_end: float, now: float
    ) -> bool | None:
        """Renew the lease; None if lost, else whether cancellation was requested."""
        statement = self._bind(
            "wf_renew", lease_end=lease_end, now=now, namespace=namespace, id=id, fence=fence
        )
        row = await self.run_write(statement, f"cannot renew workflow {id!r}", "row")
        return None if row is None else bool(row[0])

    async def workflow_suspend(
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
        return bool(await self.run_write(statement, f"cannot suspend workflow {id!r}", "found"))

    async def workflow_finish(
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
    ) -> bool:
        """Finish the workflow while the fence holds; False if the lease was lost. A
        child's end is delivered to its parent as event ``child:<id>`` with the data
        ``parent_event`` (built, and sealed, by the caller), atomically."""
        finish = self._bind(
            "wf_finish", status=status, output=output, error=error, now=now,
            namespace=namespace, id=id, fence=fence,
        )  # fmt: skip
        script: list[Scripted] = [(finish, "found", True)]
        if parent_id is not None:
            event = child_event(id)
            script.append((self._bind(
                "wf_event_insert", namespace=namespace, id=parent_id, event=event,
                data=parent_event, now=now,
            ), "rowcount", False))  # fmt: skip
            script.append((self._bind(
                "wf_event_wake", now=now, namespace=namespace, id=parent_id, event=event
            ), "rowcount", False))  # fmt: skip
        done = await self.run_atomic(script, f"cannot finish workflow {id!r}")
        return done is not None

    async def workflow_event(
        self, namespace: str, id: str, event: str, data: bytes | None, now: float
    ) -> None:
        """Deliver an event: DuplicateEvent if it was delivered before, WorkflowNotFound if
        there is no such workflow."""
        insert = self._bind(
            "wf_event_insert", namespace=namespace, id=id, event=event, data=data, now=now
        )
        wake = self._bind("wf_event_wake", now=now, namespace=namespace, id=id, event=event)
        what = f"cannot deliver event {event!r} to workflow {id!r}"
        done = await self.run_atomic([(insert, "found", True), (wake, "rowcount", False)], what)
        if done is None:
            if await self.workflow_get(namespace, id) is None:
                raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
            raise DuplicateEvent(
                f"event {event!r} was delivered to workflow {id!r} already", id=id, event=event
            )

    async def workflow_event_data(
        self, namespace: str, id: str, event: str
    ) -> tuple[bool, bytes | None]:
        statement = self._bind("wf_event_get", namespace=namespace, id=id, event=event)
        row = await self.run_read(statement, f"cannot read events of {id!r}", "row")
        return (False, None) if row is None else (True, row[0])

    async def workflow_cancel(self, namespace: str, id: str, now: float) -> str | None:
        statement = self._bind("wf_cancel", now=now, namespace=namespace, id=id)
        state: str | None = await self.run_write(statement, f"cannot cancel {id!r}", "first")
        return state

    async def workflow_retry(self, namespace: str, id: str, now: float) -> bool:
        forget = self._bind("wf_forget_failed_steps", namespace=namespace, id=id)
        retry = self._bind("wf_retry", now=now, namespace=namespace, id=id)
        done = await self.run_atomic(
            [(retry, "found", True), (forget, "rowcount", False)], f"cannot retry {id!r}"
        )
        return done is not None

    async def workflow_list(
        self,
        namespace: str,
        *,
        status: str | None,
        name: str | None,
        after: tuple[float, str],
        limit: int,
    ) -> list[tuple[Any, ...]]:
        query = "wf_list" + {
            (False, False): "", (True, False): "_by_status", (False, True): "_by_name",
            (True, True): "_by_status_and_name",
        }[(status is not None, name is not None)]  # fmt: skip
        filters = {"status": status} if status is not None else {}
        if name is not None:
            filters["name"] = name
        statement = self._bind(
            query, namespace=namespace, after_time=after[0], after_id=after[1], limit=limit,
            **filters,
        )  # fmt: skip
        return await self.run_many(statement, "cannot list workflows")

    async def workflow_history(self, namespace: str, id: str) -> list[HistoryEntry]:
        statement = self._bind("wf_history", namespace=namespace, id=id)
        rows = await self.run_many(statement, f"cannot read the history of {id!r}")
        return [HistoryEntry(*row) for row in rows]

    async def workflow_next_due(self, namespace: str) -> float | None:
        statement = self._bind("wf_next_due", namespace=namespace)
        due = await self.run_read(statement, "cannot read workflows", "first")
        return None if due is None else float(due)
