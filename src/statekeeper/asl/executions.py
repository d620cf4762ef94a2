"""Executions as the Step Functions API knows them: start (durably, or synchronously
in memory), describe, list, stop, read the history, answer task tokens, redrive.

Execution ``E`` of machine ``M`` is workflow ``M:E`` running workflow ``M`` (or
``M:<version>``): its status, input and output are the workflow's, its history the
events its journal holds. The execution's name is its idempotency key, as on AWS:
starting a running execution again with the same input returns it; with other
input, or once it has ended, it is ExecutionAlreadyExists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from statekeeper.asl.arns import ALIAS, MACHINE, NAME, VERSION, SfnError, execution_id, shown
from statekeeper.asl.failure import MAX_PAYLOAD, RUNTIME, TIMEOUT
from statekeeper.asl.host import MemoryHost
from statekeeper.asl.interpreter import Execution, Machine, Outcome
from statekeeper.asl.machines import StateMachines
from statekeeper.asl.workflow import (
    execution_events,
    outcome_of,
    pinned_input,
    status_of,
    unpinned,
)
from statekeeper.codec import decode_json
from statekeeper.constants import WORKFLOW_ACTIVE
from statekeeper.errors import (
    DuplicateEvent,
    MalformedJSON,
    StatekeeperError,
    WorkflowConflict,
    WorkflowFinished,
    WorkflowNotFound,
)
from statekeeper.workflows.engine import same_json
from statekeeper.workflows.tokens import ExpiredToken, InvalidToken

if TYPE_CHECKING:
    from statekeeper.workflows import WorkflowStatus

STOPPED = "stopped"  # the error and cause a StopExecution gave, by execution id
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
_WORKFLOW_STATUS = {"SUCCEEDED": ["succeeded"], "FAILED": ["failed", "compensated"],
                    "TIMED_OUT": ["timed_out"], "ABORTED": ["cancelled"],
                    "RUNNING": list(WORKFLOW_ACTIVE)}  # fmt: skip
SYNC_TIME_LIMIT = 300.0  # seconds an Express execution may run (StartSyncExecution), as on AWS
MAX_TOKEN = 1024  # characters of a nextToken
_OFFSET = re.compile(r"^[0-9]{1,9}\Z")


class Executions:
    """The executions of one app namespace's state machines."""

    def __init__(self, machines: StateMachines) -> None:
        self.machines = machines
        self.app = machines.app
        self.arns = machines.arns

    async def start(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed, workflow, _ = await self.machines.resolve(request.get("stateMachineArn"))
        name = _name(request)
        input = _input(request.get("input"))
        id = execution_id(parsed.machine, name)
        try:
            before = await self.app.workflows.status(id)
        except WorkflowNotFound:
            before = None
        arn = self.arns.execution(parsed.machine, name)
        exists = SfnError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        if before is not None:  # the name is the idempotency key of a running execution
            earlier, _ = unpinned(await self.app.workflows.input(id))
            if before.done or before.name != workflow or not same_json(earlier, input):
                raise exists
            return {"executionArn": arn, "startDate": before.created_at}
        given = input
        if parsed.kind == MACHINE:  # runs the revision of now, even if updated before it runs
            record = await self.machines.record(parsed.machine)
            given = pinned_input(input, record["revisionId"])
        try:
            await self.app.workflows.start(workflow, given, id=id)
        except WorkflowConflict:
            raise exists from None
        started = (await self.app.workflows.status(id)).created_at
        return {"executionArn": arn, "startDate": started}

    async def start_sync(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run an execution in memory to its end and answer its outcome (Express)."""
        parsed, _, definition = await self.machines.resolve(request.get("stateMachineArn"))
        record = await self.machines.record(parsed.machine)
        if record["type"] != "EXPRESS":
            raise SfnError(
                "StateMachineTypeNotSupported",
                "StartSyncExecution runs EXPRESS state machines only",
            )
        name = _name(request)
        input = _input(request.get("input"))
        host = MemoryHost(self.app.task_functions.invoke)
        machine_arn = self.arns.machine(parsed.machine)
        arn = self.arns.execution(parsed.machine, name)
        names = Machine(parsed.machine, machine_arn, name, arn, record.get("roleArn") or "")
        started = self.app.clock()
        execution = Execution(definition, input, host, names, started=started, keep_history=False)
        outcome = await _run_sync(execution.run)
        answer: dict[str, Any] = {
            "executionArn": arn, "stateMachineArn": machine_arn, "name": name,
            "startDate": started, "stopDate": self.app.clock(), "status": outcome.status,
            "input": json.dumps(input), "inputDetails": {"included": True},
            "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100},
        }  # fmt: skip
        if outcome.status == "SUCCEEDED":
            answer["output"] = json.dumps(outcome.output)
            answer["outputDetails"] = {"included": True}
        else:
            answer.update(
                {k: v for k, v in (("error", outcome.error), ("cause", outcome.cause)) if v}
            )
        return answer

    async def _status(self, arn: Any) -> tuple[str, str, WorkflowStatus]:
        parsed = self.arns.parse(arn, "executionArn")
        if parsed.kind != "execution":
            raise SfnError("InvalidArn", f"Invalid Arn: '{shown(arn)}' is not an execution")
        id = execution_id(parsed.machine, parsed.qualifier or "")
        try:
            return parsed.machine, id, await self.app.workflows.status(id)
        except WorkflowNotFound:
            raise SfnError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'") from None

    async def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        machine, id, status = await self._status(request.get("executionArn"))
        outcome = outcome_of(status)
        answer: dict[str, Any] = {
            "executionArn": request["executionArn"],
            "stateMachineArn": self.arns.machine(machine),
            "name": id.split(":", 1)[1],
            "status": outcome["status"],
            "startDate": status.created_at,
            "input": json.dumps(unpinned(await self.app.workflows.input(id))[0]),
            "inputDetails": {"included": True},
            "redriveCount": 0,
        }
        if status.name != machine:  # an execution of a version
            answer["stateMachineVersionArn"] = self.arns.machine(
                machine, status.name.rsplit(":", 1)[1]
            )
        if status.done:
            answer["stopDate"] = status.updated_at
            answer["redriveStatus"] = (
                "REDRIVABLE" if outcome["status"] in ("FAILED", "TIMED_OUT") else "NOT_REDRIVABLE"
            )
        if outcome["status"] == "SUCCEEDED":
            answer["output"] = json.dumps(outcome["output"])
            answer["outputDetails"] = {"included": True}
        for field in ("error", "cause"):
            if outcome.get(field):
                answer[field] = outcome[field]
        if outcome["status"] == "ABORTED":
            answer.update(await self._stop_reason(id))
        return answer

    async def list(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.arns.parse(request.get("stateMachineArn")).kind == ALIAS:  # resolve() routes it
            raise SfnError("ValidationException", "list the executions of a machine or a version")
        parsed, workflow, _ = await self.machines.resolve(request.get("stateMachineArn"))
        wanted = request.get("statusFilter")
        if wanted is not None and wanted not in STATUSES:
            raise SfnError("ValidationException", f"statusFilter is one of {', '.join(STATUSES)}")
        limit = request.get("maxResults") or 100
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise SfnError("ValidationException", "maxResults is an integer from 1 to 1000")
        before = _cursor(request.get("nextToken"))
        found: list[dict[str, Any]] = []
        for wanted_status in _WORKFLOW_STATUS[wanted] if wanted else [None]:
            found += await self.app.workflows.list(
                status=wanted_status, name=workflow, limit=limit + 1, before=before
            )
        found.sort(key=lambda row: (row["created_at"], row["id"]), reverse=True)
        page = found[:limit]
        items = []
        for row in page:
            shown = status_of(row["status"])
            if row["status"] == "failed":  # a machine's own timeout is a failed workflow
                shown = outcome_of(await self.app.workflows.status(row["id"]))["status"]
            name = row["id"].split(":", 1)[1]
            item = {
                "executionArn": self.arns.execution(parsed.machine, name),
                "stateMachineArn": self.arns.machine(parsed.machine),
                "name": name, "status": shown, "startDate": row["created_at"],
            }  # fmt: skip
            if shown != "RUNNING":
                item["stopDate"] = row["updated_at"]
            if parsed.kind == VERSION:
                item["stateMachineVersionArn"] = self.arns.machine(parsed.machine, parsed.qualifier)
            items.append(item)
        answer: dict[str, Any] = {"executions": items}
        if len(found) > limit:
            last = page[-1]
            answer["nextToken"] = _token(last["created_at"], last["id"])
        return answer

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        _error_and_cause(request)
        _, id, status = await self._status(request.get("executionArn"))
        if not status.done:
            reason = {k: request[k] for k in ("error", "cause") if request.get(k) is not None}
            if reason:  # kept for DescribeExecution and the history's ExecutionAborted
                await self.app.backend.machines.insert(
                    self.app.namespace, STOPPED, id, reason, self.app.clock()
                )
            with contextlib.suppress(WorkflowFinished):  # it ended in between
                await self.app.workflows.cancel(id)
        return {"stopDate": self.app.clock()}

    async def _stop_reason(self, id: str) -> dict[str, Any]:
        """The error and cause StopExecution gave, if any."""
        found = await self.app.backend.machines.get(self.app.namespace, STOPPED, id)
        return {} if found is None else dict(found.doc)

    async def history(self, request: dict[str, Any]) -> dict[str, Any]:
        for flag in ("includeExecutionData", "reverseOrder"):
            if not isinstance(request.get(flag, False), bool):
                raise SfnError("ValidationException", f"{flag} is true or false")
        _, id, status = await self._status(request.get("executionArn"))
        events = await execution_events(self.app.workflows, id)
        if status.status == "cancelled":
            reason = await self._stop_reason(id)
            events.append({"timestamp": status.updated_at, "type": "ExecutionAborted",
                           "id": len(events) + 1, "previousEventId": len(events),
                           "executionAbortedEventDetails": reason})  # fmt: skip
        if request.get("includeExecutionData") is False:
            events = [_without_data(event) for event in events]
        if request.get("reverseOrder"):
            events.reverse()
        limit = request.get("maxResults") or 100
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise SfnError("ValidationException", "maxResults is an integer from 1 to 1000")
        start = _offset(request.get("nextToken"))
        page = events[start : start + limit]
        answer: dict[str, Any] = {"events": page}
        if start + limit < len(events):
            answer["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return answer

    async def redrive(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run a failed execution again from the state that failed: the states before it
        keep what they did (they are replayed, not run)."""
        _, id, status = await self._status(request.get("executionArn"))
        if status.status not in ("failed", "timed_out"):
            raise SfnError(
                "ExecutionNotRedrivable",
                f"Execution is not redrivable: it is {outcome_of(status)['status']}",
            )
        position = await self._failed_position(id)
        await self.app.workflows.rewind(id, position)
        return {"redriveDate": self.app.clock()}

    async def _failed_position(self, id: str) -> int:
        """The journal position of the state the execution failed in (the innermost state
        entered and not left), or of its end."""
        open_states: list[tuple[str, int]] = []
        end = 0
        for entry in await self.app.workflows.history(id, expand=True):
            output = entry.get("output")
            if not (str(entry.get("name", "")).startswith("asl:") and isinstance(output, dict)):
                continue
            for event in output.get("events") or []:
                kind = event["type"]
                if kind.endswith("StateEntered"):
                    open_states.append(
                        (event["stateEnteredEventDetails"]["name"], entry["position"])
                    )
                elif kind.endswith("StateExited"):
                    name = event["stateExitedEventDetails"]["name"]
                    for i in range(len(open_states) - 1, -1, -1):
                        if open_states[i][0] == name:
                            del open_states[i]
                            break
                elif kind in ("ExecutionFailed", "ExecutionTimedOut"):
                    end = entry["position"]
        return open_states[-1][1] if open_states else end

    # --- task tokens ------------------------------------------------------------------------

    async def send_success(self, request: dict[str, Any]) -> dict[str, Any]:
        output = request.get("output")
        if not isinstance(output, str) or len(output.encode()) > MAX_PAYLOAD:
            raise SfnError("InvalidOutput", "output is JSON text of at most 256 KiB")
        try:
            data = decode_json(output.encode(), "the output")
        except MalformedJSON as error:
            raise SfnError("InvalidOutput", f"Invalid Output: {error.message}") from None
        await self._answer(request.get("taskToken"), {"status": "success", "data": data})
        return {}

    async def send_failure(self, request: dict[str, Any]) -> dict[str, Any]:
        error, cause = _error_and_cause(request)
        answer = {"status": "failure", "error": error or "", "cause": cause or ""}
        await self._answer(request.get("taskToken"), answer)
        return {}

    async def send_heartbeat(self, request: dict[str, Any]) -> dict[str, Any]:
        await self._answer(request.get("taskToken"), {"status": "heartbeat"})
        return {}

    async def _answer(self, token: Any, answer: dict[str, Any]) -> None:
        if not isinstance(token, str) or not 1 <= len(token) <= 2048:
            raise SfnError("InvalidToken", "Invalid Token: a task token is 1-2048 characters")
        try:
            await self.app.workflows.answer_callback(token, answer)
        except (InvalidToken, WorkflowNotFound):
            raise SfnError(
                "TaskDoesNotExist", "Task Does Not Exist: the token is unknown"
            ) from None
        except (ExpiredToken, DuplicateEvent, WorkflowFinished):
            raise SfnError(
                "TaskTimedOut", "Task Timed Out: the task has been answered or has ended"
            ) from None
        except StatekeeperError as error:
            raise SfnError("InvalidToken", f"Invalid Token: {error.message}") from None


def _name(request: dict[str, Any]) -> str:
    """The execution's name: given (1-80 letters, digits, '-' or '_'), or a new one."""
    name = request.get("name")
    if name is None:
        return uuid.uuid4().hex
    if not isinstance(name, str) or not NAME.match(name):
        raise SfnError(
            "InvalidName",
            f"Invalid Name: '{shown(name)}': an execution name is 1-80 letters, digits, '-' or '_'",
        )
    return name


def _input(given: Any) -> Any:
    if given is None:
        return {}
    if not isinstance(given, str) or len(given.encode()) > MAX_PAYLOAD:
        raise SfnError(
            "InvalidExecutionInput", "Invalid Execution Input: JSON text of at most 256 KiB"
        )
    try:  # strictly: no NaN, lone surrogate or nesting a journal could not store
        return decode_json(given.encode(), "the input")
    except MalformedJSON as error:
        raise SfnError(
            "InvalidExecutionInput", f"Invalid Execution Input: {error.message}"
        ) from None


def _error_and_cause(request: dict[str, Any]) -> tuple[str | None, str | None]:
    """The ``error`` and ``cause`` of SendTaskFailure or StopExecution, checked."""
    error, cause = request.get("error"), request.get("cause")
    if error is not None and (not isinstance(error, str) or len(error) > 256):
        raise SfnError("ValidationException", "error is a string of at most 256 characters")
    if cause is not None and (not isinstance(cause, str) or len(cause) > 32768):
        raise SfnError("ValidationException", "cause is a string of at most 32768 characters")
    return error, cause


def _token(created_at: float, id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, id]).encode()).decode()


def _invalid_token() -> SfnError:
    return SfnError("InvalidToken", "Invalid Token: the nextToken is not one this service gave")


def _decoded(token: Any) -> str:
    """The text inside a nextToken (URL-safe base64 of what ``_token`` or ``history``
    wrote); InvalidToken for anything else."""
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN:
        raise _invalid_token()
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error):  # UnicodeError is a ValueError
        raise _invalid_token() from None


def _cursor(token: Any) -> tuple[float, str]:
    if token is None:
        return (float("inf"), "")
    try:
        created_at, id = json.loads(_decoded(token))
    except (ValueError, TypeError, RecursionError):
        raise _invalid_token() from None
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not isinstance(id, str)
    ):
        raise _invalid_token()
    return float(created_at), id


def _offset(token: Any) -> int:
    if token is None:
        return 0
    text = _decoded(token)
    if not _OFFSET.match(text):
        raise _invalid_token()
    return int(text)


async def _run_sync(run: Callable[[], Awaitable[Outcome]]) -> Outcome:
    """An Express execution's outcome: TIMED_OUT past SYNC_TIME_LIMIT, FAILED
    (States.Runtime) if the interpreter recursed too deep."""
    try:
        return await asyncio.wait_for(run(), SYNC_TIME_LIMIT)
    except TimeoutError:
        cause = f"The execution ran for more than {SYNC_TIME_LIMIT:g} seconds, an Express limit"
        return Outcome("TIMED_OUT", error=TIMEOUT, cause=cause)
    except RecursionError:
        return Outcome("FAILED", error=RUNTIME, cause="the state machine nests too deeply to run")


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    shown_event = dict(event)
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, dict):
            shown_event[key] = {k: v for k, v in details.items() if k not in ("input", "output")}
    return shown_event
