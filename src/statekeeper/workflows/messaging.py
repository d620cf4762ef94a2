"""Messages to running workflows, from outside them (``app.workflows``): sending to a
workflow's mailbox, asking it for an update and waiting for the answer, and reading the
values it published. The workflow's side is in ``mailbox.py`` and ``updates.py``.

The caller of an update waits by reading the update's row until the run that applied
it settles it, so it works whichever process runs the workflow.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from statekeeper.errors import (
    ErrorRecord,
    UnknownUpdate,
    UpdateNotApplied,
    UpdateNotFinished,
    UpdateRejected,
    ValidationError,
    ValueNotPublished,
    WorkflowNotFound,
)
from statekeeper.identifiers import check_workflow_id, has_control
from statekeeper.workflows.mailbox import check_name, message_where, value_where
from statekeeper.workflows.updates import update_data_where, update_outcome_where

if TYPE_CHECKING:
    from statekeeper.workflows.engine import Workflows

DEFAULT_UPDATE_TIMEOUT = 60.0
FIRST_POLL = 0.005  # seconds before the first look again at an update's outcome


class Messaging:
    """``app.workflows.send_message / update / get / values``."""

    def __init__(self, workflows: Workflows) -> None:
        self._flows = workflows

    def _wake(self) -> None:
        from statekeeper.workflows.engine import WAKEUP_CHANNEL

        self._flows._wakeups.notify(self._flows.namespace, WAKEUP_CHANNEL)

    async def send(self, id: str, topic: str, data: Any = None) -> int:
        flows = self._flows
        check_workflow_id(id)
        check_name("topic", topic)
        plain = flows.payloads.encode(f"message on topic {topic!r}", data)
        sealed = await flows.payloads.seal(plain, *message_where(flows.namespace, id, topic))
        seq = await flows.payloads.kept_by(  # not sent (an unknown workflow): no blob left
            sealed,
            flows._backend.workflow_messages.send(
                flows.namespace, id, topic, sealed, flows._clock()
            ),
        )
        self._wake()
        return seq

    async def update(
        self,
        id: str,
        name: str,
        data: Any = None,
        *,
        timeout: float = DEFAULT_UPDATE_TIMEOUT,
        poll: float = 0.05,
    ) -> Any:
        flows = self._flows
        check_workflow_id(id)
        check_name("update name", name)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValidationError(f"update timeout must be a positive number, got {timeout!r}")
        plain = flows.payloads.encode(f"data of update {name!r}", data)
        sealed = await flows.payloads.seal(plain, *update_data_where(flows.namespace, id, name))
        seq = await flows.payloads.kept_by(  # not asked (an unknown workflow): no blob left
            sealed,
            flows._backend.workflow_messages.request_update(
                flows.namespace, id, name, sealed, flows._clock()
            ),
        )
        self._wake()
        return await self.outcome(id, name, seq, timeout=timeout, poll=poll)

    async def outcome(
        self, id: str, name: str, seq: int, *, timeout: float, poll: float = 0.05
    ) -> Any:
        """Wait for update ``seq`` to be applied: its result, or its rejection raised."""
        flows = self._flows
        ops = flows._backend.workflow_messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = min(FIRST_POLL, poll)  # an answer often comes within milliseconds
        while True:
            found = await ops.update_outcome(flows.namespace, id, seq)
            if found is None:
                raise WorkflowNotFound(f"workflow {id!r} was purged with its updates", id=id)
            status, result, error = found
            if status != "pending":
                return await self._settled(id, name, seq, status, result, error)
            run = await flows.status(id)
            if run.done:
                again = await ops.update_outcome(flows.namespace, id, seq)
                if again is not None and again[0] != "pending":
                    return await self._settled(id, name, seq, *again)
                raise UpdateNotApplied(
                    f"workflow {id!r} finished ({run.status}) before it applied update "
                    f"{name!r}", id=id, update=name, seq=seq,
                )  # fmt: skip
            if loop.time() > deadline:
                raise UpdateNotFinished(
                    f"workflow {id!r} has not applied update {name!r} (number {seq}) "
                    f"within {timeout:g} s; it stays asked, and is applied where the "
                    "workflow next waits", id=id, update=name, seq=seq,
                )  # fmt: skip
            await asyncio.sleep(pause)
            pause = min(pause * 2, poll)

    async def _settled(
        self, id: str, name: str, seq: int, status: str, result: bytes | None, error: str | None
    ) -> Any:
        flows = self._flows
        if status == "not_applied":  # settled by the run's end (wfm_finish_updates)
            raise UpdateNotApplied(
                f"workflow {id!r} finished before it applied update {name!r}",
                id=id, update=name, seq=seq,
            )  # fmt: skip
        if status == "accepted":
            if result is None:
                return None
            where = update_outcome_where(flows.namespace, id, seq, "result")
            return await flows.payloads.value(result, None, name, *where)
        where = update_outcome_where(flows.namespace, id, seq, "error")
        record = ErrorRecord.from_json(flows.sealer.open_text(error or "", *where))
        kind = UnknownUpdate if record.type == "UnknownUpdate" else UpdateRejected
        raise kind(
            f"workflow {id!r} rejected update {name!r}: {record.type}: {record.message}",
            id=id, update=name, seq=seq, error=record.to_dict(traceback=False),
        )  # fmt: skip

    async def get(self, id: str, key: str) -> Any:
        flows = self._flows
        check_workflow_id(id)
        check_name("value key", key)
        found = await flows._backend.workflow_messages.value(flows.namespace, id, key)
        if found is None:
            await flows.status(id)  # WorkflowNotFound if there is none
            raise ValueNotPublished(
                f"workflow {id!r} published no value under {key!r}", id=id, key=key
            )
        return await flows.payloads.value(
            found[0], None, key, *value_where(flows.namespace, id, key)
        )

    async def values(self, id: str, *, after: str = "", limit: int = 100) -> dict[str, Any]:
        flows = self._flows
        check_workflow_id(id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        if not isinstance(after, str) or has_control(after):
            raise ValidationError(
                f"after must be a value key (text without control characters), got {after!r}"
            )
        rows = await flows._backend.workflow_messages.values(
            flows.namespace, id, after=after, limit=limit
        )
        if not rows:
            await flows.status(id)  # WorkflowNotFound if there is none
        return {
            key: await flows.payloads.value(
                value, None, key, *value_where(flows.namespace, id, key)
            )
            for key, value, _ in rows
        }
