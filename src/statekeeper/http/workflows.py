"""Workflow routes of the HTTP API.

POST /v1/workflows/{name}                      input JSON -> 202, Location
                                               (Idempotency-Key or ?id=: 409 if reused
                                               with another name or input; ?timeout=)
GET  /v1/workflows/{name}/{id}                 status and output
POST /v1/workflows/{name}/{id}/events/{event}  data JSON -> 202 (409 if sent before or
                                               the workflow has finished)
POST /v1/workflows/{name}/{id}/cancel          -> 202 (409 if finished)
POST /v1/workflows/{name}/{id}/pause           -> 202 (409 if finished)
POST /v1/workflows/{name}/{id}/resume          -> 202

Names, ids and events are checked (``statekeeper.identifiers``) and bodies decoded
strictly (``http/body.py``) before anything is stored; a route naming a workflow
acts on it only if the name matches. Callback answers are ``http/callbacks.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import WorkflowConflict, WorkflowNotFound
from statekeeper.http.body import read_json
from statekeeper.http.models import (
    CancelRequested,
    EventDelivered,
    PauseChanged,
    Workflow,
    WorkflowOptions,
    parse,
)
from statekeeper.http.operations import (
    IDEMPOTENCY_KEY,
    Answer,
    Body,
    Operation,
    path_param,
    query_params,
)
from statekeeper.http.responses import model_response
from statekeeper.identifiers import (
    MAX_EVENT_NAME,
    MAX_WORKFLOW_ID,
    WORKFLOW_ID_RULE,
    check_event_name,
    check_idempotency_key,
    check_workflow_id,
    check_workflow_name,
    shown,
    workflow_id_for_key,
)

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig
    from statekeeper.workflows import WorkflowStatus

BAD_PATH = "Malformed workflow name or id"
NOT_FOUND = "No workflow of that name and id"


class WorkflowRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        name = path_param(
            "name", f"A workflow of the app: {WORKFLOW_ID_RULE}.",
            max_length=MAX_WORKFLOW_ID, choices=self._names,
        )  # fmt: skip
        run = path_param("id", f"The workflow id: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID)
        event = path_param(
            "event", "The event's name: 1-200 characters without control characters "
            "(not starting with child: or callback:, the engine's own).",
            max_length=MAX_EVENT_NAME,
        )  # fmt: skip
        started = Answer("Started (or already started with this id)", Workflow, ("Location",))
        return [
            Operation(
                "POST",
                "/v1/workflows/{name}",
                self.start,
                "Start a workflow with the body as its input (the id is idempotent)",
                {
                    202: started,
                    400: Answer("Malformed JSON, id, Idempotency-Key or name"),
                    404: Answer("Unknown workflow"),
                    409: Answer(
                        "Id or Idempotency-Key reused with another name or input, or a "
                        "singleton queue's key busy"
                    ),
                    413: Answer("Body too large"),
                },
                (name, *query_params(WorkflowOptions), IDEMPOTENCY_KEY),
                Body("The workflow's input: any JSON value (none: null)"),
            ),
            Operation(
                "GET",
                "/v1/workflows/{name}/{id}",
                self.describe,
                "A workflow's status and output",
                {
                    200: Answer("The workflow", Workflow),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                },
                (name, run),
            ),
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/events/{event}",
                self.event,
                "Deliver an event (the body is its data) to a workflow, once",
                {
                    202: Answer("Delivered", EventDelivered),
                    400: Answer("Malformed JSON, workflow name, id or event"),
                    404: Answer(NOT_FOUND),
                    409: Answer("The event was delivered before, or the workflow has finished"),
                    413: Answer("Body too large"),
                },
                (name, run, event),
                Body("The event's data: any JSON value (none: null)"),
            ),
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/cancel",
                self.cancel,
                "Ask a workflow to stop (compensating its saga)",
                {
                    202: Answer("Cancel requested", CancelRequested),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                    409: Answer("The workflow has finished"),
                },
                (name, run),
            ),
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/pause",
                self.pause,
                "Pause a workflow: it stops at its next durable point until resumed",
                {
                    202: Answer("Paused", PauseChanged),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                    409: Answer("The workflow has finished or is being cancelled"),
                },
                (name, run),
            ),
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/resume",
                self.resume,
                "Resume a paused workflow where it stopped (one not paused: nothing changes)",
                {
                    202: Answer("Resumed", PauseChanged),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                },
                (name, run),
            ),
        ]

    def _names(self) -> list[str]:
        return sorted(self.app.workflows.runnable())

    async def _json(self, request: Request) -> Any:
        """The body's JSON value; None for an empty body."""
        _, value = await read_json(request, self.config.max_body_bytes, required=False)
        return value

    async def _named(self, request: Request) -> WorkflowStatus:
        """The workflow of the path, after checking that it has the path's name
        (WorkflowNotFound otherwise, whatever exists under another name)."""
        name: str = request.path_params["name"]
        run: str = request.path_params["id"]
        check_workflow_name(name)
        status = await self.app.workflows.status(run)
        if status.name != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)
        return status

    async def _named_id(self, request: Request) -> str:
        """``_named``'s check without reading the workflow's output (it may be large)."""
        name: str = request.path_params["name"]
        run: str = request.path_params["id"]
        check_workflow_name(name)
        if await self.app.workflows.run_name(run) != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)
        return run

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        key = request.headers.get("idempotency-key")
        options = parse(WorkflowOptions, dict(request.query_params), "the query")
        chosen = options.id
        # Everything is checked before anything is stored.
        check_workflow_name(name)
        await self.app.workflows.known(name)
        if chosen is not None:
            check_workflow_id(chosen)
        if key is not None:  # the header wins over ?id=
            chosen = workflow_id_for_key(check_idempotency_key(key))
        body = await self._json(request)
        try:
            run = await self.app.workflows.start(
                name, body, id=chosen, timeout=options.timeout, queue=options.queue,
                key=options.key, priority=options.priority,
            )  # fmt: skip
        except WorkflowConflict as conflict:
            if key is None:
                raise
            differs = conflict.details.get("differs")
            other = "another workflow name" if differs == "name" else "different input"
            raise WorkflowConflict(
                f"Idempotency-Key {shown(key)} was used before with {other}", **conflict.details
            ) from None
        status = await self.app.workflows.status(run)
        location = workflow_location(name, run)
        started = Workflow.model_validate(
            {**status.to_dict(traceback=False), "status_url": location}
        )
        return model_response(started, 202, {"Location": location})

    async def describe(self, request: Request) -> Response:
        status = await self._named(request)
        return model_response(Workflow.model_validate(status.to_dict(traceback=False)))

    async def event(self, request: Request) -> Response:
        event = request.path_params["event"]
        check_event_name(event)
        body = await self._json(request)
        run = await self._named_id(request)
        await self.app.workflows.send_event(run, event, body)
        return model_response(EventDelivered(id=run, event=event, delivered=True), 202)

    async def cancel(self, request: Request) -> Response:
        run = await self._named_id(request)
        await self.app.workflows.cancel(run)
        return model_response(CancelRequested(id=run, cancel_requested=True), 202)

    async def pause(self, request: Request) -> Response:
        run = await self._named_id(request)
        await self.app.workflows.pause(run)
        return model_response(PauseChanged(id=run, paused=True), 202)

    async def resume(self, request: Request) -> Response:
        run = await self._named_id(request)
        await self.app.workflows.resume(run)
        return model_response(PauseChanged(id=run, paused=False), 202)


def workflow_location(name: str, run: str) -> str:
    """The status URL of a workflow, its path segments percent-encoded."""
    return f"/v1/workflows/{quote(name, safe='')}/{quote(run, safe='')}"
