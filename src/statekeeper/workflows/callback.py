"""A workflow's wait for an outside system's answer (``ctx.callback()``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

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
