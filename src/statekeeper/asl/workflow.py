"""State machines as durable workflows: the ``asl`` kind of runtime-defined workflow.

``app.workflows.define(name, "asl", definition)`` stores a state machine; starting
workflow ``name`` runs an execution of it on any worker, durably:

- the definition is pinned in the execution's journal when it starts, so redefining
  the machine never changes a running execution;
- every transition of the interpreter (a state entered and left, a task attempt, a
  Map iteration started) is one journaled step holding its value and its history
  events, so a killed worker's execution resumes at the state where it stopped,
  and a task that finished is never run again;
- Wait states and retry intervals are durable timers.

Map iterations and Parallel branches run one after the other here (MaxConcurrency
bounds them from above; in memory they run at the same time).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from statekeeper.asl import validation
from statekeeper.asl.arns import Arns
from statekeeper.asl.failure import HEARTBEAT_TIMEOUT, RUNTIME, TIMEOUT, StatesError, fault
from statekeeper.asl.history import History
from statekeeper.asl.interpreter import TIMED_OUT_CAUSE, Execution, Machine
from statekeeper.asl.tasks import TaskCall
from statekeeper.constants import WORKFLOW_ACTIVE
from statekeeper.errors import ErrorRecord
from statekeeper.queues.policy import Retry
from statekeeper.workflows.callback import Callback
from statekeeper.workflows.definitions import Interpreter, WorkflowFn
from statekeeper.workflows.signals import OUTAGES, CallbackFailed, EventTimeout, StepFailed

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext
    from statekeeper.workflows.engine import Workflows, WorkflowStatus

KIND = "asl"
log = logging.getLogger("statekeeper.asl")
_ONCE = Retry(max_attempts=1)
Invoke = Callable[[TaskCall], Awaitable[Any]]
# The definition (JSON text) of a machine's revision: (namespace, machine, revision).
Revisions = Callable[[str, str, str], Awaitable[str | None]]
PINNED = "statekeeper:asl-revision"  # the key of an input pinned to a revision


class ExecutionFailed(Exception):
    """A state machine execution that failed: its States error and cause, recorded as
    the workflow's error type and message."""

    def __init__(self, error: str | None, cause: str | None) -> None:
        super().__init__(f"{error}: {cause}" if cause else str(error))
        self.error = error
        self.cause = cause

    @property
    def error_record(self) -> ErrorRecord:
        return ErrorRecord.made(self.error or "", self.cause or "")


class WorkflowHost:
    """Runs an execution's transitions as steps of a workflow's journal."""

    concurrent = False

    def __init__(self, ctx: WorkflowContext, invoke: Invoke | None) -> None:
        self._ctx = ctx
        self._invoke = invoke
        self._callbacks: dict[str, Callback] = {}
        self.history: History | None = None

    def now(self) -> float:
        return self._ctx.clock()

    async def transition(self, label: str, work: Callable[[], Awaitable[Any]]) -> Any:
        events = self.history.events if self.history is not None else []
        start = len(events)

        async def record() -> dict[str, Any]:
            try:
                value = await work()
            except StatesError as error:
                return {
                    "events": _bounded(events[start:]),
                    "error": error.error,
                    "cause": error.cause,
                }
            except OUTAGES:  # the database's, not the machine's: the run is given back
                raise
            except Exception as error:  # a fault of the interpreter: the execution fails
                if not isinstance(error, RecursionError):
                    log.exception("a state machine transition failed", extra={"state": label})
                failed = fault(error)
                return {
                    "events": _bounded(events[start:]),
                    "error": failed.error,
                    "cause": failed.cause,
                }
            return {"events": _bounded(events[start:]), "value": value}

        record.__statekeeper_name__ = f"asl:{label}"  # type: ignore[attr-defined]
        try:
            outcome = await self._ctx.step(record, retry=_ONCE)
        except StepFailed as failed:  # its value cannot be journaled (nested too deep)
            raise StatesError(
                RUNTIME, f"The state's result cannot be kept: {failed.error.message}"
            ) from None
        if len(events) == start and outcome["events"] and self.history is not None:
            self.history.extend(outcome["events"])  # a replay: the events recorded then
        if "error" in outcome:
            raise StatesError(outcome["error"], outcome["cause"])
        return outcome.get("value")

    async def sleep_until(self, when: float) -> None:
        await self._ctx.sleep_until(when)

    async def invoke(self, call: TaskCall) -> Any:
        if self._invoke is None:
            raise StatesError(RUNTIME, f"no task resource is available here: {call.resource}")
        return await self._invoke(call)

    async def issue_token(self, timeout: float | None) -> str:
        callback = await self._ctx.callback(timeout)
        self._callbacks[callback.token] = callback
        return callback.token

    async def token_result(self, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        callback = self._callbacks.pop(token)
        try:
            if heartbeat is None:
                return await callback.result()
            return await self._beating(callback, timeout, heartbeat)
        except CallbackFailed as failed:
            raise StatesError(failed.error.type, failed.error.message or None) from None
        except EventTimeout:
            raise StatesError(TIMEOUT, "The task token was not answered in time") from None

    async def _beating(self, callback: Callback, timeout: float | None, heartbeat: float) -> Any:
        """The answer, while heartbeats come at most ``heartbeat`` s apart (counted from
        the start of the wait); States.HeartbeatTimeout when one is late."""
        since = await self._ctx.now()
        end = None if timeout is None else since + timeout
        while True:
            now = await self._ctx.now()
            if end is not None and now >= end:
                raise EventTimeout("the task token was not answered in time")
            wait = since + heartbeat - now
            if wait <= 0:  # no heartbeat since ``since`` is late, unless one came since
                beat = await callback.last_heartbeat()
                if beat is None or beat <= since or beat + heartbeat <= now:
                    raise StatesError(
                        HEARTBEAT_TIMEOUT, f"No heartbeat came within {heartbeat:g} seconds"
                    )
                since = beat
                continue
            with contextlib.suppress(EventTimeout):  # then look for a heartbeat
                return await callback.result_within(wait if end is None else min(wait, end - now))


HISTORY_BUDGET = 256 * 1024  # characters of payloads the events of one step keep whole
HISTORY_CUT = 16 * 1024  # characters each payload keeps beyond that budget
_PAYLOADS = ("input", "output", "parameters")


def _bounded(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events a transition journals. A step holds at most 1 MiB, and one transition
    may write a state's input, parameters, result and output (256 KiB each at most):
    past HISTORY_BUDGET in all, each payload keeps its first HISTORY_CUT characters and
    says it was truncated (``inputDetails: {"truncated": true}``). The execution's data
    is never cut: only what its history shows of it."""
    total = sum(
        len(details.get(field) or "")
        for event in events
        for key, details in event.items()
        if key.endswith("EventDetails") and isinstance(details, dict)
        for field in _PAYLOADS
    )
    if total <= HISTORY_BUDGET:
        return events
    cut: list[dict[str, Any]] = []
    for event in events:
        shown = dict(event)
        for key, details in event.items():
            if not (key.endswith("EventDetails") and isinstance(details, dict)):
                continue
            kept = dict(details)
            for field in _PAYLOADS:
                text = kept.get(field)
                if isinstance(text, str) and len(text) > HISTORY_CUT:
                    kept[field] = text[:HISTORY_CUT]
                    kept[f"{field}Details"] = {"truncated": True}
            shown[key] = kept
        cut.append(shown)
    return cut


def _check(definition: Any) -> None:
    validation.check(definition)


def _names(arns: Arns, workflow: str, id: str) -> Machine:
    """The names an execution of workflow ``workflow`` (a machine, or ``machine:N`` for
    its version N) with id ``id`` (``machine:name`` when started by the Step Functions
    API) shows in its context object."""
    machine = workflow.split(":", 1)[0]
    name = id[len(machine) + 1 :] if id.startswith(machine + ":") else id
    return Machine(machine, arns.machine(machine), name, arns.execution(machine, name))


def pinned_input(input: Any, revision: str) -> dict[str, Any]:
    """The workflow input of an execution that runs revision ``revision`` of its
    machine, whatever the machine's definition is when a worker first runs it."""
    return {PINNED: {"revision": revision, "input": input}}


def unpinned(input: Any) -> tuple[Any, str | None]:
    """An execution's input, and the revision it was started on (None: the current)."""
    if isinstance(input, dict) and len(input) == 1 and isinstance(input.get(PINNED), dict):
        inner = input[PINNED]
        return inner.get("input"), str(inner.get("revision"))
    return input, None


def build(
    invoke: Invoke | None = None, revisions: Revisions | None = None
) -> Callable[[str, Any], WorkflowFn]:
    """The ``build`` of the interpreter: workflow ``name`` runs ``definition``, or the
    revision its input names (``revisions(namespace, machine, revision)`` reads it)."""
    arns = Arns()

    def make(name: str, definition: Any) -> WorkflowFn:
        async def execute(ctx: WorkflowContext, given: Any) -> Any:
            input, revision = unpinned(given)

            async def pin() -> dict[str, Any]:
                """The definition this execution runs, and when it started."""
                text = None
                if revision is not None and revisions is not None:
                    text = await revisions(ctx.namespace, name, revision)
                if text is None:
                    text = json.dumps(definition, separators=(",", ":"))
                return {"definition": text, "started": ctx.clock()}

            pin.__statekeeper_name__ = "asl:definition"  # type: ignore[attr-defined]
            pinned_run = await ctx.step(pin, retry=_ONCE)
            pinned = json.loads(pinned_run["definition"])
            started = float(pinned_run["started"])
            host = WorkflowHost(ctx, invoke)
            machine = _names(arns, name, ctx.workflow_id)
            execution = Execution(pinned, input, host, machine, started=started)
            host.history = execution.history
            outcome = await execution.run()
            if outcome.status != "SUCCEEDED":
                raise ExecutionFailed(outcome.error, outcome.cause)
            return outcome.output

        return execute

    return make


def interpreter(invoke: Invoke | None = None, revisions: Revisions | None = None) -> Interpreter:
    """The ``asl`` interpreter, its tasks run by ``invoke``."""
    return Interpreter(check=_check, build=build(invoke, revisions))


async def execution_events(workflows: Workflows, id: str) -> list[dict[str, Any]]:
    """The history events of execution ``id`` so far, from its journal."""
    events: list[dict[str, Any]] = []
    for entry in await workflows.history(id, expand=True):
        output = entry.get("output")
        if str(entry.get("name", "")).startswith("asl:") and isinstance(output, dict):
            events.extend(output.get("events") or [])
    return events


def outcome_of(status: WorkflowStatus) -> dict[str, Any]:
    """A finished (or running) execution as Step Functions reports its status:
    ``{"status": "SUCCEEDED", "output": ...}`` or ``{"status", "error", "cause"}``."""
    if status.status == "succeeded":
        return {"status": "SUCCEEDED", "output": status.output}
    if status.status in WORKFLOW_ACTIVE:
        return {"status": "RUNNING"}
    error = status.error
    name = error.type if error is not None else None
    cause = error.message if error is not None else None
    shown = status_of(status.status, name, cause)
    return {"status": shown, "error": name or None, "cause": cause or None}


_STATUSES = {"succeeded": "SUCCEEDED", "failed": "FAILED", "cancelled": "ABORTED",
             "compensated": "FAILED", "timed_out": "TIMED_OUT"}  # fmt: skip


def status_of(workflow_status: str, error: str | None = None, cause: str | None = None) -> str:
    """The Step Functions status of an execution whose workflow is ``workflow_status``
    (a failed one's error and cause tell a machine's own timeout from a failure)."""
    if workflow_status in WORKFLOW_ACTIVE:
        return "RUNNING"
    if (error, cause) == (TIMEOUT, TIMED_OUT_CAUSE):
        return "TIMED_OUT"
    return _STATUSES.get(workflow_status, workflow_status.upper())
