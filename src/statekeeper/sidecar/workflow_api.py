"""Dapr's workflow management API over HTTP, on ``DaprWorkflows`` (``workflows.py``).

    POST /v1.0/workflows/{component}/{workflowName}/start[?instanceID=ID]   202 {"instanceID"}
    GET  /v1.0/workflows/{component}/{instanceID}                           200 the instance
    POST /v1.0/workflows/{component}/{instanceID}/raiseEvent/{eventName}    202
    POST /v1.0/workflows/{component}/{instanceID}/terminate                 202 (cancels it)
    POST /v1.0/workflows/{component}/{instanceID}/purge                     202 (deletes it)
    POST /v1.0/workflows/{component}/{instanceID}/pause                     202 (SUSPENDED)
    POST /v1.0/workflows/{component}/{instanceID}/resume                    202

and the same under ``/v1.0-beta1`` and ``/v1.0-alpha1``. The component name is not
checked (every name means the one engine), as in Dapr's newest releases. Bodies (a
start's input, an event's data) are JSON; an empty one is null.

The sidecar runs the workflows itself when it was given the app (``--app-module``):
``WorkflowWorker`` is the app's worker under the sidecar's supervisor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.http.body import read_body
from statekeeper.sidecar.http_common import answers_dapr_errors
from statekeeper.sidecar.workflows import DaprWorkflows, json_payload

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.runtime.supervisor import Service
    from statekeeper.sidecar.context import Sidecar

log = logging.getLogger("statekeeper.sidecar")

PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")
Endpoint = Callable[[Request], Awaitable[Response]]


class WorkflowApi:
    """The sidecar's workflow part: Dapr's workflow routes on the app's workflows
    (``workflows``, for any front end), and (``run_worker``) the app's worker, which
    runs them."""

    name = "workflows"

    def __init__(self, sidecar: Sidecar, *, run_worker: bool) -> None:
        self.app = sidecar.app
        self.max_body = sidecar.config.max_body_bytes
        self.run_worker = run_worker
        self.workflows = DaprWorkflows(sidecar.app)

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

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        given = request.query_params.get("instanceID")
        input = json_payload(await read_body(request, self.max_body), "input")
        id = await self.workflows.start(name, input, given)
        return JSONResponse({"instanceID": id}, status_code=202)

    async def get(self, request: Request) -> Response:
        return JSONResponse(await self.workflows.get(request.path_params["id"]))

    async def raise_event(self, request: Request) -> Response:
        data = json_payload(await read_body(request, self.max_body), "event")
        params = request.path_params
        await self.workflows.raise_event(params["id"], params["event"], data)
        return _accepted()

    async def terminate(self, request: Request) -> Response:
        await self.workflows.terminate(request.path_params["id"])
        return _accepted()

    async def purge(self, request: Request) -> Response:
        await self.workflows.purge(request.path_params["id"])
        return _accepted()

    async def pause(self, request: Request) -> Response:
        await self.workflows.pause(request.path_params["id"])
        return _accepted()

    async def resume(self, request: Request) -> Response:
        await self.workflows.resume(request.path_params["id"])
        return _accepted()


class WorkflowWorker:
    """The app's worker (its workflows and consumers) as a service of the sidecar."""

    name = "workflow-worker"

    def __init__(self, app: App) -> None:
        self.app = app

    async def run(self, stopping: asyncio.Event) -> None:
        workflows = self.app.workflows
        # Known by name in the namespace, so other processes may start them too.
        await workflows.definitions.announce(list(workflows.registry))
        runtime = self.app.runtime
        worker = self.app.worker(grace=runtime.grace if runtime is not None else 30.0)
        log.info(
            "sidecar running workflows: %s", ", ".join(sorted(workflows.runnable())) or "none",
            extra={"namespace": self.app.namespace},
        )  # fmt: skip
        await worker.run(stopping)


def _accepted() -> Response:
    """Dapr's answer to a workflow change: 202 with an empty JSON object."""
    return JSONResponse({}, status_code=202)
