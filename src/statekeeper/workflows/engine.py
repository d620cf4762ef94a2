"""Workflows: registration, starting, status, events, and the runner that executes them.

@app.workflow
async def order(ctx, order):
    charge = await ctx.step(charge_card, order["card"], order["total"])
    await ctx.sleep(3600)
    return {"charge": charge}

run = await app.workflows.start(order, {"card": "...", "total": 30}, id="order-42")
await app.workflows.result(run)   # typed: what ``order`` returns
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from statekeeper.blobs import Payloads, database_payloads
from statekeeper.codec import decode_value, result_type
from statekeeper.constants import (
    WORKFLOW_ACTIVE,
    WORKFLOW_PAUSED,
    WORKFLOW_STATUSES,
)
from statekeeper.errors import (
    ConfigurationError,
    DecryptionError,
    ErrorRecord,
    InvalidFilter,
    InvalidWorkflowName,
    StatekeeperError,
    UnknownWorkflow,
    ValidationError,
    WorkflowConflict,
    WorkflowFailed,
    WorkflowFinished,
    WorkflowNotFinished,
    WorkflowNotFound,
)
from statekeeper.identifiers import (
    check_event_name,
    check_workflow_id,
    check_workflow_name,
    shown,
)
from statekeeper.observability import metrics, tracing
from statekeeper.queues.message import Message
from statekeeper.queues.wakeups import Wakeups
from statekeeper.sealing import EVENT, PLAIN, WORKFLOW, Sealer, is_ref
from statekeeper.storage.rows import WorkflowStart
from statekeeper.workflows import answers, history, operations
from statekeeper.workflows.bulk import DEFAULT_BATCH, Bulk, BulkResult
from statekeeper.workflows.definitions import Definitions, WorkflowFn
from statekeeper.workflows.flow import FlowControl
from statekeeper.workflows.journal import DEFAULT_MAX_JOURNAL, check_timeout
from statekeeper.workflows.messaging import Messaging
from statekeeper.workflows.retention import Retention, Retentions
from statekeeper.workflows.search import Query, WorkflowSearch
from statekeeper.workflows.signatures import (
    AnyWorkflow,
    EntityCall,
    In,
    R,
    WorkflowFunction,
    WorkflowRun,
)
from statekeeper.workflows.streams import StreamReader
from statekeeper.workflows.tokens import ExpiredToken, InvalidToken
from statekeeper.workflows.versions import Versions

if TYPE_CHECKING:
    from statekeeper.state.store import StateStore
    from statekeeper.storage.contracts import Storage

log = logging.getLogger("statekeeper.workflows")

# The errors a callback answer sent as a message ends with for good.
CALLBACK_FINAL = (ValidationError, InvalidToken, WorkflowNotFound, ExpiredToken, WorkflowFinished)
WAKEUP_CHANNEL = "statekeeper.workflows"  # the wake-up "queue" name of workflow runners
ACTIVE = WORKFLOW_ACTIVE
STATUSES = WORKFLOW_STATUSES


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    id: str
    name: str
    status: str
    output: Any
    error: ErrorRecord | None
    created_at: float
    updated_at: float
    read_error: str | None = None  # why the stored output or error cannot be read
    paused: bool = False  # paused (``Workflows.pause``): it does nothing until resumed
    version: str | None = None  # the application version it runs on (None: any)

    @property
    def done(self) -> bool:
        return self.status not in ACTIVE

    def to_dict(self, *, traceback: bool = True) -> dict[str, Any]:
        """Its fields as JSON; without the error's traceback where a client reads it."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "output": self.output,
            "error": None if self.error is None else self.error.to_dict(traceback=traceback),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "paused": self.paused,
            "version": self.version,
            **({"read_error": self.read_error} if self.read_error else {}),
        }


class Workflows:
    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        clock: Callable[[], float],
        wakeups: Wakeups,
        *,
        lease: float = 30.0,
        sealer: Sealer = PLAIN,
        state: Callable[[], StateStore] | None = None,
        max_journal_entries: int = DEFAULT_MAX_JOURNAL,
        payloads: Payloads | None = None,
    ) -> None:
        self._backend_of = backend
        # A run that records more journal entries fails with JournalTooLong.
        self.max_journal_entries = max_journal_entries
        self._state_of = state  # for transactional steps (ctx.transaction)
        self.namespace = namespace
        self._clock = clock
        self._wakeups = wakeups
        self.lease = lease
        self.sealer = sealer
        # Seals payloads, and stores those above the threshold out of line (blobs).
        self.payloads = payloads or database_payloads(lambda: backend().blobs, sealer, clock)
        self.registry: dict[str, WorkflowFn] = {}
        # Workflows defined at runtime, and the interpreters that run them here.
        self.definitions = Definitions(backend, namespace, clock)
        self.secret: str | None = None  # signs callback tokens (STATEKEEPER_CALLBACK_SECRET)
        # Calls an entity's handler for ``ctx.call`` (the app's entities): (type, key,
        # handler, arg, call_id) -> its result.
        self.entity_call: EntityCall | None = None
        # The version stamped on each run and those leased here; finished runs' retention.
        self.versions = Versions(self.registry)
        self.retention = Retentions()
        # Search and bulk operations (docs/workflow-search.md).
        self.search = WorkflowSearch(backend, namespace)
        self._bulk = Bulk(
            backend, namespace, clock, self.search,
            lambda: wakeups.notify(namespace, WAKEUP_CHANNEL),
        )  # fmt: skip
        self.flow = FlowControl(backend, namespace, clock, wakeups)  # workflow queues (flow.py)
        self.streams = StreamReader(self)  # durable streams (streams.py)

    @property
    def _backend(self) -> Storage:
        return self._backend_of()

    def register(
        self, fn: AnyWorkflow, name: str | None = None, *, retention: Retention = None
    ) -> AnyWorkflow:
        chosen = name or fn.__name__
        try:
            check_workflow_name(chosen)
        except InvalidWorkflowName as error:
            raise ConfigurationError(error.message) from None
        if not asyncio.iscoroutinefunction(fn):
            raise ConfigurationError(f"workflow {chosen!r} must be an async function")
        if chosen in self.registry and self.registry[chosen] is not fn:
            raise ConfigurationError(f"a workflow named {chosen!r} is registered already")
        self.retention.set(chosen, retention)
        self.registry[chosen] = fn
        return fn

    def runnable(self) -> list[str]:
        """The names of the workflows this process can run, as of now: registered in
        code, or defined at runtime with an interpreter here."""
        defined = [n for n in self.definitions.runnable() if n not in self.registry]
        return [*self.registry, *defined]

    def function_of(self, name: str) -> WorkflowFn | None:
        """What runs workflow ``name`` here: its registered function (which wins over a
        definition of the same name), or its definition's; None if neither."""
        fn = self.registry.get(name)
        return fn if fn is not None else self.definitions.function(name)

    async def known(self, name: str) -> str:
        """``name`` if this process registers it, or it is defined or announced by a
        worker in this namespace; else UnknownWorkflow."""
        if name in self.registry or await self.definitions.known(name):
            return name
        raise UnknownWorkflow(
            f"there is no workflow named {name!r}: none is registered here, defined, "
            "or announced by a worker in this namespace",
            name=name,
        )

    async def define(self, name: str, kind: str, definition: Any) -> int:
        """Define workflow ``name`` at runtime: ``definition`` (JSON) run by the
        interpreter of ``kind`` (built in: ``python``, an import path
        ``module:function``). Workers with that interpreter pick it up within about a
        second, without a restart; defining it again makes a new revision, used by
        runs from then on. The revision."""
        revision = await self.definitions.define(name, kind, definition)
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)
        return revision

    # --- the API ------------------------------------------------------------------------

    def name_of(self, workflow: str | Callable[..., Any]) -> str:
        """The registered name of a workflow function, or a name checked as one.
        A function that is not registered is UnknownWorkflow, naming it."""
        if isinstance(workflow, str) or not callable(workflow):
            return check_workflow_name(workflow)
        names = [name for name, fn in self.registry.items() if fn is workflow]
        shown_fn = _function_name(workflow)
        if not names:
            raise UnknownWorkflow(
                f"function {shown_fn!r} is not a registered workflow: decorate it with "
                "@app.workflow (or start a workflow by its registered name)",
                name=shown_fn,
            )
        if len(names) > 1:
            raise ConfigurationError(
                f"function {shown_fn!r} is registered as several workflows "
                f"({', '.join(sorted(names))}): start it by one of these names"
            )
        return names[0]

    @overload
    async def start(
        self,
        name: WorkflowFunction[In, R],
        input: In,
        *,
        id: str | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> WorkflowRun[R]: ...

    @overload
    async def start(
        self,
        name: WorkflowFunction[None, R],
        *,
        id: str | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> WorkflowRun[R]: ...

    @overload
    async def start(
        self,
        name: str,
        input: Any = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> WorkflowRun[Any]: ...

    async def start(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> WorkflowRun[Any]:
        """Start a workflow, given as its registered function or its name (with the
        function, ``input`` is checked against its input parameter and the returned
        run is typed by its output). ``id`` is its idempotency key: starting an existing
        id with the same name and input returns it without starting another; with
        another name or input it is WorkflowConflict. ``timeout`` (seconds) ends the
        workflow ``timed_out`` if it has not finished by then. ``queue``: a workflow
        queue (``app.workflow_queue``) that admits it within its limits, by ``priority``
        (higher first), under ``key`` (see workflows/flow.py). Returns the id."""
        with tracing.span(f"start workflow {self.name_of(name)}", kind="producer"):
            return await self._start(name, input, id, timeout, queue, key, priority)

    async def _start(
        self,
        name: str | Callable[..., Any],
        input: Any,
        id: str | None,
        timeout: float | None,
        queue: str | None,
        key: str | None,
        priority: int,
    ) -> WorkflowRun[Any]:
        made, plain = await self._new_start(name, input, id, timeout)
        name, chosen, deadline = made.name, made.id, made.deadline
        if queue is not None:  # flow control (workflows/flow.py)
            stored = made.input
            seal = lambda run: (  # noqa: E731
                stored if is_ref(stored)  # out of line: one blob, whatever the run's id
                else self.sealer.seal(plain, WORKFLOW, self.namespace, run, "input")
            )  # fmt: skip
            started = await self.flow.start(
                queue, id=chosen, name=name, input=input, seal=seal, deadline=deadline,
                check_same=lambda run: self._check_same(run, name, plain), key=key,
                priority=priority, version=made.version, trace=made.trace,
            )  # fmt: skip
            return WorkflowRun(started)
        created = await self._backend.workflows.create(
            self.namespace, chosen, name, made.input, None, self._clock(), deadline=deadline,
            version=made.version, trace=made.trace,
        )  # fmt: skip
        if created:
            metrics.workflow_started(self.namespace, name)
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)
        else:  # only a repeated start reads the one it repeats
            if is_ref(made.input):  # its input's blob: nothing refers to it
                await self.payloads.blobs.discard(made.input)
            await self._check_same(chosen, name, plain)
        return WorkflowRun(chosen)

    async def run_trace(self, id: str) -> str | None:
        """The trace context workflow ``id`` was started in (only looked up when traces
        are recorded)."""
        if not tracing.enabled():
            return None
        return await self._backend.workflows.trace(self.namespace, id)

    async def new_start(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
    ) -> WorkflowStart:
        """A start of workflow ``name`` for a unit of work to commit (an entity's
        ``ctx.start_workflow``): checked, its input sealed, as ``start`` makes it."""
        return (await self._new_start(name, input, id, timeout))[0]

    async def _new_start(
        self, name: str | Callable[..., Any], input: Any, id: str | None, timeout: float | None
    ) -> tuple[WorkflowStart, bytes]:
        """A checked start and its input as JSON."""
        known = await self.known(self.name_of(name))
        chosen = uuid.uuid4().hex if id is None else check_workflow_id(id)
        check_timeout(timeout)
        plain = self.payloads.encode(f"input of workflow {known!r}", input)
        data = await self.payloads.seal(plain, WORKFLOW, self.namespace, chosen, "input")
        deadline = None if timeout is None else self._clock() + float(timeout)
        start = WorkflowStart(
            chosen, known, data, deadline, self.versions.at_start(known), tracing.traceparent()
        )
        return start, plain

    async def _check_same(self, id: str, name: str, input: bytes) -> None:
        """WorkflowConflict unless workflow ``id`` was started as ``name`` with the same
        input (compared as JSON values, never shown: they may be secrets). An input this
        process cannot open is not compared (nothing can be)."""
        row = await self._backend.workflows.get(self.namespace, id)
        if row is None:  # purged in between: the start is not repeated, nor started
            raise WorkflowNotFound(f"workflow {id!r} was removed while starting it", id=id)
        if row.name != name:
            raise WorkflowConflict(
                f"workflow id {id!r} is taken by a workflow named {row.name!r}, not {name!r}",
                id=id, differs="name",
            )  # fmt: skip
        try:
            stored = await self.payloads.open(row.input, WORKFLOW, self.namespace, id, "input")
        except DecryptionError:
            log.warning(
                "a repeated start's input cannot be compared: the stored input does not "
                "open with this process's keys", extra={"workflow_id": id},
            )  # fmt: skip
            return
        if not same_json(decode_value(id, stored), decode_value(id, input)):
            raise WorkflowConflict(
                f"workflow {id!r} ({name!r}) was started before with different input",
                id=id, differs="input",
            )  # fmt: skip

    async def status(self, id: str) -> WorkflowStatus:
        return await self._status(id, typed=False)

    async def run_name(self, id: str) -> str:
        """The name of workflow ``id`` (WorkflowNotFound if there is none), its payloads
        left unread."""
        check_workflow_id(id)
        row = await self._backend.workflows.get(self.namespace, id)
        if row is None:
            raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
        return row.name

    async def _status(self, id: str, *, typed: bool) -> WorkflowStatus:
        """The workflow's status; ``typed``: its output as the type its function declares
        (when registered here), else as JSON."""
        check_workflow_id(id)
        row = await self._backend.workflows.get(self.namespace, id)
        if row is None:
            raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
        output = error = read_error = None
        try:  # an unreadable output or error is shown as such, not as a failed request
            if row.output is not None:
                fn = self.registry.get(row.name) if typed else None
                output = await self.payloads.value(
                    row.output, None if fn is None else result_type(fn),
                    f"the output of workflow {id!r}", WORKFLOW, self.namespace, id, "output",
                )  # fmt: skip
            if row.error is not None:
                text = self.sealer.open_text(row.error, WORKFLOW, self.namespace, id, "error")
                error = ErrorRecord.from_json(text)
        except StatekeeperError as problem:
            read_error = problem.message
        return WorkflowStatus(
            row.id, row.name, row.status, output, error, row.created_at, row.updated_at,
            read_error, paused=row.cancel_requested == WORKFLOW_PAUSED, version=row.version,
        )  # fmt: skip

    @overload
    async def result(
        self, id: WorkflowRun[R], *, poll: float = 0.05, timeout: float = 60.0
    ) -> R: ...

    @overload
    async def result(self, id: str, *, poll: float = 0.05, timeout: float = 60.0) -> Any: ...

    async def result(self, id: str, *, poll: float = 0.05, timeout: float = 60.0) -> Any:
        """Wait until the workflow finishes: its output (as the type the workflow declares
        it returns, when it is registered here). WorkflowFailed, carrying the recorded
        error (type, message, traceback), when it ended otherwise; WorkflowNotFinished
        after ``timeout`` seconds. Given the run ``start`` returned for a function, typed
        by that function's output."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self._status(id, typed=True)
            if status.read_error is not None:
                raise DecryptionError(status.read_error, id=id)
            if status.done:
                return self._output(status)
            if asyncio.get_running_loop().time() > deadline:
                raise WorkflowNotFinished(
                    f"workflow {id!r} is still {status.status} after {timeout:g} s", id=id
                )
            await asyncio.sleep(poll)

    def _output(self, status: WorkflowStatus) -> Any:
        if status.status != "succeeded":
            raise WorkflowFailed(
                f"workflow {status.id!r} ended {status.status}: {status.error}",
                status=status.status, error=status.error, id=status.id,
            )  # fmt: skip
        return status.output  # as its type (_status typed)

    async def send_event(self, id: str, name: str, data: Any = None) -> None:
        """Deliver event ``name`` to workflow ``id``, once (a second is DuplicateEvent);
        WorkflowFinished (409) if the workflow has finished, decided atomically with
        storing the event. The engine's own events (``child:...``, ``callback:...``) are
        InvalidEventName."""
        check_event_name(name)
        await self._deliver(id, name, data)

    async def _deliver(self, id: str, name: str, data: Any) -> None:
        """Deliver any event, the engine's own included: callback answers come here
        after their token is verified."""
        check_workflow_id(id)
        payload = self.payloads.encode(f"data of event {name!r}", data)
        payload = await self.payloads.seal(payload, EVENT, self.namespace, id, name, "data")
        await self._backend.workflows.event(self.namespace, id, name, payload, self._clock())
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def cancel(self, id: str) -> None:
        """Ask the workflow to stop: it ends ``cancelled`` at its next new step.
        WorkflowFinished (409) if it has finished already."""
        check_workflow_id(id)
        state = await self._backend.workflows.cancel(self.namespace, id, self._clock())
        if state is None:
            status = await self.status(id)  # WorkflowNotFound if there is none
            raise WorkflowFinished(
                f"workflow {id!r} has finished ({status.status}); it cannot be cancelled", id=id
            )
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def pause(self, id: str) -> None:
        """Pause a workflow that has not finished: it stops at its next durable point (a
        step in flight finishes and is journaled; no new step starts, and it neither
        finishes nor wakes from a sleep or a wait) until ``resume``. Pausing a paused
        workflow changes nothing. WorkflowFinished (409) if it has finished or is being
        cancelled."""
        check_workflow_id(id)
        if await self._backend.workflows.pause(self.namespace, id, self._clock()) is None:
            status = await self.status(id)  # WorkflowNotFound if there is none
            why = "is being cancelled" if not status.done else f"has finished ({status.status})"
            raise WorkflowFinished(f"workflow {id!r} {why}; it cannot be paused", id=id)

    async def resume(self, id: str) -> None:
        """Resume a paused workflow where it stopped (its journal replayed). Resuming a
        workflow that is not paused changes nothing (WorkflowNotFound if there is none)."""
        check_workflow_id(id)
        if await self._backend.workflows.resume(self.namespace, id, self._clock()) is None:
            await self.status(id)  # WorkflowNotFound if there is none
            return
        await self.flow.admit_run(id)  # a queued run: admission passed it over while paused
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def retry(self, id: str) -> None:
        """Run a failed or timed-out workflow again from its failed (or interrupted)
        step, done steps kept; a timed-out one runs without a timeout."""
        check_workflow_id(id)
        if not await self._backend.workflows.retry(self.namespace, id, self._clock()):
            status = await self.status(id)
            raise WorkflowFinished(
                f"workflow {id!r} is {status.status}; only a failed or timed-out workflow "
                "can be retried",
                id=id,
            )
        await self.flow.admit_run(id)  # a queued run waits for its queue again
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def rewind(self, id: str, position: int) -> None:
        """Run a failed or timed-out workflow again from journal ``position``: the steps
        before it are kept (a replay returns them), those from it on run again. For an
        interpreter that knows where its work failed (a state machine's redrive)."""
        check_workflow_id(id)
        if not await self._backend.workflows.rewind(self.namespace, id, position, self._clock()):
            status = await self.status(id)
            raise WorkflowFinished(
                f"workflow {id!r} is {status.status}; only a failed or timed-out workflow "
                "can run again",
                id=id,
            )
        await self.flow.admit_run(id)  # a queued run waits for its queue again
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def purge(self, id: str) -> None:
        """Delete a finished workflow: its row, journal and events (its children, which
        have ids of their own, are kept), and the blobs only it referred to.
        WorkflowNotFound if there is none; WorkflowNotFinished (409) while it runs:
        cancel it first."""
        check_workflow_id(id)
        if not await self._backend.workflows.purge(self.namespace, id):
            status = await self.status(id)  # WorkflowNotFound if there is none
            raise WorkflowNotFinished(
                f"workflow {id!r} is {status.status}; only a finished workflow can be purged",
                id=id,
            )
        await self.payloads.blobs.sweep()  # what it released goes now, not at the upkeep

    async def input(self, id: str) -> Any:
        """The input workflow ``id`` was started with."""
        check_workflow_id(id)
        row = await self._backend.workflows.get(self.namespace, id)
        if row is None:
            raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
        return await self.payloads.value(
            row.input, None, f"the input of workflow {id!r}", WORKFLOW, self.namespace, id, "input"
        )

    async def list(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        before: tuple[float, str] = (float("inf"), ""),
        attributes: Mapping[str, Any] | None = None,
        created_after: Any = None,
        created_before: Any = None,
    ) -> list[dict[str, Any]]:
        """Workflows newest first, filtered by status and name, searchable ``attributes``
        and creation time (docs/workflow-search.md); the next page is those ``before``
        the last one's ``(created_at, id)``."""
        if attributes is not None or created_after is not None or created_before is not None:
            found = Query(status, name, attributes, created_after, created_before)
            return await self.search.list(found, limit=limit, before=before)
        if status is not None and status not in STATUSES:
            raise InvalidFilter(
                f"invalid status filter {shown(status)}: a status is one of {', '.join(STATUSES)}"
            )
        if name is not None:
            try:
                check_workflow_name(name)
            except InvalidWorkflowName as error:
                raise InvalidFilter(f"invalid name filter: {error.message}") from None
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        rows = await self._backend.workflows.list(
            self.namespace, status=status, name=name, before=before, limit=limit
        )
        keys = ("id", "name", "status", "created_at", "updated_at", "version")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def counts(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        created_after: Any = None,
        created_before: Any = None,
    ) -> dict[str, Any]:
        """How many workflows match the filters (those of ``list``): ``total``,
        ``by_status`` and ``by_name``."""
        found = Query(status, name, attributes, created_after, created_before)
        return await self.search.counts(found)

    async def attributes(self, id: str) -> dict[str, Any]:
        """The searchable attributes workflow ``id`` set (``ctx.set_attributes``)."""
        await self.status(id)  # WorkflowNotFound if there is none
        return await self.search.attributes(id)

    async def bulk(
        self,
        operation: str,
        *,
        status: str | None = None,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        created_after: Any = None,
        created_before: Any = None,
        dry_run: bool = False,
        batch: int = DEFAULT_BATCH,
        all_workflows: bool = False,
    ) -> BulkResult:
        """Cancel, pause, resume or retry every workflow the filters (those of ``list``)
        select, in batches; ``dry_run``: count them and show a sample, changing nothing.
        No filter at all is refused unless ``all_workflows``."""
        found = Query(status, name, attributes, created_after, created_before)
        return await self._bulk.run(
            operation, found, dry_run=dry_run, batch=batch, all_workflows=all_workflows
        )

    async def history(
        self, id: str, *, after: int = 0, limit: int | None = None, expand: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """The journal's entries (after position ``after``, at most ``limit``): kind,
        name, input, output, error, attempts, timings (an entry that cannot be read has
        ``read_error``). A payload stored out of line is None, its field listed in
        ``out_of_line``, unless ``expand`` (then it is read)."""
        await self.run_name(id)  # WorkflowNotFound if there is none
        return await self.entries(id, after=after, limit=limit, expand=expand)

    async def entries(
        self, id: str, *, after: int = 0, limit: int | None = None, expand: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """``history`` of a workflow known to exist (a live stream, which has read its
        status already): no status read first; none if there is no such workflow."""
        entries = await self._backend.workflows.history(
            self.namespace, id, after=after, limit=limit
        )
        return [
            await history.shown(self.payloads, self.namespace, id, e, expand=expand)
            for e in entries
        ]

    async def runs(self, id: str) -> int:
        """How many times workflow ``id`` continued as new (its journal starts over at
        each); 0 in its first run."""
        return await self._backend.workflows.runs(self.namespace, id)

    async def answer_callback_message(self, message: Message) -> str:
        """Deliver a callback's answer that came as a message ``{"token": ...,
        "status": ..., "data"/"error": ...}`` (the consumer of the queue
        ``statekeeper.workflow-callbacks``); a repeated answer is done already."""
        return await answers.answer_message(self, message)

    async def answer_callback(self, token: str, answer: dict[str, Any]) -> str:
        """Deliver an outside system's answer to the workflow waiting on ``token``:
        ``{"status": "success", "data": ...}``, ``{"status": "failure", "error": ...}``
        or ``{"status": "heartbeat"}`` (accepted, changes nothing). Exactly once:
        a second answer is DuplicateEvent; any answer, a heartbeat too, to a workflow
        that has finished is WorkflowFinished (workflows/answers.py)."""
        return await answers.answer(self, token, answer)

    # --- versions and forks (workflows/operations.py) --------------------------------------

    def wake(self) -> None:
        """Wake this namespace's workflow runners (a run became due)."""
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def move_version(
        self,
        from_version: str | None,
        to_version: str,
        *,
        name: str | None = None,
        id: str | None = None,
    ) -> int:
        """Give the unfinished runs of application version ``from_version`` (of workflow
        ``name`` only, if given) version ``to_version``, so that workers of that version
        run them; with ``id``, that one run (from any version if ``from_version`` is
        None). How many moved."""
        return await operations.move_version(self, from_version, to_version, name=name, id=id)

    async def fork(
        self, id: str, from_position: int, new_id: str | None = None
    ) -> WorkflowRun[Any]:
        """Start a new run (id ``new_id``, else a new one) of workflow ``id``'s name and
        input whose journal is a copy of ``id``'s entries before ``from_position``: it
        replays them and executes from that position on. The new id."""
        return await operations.fork(self, id, from_position, new_id)

    # --- messages to running workflows (workflows/messaging.py) -------------------------

    async def send_message(self, id: str, topic: str, data: Any = None) -> int:
        """Put ``data`` in workflow ``id``'s mailbox on ``topic``, for its
        ``ctx.receive(topic)``: messages on a topic are received in the order they were
        sent, each once. Its number on the topic. WorkflowNotFound; WorkflowFinished
        (409) if the workflow has finished."""
        return await Messaging(self).send(id, topic, data)

    async def update(self, id: str, name: str, data: Any = None, *, timeout: float = 60.0) -> Any:
        """Run workflow ``id``'s handler of update ``name`` (``ctx.on_update``) with
        ``data``, inside the workflow and durably, and return its result. UpdateRejected
        (carrying the handler's error) if the handler raised; UnknownUpdate if it has no
        handler of that name; UpdateNotApplied if it finished first; UpdateNotFinished
        after ``timeout`` seconds (the update stays asked)."""
        return await Messaging(self).update(id, name, data, timeout=timeout)

    async def read_stream(self, id: str, key: str, *, offset: int = 0) -> AsyncIterator[Any]:
        """The values workflow ``id`` wrote to its durable stream ``key``
        (``ctx.write_stream``), from ``offset`` (0: the first), in order, each once;
        waits for more while the workflow runs, and ends at the stream's close or once
        the workflow has ended and every value is read. WorkflowNotFound if no such
        workflow."""
        async for entry in self.streams.entries(id, key, offset):
            yield entry.value

    async def get(self, id: str, key: str) -> Any:
        """The value workflow ``id`` last published under ``key`` (``ctx.publish``),
        without waiting for it. ValueNotPublished if it published none there."""
        return await Messaging(self).get(id, key)

    async def values(self, id: str, *, after: str = "", limit: int = 100) -> dict[str, Any]:
        """The values workflow ``id`` published, by key in key order (a page: up to
        ``limit`` keys after ``after``)."""
        return await Messaging(self).values(id, after=after, limit=limit)


def same_json(a: Any, b: Any) -> bool:
    """Whether two decoded JSON values are the same value: numbers by value (1 is 1.0),
    but true is not 1; objects whatever their key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _function_name(fn: Callable[..., Any]) -> str:
    """``module.qualified.name`` of a function; the repr of any other callable."""
    name = getattr(fn, "__qualname__", None)
    if not isinstance(name, str):
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) else name
