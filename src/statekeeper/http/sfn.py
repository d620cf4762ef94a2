"""The Step Functions API (AWS JSON 1.0): AWS SDKs work with only their endpoint set.

POST /  with ``X-Amz-Target: AWSStepFunctions.<Action>`` and a JSON body; the answer
is JSON (``application/x-amz-json-1.0``), an error ``400 {"__type":
"com.amazonaws.states#<Code>", "message"}`` with ``x-amzn-ErrorType``, as AWS answers.

Credentials: this route takes no bearer token from the middleware; it checks its own
(``http/auth.py`` lists it open). With the API's token configured, a request must be
signed (AWS Signature Version 4) by a key of ``STATEKEEPER_AWS_CREDENTIALS``, or carry
the bearer token; in dev mode any request is served.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.asl import teststate, validation
from statekeeper.asl.arns import SfnError
from statekeeper.asl.executions import Executions
from statekeeper.asl.machines import StateMachines
from statekeeper.codec import decode_json
from statekeeper.constants import ENV_AWS_CREDENTIALS
from statekeeper.errors import (
    InvalidDefinition,
    MalformedJSON,
    NotFound,
    PayloadTooLarge,
    StatekeeperError,
    ValidationError,
)
from statekeeper.http import sigv4
from statekeeper.http.body import read_body
from statekeeper.http.operations import Answer, Body, Operation, Param

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

MEDIA_TYPE = "application/x-amz-json-1.0"
PREFIX = "AWSStepFunctions."
MAX_BODY = 2 * 1024 * 1024  # a definition is up to 1 MiB, escaped in a JSON string
Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class StepFunctionsRoutes:
    """The Step Functions actions of one app."""

    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        machines = StateMachines(app)
        executions = Executions(machines)
        self.credentials = sigv4.parse_credentials(os.environ.get(ENV_AWS_CREDENTIALS, ""))
        self.actions: dict[str, Action] = {
            "CreateStateMachine": machines.create,
            "UpdateStateMachine": machines.update,
            "DescribeStateMachine": machines.describe,
            "ListStateMachines": machines.list,
            "DeleteStateMachine": machines.delete,
            "ValidateStateMachineDefinition": validate,
            "PublishStateMachineVersion": machines.publish,
            "ListStateMachineVersions": machines.list_versions,
            "CreateStateMachineAlias": machines.create_alias,
            "DescribeStateMachineAlias": machines.describe_alias,
            "TagResource": machines.tag,
            "UntagResource": machines.untag,
            "ListTagsForResource": machines.list_tags,
            "StartExecution": executions.start,
            "StartSyncExecution": executions.start_sync,
            "DescribeExecution": executions.describe,
            "ListExecutions": executions.list,
            "StopExecution": executions.stop,
            "GetExecutionHistory": executions.history,
            "RedriveExecution": executions.redrive,
            "SendTaskSuccess": executions.send_success,
            "SendTaskFailure": executions.send_failure,
            "SendTaskHeartbeat": executions.send_heartbeat,
            "TestState": self._test_state,
        }

    async def _test_state(self, request: dict[str, Any]) -> dict[str, Any]:
        return await teststate.run_request(request, invoke=self.app.task_functions.invoke)

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "POST",
                "/",
                self.handle,
                "Step Functions API (AWS JSON 1.0)",
                {
                    200: Answer("The action's answer, as Step Functions gives it.", None),
                    400: Answer("An error as Step Functions answers it: {__type, message}.", None),
                    403: Answer("Not signed by a known key, nor carrying the bearer token.", None),
                    413: Answer("The request body is over 2 MiB.", None),
                },
                params=(
                    Param(
                        "X-Amz-Target",
                        "header",
                        "AWSStepFunctions.<Action>",
                        {
                            "type": "string",
                            "enum": [PREFIX + name for name in sorted(self.actions)],
                        },
                    ),
                ),
                body=Body("The action's request, as Step Functions takes it.", required=True),
                description="Signed with AWS Signature Version 4 by a key of "
                f"{ENV_AWS_CREDENTIALS}, or with the bearer token.",
                security=("awsSigV4", "bearer"),
            )
        ]

    async def handle(self, request: Request) -> Response:
        try:
            raw = await read_body(request, MAX_BODY)
        except PayloadTooLarge as error:
            return aws_error(413, "ValidationException", error.message)
        refused = self._refusal(request, raw)
        if refused is not None:
            return aws_error(403, "AccessDeniedException", refused)
        targets = request.headers.getlist("x-amz-target")
        if len(targets) > 1:
            return aws_error(
                400, "UnknownOperationException", "the request names more than one X-Amz-Target"
            )
        target = targets[0] if targets else ""
        action = self.actions.get(target[len(PREFIX) :]) if target.startswith(PREFIX) else None
        if action is None:
            shown = target[:100] or "(none)"
            return aws_error(400, "UnknownOperationException", f"unknown operation {shown}")
        try:  # strictly: no NaN, lone surrogate, BOM or nesting past the codec's limit
            body = decode_json(raw or b"{}", "the request body")
        except MalformedJSON as error:
            return aws_error(400, "SerializationException", error.message)
        if not isinstance(body, dict):
            return aws_error(400, "SerializationException", "the request body is not a JSON object")
        try:
            answer = await action(body)
        except SfnError as error:
            return aws_error(400, error.code, error.message)
        except InvalidDefinition as error:
            return aws_error(400, "InvalidDefinition", error.message)
        except ValidationError as error:
            return aws_error(400, "ValidationException", error.message)
        except NotFound as error:
            return aws_error(400, "ResourceNotFound", error.message)
        except StatekeeperError as error:
            status = error.http_status if 400 <= error.http_status < 500 else 500
            code = "ValidationException" if status < 500 else "ServiceUnavailable"
            return aws_error(status, code, error.message)
        body_text = json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
        return Response(body_text, 200, media_type=MEDIA_TYPE)

    def _refusal(self, request: Request, raw: bytes) -> str | None:
        """Why the request may not use the API, or None."""
        token = self.config.token
        if token is None:  # dev mode
            return None
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            import hmac

            given = authorization[len("Bearer ") :].strip().encode()
            return None if hmac.compare_digest(given, token.encode()) else "invalid bearer token"
        if not self.credentials:
            return (
                f"the Step Functions API takes requests signed by a key of {ENV_AWS_CREDENTIALS}, "
                "which is not set, or the bearer token"
            )
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        query = request.scope.get("query_string", b"").decode("latin-1")
        return sigv4.check(
            request.method, request.url.path, query, headers, raw, self.credentials,
            self.app.clock(),
        )  # fmt: skip


async def validate(request: dict[str, Any]) -> dict[str, Any]:
    """ValidateStateMachineDefinition: every problem as a diagnostic."""
    text = request.get("definition")
    if not isinstance(text, str):
        raise SfnError("ValidationException", "definition is the definition as JSON text")
    limit = request.get("maxResults") or 100
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise SfnError("ValidationException", "maxResults is an integer from 1 to 100")
    try:
        definition = decode_json(text.encode(), "the definition")
    except MalformedJSON as error:
        diagnostic = {"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION",
                      "message": error.message, "location": "/"}  # fmt: skip
        return {"result": "FAIL", "diagnostics": [diagnostic], "truncated": False}
    found = validation.problems(definition)
    diagnostics = [
        {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": p.message,
         "location": p.where or "/"}
        for p in found
    ]  # fmt: skip
    return {
        "result": "FAIL" if found else "OK",
        "diagnostics": diagnostics[:limit],
        "truncated": len(diagnostics) > limit,
    }


def aws_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"__type": f"com.amazonaws.states#{code}", "message": message})
    return Response(body, status, {"x-amzn-ErrorType": code}, MEDIA_TYPE)
