"""Workflow routes of the HTTP API.

POST /v1/workflows/{name}                      input JSON -> 202, Location
                                               (Idempotency-Key or ?id=: 422 if reused
                                               with another name or input)
GET  /v1/workflows/{name}/{id}                 status and output
POST /v1/workflows/{name}/{id}/events/{event}  data JSON -> 202 (409 if sent before)
POST /v1/workflows/{name}/{id}/cancel          -> 202 (409 if finished)
POST /v1/callbacks/{token}                     {"status": success|failure|heartbeat}

Names, ids and events are checked (``statekeeper.identifiers``) and bodies decoded
strictly (``http/body.py``) before anything is stored; a route naming a workflow
acts on it only if the name matches.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.codec import decode_value
from statekeeper.errors import (
    CallbacksDisabled,
    DecryptionError,
    IdempotencyKeyReused,
    StatekeeperError,
    UnknownWorkflow,
    ValidationError,
    WorkflowNotFound,
)
from statekeeper.http.body import read_json
from statekeeper.http.responses import from_error, json_response
from statekeeper.identifiers import (
    check_event_name,
    check_idempotency_key,
    check_workflow_id,
    check_workflow_name,
    shown,
    workflow_id_for_key,
)
from statekeeper.sealing import WORKFLOW

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.ingress import Ingress
    from statekeeper.workflows import WorkflowStatus


class WorkflowRoutes:
    def __init__(self, app: App, ingress: Ingress) -> None:
        self.app = app
        self.ingress = ingress  # for authentication and the body limit

    async def _json(self, request: Request) -> Any:
        """The body's JSON value; None for an empty body."""
        _, value = await read_json(request, self.ingress.config.max_body_bytes, required=False)
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

    async def start(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        key = request.headers.get("idempotency-key")
        chosen = request.query_params.get("id")
        try:
            # Everything is checked before anything is stored.
            check_workflow_name(name)
            if name not in self.app.workflows.registry:
                raise UnknownWorkflow(f"there is no workflow named {name!r}", name=name)
            if chosen is not None:
                check_workflow_id(chosen)
            if key is not None:  # the header wins over ?id=
                chosen = workflow_id_for_key(check_idempotency_key(key))
            body = await self._json(request)
            run = await self.app.workflows.start(name, body, id=chosen)
            if chosen is not None and not await self._started_with(run, name, body):
                what = "workflow id" if key is None else "Idempotency-Key"
                raise IdempotencyKeyReused(
                    f"{what} {shown(key or run)} was used before with another workflow name "
                    "or input",
                    id=run,
                )
            status = await self.app.workflows.status(run)
        except StatekeeperError as error:
            return from_error(error)
        location = workflow_location(name, run)
        return json_response(
            {**status.to_dict(), "status_url": location}, 202, {"Location": location}
        )

    async def _started_with(self, run: str, name: str, input: Any) -> bool:
        """Whether workflow ``run`` was started as ``name`` with ``input`` (compared as
        canonical JSON, recomputed from the stored input); True when the stored input
        cannot be opened with this process's keys, as nothing can be compared."""
        app = self.app
        row = await app.backend.workflows.get(app.namespace, run)
        if row is None:  # gone in between: nothing to compare
            return True
        if row.name != name:
            return False
        try:
            stored = app.sealer.open(row.input, WORKFLOW, app.namespace, run, "input")
        except DecryptionError:
            return True
        return _canonical(decode_value(run, stored)) == _canonical(input)

    async def describe(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        try:
            status = await self._named(request)
        except StatekeeperError as error:
            return from_error(error)
        return json_response(status.to_dict())

    async def event(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        event = request.path_params["event"]
        try:
            check_event_name(event)
            body = await self._json(request)
            run = (await self._named(request)).id
            await self.app.workflows.send_event(run, event, body)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"id": run, "event": event, "delivered": True}, 202)

    async def cancel(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        try:
            run = (await self._named(request)).id
            await self.app.workflows.cancel(run)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"id": run, "cancel_requested": True}, 202)

    async def callback(self, request: Request) -> Response:
        """Unauthenticated on purpose: the signed token is the credential."""
        try:
            if self.app.workflows.secret is None:
                raise CallbacksDisabled()
            body = await self._json(request)
            if not isinstance(body, dict):
                raise ValidationError('the body must be an object: {"status": ...}')
            outcome = await self.app.workflows.answer_callback(request.path_params["token"], body)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"accepted": outcome}, 202)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def workflow_location(name: str, run: str) -> str:
    """The status URL of a workflow, its path segments percent-encoded."""
    return f"/v1/workflows/{quote(name, safe='')}/{quote(run, safe='')}"
