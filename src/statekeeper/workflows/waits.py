"""Waiting for an event (``ctx.wait_for_event``, a child's end, a callback's answer), and
the updates such a wait applies (updates.py).

A wait takes two journal positions when it is called: the wait (its deadline) and the
event (its data, or its timeout). Updates are applied at a wait awaited by the
workflow's own code, not at one inside ``ctx.gather`` (there other work runs beside it
and the journal positions of what it would apply would depend on timing):

* Those applied while it waited were journaled after its two positions; every run
  replays them (running their handlers again) before it takes the event, whether or
  not it waits again. That is decided by the code alone, so every replay agrees.
* The pending ones are applied only when the wait is about to end the run to wait,
  nothing else of the run is in progress (a step running, another wait, a suspension
  already raised by work beside it), and the event has not come. It then ends the run
  itself, due at once if an update or the event arrived meanwhile.
"""

from __future__ import annotations

import contextvars
import json
from typing import TYPE_CHECKING, Any

from statekeeper.codec import decode_value
from statekeeper.errors import DecryptionError, ErrorRecord
from statekeeper.sealing import EVENT, is_ref
from statekeeper.workflows import mailbox, updates
from statekeeper.workflows.signals import EventTimeout, Suspend, Unreadable

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext

# True in the awaitables ``ctx.gather`` runs side by side (each in a task of its own,
# which copies the context, so the value never leaks back to the workflow's code).
BESIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("statekeeper_beside", default=False)


async def wait(
    ctx: WorkflowContext, name: str, timeout: float | None, positions: tuple[int, int]
) -> Any:
    """Event ``name``'s data, waiting durably for it (see the module's docstring)."""
    ctx._waits_running += 1
    try:
        return await _wait(ctx, name, timeout, positions)
    finally:
        ctx._waits_running -= 1


async def _wait(
    ctx: WorkflowContext, name: str, timeout: float | None, positions: tuple[int, int]
) -> Any:
    wait_position, position = positions
    entry = ctx._recorded(wait_position, "wait", name)
    if entry is None:
        deadline = None if timeout is None else ctx._clock() + timeout
        await ctx._checkpoint(wait_position, "wait", name, output=json.dumps(deadline).encode())
    else:
        deadline = await ctx._replay(entry)
    entry = ctx._recorded(position, "event", name)
    own = not BESIDE.get()
    if own:
        await updates.apply(ctx, pending=False)  # those applied while it waited
    if entry is not None:
        if entry.error is not None:
            raise EventTimeout(f"no event {name!r} within {timeout} s")
        return await ctx._replay(entry)
    arrived, data = await ctx._backend.workflows.event_data(ctx._namespace, ctx.workflow_id, name)
    if arrived:
        if is_ref(data):  # out of line: the journal entry shares the event's blob
            await ctx._checkpoint(position, "event", name, output=data)
            return await ctx._replay(ctx._journal[position])
        if data is not None:  # sealed for the event; journaled, sealed for its position
            try:
                data = ctx._sealer.open(data, EVENT, ctx._namespace, ctx.workflow_id, name, "data")
            except DecryptionError as failed:
                raise Unreadable(failed.message) from None
        await ctx._checkpoint(position, "event", name, output=data or b"null")
        return None if data is None else decode_value(name, data)
    if deadline is not None and ctx._clock() >= deadline:
        timed_out = ErrorRecord.made("EventTimeout", f"no event {name!r} within {timeout} s")
        await ctx._checkpoint(position, "event", name, error=timed_out)
        raise EventTimeout(timed_out.message)
    alone = own and ctx._waits_running == 1 and not ctx._steps_running and not ctx._suspending
    if not alone:
        ctx._suspend(Suspend("waiting", deadline, waiting_for=name))
    live = await updates.apply(ctx)
    await mailbox.suspend(ctx, "waiting", deadline, updates=live, event=name)
