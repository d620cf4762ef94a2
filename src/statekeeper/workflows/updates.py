"""Updates, seen from inside the workflow: ``ctx.on_update(name, handler)`` registers a
handler (``def`` or ``async def``, taking the update's data) that
``app.workflows.update(id, name, data)`` runs inside the workflow, durably.

When: pending updates are applied, in the order they were asked, where the workflow
waits: in ``ctx.sleep`` / ``ctx.sleep_until``, ``ctx.receive``, ``ctx.wait_condition``,
and in ``ctx.wait_for_event`` or the wait for a child's result awaited by the workflow's
own code (waits.py; not one inside ``ctx.gather``). An update wakes a workflow that
sleeps or waits there; one that is running applies it at its next such wait. Not
inside a step: there an update waits for the next of those points. Applying is
serialized per run (``Inbox.applying``), so work side by side never applies one twice.

Each applied update is a journal entry (kind ``update``, named by the update, holding
its data and result, its number in the attempts column), written in one transaction
with the update's outcome for the caller: accepted with the handler's result, or
rejected with the error it raised (UnknownUpdate without a handler of that name). A
replay runs the handler again, with the recorded data, at the same point and in the
same order, so the workflow's own state is rebuilt; its outcome stays the recorded one.
A handler must therefore be deterministic, change only the workflow's own state, and
not call ``ctx`` (its steps, sleeps, waits); a handler that rejects an update should
raise before it changes anything.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from statekeeper.codec import decode_value
from statekeeper.errors import (
    ConfigurationError,
    DecryptionError,
    ErrorRecord,
    NonDeterminismError,
    StatekeeperError,
    ValidationError,
)
from statekeeper.sealing import EVENT, WORKFLOW
from statekeeper.storage.rows import JournalEntry
from statekeeper.workflows.mailbox import check_name, record, replayed, suspend
from statekeeper.workflows.signals import Unreadable

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext

UPDATE = "update"  # the journal kind of an applied update
CONDITION = "condition"  # the journal kind of ``ctx.wait_condition`` (its deadline)
CONDITION_TIMEOUT = "condition_timeout"  # ... and of its timing out
BATCH = 16  # pending updates read at a time


def update_data_where(namespace: str, id: str, name: str) -> tuple[str, ...]:
    """Where an update's data is sealed for."""
    return (EVENT, namespace, id, f"update:{name}", "data")


def update_outcome_where(namespace: str, id: str, seq: int, field: str) -> tuple[str, ...]:
    """Where an update's result (``field`` result) or error (error) is sealed for."""
    return (WORKFLOW, namespace, id, f"update:{seq}", field)


def on_update(ctx: WorkflowContext, name: str, handler: Callable[[Any], Any]) -> None:
    """``ctx.on_update``: register ``handler`` for updates named ``name`` in this run
    (register before the workflow first waits; registering a name again replaces it)."""
    check_name("update name", name)
    if not callable(handler):
        raise ConfigurationError(f"the handler of update {name!r} must be callable")
    ctx.inbox.handlers[name] = handler


async def apply(ctx: WorkflowContext, *, pending: bool = True) -> bool:
    """Apply the updates due at this point: those the journal records next (a replay,
    running their handlers again), then, past the journal's end, the pending ones (not
    with ``pending`` False: only the recorded ones are replayed). Whether it reached the
    journal's end (where a pending update is applied): a run that did not must not be
    woken by one, or it would wake again and again."""
    async with ctx.inbox.applying:
        return await _apply_due(ctx, pending)


async def _apply_due(ctx: WorkflowContext, pending: bool) -> bool:
    while True:
        upcoming = ctx._journal.get(ctx._position + 1)
        if upcoming is not None:
            if upcoming.kind != UPDATE:
                return False
            ctx._next()
            await _rerun(ctx, upcoming)
            continue
        if any(p > ctx._position for p in ctx._journal):
            return False  # further entries belong to other work (steps started side by side)
        if not pending:
            return True
        asked = await ctx._backend.workflow_messages.pending_updates(
            ctx._namespace, ctx.workflow_id, BATCH
        )
        if not asked:
            return True
        for seq, name, data in asked:
            ctx._may_start_new_work()
            await _apply(ctx, ctx._next(), seq, name, data)


async def _call(handler: Callable[[Any], Any], data: Any) -> Any:
    result = handler(data)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _rerun(ctx: WorkflowContext, entry: JournalEntry) -> None:
    """Replay an applied update: its handler runs again with the recorded data; what it
    returns or raises now is not what counts (the recorded outcome is)."""
    if entry.error is not None:
        failed = ErrorRecord.from_json(ctx._sealer.open_text(entry.error, *_where(ctx, entry)))
        if failed.type == "UnknownUpdate":
            return  # no handler ran then: none runs now
    recorded = await replayed(ctx, entry)
    handler = ctx.inbox.handlers.get(entry.name)
    if handler is None:
        raise NonDeterminismError(
            f"workflow {ctx.workflow_id!r} applied update {entry.name!r} at position "
            f"{entry.position}, but this run registers no handler for it: register it with "
            "ctx.on_update before the workflow first waits",
            workflow_id=ctx.workflow_id, position=entry.position,
        )  # fmt: skip
    try:
        await _call(handler, recorded.get("data") if isinstance(recorded, dict) else None)
    except Exception:  # it raised then too: the update was rejected
        return


def _where(ctx: WorkflowContext, entry: JournalEntry) -> tuple[str, ...]:
    return ("step", ctx._namespace, ctx.workflow_id, str(entry.position), "error")


async def _apply(
    ctx: WorkflowContext, position: int, seq: int, name: str, sealed: bytes | None
) -> None:
    ns, id = ctx._namespace, ctx.workflow_id
    try:
        data = (
            None
            if sealed is None
            else await ctx._payloads.open(sealed, *update_data_where(ns, id, name))
        )
    except DecryptionError as failed:
        raise Unreadable(failed.message) from None
    value = None if data is None else decode_value(name, data)
    handler = ctx.inbox.handlers.get(name)
    result: bytes | None = None
    error: ErrorRecord | None = None
    if handler is None:
        known = ", ".join(sorted(ctx.inbox.handlers)) or "none"
        error = ErrorRecord.made(
            "UnknownUpdate",
            f"workflow {id!r} has no handler for update {name!r} (its handlers: {known})",
        )
    else:
        try:
            outcome = await _call(handler, value)
        except Exception as exc:
            error = ErrorRecord.of(exc)
        else:
            try:
                result = ctx._payloads.encode(f"result of update {name!r}", outcome)
            except StatekeeperError as problem:
                error = ErrorRecord.made("UpdateResultNotStored", problem.message)
    journaled = ctx._payloads.encode(
        f"update {name!r}",
        {"data": value, "result": None if result is None else json.loads(result)},
    )
    status = "accepted" if error is None else "rejected"
    shown = (
        None
        if result is None
        else await ctx._payloads.seal(result, *update_outcome_where(ns, id, seq, "result"))
    )
    text = None if error is None else ctx._sealer.seal_text(
        error.to_json(), *update_outcome_where(ns, id, seq, "error")
    )  # fmt: skip
    await record(
        ctx, position, UPDATE, name, output=journaled, error=error, attempts=seq,
        settle=(seq, status, shown, text),
    )  # fmt: skip


def wait_condition(
    ctx: WorkflowContext, predicate: Callable[[], bool], timeout: float | None
) -> Coroutine[Any, Any, bool]:
    """``ctx.wait_condition``: the position is taken at the call."""
    if not callable(predicate):
        raise ValidationError("wait_condition takes a function of no arguments")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ValidationError(f"condition timeout must be a positive number, got {timeout!r}")
    return _wait_condition(ctx, ctx._next(), predicate, timeout)


async def _wait_condition(
    ctx: WorkflowContext, position: int, predicate: Callable[[], bool], timeout: float | None
) -> bool:
    entry = ctx._recorded(position, CONDITION, CONDITION)
    if entry is None:
        deadline = None if timeout is None else ctx._clock() + float(timeout)
        await record(ctx, position, CONDITION, CONDITION, output=json.dumps(deadline).encode())
    else:
        deadline = await ctx._replay(entry)
    while True:
        live = await apply(ctx)
        if predicate():
            return True
        upcoming = ctx._journal.get(ctx._position + 1)
        if upcoming is not None:
            ctx._recorded(ctx._next(), CONDITION_TIMEOUT, CONDITION)  # or NonDeterminismError
            return False
        if deadline is not None and ctx._clock() >= deadline:
            ctx._within_limit(ctx._position + 1)
            await record(ctx, ctx._next(), CONDITION_TIMEOUT, CONDITION)
            return False
        await suspend(ctx, "waiting", deadline, updates=live)
