"""Messages to running workflows, written once for both adapters (queries in
``queries/workflow_messages.sql``): a workflow's mailbox, the updates asked of it, and
the values it publishes. A run's journal entry for a receive, an update or a publish is
written by ``record``, under the run's fence, in one transaction with what it settles
(the update's outcome, the published value).
"""

from __future__ import annotations

from statekeeper.constants import WORKFLOW_ACTIVE
from statekeeper.errors import WorkflowFinished, WorkflowNotFound
from statekeeper.storage.rows import WorkflowRow
from statekeeper.storage.runner import Operations, Scripted

# The ``waiting_for`` of a workflow waiting in ``ctx.receive(topic)``.
MAILBOX_PREFIX = "message:"


def mailbox_waiting_for(topic: str) -> str:
    return MAILBOX_PREFIX + topic


class WorkflowMessageOps(Operations):
    """Mailbox, updates and published values of workflows."""

    async def _refused(self, namespace: str, id: str, what: str) -> Exception:
        """Why a send or an update found no workflow to take it."""
        statement = self._bind("wf_get", namespace=namespace, id=id)
        row = await self._db.run_read(statement, f"cannot read workflow {id!r}", "row")
        if row is None:
            return WorkflowNotFound(f"there is no workflow {id!r}", id=id)
        status = WorkflowRow(*row).status
        ended = status if status not in WORKFLOW_ACTIVE else "finished; since retried"
        return WorkflowFinished(
            f"workflow {id!r} has finished ({ended}): {what} was not delivered", id=id
        )

    # --- the mailbox ----------------------------------------------------------------------

    async def send(
        self, namespace: str, id: str, topic: str, data: bytes | None, now: float
    ) -> int:
        """Append a message to the workflow's mailbox on ``topic``, waking it if it waits
        there: the message's number on the topic. WorkflowNotFound, or WorkflowFinished
        if it has finished (decided in the transaction that stores the message)."""
        keys = {"namespace": namespace, "id": id, "now": now}
        script: list[Scripted] = [
            (self._bind("wfm_wake_for_message", waiting_for=mailbox_waiting_for(topic), **keys),
             "found", True),
            (self._bind("wfm_insert_message", topic=topic, data=data, **keys), "first", True),
        ]  # fmt: skip
        done = await self._db.run_atomic(script, f"cannot send a message to workflow {id!r}")
        if done is None:
            raise await self._refused(namespace, id, f"the message on topic {topic!r}")
        return int(done[1])

    async def mailbox_page(
        self, namespace: str, id: str, after: tuple[str, int], limit: int
    ) -> list[tuple[str, int, bytes | None, float]]:
        """Up to ``limit`` messages of workflow ``id`` after ``after`` (topic, number),
        consumed or not, by topic and number: (topic, number, data, sent at)."""
        statement = self._bind(
            "wfm_mailbox_page", namespace=namespace, id=id, after_topic=after[0],
            after_seq=after[1], limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot read the mailbox of {id!r}")
        return [(str(r[0]), int(r[1]), r[2], float(r[3])) for r in rows]

    async def next_message(
        self, namespace: str, id: str, topic: str, after: int
    ) -> tuple[int, bytes | None] | None:
        """The first message on ``topic`` numbered after ``after``: (number, data)."""
        statement = self._bind(
            "wfm_next_message", namespace=namespace, id=id, topic=topic, after=after
        )
        row = await self._db.run_read(statement, f"cannot read the mailbox of {id!r}", "row")
        return None if row is None else (int(row[0]), row[1])

    async def suspend(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        status: str,
        wake_at: float | None,
        waiting_for: str | None,
        topic: str | None,
        after: int,
        now: float,
        updates: bool = True,
        event: str | None = None,
    ) -> bool:
        """End the run (while the fence holds) to sleep or wait; due at once if a message
        on ``topic`` numbered after ``after``, the ``event`` waited for, or (``updates``)
        a pending update is there already, as decided after the workflow's row is
        locked. False if the lease was lost."""
        keys = {"namespace": namespace, "id": id, "fence": fence, "now": now}
        script: list[Scripted] = [
            (self._bind("wfm_lock", **keys), "found", True),
            (self._bind(
                "wfm_suspend", status=status, wake_at=wake_at, waiting_for=waiting_for,
                topic=topic, after=after, updates=1 if updates else 0, event=event, **keys,
            ), "found", True),
        ]  # fmt: skip
        return await self._db.run_atomic(script, f"cannot suspend workflow {id!r}") is not None

    # --- updates --------------------------------------------------------------------------

    async def request_update(
        self, namespace: str, id: str, name: str, data: bytes | None, now: float
    ) -> int:
        """Store an update for the workflow to apply, waking it from a sleep or a wait:
        the update's number. WorkflowNotFound, or WorkflowFinished."""
        keys = {"namespace": namespace, "id": id, "now": now}
        script: list[Scripted] = [
            (self._bind("wfm_wake_for_update", **keys), "found", True),
            (self._bind("wfm_insert_update", name=name, data=data, **keys), "first", True),
        ]
        done = await self._db.run_atomic(script, f"cannot send an update to workflow {id!r}")
        if done is None:
            raise await self._refused(namespace, id, f"the update {name!r}")
        return int(done[1])

    async def pending_updates(
        self, namespace: str, id: str, limit: int
    ) -> list[tuple[int, str, bytes | None]]:
        statement = self._bind("wfm_pending_updates", namespace=namespace, id=id, limit=limit)
        rows = await self._db.run_many(statement, f"cannot read the updates of {id!r}")
        return [(int(seq), str(name), data) for seq, name, data in rows]

    async def update_outcome(
        self, namespace: str, id: str, seq: int
    ) -> tuple[str, bytes | None, str | None] | None:
        """(status, result, error) of update ``seq``; None if there is none."""
        statement = self._bind("wfm_get_update", namespace=namespace, id=id, seq=seq)
        row = await self._db.run_read(statement, f"cannot read an update of {id!r}", "row")
        return None if row is None else (str(row[0]), row[1], row[2])

    # --- the journal entry and what it settles ----------------------------------------------

    async def record(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        lease_end: float,
        now: float,
        position: int,
        kind: str,
        name: str,
        output: bytes | None,
        error: str | None,
        attempts: int,
        settle: tuple[int, str, bytes | None, str | None] | None = None,
        value: tuple[str, bytes] | None = None,
        stream: tuple[str, bytes | None, int] | None = None,
    ) -> int | None:
        """Journal an entry under the fence, with the update it settles (``settle``:
        number, status, result, error), the value it publishes (``value``: key,
        value) or what it appends to a durable stream (``stream``: key, value or None to
        close it, the run: how many times the workflow continued), in one transaction: the
        workflow's cancel_requested, or None if the lease was lost (nothing written)."""
        keys = {"namespace": namespace, "id": id, "now": now}
        stream_key, stream_value, stream_run = stream or (None, None, None)
        if self._db.dialect == "postgres":  # one statement (one round trip)
            seq, status, result, problem = settle or (None, None, None, None)
            key, stored = value or (None, None)
            statement = self._bind(
                "wfm_record", lease_end=lease_end, fence=fence, position=position, kind=kind,
                step_name=name, output=output, error=error, attempts=attempts, seq=seq,
                status=status, result=result, update_error=problem, key=key, value=stored,
                stream_key=stream_key, stream_value=stream_value, stream_run=stream_run,
                **keys,
            )  # fmt: skip
            asked = await self._db.run_write(statement, f"cannot record a step of {id!r}", "first")
            return None if asked is None else int(asked)
        script: list[Scripted] = [
            (self._bind("wf_checkpoint_renew", lease_end=lease_end, fence=fence, **keys),
             "row", True),
            (self._bind(
                "wf_record_step", position=position, kind=kind, step_name=name, input=None,
                output=output, error=error, attempts=attempts, started_at=None, **keys,
            ), "rowcount", False),
        ]  # fmt: skip
        if settle is not None:
            seq, status, result, problem = settle
            script.append((self._bind(
                "wfm_settle_update", seq=seq, status=status, result=result, error=problem,
                **keys,
            ), "rowcount", False))  # fmt: skip
        if value is not None:
            script.append((self._bind(
                "wfm_put_value", key=value[0], value=value[1], **keys
            ), "rowcount", False))  # fmt: skip
        if stream is not None:
            script.append((self._bind(
                "wfs_append", stream_key=stream_key, stream_value=stream_value,
                stream_run=stream_run, position=position, **keys,
            ), "rowcount", False))  # fmt: skip
        done = await self._db.run_atomic(script, f"cannot record a step of workflow {id!r}")
        return None if done is None else int(done[0][0])

    # --- durable streams --------------------------------------------------------------------

    async def stream(
        self, namespace: str, id: str, key: str, offset: int, limit: int
    ) -> list[tuple[int, bytes | None, int, int]]:
        """A durable stream's rows from ``offset``: (seq, value or None: closed, the run
        and the journal position that wrote it)."""
        statement = self._bind(
            "wfs_read", namespace=namespace, id=id, key=key, offset=offset, limit=limit
        )
        rows = await self._db.run_many(statement, f"cannot read stream {key!r} of {id!r}")
        return [(int(seq), value, int(run), int(at)) for seq, value, run, at in rows]

    # --- published values -------------------------------------------------------------------

    async def value(self, namespace: str, id: str, key: str) -> tuple[bytes, float] | None:
        statement = self._bind("wfm_get_value", namespace=namespace, id=id, key=key)
        row = await self._db.run_read(statement, f"cannot read a value of {id!r}", "row")
        return None if row is None else (row[0], float(row[1]))

    async def values(
        self, namespace: str, id: str, *, after: str, limit: int
    ) -> list[tuple[str, bytes, float]]:
        statement = self._bind(
            "wfm_list_values", namespace=namespace, id=id, after=after, limit=limit
        )
        rows = await self._db.run_many(statement, f"cannot read the values of {id!r}")
        return [(str(k), v, float(t)) for k, v, t in rows]
