"""Answers to workflow callbacks: a token verified, then the answer delivered to the
workflow waiting on it as an event (exactly once), in a span of the workflow's trace
when traces are recorded (observability/tracing.py). ``Workflows.answer_callback`` and
``answer_callback_message`` are these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statekeeper.constants import heartbeat_event
from statekeeper.errors import CallbacksDisabled, DuplicateEvent, ValidationError, WorkflowFinished
from statekeeper.observability import tracing
from statekeeper.queues import Message
from statekeeper.workflows.tokens import CallbackTarget, InvalidToken
from statekeeper.workflows.tokens import verify as verify_token

if TYPE_CHECKING:
    from statekeeper.workflows.engine import Workflows


async def answer_message(flows: Workflows, message: Message) -> str:
    """An answer that came as a message (the callback queue's consumer); a repeated
    answer is done already."""
    body = message.body if isinstance(message.body, dict) else {}
    token = body.get("token")
    if not isinstance(token, str):
        raise ValidationError("a workflow callback message needs a 'token'")
    answer_of = {k: v for k, v in body.items() if k != "token"}
    try:
        return await answer(flows, token, answer_of)
    except DuplicateEvent:
        return "already answered"  # a redelivered or repeated answer: done


async def answer(flows: Workflows, token: str, given: dict[str, Any]) -> str:
    """Deliver ``given`` to the workflow waiting on ``token``: its status."""
    if flows.secret is None:
        raise CallbacksDisabled()
    target = verify_token(flows.secret, token, flows._clock())
    status = given.get("status")
    if status not in ("success", "failure", "heartbeat"):
        raise ValidationError("status must be 'success', 'failure' or 'heartbeat'")
    if target.namespace != flows.namespace:
        raise InvalidToken()
    trace = await flows.run_trace(target.workflow_id)  # the answer joins the run's trace
    with tracing.span(f"callback {status}", parent=trace, kind="consumer",
                      attributes={"statekeeper.workflow_id": target.workflow_id}):  # fmt: skip
        return await _delivered(flows, target, status, given)


async def _delivered(
    flows: Workflows, target: CallbackTarget, status: str, given: dict[str, Any]
) -> str:
    if status == "heartbeat":
        beat = heartbeat_event(target.event)
        if not await flows._backend.workflows.heartbeat(
            flows.namespace, target.workflow_id, beat, flows._clock()
        ):
            run = await flows.status(target.workflow_id)
            raise WorkflowFinished(
                f"workflow {run.id!r} has finished ({run.status}): the callback is over",
                id=run.id,
            )
        return "heartbeat"
    await flows._deliver(target.workflow_id, target.event, given)
    return str(status)
