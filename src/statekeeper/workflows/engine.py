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
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from statekeeper.codec import decode_as, decode_value, parameter_type, result_type
from statekeeper.constants import child_event
from statekeeper.errors import (
    CallbacksDisabled,
    ConfigurationError,
    DecryptionError,
    ErrorRecord,
    InvalidFilter,
    InvalidWorkflowName,
    StatekeeperError,
    UnknownWorkflow,
    ValidationError,
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
from statekeeper.queues.wakeups import POLL_INTERVAL, Wakeups
from statekeeper.sealing import EVENT, PLAIN, STEP, WORKFLOW, Sealer
from statekeeper.storage.rows import HistoryEntry, LeasedWorkflow
from statekeeper.workflows.context import WorkflowContext, encode
from statekeeper.workflows.signals import (
    Cancelled,
    Compensated,
    StepFailed,
    Superseded,
    Suspend,
    Unreadable,
)
from statekeeper.workflows.signatures import AnyWorkflow, In, R, WorkflowFunction, WorkflowRun
from statekeeper.workflows.tokens import InvalidToken
from statekeeper.workflows.tokens import verify as verify_token

if TYPE_CHECKING:
    from statekeeper.state.store import StateStore
    from statekeeper.storage.contracts import Storage

log = logging.getLogger("statekeeper.workflows")

WorkflowFn = Callable[[WorkflowContext, Any], Coroutine[Any, Any, Any]]
WAKEUP_CHANNEL = "statekeeper.workflows"  # the wake-up "queue" name of workflow runners
ACTIVE = ("pending", "running", "sleeping", "waiting")
UNREADABLE_RETRY = 30.0  # seconds before a workflow this process cannot read is tried again
STATUSES = (*ACTIVE, "succeeded", "failed", "cancelled", "compensated")


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
    ) -> None:
        self._backend_of = backend
        self._state_of = state  # for transactional steps (ctx.transaction)
        self.namespace = namespace
        self._clock = clock
        self._wakeups = wakeups
        self.lease = lease
        self.sealer = sealer
        self.registry: dict[str, WorkflowFn] = {}
        self.secret: str | None = None  # signs callback tokens (STATEKEEPER_CALLBACK_SECRET)

    @property
    def _backend(self) -> Storage:
        return self._backend_of()

    def register(self, fn: AnyWorkflow, name: str | None = None) -> AnyWorkflow:
        chosen = name or fn.__name__
        try:
            check_workflow_name(chosen)
        except InvalidWorkflowName as error:
            raise ConfigurationError(error.message) from None
        if not asyncio.iscoroutinefunction(fn):
            raise ConfigurationError(f"workflow {chosen!r} must be an async function")
        if chosen in self.registry and self.registry[chosen] is not fn:
            raise ConfigurationError(f"a workflow named {chosen!r} is registered already")
        self.registry[chosen] = fn
        return fn

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
        self, name: WorkflowFunction[In, R], input: In, *, id: str | None = None
    ) -> WorkflowRun[R]: ...

    @overload
    async def start(
        self, name: WorkflowFunction[None, R], *, id: str | None = None
    ) -> WorkflowRun[R]: ...

    @overload
    async def start(
        self, name: str, input: Any = None, *, id: str | None = None
    ) -> WorkflowRun[Any]: ...

    async def start(
        self, name: str | Callable[..., Any], input: Any = None, *, id: str | None = None
    ) -> WorkflowRun[Any]:
        """Start a workflow, given as its registered function or its name (with the
        function, ``input`` is checked against its input parameter and the returned
        run is typed by its output); ``id`` is its idempotency key: starting an
        existing id returns it without starting another. Returns the id."""
        name = self.name_of(name)
        if name not in self.registry:
            raise UnknownWorkflow(f"there is no workflow named {name!r}", name=name)
        chosen = uuid.uuid4().hex if id is None else check_workflow_id(id)
        data = encode(f"input of workflow {name!r}", input)
        data = self.sealer.seal(data, WORKFLOW, self.namespace, chosen, "input")
        created = await self._backend.workflows.create(
            self.namespace, chosen, name, data, None, self._clock()
        )
        if created:
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)
        return WorkflowRun(chosen)

    async def status(self, id: str) -> WorkflowStatus:
        check_workflow_id(id)
        row = await self._backend.workflows.get(self.namespace, id)
        if row is None:
            raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
        output = error = read_error = None
        try:  # an unreadable output or error is shown as such, not as a failed request
            if row.output is not None:
                stored = self.sealer.open(row.output, WORKFLOW, self.namespace, id, "output")
                output = decode_value(id, stored)
            if row.error is not None:
                text = self.sealer.open_text(row.error, WORKFLOW, self.namespace, id, "error")
                error = ErrorRecord.from_json(text)
        except StatekeeperError as problem:
            read_error = problem.message
        return WorkflowStatus(
            row.id, row.name, row.status, output, error, row.created_at, row.updated_at,
            read_error,
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
            status = await self.status(id)
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
        fn = self.registry.get(status.name)
        hint = None if fn is None else result_type(fn)
        if hint is None:
            return status.output
        data = encode(f"output of workflow {status.id!r}", status.output)
        return decode_as(data, hint, f"the output of workflow {status.id!r}")

    async def send_event(self, id: str, name: str, data: Any = None) -> None:
        """Deliver event ``name`` to workflow ``id``, once (a second is DuplicateEvent).
        The engine's own events (``child:...``, ``callback:...``) are InvalidEventName."""
        check_event_name(name)
        await self._deliver(id, name, data)

    async def _deliver(self, id: str, name: str, data: Any) -> None:
        """Deliver any event, the engine's own included: callback answers come here
        after their token is verified."""
        check_workflow_id(id)
        payload = encode(f"data of event {name!r}", data)
        payload = self.sealer.seal(payload, EVENT, self.namespace, id, name, "data")
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

    async def retry(self, id: str) -> None:
        """Run a failed workflow again from its failed step (done steps are kept)."""
        check_workflow_id(id)
        if not await self._backend.workflows.retry(self.namespace, id, self._clock()):
            status = await self.status(id)
            raise WorkflowFinished(
                f"workflow {id!r} is {status.status}; only a failed workflow can be retried",
                id=id,
            )
        self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    async def list(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        before: tuple[float, str] = (float("inf"), ""),
    ) -> list[dict[str, Any]]:
        """Workflows newest first, filtered by status and name; the next page is those
        ``before`` the last one's ``(created_at, id)``."""
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
        keys = ("id", "name", "status", "created_at", "updated_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def history(self, id: str) -> builtins.list[dict[str, Any]]:
        """Every journal entry: kind, name, input, output, error, attempts, timings (an
        entry that cannot be read has ``read_error``)."""
        await self.status(id)  # WorkflowNotFound if there is none
        entries = await self._backend.workflows.history(self.namespace, id)
        return [self._entry(id, e) for e in entries]

    def _entry(self, id: str, e: HistoryEntry) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "position": e.position, "kind": e.kind, "name": e.name, "input": None,
            "output": None, "error": None, "attempts": e.attempts, "started_at": e.started_at,
            "finished_at": e.finished_at,
        }  # fmt: skip
        where = (STEP, self.namespace, id, str(e.position))
        try:
            for field, stored in (("input", e.input), ("output", e.output)):
                if stored is not None:
                    entry[field] = decode_value(e.name, self.sealer.open(stored, *where, field))
            if e.error is not None:
                text = self.sealer.open_text(e.error, *where, "error")
                entry["error"] = ErrorRecord.from_json(text).to_dict()
        except StatekeeperError as problem:
            entry["read_error"] = problem.message
        return entry

    async def answer_callback(self, token: str, answer: dict[str, Any]) -> str:
        """Deliver an outside system's answer to the workflow waiting on ``token``:
        ``{"status": "success", "data": ...}``, ``{"status": "failure", "error": ...}``
        or ``{"status": "heartbeat"}`` (accepted, changes nothing). Exactly once:
        a second answer is DuplicateEvent."""
        if self.secret is None:
            raise CallbacksDisabled()
        target = verify_token(self.secret, token, self._clock())
        status = answer.get("status")
        if status not in ("success", "failure", "heartbeat"):
            raise ValidationError("status must be 'success', 'failure' or 'heartbeat'")
        if target.namespace != self.namespace:
            raise InvalidToken()
        if status == "heartbeat":
            await self.status(target.workflow_id)
            return "heartbeat"
        await self._deliver(target.workflow_id, target.event, answer)
        return str(status)


def _failure(error: Exception) -> ErrorRecord:
    """What a workflow that raised ``error`` records: a step's failure it did not catch
    keeps the step's error type and traceback, so the workflow fails as its step did."""
    if isinstance(error, StepFailed):
        step = error.error
        return ErrorRecord.made(
            step.type, f"step {error.step!r} failed: {step.message}", step.traceback
        )
    return ErrorRecord.of(error)


def _function_name(fn: Callable[..., Any]) -> str:
    """``module.qualified.name`` of a function; the repr of any other callable."""
    name = getattr(fn, "__qualname__", None)
    if not isinstance(name, str):
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) else name


class WorkflowRunner:
    """Leases runnable workflows and runs them, ``concurrency`` at a time."""

    def __init__(self, workflows: Workflows, *, concurrency: int = 32, poll: float = 1.0) -> None:
        self.workflows = workflows
        self.concurrency = concurrency
        self.poll = min(poll, POLL_INTERVAL)
        self.owner = secrets.token_hex(8)
        self.completed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        in_hand: set[asyncio.Task[None]] = set()
        stop = asyncio.create_task(stopping.wait())
        names = list(self.workflows.registry)
        try:
            while not stopping.is_set():
                free = self.concurrency - len(in_hand)
                if free <= 0:
                    await asyncio.wait([*in_hand, stop], return_when=asyncio.FIRST_COMPLETED)
                    continue
                woken = self.workflows._wakeups.event(self.workflows.namespace, WAKEUP_CHANNEL)
                looked_at = self.workflows._clock()
                leased = await self._lease(names, free)
                for workflow in leased:
                    task = asyncio.create_task(self.execute(workflow))
                    in_hand.add(task)
                    task.add_done_callback(in_hand.discard)
                if not leased:
                    await self._idle(woken, stop, looked_at)
        finally:
            stop.cancel()
            if in_hand:
                await asyncio.wait(in_hand, timeout=5.0)
                for task in in_hand:
                    task.cancel()  # their leases lapse; another runner resumes them

    async def _lease(self, names: list[str], count: int) -> list[LeasedWorkflow]:
        flows = self.workflows
        now = flows._clock()
        try:
            return await flows._backend.workflows.lease(
                flows.namespace, names, owner=self.owner, lease_end=now + flows.lease,
                limit=min(count, 16), now=now,
            )  # fmt: skip
        except StatekeeperError as error:
            log.warning("leasing workflows failed", exc_info=error, extra={"error": error.message})
            return []

    async def _idle(self, woken: asyncio.Event, stop: asyncio.Task[bool], looked_at: float) -> None:
        """Wait for a wake-up, the next due time, or the poll interval. A due time that
        had passed when the lease looked is a workflow another lease still holds (its
        lease ends later than its wake-up time says, or it is being cancelled): that waits
        for the poll, rather than asking again at once and again."""
        flows = self.workflows
        wait = self.poll
        with contextlib.suppress(StatekeeperError):
            due = await flows._backend.workflows.next_due(flows.namespace)
            if due is not None and due > looked_at:
                wait = min(wait, max(0.0, due - flows._clock()) + 0.001)
        waiter = asyncio.create_task(woken.wait())
        await asyncio.wait([waiter, stop], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def execute(self, leased: LeasedWorkflow) -> None:
        flows = self.workflows
        backend = flows._backend
        fn = flows.registry[leased.name]
        journal = await backend.workflows.journal(flows.namespace, leased.id)
        ctx = WorkflowContext(
            backend, flows.namespace, leased.id, leased.fence, journal,
            clock=flows._clock, lease=flows.lease, cancel_requested=bool(leased.cancel_requested),
            sealer=flows.sealer, state=flows._state_of,
        )  # fmt: skip
        ctx.on_child_started = lambda: flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)
        ctx.secret = flows.secret
        ctx.workflow_name = flows.name_of
        try:
            stored = flows.sealer.open(leased.input, WORKFLOW, flows.namespace, leased.id, "input")
            workflow_input = decode_as(
                stored, parameter_type(fn, 1), f"the input of workflow {leased.id!r}"
            )
        except DecryptionError as error:  # a key this process lacks: later, not failed
            await self._defer(leased, error.message)
            return
        except StatekeeperError as error:  # fails alone, and for good: it cannot change
            log.warning(
                "workflow failed: its input cannot be read", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._finish(leased, "failed", None, ErrorRecord.of(error, name="InvalidInput"))
            return
        run = asyncio.create_task(fn(ctx, workflow_input))
        keeper = asyncio.create_task(self._keep_lease(leased, run))
        try:
            output = await run
        except Suspend as suspend:
            await backend.workflows.suspend(
                flows.namespace, leased.id, leased.fence, status=suspend.status,
                wake_at=suspend.wake_at, waiting_for=suspend.waiting_for, now=flows._clock(),
            )  # fmt: skip
            return
        except Cancelled:
            cancelled = ErrorRecord.made("Cancelled", "cancelled on request")
            await self._finish(leased, "cancelled", None, cancelled)
            return
        except Compensated as compensated:
            await self._finish(leased, "compensated", None, compensated.error)
            return
        except (Superseded, asyncio.CancelledError):
            log.info("workflow run abandoned: its lease moved on", extra={"workflow_id": leased.id})
            return
        except Unreadable as unreadable:
            await self._defer(leased, unreadable.message)
            return
        except Exception as error:
            log.warning(
                "workflow failed", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._finish(leased, "failed", None, _failure(error))
            return
        finally:
            keeper.cancel()
        try:
            data = encode(f"result of workflow {leased.name!r}", output)
        except StatekeeperError as error:
            log.warning(
                "workflow failed: its result cannot be stored", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._finish(
                leased, "failed", None, ErrorRecord.of(error, name="ResultNotStored")
            )
            return
        await self._finish(leased, "succeeded", data, None)

    async def _defer(self, leased: LeasedWorkflow, why: str) -> None:
        """Give a workflow whose recorded values this process cannot open back, due again
        in UNREADABLE_RETRY seconds: a process with the right keyring (or this one, fixed)
        runs it then. Nothing of it is failed or compensated meanwhile."""
        flows = self.workflows
        log.error(
            "workflow cannot be read with this process's keys; trying again later",
            extra={"workflow_id": leased.id, "error": why, "retry_in": UNREADABLE_RETRY},
        )
        await flows._backend.workflows.suspend(
            flows.namespace, leased.id, leased.fence, status="pending",
            wake_at=flows._clock() + UNREADABLE_RETRY, waiting_for=None, now=flows._clock(),
        )  # fmt: skip

    async def _finish(
        self, leased: LeasedWorkflow, status: str, output: bytes | None, error: ErrorRecord | None
    ) -> None:
        """End the workflow; a child's outcome is delivered to its parent as event
        ``child:<id>`` in the same transaction."""
        flows = self.workflows
        seal, ns, id = flows.sealer, flows.namespace, leased.id
        text = None if error is None else seal.seal_text(error.to_json(), WORKFLOW, ns, id, "error")
        parent_event = None
        if leased.parent_id is not None:
            outcome = {"status": status, "error": error and error.to_dict(traceback=False)}
            data = json.dumps({**outcome, "output": json.loads(output) if output else None})
            parent_event = seal.seal(
                data.encode(), EVENT, ns, leased.parent_id, child_event(id), "data"
            )
        finished = await flows._backend.workflows.finish(
            ns, id, leased.fence, status=status,
            output=None if output is None else seal.seal(output, WORKFLOW, ns, id, "output"),
            error=text,
            parent_id=leased.parent_id, parent_event=parent_event, now=flows._clock(),
        )  # fmt: skip
        if finished:
            self.completed += 1
            log.info("workflow finished", extra={"workflow_id": leased.id, "status": status})
            if leased.parent_id is not None:
                flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)

    async def _keep_lease(self, leased: LeasedWorkflow, run: asyncio.Task[Any]) -> None:
        flows = self.workflows
        while True:
            await asyncio.sleep(flows.lease / 3)
            now = flows._clock()
            try:
                kept = await flows._backend.workflows.renew(
                    flows.namespace, leased.id, leased.fence, now + flows.lease, now
                )
            except StatekeeperError:
                continue
            if kept is None:
                run.cancel()  # another runner owns it now
                return
