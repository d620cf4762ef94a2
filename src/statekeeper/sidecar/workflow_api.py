"""Dapr's workflow management API over HTTP, on statekeeper's workflows.

    POST /v1.0/workflows/{component}/{workflowName}/start[?instanceID=ID]   202 {"instanceID"}
    GET  /v1.0/workflows/{component}/{instanceID}                           200 the instance
    POST /v1.0/workflows/{component}/{instanceID}/raiseEvent/{eventName}    202
    POST /v1.0/workflows/{component}/{instanceID}/terminate                 202 (cancels it)
    POST /v1.0/workflows/{component}/{instanceID}/purge                     202 (deletes it)
    POST /v1.0/workflows/{component}/{instanceID}/pause                     501: not supported
    POST /v1.0/workflows/{component}/{instanceID}/resume                    202: nothing is paused

and the same under ``/v1.0-beta1`` and ``/v1.0-alpha1``. The component name is not
checked (every name means the one engine), as in Dapr's newest releases.

An instance is a statekeeper workflow of the app's namespace, its instance id the
workflow id. A name starts the app's workflow registered in code under that name, or
the state machine of that name (stored by ``statekeeper sfn`` or the Step Functions
API), which runs the machine's definition as it is at the start; else any workflow
defined or announced in the namespace. The sidecar runs them itself when it was given
the app (``--app-module``): ``WorkflowWorker`` is the app's worker under the sidecar's
supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.asl.arns import SfnError
from statekeeper.asl.machines import StateMachines
from statekeeper.asl.workflow import pinned_input, unpinned
from statekeeper.codec import decode_json
from statekeeper.errors import (
    DuplicateEvent,
    InvalidEventName,
    InvalidWorkflowId,
    StatekeeperError,
    UnknownWorkflow,
    WorkflowConflict,
    WorkflowFinished,
    WorkflowNotFinished,
    WorkflowNotFound,
)
from statekeeper.identifiers import check_workflow_id
from statekeeper.sidecar.errors import DaprError, Grpc, malformed
from statekeeper.sidecar.http_common import answers_dapr_errors, read_body
from statekeeper.sidecar.workflow_status import instance_document

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.runtime.supervisor import Service
    from statekeeper.sidecar.context import Sidecar

log = logging.getLogger("statekeeper.sidecar")

PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")
MAX_INSTANCE_ID = 64  # Dapr's limit on an instance id given to start
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
Endpoint = Callable[[Request], Awaitable[Response]]


class WorkflowApi:
    """The sidecar's workflow part: Dapr's workflow routes on the app's workflows, and
    (``run_worker``) the app's worker, which runs them."""

    name = "workflows"

    def __init__(self, sidecar: Sidecar, *, run_worker: bool) -> None:
        self.sidecar = sidecar
        self.app = sidecar.app
        self.run_worker = run_worker
        self.machines = StateMachines(sidecar.app)

    # --- the part ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        served: list[tuple[str, Endpoint, str]] = [
            ("/workflows/{component}/{name}/start", self.start, "POST"),
            ("/workflows/{component}/{id}", self.get, "GET"),
            ("/workflows/{component}/{id}/raiseEvent/{event}", self.raise_event, "POST"),
            ("/workflows/{component}/{id}/terminate", self.terminate, "POST"),
            ("/workflows/{component}/{id}/purge", self.purge, "POST"),
            ("/workflows/{component}/{id}/pause", self.pause, "POST"),
            ("/workflows/{component}/{id}/resume", self.resume, "POST"),
        ]
        return [
            Route(prefix + path, answers_dapr_errors(endpoint), methods=[method])
            for prefix in PREFIXES
            for path, endpoint, method in served
        ]

    def services(self) -> list[Service]:
        return [WorkflowWorker(self.app)] if self.run_worker else []

    def describe(self, document: dict[str, Any]) -> None:
        document["workflows"] = {"connectedWorkers": 1 if self.run_worker else 0}

    # --- the routes -------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"].strip()
        if not name:
            raise DaprError("ERR_WORKFLOW_NAME_MISSING", "workflow name is not configured")
        given = request.query_params.get("instanceID")
        id = str(uuid.uuid4()) if not given else _new_instance_id(given)
        input = _json_body(await read_body(request, self.sidecar.config.max_body_bytes), "input")
        try:
            await self._start(name, input, id)
        except UnknownWorkflow:
            raise DaprError(
                "ERR_START_WORKFLOW",
                f"error starting workflow '{name}': there is no workflow named '{name}' in "
                f"namespace '{self.app.namespace}' (neither registered by the app, a state "
                "machine, nor defined)",
                http_status=404, grpc=Grpc.NOT_FOUND,
            ) from None  # fmt: skip
        except WorkflowConflict as conflict:
            raise DaprError(
                "ERR_START_WORKFLOW", f"error starting workflow '{name}': {conflict.message}",
                http_status=409, grpc=Grpc.ALREADY_EXISTS,
            ) from None  # fmt: skip
        except StatekeeperError as problem:
            raise _start_failed(name, problem) from None
        return JSONResponse({"instanceID": id}, status_code=202)

    async def _start(self, name: str, input: Any, id: str) -> None:
        workflows = self.app.workflows
        if name not in workflows.registry:
            try:
                machine = await self.machines.record(name)
            except SfnError:  # not a state machine: any workflow known by that name
                pass
            else:  # runs the machine's definition of now, even if updated before it runs
                input = pinned_input(input, machine["revisionId"])
        await workflows.start(name, input, id=id)

    async def get(self, request: Request) -> Response:
        id = _instance_id(request)
        workflows = self.app.workflows
        try:
            status = await workflows.status(id)
        except WorkflowNotFound:
            raise _not_found(id) from None
        try:
            input: Any = unpinned(await workflows.input(id))[0]
            has_input = True
        except WorkflowNotFound:
            raise _not_found(id) from None
        except StatekeeperError as problem:  # a sealed input this process cannot open
            log.warning("a workflow's input cannot be read: %s", problem.message)
            input, has_input = None, False
        return JSONResponse(instance_document(status, input, has_input=has_input))

    async def raise_event(self, request: Request) -> Response:
        id = _instance_id(request)
        event = request.path_params["event"]
        if not event.strip():
            raise DaprError("ERR_WORKFLOW_EVENT_NAME_MISSING", "missing workflow event name")
        data = _json_body(await read_body(request, self.sidecar.config.max_body_bytes), "event")
        failed = f"error raising event '{event[:200]}' on workflow '{id}'"
        try:
            await self.app.workflows.send_event(id, event, data)
        except WorkflowNotFound:
            raise _not_found(id) from None
        except InvalidEventName as problem:
            raise DaprError("ERR_RAISE_EVENT_WORKFLOW", f"{failed}: {problem.message}") from None
        except DuplicateEvent:
            raise DaprError(
                "ERR_RAISE_EVENT_WORKFLOW",
                f"{failed}: the workflow has received an event of that name already (each "
                "event name is delivered once per instance)",
                http_status=409, grpc=Grpc.ALREADY_EXISTS,
            ) from None  # fmt: skip
        except WorkflowFinished:
            raise _finished("ERR_RAISE_EVENT_WORKFLOW", failed, "it takes no more events") from None
        return _accepted()

    async def terminate(self, request: Request) -> Response:
        id = _instance_id(request)
        try:
            await self.app.workflows.cancel(id)
        except WorkflowNotFound:
            raise _not_found(id) from None
        except WorkflowFinished:
            failed = f"error terminating workflow '{id}'"
            raise _finished("ERR_TERMINATE_WORKFLOW", failed, "there is nothing to stop") from None
        return _accepted()

    async def purge(self, request: Request) -> Response:
        id = _instance_id(request)
        try:
            await self.app.workflows.purge(id)
        except WorkflowNotFound:
            raise _not_found(id) from None
        except WorkflowNotFinished as problem:
            raise DaprError(
                "ERR_PURGE_WORKFLOW",
                f"error purging workflow '{id}': {problem.message} (terminate it first)",
                http_status=409, grpc=Grpc.FAILED_PRECONDITION,
            ) from None  # fmt: skip
        return _accepted()

    async def pause(self, request: Request) -> Response:
        id = _instance_id(request)
        await self._exists(id)
        raise DaprError(
            "ERR_PAUSE_WORKFLOW",
            f"error pausing workflow '{id}': statekeeper workflows cannot be paused; "
            "terminate cancels one (its saga compensations run)",
            http_status=501, grpc=Grpc.UNIMPLEMENTED,
        )  # fmt: skip

    async def resume(self, request: Request) -> Response:
        """No workflow is ever paused, so every existing one is resumed already."""
        await self._exists(_instance_id(request))
        return _accepted()

    async def _exists(self, id: str) -> None:
        try:
            await self.app.workflows.status(id)
        except WorkflowNotFound:
            raise _not_found(id) from None


class WorkflowWorker:
    """The app's worker (its workflows and consumers) as a service of the sidecar."""

    name = "workflow-worker"

    def __init__(self, app: App) -> None:
        self.app = app

    async def run(self, stopping: asyncio.Event) -> None:
        workflows = self.app.workflows
        await workflows.definitions.announce(list(workflows.registry))
        runtime = self.app.runtime
        grace = runtime.grace if runtime is not None else 30.0
        worker = self.app.worker(grace=grace)
        log.info(
            "sidecar running workflows: %s", ", ".join(sorted(workflows.runnable())) or "none",
            extra={"namespace": self.app.namespace},
        )  # fmt: skip
        await worker.run(stopping)


def _accepted() -> Response:
    return JSONResponse({}, status_code=202)


def _json_body(raw: bytes, what: str) -> Any:
    """The body as JSON (an empty body is null); a statekeeper workflow's input and its
    events' data are JSON values."""
    if not raw.strip():
        return None
    try:
        return decode_json(raw, f"the workflow {what}")
    except StatekeeperError as problem:
        raise malformed(f"{problem.message}: the workflow {what} must be JSON") from None


def _new_instance_id(given: str) -> str:
    """An instance id a client chose for a new instance, checked as Dapr does."""
    if len(given) > MAX_INSTANCE_ID:
        raise DaprError(
            "ERR_INSTANCE_ID_TOO_LONG",
            f"workflow instance ID exceeds the max length of {MAX_INSTANCE_ID} characters",
        )
    if not _INSTANCE_ID.match(given):
        raise DaprError(
            "ERR_INSTANCE_ID_INVALID",
            f"workflow instance ID '{given}' is invalid: only alphanumeric and underscore "
            "characters are allowed",
        )
    return given


def _instance_id(request: Request) -> str:
    """The instance id of a route on an existing instance: any workflow id of the
    namespace (one started otherwise may hold ``.``, ``:`` or ``@``)."""
    id: str = request.path_params["id"]
    if not id.strip():
        raise DaprError("ERR_INSTANCE_ID_PROVIDED_MISSING", "no instance ID was provided")
    try:
        return check_workflow_id(id)
    except InvalidWorkflowId as problem:
        raise DaprError("ERR_INSTANCE_ID_INVALID", problem.message) from None


def _not_found(id: str) -> DaprError:
    return DaprError(
        "ERR_INSTANCE_ID_NOT_FOUND",
        f"unable to find workflow with the provided instance ID: {id}",
        http_status=404, grpc=Grpc.NOT_FOUND,
    )  # fmt: skip


def _finished(code: str, failed: str, why: str) -> DaprError:
    return DaprError(
        code, f"{failed}: the workflow has finished; {why}",
        http_status=409, grpc=Grpc.FAILED_PRECONDITION,
    )  # fmt: skip


def _start_failed(name: str, problem: StatekeeperError) -> DaprError:
    status = problem.http_status if problem.http_status < 500 else 500
    return DaprError(
        "ERR_START_WORKFLOW", f"error starting workflow '{name}': {problem.message}",
        http_status=status, grpc=Grpc.INVALID_ARGUMENT if status < 500 else Grpc.INTERNAL,
    )  # fmt: skip
