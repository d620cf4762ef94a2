"""A workflow's mailbox and published values, seen from inside the workflow.

``await ctx.receive(topic, timeout=...)`` returns the next message sent to the
workflow on ``topic`` (``app.workflows.send_message``): messages on a topic are numbered
in the order their sends committed, and each is handed out once, in that order. The
journal entry of a receive (kind ``receive``, named by the topic) holds the message and
the number it consumed, so a replay returns the same message and the run reads on past
the highest number its journal consumed; a continue as new deletes the consumed
messages with the journal. With no message there the run ends, waiting without a lease,
and a send wakes it; after ``timeout`` seconds the receive raises ReceiveTimeout.

``await ctx.publish(key, value)`` records a value anyone may read while the workflow
runs (``app.workflows.get(id, key)``); a later publish under the key replaces it.

The run's own suspensions here (and in a sleep or ``ctx.wait_condition``) lock the
workflow's row before they look for what arrived, so a send or an update that commits
meanwhile is never missed: it either is seen, or finds the run waiting and wakes it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from statekeeper.codec import decode_value
from statekeeper.errors import (
    BlobUnavailable,
    DecryptionError,
    ErrorRecord,
    InvalidIdentifier,
    ValidationError,
)
from statekeeper.identifiers import shown
from statekeeper.sealing import EVENT, STEP, WORKFLOW, is_ref
from statekeeper.storage.rows import JournalEntry
from statekeeper.storage.workflow_message_ops import mailbox_waiting_for
from statekeeper.workflows.signals import (
    Cancelled,
    EventTimeout,
    Superseded,
    Suspend,
    Unreadable,
)

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext

RECEIVE = "receive"  # the journal kind of a receive (its attempts: the number consumed)
PUBLISH = "publish"  # the journal kind of a publish
WAITING = "attempt"  # the kind of a receive's entry while it waits (holds its deadline)

MAX_NAME = 200
_NAME = re.compile(rf"[A-Za-z0-9_.:@-]{{1,{MAX_NAME}}}")
NAME_RULE = f"1-{MAX_NAME} letters, digits, '_', '.', ':', '@' or '-'"


def check_name(what: str, name: object) -> str:
    """A topic, update name or value key: InvalidIdentifier naming ``what`` if not."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidIdentifier(f"invalid {what} {shown(name)}: a {what} is {NAME_RULE}")
    return name


def message_where(namespace: str, id: str, topic: str) -> tuple[str, ...]:
    """Where a message's data is sealed for."""
    return (EVENT, namespace, id, f"message:{topic}", "data")


def value_where(namespace: str, id: str, key: str) -> tuple[str, ...]:
    """Where a published value is sealed for."""
    return (WORKFLOW, namespace, id, f"value:{key}", "value")


class ReceiveTimeout(EventTimeout):
    """No message arrived on the topic before the receive's timeout."""


@dataclass
class Inbox:
    """A run's mailbox state: the highest number consumed per topic (from its journal,
    then from its receives), the update handlers it registered, and a lock per topic so
    that receives on one topic started side by side take messages one after another."""

    handlers: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Held while updates are applied: waits side by side never apply one twice.
    applying: asyncio.Lock = field(default_factory=asyncio.Lock)


def _check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError(f"receive timeout must be a positive number, got {timeout!r}")


# --- what the context delegates to ------------------------------------------------------


def receive(ctx: WorkflowContext, topic: str, timeout: float | None) -> Coroutine[Any, Any, Any]:
    """``ctx.receive``: the position is taken at the call (fixed order, fixed positions)."""
    check_name("topic", topic)
    _check_timeout(timeout)
    return _receive(ctx, ctx._next(), topic, timeout)


async def _receive(ctx: WorkflowContext, position: int, topic: str, timeout: float | None) -> Any:
    from statekeeper.workflows import updates  # the two modules call each other

    entry = ctx._journal.get(position)
    if entry is not None and (entry.kind, entry.name) == (RECEIVE, topic):
        await updates.apply(ctx)  # those applied while it waited, replayed in order
        if entry.error is not None:
            raise ReceiveTimeout(f"no message on topic {topic!r} within {timeout} s")
        return await ctx._replay(entry)
    if entry is not None and (entry.kind, entry.name) == (WAITING, topic):
        deadline = await ctx._replay(entry)
        # The updates applied while it waited come after the wait in the journal: they
        # are replayed before the message that ends the wait is taken.
        await updates.apply(ctx)
    else:
        ctx._recorded(position, RECEIVE, topic)  # NonDeterminismError, Cancelled, GiveBack
        deadline = None if timeout is None else ctx._clock() + float(timeout)
    # A message there already is taken at once; only a receive that would wait applies
    # the pending updates first (and then looks again).
    if (taken := await _take(ctx, position, topic)) is not None:
        return await _decoded(ctx, topic, taken)
    live = await updates.apply(ctx)
    if live and (taken := await _take(ctx, position, topic)) is not None:
        return await _decoded(ctx, topic, taken)
    if deadline is not None and ctx._clock() >= deadline:
        timed_out = ErrorRecord.made(
            "ReceiveTimeout", f"no message on topic {topic!r} within {timeout} s"
        )
        await record(ctx, position, RECEIVE, topic, error=timed_out, attempts=0)
        raise ReceiveTimeout(timed_out.message)
    if entry is None:  # the wait's deadline, kept for the runs that resume it
        await record(ctx, position, WAITING, topic, output=json.dumps(deadline).encode())
    await suspend(ctx, "waiting", deadline, topic=topic, after=_consumed(ctx, topic), updates=live)


async def _take(ctx: WorkflowContext, position: int, topic: str) -> bytes | None:
    """Take the next message on ``topic`` (journaled at ``position``): its data; None
    if there is none yet."""
    inbox = ctx.inbox
    async with inbox.locks.setdefault(topic, asyncio.Lock()):
        found = await ctx._backend.workflow_messages.next_message(
            ctx._namespace, ctx.workflow_id, topic, _consumed(ctx, topic)
        )
        if found is None:
            return None
        seq, data = found
        if is_ref(data):  # out of line: the journal entry shares the message's blob
            inbox.consumed[topic] = seq
            await record(ctx, position, RECEIVE, topic, output=data, attempts=seq)
            return data
        plain = _opened_message(ctx, topic, data)
        inbox.consumed[topic] = seq
        await record(ctx, position, RECEIVE, topic, output=plain, attempts=seq)
        return plain


async def _decoded(ctx: WorkflowContext, topic: str, taken: bytes) -> Any:
    """A message taken: its plaintext, or the reference to its blob, as a value."""
    if not is_ref(taken):
        return decode_value(topic, taken)
    where = message_where(ctx._namespace, ctx.workflow_id, topic)
    try:
        return await ctx._payloads.value(taken, None, f"message on topic {topic!r}", *where)
    except (DecryptionError, BlobUnavailable) as failed:
        raise Unreadable(failed.message) from None


def _consumed(ctx: WorkflowContext, topic: str) -> int:
    """The highest message number on ``topic`` this run's journal consumed."""
    inbox = ctx.inbox
    if topic not in inbox.consumed:
        inbox.consumed[topic] = max(
            (e.attempts for e in ctx._journal.values()
             if (e.kind, e.name) == (RECEIVE, topic) and e.error is None),
            default=0,
        )  # fmt: skip
    return inbox.consumed[topic]


def _opened_message(ctx: WorkflowContext, topic: str, data: bytes | None) -> bytes:
    if data is None:
        return b"null"
    try:
        return ctx._sealer.open(data, *message_where(ctx._namespace, ctx.workflow_id, topic))
    except DecryptionError as failed:
        raise Unreadable(failed.message) from None


async def publish(ctx: WorkflowContext, key: str, value: Any) -> None:
    """``ctx.publish``: journaled, and the value stored with its journal entry."""
    check_name("value key", key)
    position = ctx._next()
    if ctx._recorded(position, PUBLISH, key) is not None:
        return
    plain = ctx._payloads.encode(f"value {key!r} of workflow {ctx.workflow_id!r}", value)
    stored = await ctx._payloads.seal(plain, *value_where(ctx._namespace, ctx.workflow_id, key))
    # The journal keeps the value too (sharing its blob when it has one): a fork from a
    # later position publishes it again.
    output = stored if is_ref(stored) else plain
    await record(ctx, position, PUBLISH, key, output=output, value=(key, stored))


# --- the journal entries and suspensions of this module and updates.py -------------------


async def record(
    ctx: WorkflowContext,
    position: int,
    kind: str,
    name: str,
    *,
    output: bytes | None = None,
    error: ErrorRecord | None = None,
    attempts: int = 1,
    settle: tuple[int, str, bytes | None, str | None] | None = None,
    value: tuple[str, bytes] | None = None,
    stream: tuple[str, bytes | None, int] | None = None,
) -> None:
    """Journal an entry (sealed for its position, as every checkpoint) under the run's
    fence, with what it settles, publishes or appends to a stream (workflows/streams.py),
    in one transaction; Superseded if the lease is lost."""
    where = (STEP, ctx._namespace, ctx.workflow_id, str(position))
    sealed = None if output is None else await ctx._payloads.seal(output, *where, "output")
    text = None if error is None else ctx._sealer.seal_text(error.to_json(), *where, "error")
    now = ctx._clock()
    asked = await ctx._backend.workflow_messages.record(
        ctx._namespace, ctx.workflow_id, ctx._fence, lease_end=now + ctx._lease, now=now,
        position=position, kind=kind, name=name, output=sealed, error=text,
        attempts=attempts, settle=settle, value=value, stream=stream,
    )  # fmt: skip
    if asked is None:
        raise Superseded()
    ctx.cancel_requested = asked == 1
    ctx.paused = asked == 2
    ctx._journal[position] = JournalEntry(position, kind, name, sealed, text, attempts)
    ctx.on_changed()


async def suspend(
    ctx: WorkflowContext,
    status: str,
    wake_at: float | None,
    *,
    topic: str | None = None,
    after: int = 0,
    updates: bool = True,
    event: str | None = None,
) -> NoReturn:
    """End the run to sleep or wait (a cancelled workflow stops instead): due at once if
    a message on ``topic`` after ``after``, the ``event`` waited for, or (``updates``)
    an update, arrived meanwhile."""
    if ctx.cancel_requested and not ctx.compensating:
        raise Cancelled()
    waiting_for = event if topic is None else mailbox_waiting_for(topic)
    suspended = await ctx._backend.workflow_messages.suspend(
        ctx._namespace, ctx.workflow_id, ctx._fence, status=status, wake_at=wake_at,
        waiting_for=waiting_for, topic=topic, after=after, now=ctx._clock(), updates=updates,
        event=event,
    )  # fmt: skip
    if not suspended:
        raise Superseded()
    ctx._suspending = True
    raise Suspend(status, wake_at, waiting_for=waiting_for, stored=True)


async def replayed(ctx: WorkflowContext, entry: JournalEntry) -> Any:
    """A recorded entry's output (its error is not raised)."""
    if entry.output is None:
        return None
    return decode_value(entry.name, await ctx._opened(entry))


__all__ = ["Inbox", "ReceiveTimeout", "check_name", "publish", "receive", "record", "suspend"]
