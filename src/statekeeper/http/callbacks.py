"""Callback answers: an outside system finishing a workflow's callback.

POST /v1/callbacks/{token}   {"status": "success", "data": ...}
                             {"status": "failure", "error": ...}
                             {"status": "heartbeat"}

Open (no bearer token): the signed token in the path is the credential, so the route
is listed in ``http/auth.py``'s open paths. 404 when callbacks are not enabled (no
STATEKEEPER_CALLBACK_SECRET).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import CallbacksDisabled, ValidationError
from statekeeper.http.body import read_json
from statekeeper.http.models import CallbackAccepted, CallbackAnswer, parse
from statekeeper.http.operations import Answer, Body, Operation, path_param
from statekeeper.http.responses import model_response

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

SUBJECT = "the request body"


class CallbackRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "POST",
                "/v1/callbacks/{token}",
                self.callback,
                "Answer a workflow's callback; the signed token is the credential",
                {
                    202: Answer("Accepted", CallbackAccepted),
                    400: Answer("Malformed JSON or answer"),
                    401: Answer("Forged or malformed token"),
                    404: Answer("Expired token, no such workflow, or callbacks are not enabled"),
                    409: Answer("Answered before, or the workflow has finished"),
                    413: Answer("Body too large"),
                },
                (path_param("token", "The token of the callback's URL (ctx.callback())."),),
                Body("The answer", CallbackAnswer, required=True),
            )
        ]

    async def callback(self, request: Request) -> Response:
        workflows = self.app.workflows
        if workflows.secret is None:
            raise CallbacksDisabled()
        _, body = await read_json(request, self.config.max_body_bytes, required=False)
        if not isinstance(body, dict):
            raise ValidationError('the body must be an object: {"status": ...}')
        parse(CallbackAnswer, body, SUBJECT)
        # The answer as sent (extra fields included) is what the workflow receives.
        outcome = await workflows.answer_callback(request.path_params["token"], body)
        return model_response(CallbackAccepted.model_validate({"accepted": outcome}), 202)
