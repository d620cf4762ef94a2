"""Workflow routes of the HTTP API.

POST /v1/workflows/{name}                      input JSON -> 202, Location
GET  /v1/workflows/{name}/{id}                 status and output
POST /v1/workflows/{name}/{id}/events/{event}  data JSON -> 202 (409 if sent before)
POST /v1/workflows/{name}/{id}/cancel          -> 202 (409 if finished)
POST /v1/callbacks/{token}                     {"status": success|failure|heartbeat}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import StatekeeperError
from statekeeper.http.ingress import BodyTooLarge
from statekeeper.http.responses import error_response, from_error, json_response

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.ingress import Ingress


class WorkflowRoutes:
    def __init__(self, app: App, ingress: Ingress) -> None:
        self.app = app
        self.ingress = ingress  # for authentication and body reading

    async def _json(self, request: Request) -> tuple[Any, Response | None]:
        try:
            raw = await self.ingress._read_body(request)
        except BodyTooLarge:
            return None, error_response(413, "payload_too_large", "the request body is too large")
        if not raw.strip():
            return None, None
        try:
            return json.loads(raw), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, error_response(
                400, "malformed_json", f"the request body is not JSON: {exc}"
            )

    def _known(self, name: str) -> Response | None:
        if name not in self.app.workflows.registry:
            return error_response(404, "unknown_workflow", f"there is no workflow named {name!r}")
        return None

    async def start(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        unknown = self._known(name)
        if unknown is not None:
            return unknown
        body, problem = await self._json(request)
        if problem is not None:
            return problem
        chosen = request.headers.get("idempotency-key") or request.query_params.get("id")
        try:
            run = await self.app.workflows.start(name, body, id=chosen)
            status = await self.app.workflows.status(run)
        except StatekeeperError as error:
            return from_error(error)
        location = f"/v1/workflows/{name}/{run}"
        return json_response(
            {**status.to_dict(), "status_url": location}, 202, {"Location": location}
        )

    async def describe(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        try:
            status = await self.app.workflows.status(request.path_params["id"])
        except StatekeeperError as error:
            return from_error(error)
        if status.name != request.path_params["name"]:
            return error_response(404, "workflow_not_found", "there is no such workflow")
        return json_response(status.to_dict())

    async def event(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        body, problem = await self._json(request)
        if problem is not None:
            return problem
        run, event = request.path_params["id"], request.path_params["event"]
        try:
            status = await self.app.workflows.status(run)
            if status.name != request.path_params["name"]:
                return error_response(404, "workflow_not_found", "there is no such workflow")
            await self.app.workflows.send_event(run, event, body)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"id": run, "event": event, "delivered": True}, 202)

    async def cancel(self, request: Request) -> Response:
        denied = self.ingress.authorized(request)
        if denied is not None:
            return denied
        run = request.path_params["id"]
        try:
            await self.app.workflows.cancel(run)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"id": run, "cancel_requested": True}, 202)

    async def callback(self, request: Request) -> Response:
        """Unauthenticated on purpose: the signed token is the credential."""
        body, problem = await self._json(request)
        if problem is not None:
            return problem
        if not isinstance(body, dict):
            return error_response(400, "invalid_input", 'the body must be {"status": ...}')
        try:
            outcome = await self.app.workflows.answer_callback(request.path_params["token"], body)
        except StatekeeperError as error:
            return from_error(error)
        return json_response({"accepted": outcome}, 202)
