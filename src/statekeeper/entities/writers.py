"""Running entity calls: one writer per key in a process, one at a time across them.

A call to an exclusive handler joins its key's queue in this process; the key's writer
(a task, started by the first call and ended when the queue is empty) runs the queued
calls one after another on the state the last one left, and commits them together in
one unit of work: the final state, the messages and signals they sent, the workflows
they started and the answers of the calls made with an id. Only then are the callers
answered. Batching is what makes a hot key fast: 32 concurrent calls to one key cost one
commit, not 32 optimistic retries.

Every commit is fenced: it applies only if the entity is still as the batch found it
(the token of its last lease, and its version). An uncontended key needs no lease: the
writer runs the batch on the state this process last committed (or read) and commits
it if no one holds a live lease and nothing changed meanwhile — one write. When that
fails (another process wrote the key, or holds its lease), the writer takes the key's
lease (waiting, with a growing pause, while another process holds it), runs the batch
again on the state then stored, and commits under the lease; it keeps the lease while
more calls wait and gives it back with the commit that empties the queue. A holder
whose lease ran out and was taken over (it stalled) applies nothing at its commit and
runs its batch again under a new lease, so every call takes effect once.

A call made with an id that was answered before (a caller retrying after a crash) gets
the recorded answer without running again: the ids are looked up before the batch
runs, and a batch that commits its answer for an id (the primary key of the answers)
is the only one that ran it; any other batch's fenced commit applies nothing.

When traces are recorded, a call made inside traced work is a span of the caller's
(``call <entity>.<handler>``) and its handler runs, in the key's writer, in a span of
that call's trace (``handle <entity>.<handler>``): the messages it sends carry that
trace and the workflows it starts are in it. The writer itself runs in no caller's
trace (it serves many callers). A workflow started by a handler counts as started once
its commit created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from contextvars import Context, ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from statekeeper.blobs import Payloads
from statekeeper.codec import decode_value, encode_value
from statekeeper.entities.context import EntityContext, StartAsked
from statekeeper.entities.definitions import EntityType, EntityTypes, Handler
from statekeeper.errors import (
    BlobMissing,
    ClosedError,
    EntityCallFailed,
    ErrorRecord,
    NotFound,
    ValidationError,
)
from statekeeper.logs import correlation_id
from statekeeper.observability import metrics, tracing
from statekeeper.sealing import ENTITY
from statekeeper.state.transaction import Outbox
from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import (
    EntityAnswer,
    EntityCommit,
    EntityLease,
    EntityRow,
    NewMessage,
    UnitOfWork,
    WorkflowStart,
)
from statekeeper.workflows.engine import WAKEUP_CHANNEL

log = logging.getLogger("statekeeper.entities")

MAX_BATCH = 128  # calls committed together at most
FIRST_PAUSE = 0.002  # between lease attempts while another process holds the key ...
MOST_PAUSE = 0.05  # ... doubling up to this
MAX_KNOWN = 10_000  # entities whose last committed state a process keeps
MAX_KEPT = 8  # batches in a row a process commits under one lease before giving it back
MAX_REREADS = 5  # reads of a state out of line replaced meanwhile, before giving up
# The entity whose handler runs in this context (a call to it from there would wait for
# the handler making it).
_RUNNING: ContextVar[tuple[str, str, str] | None] = ContextVar("entity_running", default=None)


@dataclass(slots=True)
class Call:
    handler: Handler
    arg: Any
    call_id: str | None
    future: asyncio.Future[Any]
    trace: str | None = None  # the trace context of the call's span (None: not traced)


@dataclass(slots=True)
class Outcome:
    """How a call ended: its result, or its error (then it changed nothing)."""

    result: Any = None
    error: ErrorRecord | None = None


@dataclass(slots=True)
class _Held:
    """The lease a key's writer holds (None: none), its state opened (JSON bytes)."""

    lease: EntityLease | None = None


@dataclass(slots=True)
class _Queue:
    calls: deque[Call] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class WriterConfig:
    lease: float  # seconds a lease lasts (how long a dead holder keeps others waiting)
    answer_ttl: float  # seconds an answer to a call with an id is kept
    max_state_bytes: int


class EntityWriters:
    """The writers of one namespace's entities in this process."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        clock: Callable[[], float],
        payloads: Payloads,
        config: WriterConfig,
        outbox: Callable[[str], Outbox] | None,
        on_sent: Callable[[set[str]], None] | None,
        *,
        types: EntityTypes | None = None,
        starter: Callable[[StartAsked], Awaitable[WorkflowStart]] | None = None,
    ) -> None:
        self._backend = backend
        self._namespace = namespace
        self._clock = clock
        # Seals states and results; those above the threshold go out of line (blobs).
        self._payloads = payloads
        self._sealer = payloads.sealer
        self._config = config
        self._outbox = outbox
        self._on_sent = on_sent  # queues sent to (and workflows started: WAKEUP_CHANNEL)
        self._types = types
        self._starter = starter
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._queues: dict[tuple[str, str], _Queue] = {}
        # Entities as this process last committed (or read) them: token, version and
        # state (JSON bytes), the most recent MAX_KNOWN.
        self._known: OrderedDict[tuple[str, str], EntityLease] = OrderedDict()
        self._closed = False

    # --- calls --------------------------------------------------------------------------

    async def call(
        self, entity: EntityType, key: str, handler: Handler, arg: Any, call_id: str | None
    ) -> Any:
        """Queue the call on its key's writer; its result once committed."""
        if self._closed:
            raise ClosedError()
        if _RUNNING.get() == (self._namespace, entity.name, key):
            raise ValidationError(
                f"a handler of {entity.name}/{key} cannot call an exclusive handler of the "
                "same entity: that call would wait for the handler making it"
            )
        with tracing.span(f"call {entity.name}.{handler.name}", kind="client", only_within=True,
                          attributes={"statekeeper.entity_key": key}):  # fmt: skip
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            queue = self._queues.setdefault((entity.name, key), _Queue())
            queue.calls.append(Call(handler, arg, call_id, future, tracing.traceparent()))
            if queue.task is None:
                queue.task = asyncio.create_task(
                    self._write(entity, key, queue), context=_writer_context()
                )
            return await future  # a caller that stops waiting leaves its call queued

    async def read(self, entity: EntityType, key: str, handler: Handler, arg: Any) -> Any:
        """A read-only handler on the last committed state (no lease)."""
        row = await self._backend().entities.get(self._namespace, entity.name, key)
        _, opened = (None, None) if row is None else await self.open_row(entity.name, row)
        state = self._decode(entity, key, opened)
        ctx = EntityContext(entity.name, key, state, call_id=None, outbox=None, readonly=True)
        outcome, _ = self._as_answer(entity, key, handler, await self._run(handler, ctx, arg))
        return _answer(entity, key, handler, outcome)

    def open(self) -> None:
        """Take calls (again, after a close)."""
        self._closed = False

    async def close(self) -> None:
        """Stop taking calls; calls still queued fail with ClosedError."""
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the writer of one key ----------------------------------------------------------

    async def _write(self, entity: EntityType, key: str, queue: _Queue) -> None:
        held = _Held()  # the lease this task holds, whichever it is by now
        kept = 0  # batches in a row under one held lease
        try:
            while queue.calls:
                batch = [queue.calls[i] for i in range(min(len(queue.calls), MAX_BATCH))]
                more = len(queue.calls) > len(batch)
                if held.lease is None and await self._without_lease(entity, key, batch):
                    kept = 0
                else:
                    if held.lease is None:
                        held.lease = await self._lease(entity.name, key)
                    keep = more and kept < MAX_KEPT  # then let other processes in
                    await self._under_lease(entity, key, held, batch, keep=keep)
                    kept = kept + 1 if keep else 0
                for _ in batch:  # committed and answered
                    queue.calls.popleft()
        except asyncio.CancelledError:
            await self._release(entity.name, key, held)
            _fail_all(queue, ClosedError())
            raise
        except BaseException as error:  # the database failed: every waiting caller hears
            await self._release(entity.name, key, held)
            _fail_all(queue, error)
        finally:
            queue.task = None
            if not queue.calls:
                self._queues.pop((entity.name, key), None)

    async def _without_lease(self, entity: EntityType, key: str, batch: list[Call]) -> bool:
        """Commit ``batch`` without taking the lease, if no one holds it and the entity
        is still as this process last saw it (its own last commit, or a read): one write
        for an uncontended key. False (nothing applied, no caller answered) when it was
        not: a new entity, a live lease, or a commit by someone else meanwhile."""
        ident = (entity.name, key)
        known = self._known.pop(ident, None)
        if known is None:
            row = await self._backend().entities.get(self._namespace, entity.name, key)
            live = row is not None and row.holder is not None and (
                row.lease_until is None or row.lease_until > self._clock()
            )  # fmt: skip
            if row is None or live:
                return False  # the lease creates a new entity's row, and waits for a holder
            found, opened = await self.open_row(entity.name, row)
            if found is None:
                return False
            known = EntityLease(found.token, opened, found.version, found.state)
        committed = await self._commit(entity, key, batch, known, leased=False, keep=False)
        return committed is not None

    async def _lease(self, type: str, key: str) -> EntityLease:
        pause = FIRST_PAUSE
        entities = self._backend().entities
        while True:
            now = self._clock()
            until = now + self._config.lease
            got = await entities.lease(self._namespace, type, key, self.holder, until, now)
            if got is not None:
                opened = await self._opened(type, key, got.state)
                return got._replace(state=opened, stored=got.state)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MOST_PAUSE)

    async def _release(self, type: str, key: str, held: _Held) -> None:
        lease, held.lease = held.lease, None
        if lease is None:
            return
        try:
            await self._backend().entities.release(self._namespace, type, key, lease.token)
        except Exception:  # it runs out by itself
            log.warning("could not give back the lease of an entity", exc_info=True,
                        extra={"entity": type, "key": key})  # fmt: skip

    async def _under_lease(
        self, entity: EntityType, key: str, held: _Held, batch: list[Call], keep: bool
    ) -> None:
        """Commit ``batch`` under the lease ``held`` (lost meanwhile: lease again and run
        it again). The lease is extended while the batch runs; after the commit it is
        still held (under the commit's new token) if ``keep``, else given back."""
        while True:
            lease = held.lease
            assert lease is not None
            keeper = asyncio.create_task(self._keep(entity.name, key, lease.token))
            try:
                committed = await self._commit(entity, key, batch, lease, leased=True, keep=keep)
            finally:
                keeper.cancel()
            if committed is not None:
                held.lease = committed if keep else None
                return
            log.info("an entity's lease was taken over: its calls run again",
                     extra={"entity": entity.name, "key": key})  # fmt: skip
            held.lease = None
            held.lease = await self._lease(entity.name, key)

    async def _keep(self, type: str, key: str, token: int) -> None:
        """Extend the lease every third of its length while a batch runs under it."""
        entities = self._backend().entities
        while True:
            await asyncio.sleep(self._config.lease / 3)
            until = self._clock() + self._config.lease
            try:
                extended = await entities.extend(
                    self._namespace, type, key, self.holder, token, until
                )
            except Exception:
                log.warning("could not extend the lease of an entity", exc_info=True,
                            extra={"entity": type, "key": key})  # fmt: skip
                continue
            if not extended:
                return  # lost: the commit's fence will say so

    async def _commit(
        self,
        entity: EntityType,
        key: str,
        batch: list[Call],
        known: EntityLease,
        *,
        leased: bool,
        keep: bool,
    ) -> EntityLease | None:
        """Run ``batch`` on the state ``known`` and commit it if the entity is still as
        known (with the lease: ``leased``); then answer its callers. What this process
        now knows of the entity, or None when nothing was applied."""
        ids = [c.call_id for c in batch if c.call_id is not None]
        recorded = (
            await self._backend().entities.answers(self._namespace, entity.name, key, ids)
            if ids
            else {}
        )
        stored = known.state
        outcomes: list[Outcome] = []
        answers: list[EntityAnswer] = []
        messages: list[NewMessage] = []
        starts: list[WorkflowStart] = []
        seen: dict[str, Outcome] = {}
        changes = 0
        for call in batch:
            if call.call_id is not None:
                repeat = seen.get(call.call_id)
                if repeat is None and call.call_id in recorded:
                    repeat = await self._recorded(entity, key, recorded[call.call_id])
                if repeat is not None:
                    outcomes.append(repeat)
                    continue
            state = self._decode(entity, key, stored)  # each call's own copy
            ctx = EntityContext(
                entity.name, key, state, call_id=call.call_id, outbox=self._outbox,
                readonly=False, types=self._types,
            )  # fmt: skip
            outcome, left, made = await self._handle(entity, key, call, ctx, stored)
            outcome, result = self._as_answer(entity, key, call.handler, outcome)
            if outcome.error is None:  # the call counts: its state, messages and starts stand
                stored = left
                changes += 1
                messages += ctx.messages
                starts += made
            outcomes.append(outcome)
            if call.call_id is not None:
                seen[call.call_id] = outcome
                answers.append(await self._answer_record(entity, key, call, outcome, result))
        where = state_where(self._namespace, entity.name, key)
        if stored is None:
            sealed = None
        elif known.stored is not None and stored == known.state:
            sealed = known.stored  # unchanged: as its row holds it (no second blob)
        else:
            sealed = await self._payloads.seal(stored, *where)
        now = self._clock()
        commit = EntityCommit(
            entity.name, key, known.token, known.version, leased, sealed, changes, answers,
            now + self._config.answer_ttl, release=not keep, lease_until=now + self._config.lease,
        )  # fmt: skip
        unit = UnitOfWork(self._namespace, now, messages=messages, entity=commit, starts=starts)
        fresh = [None if sealed is known.stored else sealed, *(a.result for a in answers)]
        try:
            done = await self._backend().commit(unit)
        except BaseException:
            await asyncio.shield(self._payloads.discard(fresh))  # blobs nothing refers to
            raise
        if not done.applied:
            await self._payloads.discard(fresh)
            return None
        for start, created in zip(starts, done.started, strict=False):  # (committed: no raise)
            if created:  # (not an id that existed already)
                metrics.workflow_started(self._namespace, start.name)
        assert done.entity_version is not None and done.entity_token is not None
        after = EntityLease(done.entity_token, stored, done.entity_version, sealed)
        self._remember(entity.name, key, after)
        woken = {m.queue for m in messages} | ({WAKEUP_CHANNEL} if starts else set())
        if woken and self._on_sent is not None:
            self._on_sent(woken)
        for call, outcome in zip(batch, outcomes, strict=True):
            if not call.future.done():
                _settle(call.future, entity, key, call.handler, outcome)
        return after

    async def _handle(
        self, entity: EntityType, key: str, call: Call, ctx: EntityContext, stored: bytes | None
    ) -> tuple[Outcome, bytes | None, list[WorkflowStart]]:
        """Run ``call``'s handler on ``ctx``, in a span of its call's trace if it has one:
        its outcome, the state it leaves (``stored`` if it failed) and the workflows it
        starts, made (in that span too: they are started in its trace)."""
        handling: Any = contextlib.nullcontext()
        if call.trace is not None:
            name = f"handle {entity.name}.{call.handler.name}"
            handling = tracing.span(name, parent=call.trace, kind="server")
        with handling:
            outcome = await self._run(call.handler, ctx, call.arg)
            left, made = stored, []
            if outcome.error is None:
                try:
                    left = encode_value(
                        key, ctx.state, self._config.max_state_bytes,
                        f"the state of entity {entity.name}/{key}",
                    )  # fmt: skip
                    # An unknown workflow or a bad input fails the call; the database
                    # failing (reading definitions) fails the batch, which is not recorded.
                    made = [await self._made(asked) for asked in ctx.starts]
                except (ValidationError, NotFound) as error:
                    outcome = Outcome(error=ErrorRecord.of(error))
        return outcome, left, made

    def _remember(self, type: str, key: str, known: EntityLease) -> None:
        """Keep what this process last committed of an entity (the most recent
        MAX_KNOWN), so its next batch can commit without a read or the lease."""
        self._known[(type, key)] = known
        self._known.move_to_end((type, key))
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)

    def _as_answer(
        self, entity: EntityType, key: str, handler: Handler, outcome: Outcome
    ) -> tuple[Outcome, bytes | None]:
        """A handler's outcome as its callers get it, the first time as on a repeat: its
        result as JSON reads it back, with the encoded result; an error outcome when the
        result is not JSON."""
        if outcome.error is not None:
            return outcome, None
        try:
            result = encode_value(
                key, outcome.result, self._config.max_state_bytes,
                f"the result of {entity.name}.{handler.name}",
            )  # fmt: skip
        except Exception as error:
            return Outcome(error=ErrorRecord.of(error)), None
        value = outcome.result
        return Outcome(value if type(value) in _SCALARS else decode_value(key, result)), result

    async def _made(self, asked: StartAsked) -> WorkflowStart:
        """A workflow start a handler asked for, checked and ready to commit."""
        if self._starter is None:
            raise ValidationError("this entity's app runs no workflows")
        return await self._starter(asked)

    async def _run(self, handler: Handler, ctx: EntityContext, arg: Any) -> Outcome:
        args = (ctx, arg) if handler.takes_arg else (ctx,)
        running = _RUNNING.set((self._namespace, ctx.type, ctx.key))
        try:
            if handler.is_async:
                result = await handler.fn(*args)
            else:
                result = await asyncio.to_thread(handler.fn, *args)
        except Exception as error:
            return Outcome(error=ErrorRecord.of(error))
        finally:
            _RUNNING.reset(running)
        return Outcome(result)

    # --- encoding -----------------------------------------------------------------------

    def _decode(self, entity: EntityType, key: str, stored: bytes | None) -> Any:
        if stored is None:
            return entity.initial()
        return decode_value(key, stored)

    async def open_state(self, type: str, key: str, stored: bytes) -> bytes:
        """A stored state as JSON bytes (read from its blob if it is out of line)."""
        return await self._payloads.open(stored, *state_where(self._namespace, type, key))

    async def open_row(self, type: str, row: EntityRow) -> tuple[EntityRow | None, bytes | None]:
        """``row`` and its state opened. A state out of line replaced since the row was
        read may have had its blob released and swept: then the row is read again, a few
        times at most (None: the entity went meanwhile)."""
        found: EntityRow | None = row
        for _ in range(MAX_REREADS):
            if found is None or found.state is None:
                return found, None
            try:
                return found, await self.open_state(type, found.key, found.state)
            except BlobMissing:
                before = found.state
                found = await self._backend().entities.get(self._namespace, type, found.key)
                if found is not None and found.state == before:
                    raise  # still referred to, and missing: damage, not a race
        raise BlobMissing(f"the state of entity {type}/{row.key} kept changing while it was read")

    async def _opened(self, type: str, key: str, stored: bytes | None) -> bytes | None:
        return None if stored is None else await self.open_state(type, key, stored)

    async def _answer_record(
        self, entity: EntityType, key: str, call: Call, outcome: Outcome, result: bytes | None
    ) -> EntityAnswer:
        call_id = call.call_id
        assert call_id is not None
        where = partial(answer_where, self._namespace, entity.name, key, call_id)
        if outcome.error is not None:
            error = self._sealer.seal_text(outcome.error.to_json(), *where("error"))
            return EntityAnswer(call_id, call.handler.name, None, error)
        assert result is not None
        sealed = await self._payloads.seal(result, *where("result"))
        return EntityAnswer(call_id, call.handler.name, sealed, None)

    async def _recorded(self, entity: EntityType, key: str, answer: EntityAnswer) -> Outcome:
        where = partial(answer_where, self._namespace, entity.name, key, answer.call_id)
        if answer.error is not None:
            text = self._sealer.open_text(answer.error, *where("error"))
            return Outcome(error=ErrorRecord.from_json(text))
        assert answer.result is not None
        opened = await self._payloads.open(answer.result, *where("result"))
        return Outcome(decode_value(key, opened))


def _writer_context() -> Context | None:
    """The context a key's writer task runs in: with traces recorded, one without the
    trace of the caller that started it (each call's handler runs in its own call's
    trace), the caller's correlation id kept; else the caller's own (None)."""
    if not tracing.enabled():
        return None
    fresh = Context()
    fresh.run(correlation_id.set, correlation_id.get())
    return fresh


def state_where(namespace: str, type: str, key: str) -> tuple[str, ...]:
    """Where an entity's state is sealed (sealing.py)."""
    return (ENTITY, namespace, type, key, "state")


def answer_where(namespace: str, type: str, key: str, call_id: str, name: str) -> tuple[str, ...]:
    """Where an answer's ``name`` (result or error) is sealed: bound to its call id."""
    return (ENTITY, namespace, type, key, f"call:{call_id}:{name}")


_SCALARS = (str, int, float, bool, type(None))  # a result of these is its JSON already


def _answer(entity: EntityType, key: str, handler: Handler, outcome: Outcome) -> Any:
    if outcome.error is not None:
        raise _failed(entity, key, handler, outcome.error)
    return outcome.result


def _failed(entity: EntityType, key: str, handler: Handler, error: ErrorRecord) -> EntityCallFailed:
    return EntityCallFailed(
        f"{entity.name}/{key} {handler.name} failed: {error}",
        error=error, entity=entity.name, key=key, handler=handler.name,
    )  # fmt: skip


def _settle(
    future: asyncio.Future[Any], entity: EntityType, key: str, handler: Handler, outcome: Outcome
) -> None:
    if outcome.error is not None:
        future.set_exception(_failed(entity, key, handler, outcome.error))
    else:
        future.set_result(outcome.result)


def _fail_all(queue: _Queue, error: BaseException) -> None:
    while queue.calls:
        future = queue.calls.popleft().future
        if not future.done():
            future.set_exception(error)
