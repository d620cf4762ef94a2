"""The workflow context: every durable thing a workflow does goes through it.

Each call takes the next journal position (at the call, before any await, so a
fixed order of calls gives fixed positions). A recorded position returns what was
recorded; a new one does the work and checkpoints it (one statement, only while
this runner's fence holds) before the workflow goes on. With a keyring, every
journal entry's input, output and error is sealed for its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, cast, overload

from statekeeper.blobs import Payloads, database_payloads
from statekeeper.codec import decode_as, decode_value, result_type
from statekeeper.constants import ENV_CALLBACK_SECRET, callback_event
from statekeeper.errors import (
    BlobUnavailable,
    ConfigurationError,
    DecryptionError,
    ErrorRecord,
    JournalTooLong,
    NonDeterminismError,
    TransactionConflict,
    ValidationError,
)
from statekeeper.identifiers import (
    check_event_name,
    check_workflow_id,
    check_workflow_name,
)
from statekeeper.observability import metrics, tracing
from statekeeper.queues.policy import Retry
from statekeeper.sealing import PLAIN, STEP, Sealer
from statekeeper.storage.rows import JournalEntry, StepRecord, UnitOfWork
from statekeeper.workflows import children, entity_calls, mailbox, patches, streams, updates, waits
from statekeeper.workflows.attributes import ATTRIBUTES, store_attributes
from statekeeper.workflows.attributes import typed as typed_attributes
from statekeeper.workflows.callback import Callback
from statekeeper.workflows.journal import (
    DEFAULT_MAX_JOURNAL,
    check_timeout,
    nondeterminism_advice,
    step_name,
)
from statekeeper.workflows.saga import Saga
from statekeeper.workflows.signals import (
    OUTAGES,
    Cancelled,
    CheckpointFailed,
    ContinueAsNew,
    GiveBack,
    StepFailed,
    Superseded,
    Suspend,
    Unreadable,
)
from statekeeper.workflows.signatures import EntityCall, Errors, In, R, StepCall, WorkflowFunction
from statekeeper.workflows.tokens import CallbackTarget, issue

if TYPE_CHECKING:
    from statekeeper.state.store import StateStore
    from statekeeper.state.transaction import Transaction
    from statekeeper.storage.contracts import Storage

log = logging.getLogger("statekeeper.workflows")

# A retry backoff this long or longer is a durable sleep: the run ends and the workflow
# is resumed for the next attempt (by any worker); a shorter one is slept in the run.
DURABLE_BACKOFF = 5.0
DEFAULT_STEP_RETRY = Retry(max_attempts=3, initial_interval=1.0, backoff_rate=2.0, max_delay=60.0)


_SCALARS = (int, float, str)


def _never() -> bool:
    return False


def _nothing() -> None:
    pass


class WorkflowContext:
    def __init__(
        self,
        backend: Storage,
        namespace: str,
        workflow_id: str,
        fence: int,
        journal: list[JournalEntry],
        *,
        clock: Callable[[], float],
        lease: float,
        cancel_requested: bool = False,
        sealer: Sealer = PLAIN,
        state: Callable[[], StateStore] | None = None,
        max_journal: int = DEFAULT_MAX_JOURNAL,
        payloads: Payloads | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.run_name = ""  # the workflow's name (the runner sets it), for metrics
        self._max_journal = max_journal
        self.sagas_open = 0  # sagas entered and not left (continue_as_new is refused in one)
        self.namespace = namespace
        self._state_of = state
        self._sealer = sealer
        # Seals payloads, and stores those above the threshold out of line (blobs).
        self._payloads = payloads or database_payloads(lambda: backend.blobs, sealer, clock)
        self._backend = backend
        self._namespace = namespace
        self._fence = fence
        self._journal = {entry.position: entry for entry in journal}
        counted = self._journal.pop(0, None)  # position 0: the count of continues
        # How many times this workflow continued as new (``continue_as_new``) before
        # this run: 0 in its first run.
        self.continued = 0 if counted is None else counted.attempts
        self._clock = clock
        self._lease = lease
        self._position = 0
        self.cancel_requested = cancel_requested
        # The workflow was paused (``app.workflows.pause``), as its last checkpoint read:
        # the run starts no new work and gives the workflow back (GiveBack).
        self.paused = False
        self.compensating = False  # compensations run even when cancelled
        self.on_child_started: Callable[[], None] | None = None
        self.on_changed: Callable[[], None] = _nothing  # a journal entry was written
        self.secret: str | None = None  # signs callback tokens
        self.entity_call: EntityCall | None = None  # runs ``call`` (the app's entities)
        # When the workflow was created: tells apart two workflows of one id (one purged
        # and the other started since), in the ids of their entity calls.
        self.created_at = 0.0
        # The registered name of a workflow function (for ``child(fn, ...)``).
        self.workflow_name: Callable[[Callable[..., Any]], str] | None = None
        # The application version a child workflow of a name is stamped with.
        self.version_of: Callable[[str], str | None] = lambda name: None
        # True once this process is stopping: the run starts no new work (GiveBack).
        self.stopping: Callable[[], bool] = _never
        # Steps running now (with ``asyncio.gather`` more than one): a run given back
        # waits for them to settle, so that none is lost and run again.
        self._steps_running = 0
        self._waits_running = 0  # event and child waits in progress (waits.py)
        self._suspending = False  # this run raised Suspend: it ends to wait (waits.py)
        self._steps_settled = asyncio.Event()
        self._steps_settled.set()
        # The mailbox's and updates' state of this run (workflows/mailbox.py, updates.py).
        self.inbox = mailbox.Inbox()

    # --- the journal --------------------------------------------------------------------

    def _next(self) -> int:
        self._position += 1
        self._within_limit(self._position)
        return self._position

    def _within_limit(self, position: int) -> None:
        """A run's journal holds at most ``max_journal`` entries (JournalTooLong past it)."""
        if position > self._max_journal:
            raise JournalTooLong(
                f"workflow {self.workflow_id!r} reached the limit of {self._max_journal} "
                "journal entries (App(max_journal_entries=...)): a workflow that loops "
                "should end each run with ctx.continue_as_new(input), which starts it "
                "over with an empty journal",
                workflow_id=self.workflow_id,
                limit=self._max_journal,
            )

    def _recorded(self, position: int, kind: str, name: str) -> JournalEntry | None:
        """The journal entry at ``position``; None means new work, which a cancelled
        workflow does not start."""
        entry = self._journal.get(position)
        if entry is not None and (entry.kind, kind, entry.name) == ("attempt", "step", name):
            # A step part-way through its retries: the next attempt is new work (``_step``
            # sleeps until it is due, or gives the workflow back when stopping).
            if self.cancel_requested and not self.compensating:
                raise Cancelled()
            return entry
        legacy = (entry is not None and entry.error is not None and entry.name == name
                  and (entry.kind, kind) == ("step", "transaction"))  # fmt: skip
        if legacy:  # a failed transaction, journaled as a step before
            return entry
        if entry is None:
            self._may_start_new_work()
        if entry is not None and (entry.kind != kind or entry.name != name):
            raise NonDeterminismError(
                f"workflow {self.workflow_id!r} reached position {position} with {kind} "
                f"{name!r}, but its journal records {entry.kind} {entry.name!r} there: the "
                "workflow's code changed or is not deterministic"
                + nondeterminism_advice(entry.kind, entry.name),
                workflow_id=self.workflow_id,
                position=position,
            )
        return entry

    @contextlib.contextmanager
    def _step_running(self) -> Iterator[None]:
        """Counts a step from its first attempt to its journal entry (or its suspension)."""
        self._steps_running += 1
        self._steps_settled.clear()
        try:
            yield
        finally:
            self._steps_running -= 1
            if not self._steps_running:
                self._steps_settled.set()

    async def steps_settled(self) -> None:
        """Until no step of this run is running (their checkpoints are written)."""
        await self._steps_settled.wait()

    def _may_start_new_work(self) -> None:
        """A cancelled workflow starts no new work (compensations excepted); a run in a
        stopping process gives the workflow back instead."""
        if self.cancel_requested and not self.compensating:
            raise Cancelled()
        if self._giving_back():
            raise GiveBack()

    def _giving_back(self) -> bool:
        """Whether the run is to give its workflow back before new work: the workflow was
        paused, or this process is stopping."""
        return self.paused or self.stopping()

    async def _checkpoint(
        self,
        position: int,
        kind: str,
        name: str,
        *,
        input: bytes | None = None,
        output: bytes | None = None,
        error: ErrorRecord | None = None,
        attempts: int = 1,
        started_at: float | None = None,
    ) -> None:
        now = self._clock()
        where = (STEP, self._namespace, self.workflow_id, str(position))
        # Also without keys: a text that looks sealed is escaped.
        text = None if error is None else self._sealer.seal_text(error.to_json(), *where, "error")
        try:
            if input is not None:
                input = await self._payloads.seal(input, *where, "input")
            if output is not None:
                output = await self._payloads.seal(output, *where, "output")
            step = StepRecord(
                self.workflow_id, self._fence, position, kind, name, now + self._lease,
                input=input, output=output, error=text, attempts=attempts,
                started_at=started_at,
            )  # fmt: skip
            done = await self._backend.commit(UnitOfWork(self._namespace, now, step=step))
        except OUTAGES as outage:  # the run ends here: the workflow is given back
            raise CheckpointFailed(f"{kind} {name!r}: {outage.message}") from outage
        if not done.applied:
            raise Superseded()
        self.cancel_requested = done.cancel_requested
        self.paused = done.paused
        self._journal[position] = JournalEntry(position, kind, name, output, text, attempts)
        self.on_changed()

    def _suspend(self, suspend: Suspend) -> NoReturn:
        """End the run to wait; a cancelled workflow stops instead of waiting (unless it
        is compensating: its compensations run to their end, retries included)."""
        if self.cancel_requested and not self.compensating:
            raise Cancelled()
        self._suspending = True
        raise suspend

    async def _replay(self, entry: JournalEntry, hint: Any = None) -> Any:
        """The recorded result (as type ``hint``), or its recorded failure raised."""
        if entry.error is not None:
            raise StepFailed(entry.name, self._recorded_error(entry))
        if entry.output is None:
            return None
        where = (STEP, self._namespace, self.workflow_id, str(entry.position), "output")
        subject = f"the result of {entry.kind} {entry.name!r}"
        try:
            return await self._payloads.value(entry.output, hint, subject, *where)
        except (DecryptionError, BlobUnavailable) as failed:  # not here: later, elsewhere
            raise Unreadable(failed.message) from None

    async def _opened(self, entry: JournalEntry) -> bytes:
        assert entry.output is not None
        where = (STEP, self._namespace, self.workflow_id, str(entry.position))
        try:
            return await self._payloads.open(entry.output, *where, "output")
        except (DecryptionError, BlobUnavailable) as failed:
            raise Unreadable(failed.message) from None

    def _recorded_error(self, entry: JournalEntry) -> ErrorRecord:
        assert entry.error is not None
        where = (STEP, self._namespace, self.workflow_id, str(entry.position))
        try:
            return ErrorRecord.from_json(self._sealer.open_text(entry.error, *where, "error"))
        except DecryptionError as failed:
            raise Unreadable(failed.message) from None

    # --- steps --------------------------------------------------------------------------

    @property
    def step(self) -> StepCall:
        """``ctx.step(fn, *args, retry=, timeout=, non_retryable=, **kwargs)``: run
        ``fn(*args, **kwargs)`` once, durably: its result (or its final error, raised as
        StepFailed) is recorded before the workflow goes on. Typed by ``StepCall``: the
        arguments are checked against ``fn`` and the result is ``fn``'s.

        Not itself a coroutine: the journal position is taken at the call, so steps
        created in a fixed order for ``gather`` keep fixed positions.
        """
        # The typed forms are StepCall's; mypy cannot match a ParamSpec form with an
        # implementation that also takes keywords of its own, hence the cast.
        return cast(StepCall, self._start_step)

    def _start_step(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
        **kwargs: Any,
    ) -> Coroutine[Any, Any, Any]:
        return self._step(self._next(), fn, args, kwargs, retry, timeout, non_retryable)

    async def _step(
        self,
        position: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: Retry | None,
        timeout: float | None,
        non_retryable: tuple[type[BaseException], ...],
    ) -> Any:
        name = step_name(fn)
        entry = self._recorded(position, "step", name)
        hint = result_type(fn)
        attempt = 0
        if entry is not None:
            if entry.kind != "attempt":
                return await self._replay(entry, hint)
            # Resumed part-way through the retries: after the backoff, the next attempt.
            attempt = entry.attempts
            retry_at = float(decode_value(name, await self._opened(entry)))
            if self._clock() < retry_at:
                self._suspend(Suspend("sleeping", retry_at))
            if self._giving_back() and not self.compensating:
                raise GiveBack()
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValidationError(f"step timeout must be a positive number, got {timeout!r}")
        policy = retry or DEFAULT_STEP_RETRY
        arguments = self._payloads.encode(f"arguments of step {name!r}", [list(args), kwargs])
        started = self._clock()
        with (
            self._step_running(),
            tracing.span(f"step {name}", attributes={"statekeeper.position": position}),
        ):
            while True:
                attempt += 1
                began = time.perf_counter()
                try:
                    result = await _call(fn, args, kwargs, timeout)
                except Exception as exc:
                    error = ErrorRecord.of(exc)
                    ran = time.perf_counter() - began
                    if isinstance(exc, non_retryable) or attempt >= policy.max_attempts:
                        metrics.step_done(self._namespace, self.run_name, "failed", ran)
                        await self._fail_step(
                            position, name, arguments, attempt, started, error, exc
                        )
                    metrics.step_retried(self._namespace, self.run_name)
                    await self._retry_later(position, name, arguments, attempt, policy, error, exc)
                    continue
                try:
                    output = self._payloads.encode(f"result of step {name!r}", result)
                except ValidationError as problem:
                    # The step ran but its result cannot be journaled: it fails once, for
                    # good, so a replay never runs it again.
                    error = ErrorRecord.made("StepResultNotStored", problem.message)
                    await self._fail_step(
                        position, name, arguments, attempt, started, error, problem
                    )
                await self._checkpoint(
                    position, "step", name, input=arguments, output=output, attempts=attempt,
                    started_at=started,
                )  # fmt: skip
                ran = time.perf_counter() - began
                metrics.step_done(self._namespace, self.run_name, "succeeded", ran)
                # What a replay returns, so the first run and every replay see the same value
                # (a number or a string is that already: JSON gives it back as it is).
                if type(result) in _SCALARS and (hint is None or hint is type(result)):
                    return result
                return decode_as(output, hint, f"the result of step {name!r}")

    async def _retry_later(
        self,
        position: int,
        name: str,
        arguments: bytes,
        attempt: int,
        policy: Retry,
        error: ErrorRecord,
        cause: BaseException,
    ) -> None:
        """Journal a failed attempt (kind 'attempt': the attempts so far, the error, when
        the next is due) and wait for the next: in this run, or as a durable sleep."""
        delay = policy.delay(attempt, random.Random())
        retry_at = self._clock() + delay
        log.warning(
            "step attempt failed; retrying", exc_info=cause,
            extra={"workflow_id": self.workflow_id, "step": name, "attempt": attempt,
                   "retry_in": round(delay, 3), "error": str(error)},
        )  # fmt: skip
        await self._checkpoint(
            position, "attempt", name, input=arguments, output=json.dumps(retry_at).encode(),
            error=error, attempts=attempt, started_at=self._clock(),
        )  # fmt: skip
        if delay >= DURABLE_BACKOFF or self._giving_back():
            self._suspend(Suspend("sleeping", retry_at))
        await asyncio.sleep(delay)
        if self.stopping():  # stopping began during the backoff: the next attempt waits
            self._suspend(Suspend("sleeping", retry_at))

    async def _fail_step(
        self,
        position: int,
        name: str,
        arguments: bytes,
        attempts: int,
        started: float,
        error: ErrorRecord,
        cause: BaseException,
        *,
        kind: str = "step",
    ) -> NoReturn:
        """Journal the step's final failure, then raise it (a replay raises it again)."""
        log.warning(
            "step failed", exc_info=cause,
            extra={"workflow_id": self.workflow_id, "step": name, "attempts": attempts,
                   "error": str(error)},
        )  # fmt: skip
        await self._checkpoint(
            position, kind, name, input=arguments, error=error, attempts=attempts,
            started_at=started,
        )  # fmt: skip
        raise StepFailed(name, error) from cause

    # --- transactional steps --------------------------------------------------------------

    @overload
    def transaction(
        self, build: Callable[[Transaction], Awaitable[R]], /
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def transaction(self, build: Callable[[Transaction], R], /) -> Coroutine[Any, Any, R]: ...

    def transaction(self, build: Callable[[Transaction], Any], /) -> Coroutine[Any, Any, Any]:
        """A step whose effects are state writes and messages, committed in the same
        transaction as its journal entry: exactly once, whatever crashes.

        ``build(tx)`` (``def`` or ``async def``) adds puts, deletes and sends to ``tx``
        (as in ``app.state.transaction()``) and returns the step's result. On replay the
        recorded result comes back and ``build`` does not run. A failed condition
        (TransactionConflict) applies nothing and fails the step for good (StepFailed,
        recorded, so a replay fails the same way).
        """
        return self._transaction(self._next(), build)

    async def _transaction(self, position: int, build: Callable[[Transaction], Any]) -> Any:
        name = step_name(build)
        entry = self._recorded(position, "transaction", name)
        hint = result_type(build)
        if entry is not None:
            return await self._replay(entry, hint)
        if self._state_of is None:
            raise ConfigurationError("transactional steps need the app's state store")
        started = self._clock()
        tx = self._state_of().transaction()
        result = build(tx)
        if inspect.isawaitable(result):
            result = await result
        output = self._payloads.encode(f"result of transaction {name!r}", result)
        where = (STEP, self._namespace, self.workflow_id, str(position))
        stored = await self._payloads.seal(output, *where, "output")
        step = StepRecord(
            self.workflow_id, self._fence, position, "transaction", name,
            self._clock() + self._lease, output=stored,
            started_at=started,
        )  # fmt: skip
        try:
            done = await tx.commit_with(step)
        except TransactionConflict as conflict:
            error = ErrorRecord.of(conflict)
            await self._fail_step(
                position, name, b"[]", 1, started, error, conflict, kind="transaction"
            )
        if not done.applied:
            raise Superseded()
        self.cancel_requested = done.cancel_requested
        self.paused = done.paused
        self._journal[position] = JournalEntry(position, "transaction", name, step.output, None)
        self.on_changed()
        return decode_as(output, hint, f"the result of transaction {name!r}")

    # --- entity calls ---------------------------------------------------------------------

    def call(
        self, entity: str, key: str, handler: str, arg: Any = None
    ) -> Coroutine[Any, Any, Any]:
        """Call ``handler`` of entity ``entity``/``key`` with ``arg`` and wait for its
        result, journaled: the call takes effect once (its id is the workflow's and the
        journal position's, so a run resumed after a crash gets the entity's recorded
        answer) and a replay returns the recorded result. A handler that raised, or an
        unknown entity or handler, fails it for good as StepFailed."""
        return entity_calls.run(self, self._next(), entity, key, handler, arg)

    # --- callbacks ----------------------------------------------------------------------

    async def callback(self, timeout: float | None = None) -> Callback:
        """A callback token and URL for an outside system to answer this workflow once
        (even before the workflow waits); see ``Callback``."""
        if self.secret is None:
            raise ConfigurationError(f"workflow callbacks need a secret: set {ENV_CALLBACK_SECRET}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValidationError(f"callback timeout must be a positive number, got {timeout!r}")
        position = self._next()
        waits = (self._next(), self._next())
        # Each run's callbacks have their own events (positions start over in a new run).
        event = callback_event(position if not self.continued else f"{self.continued}.{position}")
        entry = self._recorded(position, "callback", event)
        if entry is None:
            expires = None if timeout is None else self._clock() + timeout
            target = CallbackTarget(self._namespace, self.workflow_id, event, expires)
            token = issue(self.secret, target)
            await self._checkpoint(position, "callback", event, output=json.dumps(token).encode())
        else:
            token = str(await self._replay(entry))
        return Callback(self, token, event, timeout, waits)

    # --- composition --------------------------------------------------------------------

    async def gather(self, *steps: Awaitable[Any], limit: int | None = None) -> list[Any]:
        """Await steps (or children) concurrently, at most ``limit`` at a time; their
        results in order. If any failed, the first failure (in order) is raised after
        all have settled."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValidationError(f"gather limit must be a positive integer, got {limit!r}")
        gate = asyncio.Semaphore(limit or max(1, len(steps)))

        async def bounded(awaitable: Awaitable[Any]) -> Any:
            waits.BESIDE.set(True)  # in this task only (waits.py)
            async with gate:
                return await awaitable

        outcomes = await asyncio.gather(*(bounded(s) for s in steps), return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            # What ends the run (an outage, a give-back, a wait) goes before a step's
            # failure: a saga must not compensate while a step's effect went unrecorded.
            raise next((f for f in failures if not isinstance(f, Exception)), failures[0])
        return list(outcomes)

    def saga(self) -> Saga:
        """``async with ctx.saga() as saga: await saga.step(fn, ..., compensate=undo)``."""
        return Saga(self)

    @overload
    def child(
        self,
        name: WorkflowFunction[In, R],
        input: In,
        *,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def child(
        self,
        name: WorkflowFunction[None, R],
        *,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def child(
        self, name: str, input: Any = None, *, id: str | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]: ...

    def child(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Start a workflow, given as its registered function or its name, as a child
        and wait for its output (ChildFailed if it does not succeed). Its id defaults to
        ``<this id>:<position>`` (past the id limit, a digest of this id stands for it).
        ``timeout`` (seconds from its start) ends the child ``timed_out``, which this
        workflow sees as ChildFailed."""
        if isinstance(name, str) or not callable(name):
            name = check_workflow_name(name)
        elif self.workflow_name is None:
            raise ConfigurationError("child workflows given as functions need the app's registry")
        else:
            name = self.workflow_name(name)
        if id is not None:
            check_workflow_id(id)
        check_timeout(timeout)
        position = self._next()
        waits = (self._next(), self._next())
        return children.run(
            self, position, waits, name, input, id or children.child_id(self, position), timeout
        )

    # --- recorded values ------------------------------------------------------------------

    async def _value(self, position: int, kind: str, make: Callable[[], Any]) -> Any:
        entry = self._recorded(position, kind, kind)
        if entry is not None:
            return await self._replay(entry)
        value = make()
        await self._checkpoint(position, kind, kind, output=json.dumps(value).encode())
        return value

    def clock(self) -> float:
        """The time now (Unix seconds), not journaled: a replay sees a later time."""
        return self._clock()

    def now(self) -> Coroutine[Any, Any, float]:
        """The time (Unix seconds), the same on every replay."""
        return self._value(self._next(), "now", self._clock)

    def random(self) -> Coroutine[Any, Any, float]:
        """A random number in [0, 1), the same on every replay."""
        return self._value(self._next(), "random", random.random)

    def uuid(self) -> Coroutine[Any, Any, str]:
        """A random UUID, the same on every replay."""
        return self._value(self._next(), "uuid", lambda: uuid.uuid4().hex)

    async def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set searchable attributes (docs/workflow-search.md): journaled with the values
        in one transaction under the fence, so a replay writes nothing."""
        values, position = typed_attributes(attributes), self._next()
        if self._recorded(position, ATTRIBUTES, ATTRIBUTES) is None:
            now = self._clock()
            step = StepRecord(self.workflow_id, self._fence, position, ATTRIBUTES, ATTRIBUTES,
                              now + self._lease)  # fmt: skip
            done = await store_attributes(self._backend, self._namespace, step, values, now)
            self.cancel_requested, self.paused = done.cancel_requested, done.paused
            self._journal[position] = JournalEntry(position, ATTRIBUTES, ATTRIBUTES, None, None, 1)

    # --- code changes ---------------------------------------------------------------------

    async def patched(self, change_id: str) -> bool:
        """Whether this run takes the code path of the change ``change_id``
        (workflows/patches.py; docs/workflow-code-changes.md):

            if await ctx.patched("audit-before-charge"):
                await ctx.step(audit, order_id)   # new code
            await ctx.step(charge, order_id)      # old and new
        """
        return await patches.patched(self, change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Where ``ctx.patched(change_id)`` was: the new path is now the only one
        (workflows/patches.py)."""
        patches.deprecate_patch(self, change_id)

    # --- continuing as new ----------------------------------------------------------------

    async def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this run and start the workflow over from the top with ``input``: the
        same id, an empty journal, due at once; the events it received and has not
        waited for yet stay for the new run. A workflow that loops for long (a poller,
        an entity that handles event after event) calls it every so many rounds, so its
        journal stays short. Refused (ValidationError) inside a saga or a step, or while
        steps started beside it still run: their outcomes belong to this run."""
        if self.sagas_open or self.compensating:
            raise ValidationError(
                "ctx.continue_as_new cannot be called inside a saga: leave the saga first "
                "(its compensations belong to this run)"
            )
        if self._steps_running:
            raise ValidationError(
                "ctx.continue_as_new cannot be called inside a step, or while steps started "
                "beside it (gather) still run: call it from the workflow's own code, once "
                "its steps have finished"
            )
        self._may_start_new_work()
        raise ContinueAsNew(self._payloads.encode(f"input of workflow {self.workflow_id!r}", input))

    # --- timers and events ----------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the run ends and the workflow is resumed after ``seconds``,
        by any worker, even after restarts."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValidationError(f"sleep takes a non-negative number of seconds, got {seconds!r}")
        await self._sleep_until(lambda: self._clock() + float(seconds))

    async def sleep_until(self, when: float) -> None:
        """Sleep durably until Unix time ``when``."""
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise ValidationError(f"sleep_until takes a Unix time, got {when!r}")
        await self._sleep_until(lambda: float(when))

    async def _sleep_until(self, wake: Callable[[], float]) -> None:
        position = self._next()
        entry = self._recorded(position, "sleep", "sleep")
        if entry is None:
            wake_at = wake()
            await self._checkpoint(position, "sleep", "sleep", output=json.dumps(wake_at).encode())
        else:
            wake_at = float(await self._replay(entry))
        live = await updates.apply(self)  # the updates asked while it sleeps (updates.py)
        if self._clock() < wake_at:
            tracing.event("sleep", {"statekeeper.wake_at": wake_at})
            await mailbox.suspend(self, "sleeping", wake_at, updates=live)

    def wait_for_event(self, name: str, timeout: float | None = None) -> Coroutine[Any, Any, Any]:
        """The data of event ``name`` sent to this workflow (``app.workflows.send_event``),
        waiting durably for it; EventTimeout after ``timeout`` seconds."""
        check_event_name(name)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValidationError(f"event timeout must be a positive number, got {timeout!r}")
        return self._wait(name, timeout, (self._next(), self._next()))

    async def _wait(self, name: str, timeout: float | None, positions: tuple[int, int]) -> Any:
        tracing.event("wait", {"statekeeper.event": name})
        return await waits.wait(self, name, timeout, positions)

    # --- messages (workflows/mailbox.py, updates.py) ------------------------------------

    def receive(self, topic: str, timeout: float | None = None) -> Coroutine[Any, Any, Any]:
        """The next message sent to this workflow on ``topic`` (in the order sent, each
        once), waiting durably for one; ReceiveTimeout after ``timeout`` seconds."""
        return mailbox.receive(self, topic, timeout)

    def write_stream(self, key: str, value: Any) -> Coroutine[Any, Any, None]:
        """Append ``value`` (JSON) to this workflow's durable stream ``key``, once: the
        readers of ``app.workflows.read_stream(id, key)`` get every value in order
        (workflows/streams.py)."""
        return streams.write(self, key, value)

    def close_stream(self, key: str) -> Coroutine[Any, Any, None]:
        """End the durable stream ``key``: its readers stop after its last value (a
        stream also ends for them when the workflow ends)."""
        return streams.write(self, key, None, close=True)

    def publish(self, key: str, value: Any) -> Coroutine[Any, Any, None]:
        """Publish ``value`` under ``key`` (durably; a later publish replaces it), for
        ``app.workflows.get(id, key)`` to read while the workflow runs."""
        return mailbox.publish(self, key, value)

    def on_update(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Run ``handler(data)`` for each update ``name`` (``app.workflows.update``),
        where the workflow waits (docs/workflow-messages.md)."""
        updates.on_update(self, name, handler)

    def wait_condition(
        self, predicate: Callable[[], bool], timeout: float | None = None
    ) -> Coroutine[Any, Any, bool]:
        """Wait durably, applying updates, until ``predicate()`` is true (True) or
        ``timeout`` seconds pass (False)."""
        return updates.wait_condition(self, predicate, timeout)


async def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    if inspect.iscoroutinefunction(fn):
        running: Awaitable[Any] = fn(*args, **kwargs)
    else:
        running = asyncio.to_thread(fn, *args, **kwargs)
    result = await (running if timeout is None else asyncio.wait_for(running, timeout))
    if inspect.isawaitable(result):
        result = await result
    return result
