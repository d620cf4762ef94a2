"""A workflow's wait for an outside system's answer (``ctx.callback()``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from statekeeper.constants import heartbeat_event
from statekeeper.errors import ErrorRecord
from statekeeper.workflows.signals import CallbackFailed

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext


class Callback:
    """A wait for an outside system: give it ``token`` (or ``url``); it answers with
    POST /v1/callbacks/{token}. ``await callback.result()`` returns its data, or raises
    CallbackFailed for a failure answer, EventTimeout when none came in time."""

    def __init__(
        self,
        ctx: WorkflowContext,
        token: str,
        event: str,
        timeout: float | None,
        waits: tuple[int, int],
    ) -> None:
        self.token = token
        self.url = f"/v1/callbacks/{token}"
        self._ctx = ctx
        self._event = event
        self._timeout = timeout
        self._waits = waits

    async def result(self) -> Any:
        answer = await self._ctx._wait(self._event, self._timeout, self._waits)
        return _data(answer)

    async def result_within(self, seconds: float) -> Any:
        """The answer if it comes within ``seconds`` (EventTimeout if not), waiting
        durably; may be called again after an EventTimeout (each call is a new wait)."""
        ctx = self._ctx
        return _data(await ctx._wait(self._event, seconds, (ctx._next(), ctx._next())))

    async def last_heartbeat(self) -> float | None:
        """When the outside system last sent a heartbeat for this callback (``{"status":
        "heartbeat"}``), journaled: the same on every replay; None if it never did."""
        ctx = self._ctx
        beat = heartbeat_event(self._event)

        async def read() -> float | None:
            return await ctx._backend.workflows.event_received(ctx.namespace, ctx.workflow_id, beat)

        read.__statekeeper_name__ = "callback:last-heartbeat"  # type: ignore[attr-defined]
        return await ctx.step(read)


def _data(answer: Any) -> Any:
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise CallbackFailed(failure_answer(answer))
    return answer.get("data")


def failure_answer(answer: Any) -> ErrorRecord:
    """The error of a callback's failure answer: ``error`` names it and ``cause``
    describes it (``{"error": "CardDeclined", "cause": "insufficient funds"}``); an
    ``error`` alone is the message of a ``CallbackFailed``."""
    if not isinstance(answer, dict):
        return ErrorRecord.made("CallbackFailed", json.dumps(answer))
    error, cause = answer.get("error"), answer.get("cause")
    if isinstance(error, str) and isinstance(cause, str):
        return ErrorRecord.made(error, cause)
    shown = error if isinstance(error, str) else json.dumps(error)
    return ErrorRecord.made("CallbackFailed", shown if cause is None else f"{shown}: {cause}")
