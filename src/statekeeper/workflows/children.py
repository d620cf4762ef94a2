"""Child workflows (``ctx.child``): a child is started once, in the run's journal, under
an id that follows from its parent's and its position, and its end comes back to the
parent as an event."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from statekeeper.constants import child_event
from statekeeper.errors import ErrorRecord
from statekeeper.identifiers import MAX_WORKFLOW_ID
from statekeeper.observability import metrics, tracing
from statekeeper.sealing import WORKFLOW
from statekeeper.workflows.signals import ChildFailed

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext


def child_id(ctx: WorkflowContext, position: int) -> str:
    """A child's default id: ``<parent id>:<position>`` (past the id limit, a digest of
    the parent's id stands for it)."""
    # After a continue as new, positions start over: the run's number tells apart
    # the children of each run.
    at = f"{ctx.continued}.{position}" if ctx.continued else str(position)
    chosen = f"{ctx.workflow_id}:{at}"
    if len(chosen) > MAX_WORKFLOW_ID:
        digest = hashlib.sha256(ctx.workflow_id.encode()).hexdigest()[:40]
        chosen = f"{digest}:{at}"
    return chosen


async def run(
    ctx: WorkflowContext,
    position: int,
    waits: tuple[int, int],
    name: str,
    input: Any,
    child_id: str,
    timeout: float | None,
) -> Any:
    """``ctx.child``: start the child once (journaled), then wait for its end."""
    entry = ctx._recorded(position, "child", name)
    if entry is None:
        data = ctx._payloads.encode(f"input of child workflow {name!r}", input)
        data = await ctx._payloads.seal(data, WORKFLOW, ctx._namespace, child_id, "input")
        now = ctx._clock()
        if await ctx._backend.workflows.create(
            ctx._namespace, child_id, name, data, ctx.workflow_id, now,
            deadline=None if timeout is None else now + float(timeout),
            version=ctx.version_of(name), trace=tracing.traceparent(),
        ):  # fmt: skip
            metrics.workflow_started(ctx._namespace, name)  # (not a start a replay repeats)
        await ctx._checkpoint(position, "child", name, output=json.dumps(child_id).encode())
        if ctx.on_child_started is not None:
            ctx.on_child_started()
    else:
        child_id = str(await ctx._replay(entry))
    outcome = await ctx._wait(child_event(child_id), None, waits)
    status = outcome.get("status")
    if status != "succeeded":
        found = outcome.get("error")
        error = (
            ErrorRecord.from_json(json.dumps(found))
            if isinstance(found, dict)
            else ErrorRecord.made("Error", str(found))
        )
        raise ChildFailed(
            name, ErrorRecord.made(error.type, f"child {child_id!r} {status}: {error.message}")
        )
    return outcome.get("output")
