"""Entity calls from workflows (``ctx.call``): journaled like a step, made with a call id
that follows from the workflow, its run and the journal position, so that the entity
applies the call once even when the run dies between the entity's commit and the
checkpoint (the resumed run's call gets the entity's recorded answer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statekeeper.codec import decode_as
from statekeeper.errors import (
    ClosedError,
    ConfigurationError,
    EntityCallFailed,
    ErrorRecord,
    NotFound,
    ValidationError,
)
from statekeeper.workflows.signals import GiveBack

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext

KIND = "entity"  # the journal entries' kind
MAX_NAME = 200  # of a journal entry's name ("type.handler")


def call_id(ctx: WorkflowContext, position: int) -> str:
    """The id of the call at ``position`` of this run: the workflow's id and creation
    time (a workflow purged and started again under its id makes calls of its own),
    its run and the position."""
    return f"workflow:{ctx.workflow_id}:{float(ctx.created_at)!r}:{ctx.continued}:{position}"


async def run(
    ctx: WorkflowContext, position: int, entity: str, key: str, handler: str, arg: Any
) -> Any:
    """The call's result: recorded, or made now and journaled. Its failure (the handler
    raised; the type, handler or key is unknown or invalid) is journaled too and raised
    as StepFailed, now and on every replay."""
    name = f"{entity}.{handler}"[:MAX_NAME]
    found = ctx._recorded(position, KIND, name)
    if found is not None:
        return await ctx._replay(found)
    if ctx.entity_call is None:
        raise ConfigurationError("ctx.call needs the app's entities (app.entity)")
    arguments = ctx._payloads.encode(
        f"argument of entity call {name!r}", [entity, key, handler, arg]
    )
    started = ctx._clock()
    with ctx._step_running():
        try:
            result = await ctx.entity_call(entity, key, handler, arg, call_id(ctx, position))
        except ClosedError:  # this process is stopping: the call is made where it resumes
            raise GiveBack() from None
        except (EntityCallFailed, NotFound, ValidationError) as failed:
            error = failed.error if isinstance(failed, EntityCallFailed) else None
            await ctx._fail_step(
                position, name, arguments, 1, started, error or ErrorRecord.of(failed), failed,
                kind=KIND,
            )  # fmt: skip
        output = ctx._payloads.encode(f"result of entity call {name!r}", result)
        await ctx._checkpoint(
            position, KIND, name, input=arguments, output=output, started_at=started
        )
    return decode_as(output, None, f"the result of entity call {name!r}")
