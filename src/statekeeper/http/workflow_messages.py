"""Routes that talk to a running workflow (docs/workflow-messages.md).

POST /v1/workflows/{name}/{id}/messages/{topic}  data JSON -> 202 {seq} (its number
                                                 on the topic; 409 if finished)
POST /v1/workflows/{name}/{id}/updates/{update}  data JSON -> 200 {result}, once the
                                                 workflow applied it (?timeout=, at
                                                 most 300 s: 409 update_not_finished
                                                 then); 422 rejected by its handler,
                                                 404 no such handler, 409 finished
GET  /v1/workflows/{name}/{id}/values            the values it published, by key
GET  /v1/workflows/{name}/{id}/values/{key}      one value (404 if none published)

Path parts and bodies are checked before anything is stored; a route naming a workflow
acts on it only if the name matches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import WorkflowNotFound
from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, parse
from statekeeper.http.operations import Answer, Body, Operation, path_param, query_params
from statekeeper.http.responses import model_response
from statekeeper.identifiers import (
    MAX_WORKFLOW_ID,
    WORKFLOW_ID_RULE,
    check_workflow_id,
    check_workflow_name,
)
from statekeeper.workflows.mailbox import MAX_NAME, NAME_RULE, check_name

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

MAX_UPDATE_WAIT = 300.0
BAD_PATH = "Malformed workflow name, id, topic, update name or key, or JSON"
NOT_FOUND = "No workflow of that name and id"


class MessageSent(Reply):
    """A message stored in a workflow's mailbox (its ``ctx.receive(topic)`` takes it)."""

    id: str = Field(description="The workflow id.")
    topic: str = Field(description="The topic.")
    seq: int = Field(description="The message's number on the topic (1, 2, ...).")


class UpdateOptions(BaseModel):
    """Query parameters of ``POST .../updates/{update}``."""

    timeout: float = Field(
        default=30.0,
        gt=0,
        le=MAX_UPDATE_WAIT,
        allow_inf_nan=False,
        description="Seconds to wait for the workflow to apply the update (at most 300); "
        "past them the answer is 409 update_not_finished and the update stays asked.",
    )


class UpdateApplied(Reply):
    """An update the workflow applied: what its handler returned."""

    id: str = Field(description="The workflow id.")
    update: str = Field(description="The update's name.")
    result: Any = Field(default=None, description="What the handler returned.")


class PublishedValue(Reply):
    """A value the workflow published (``ctx.publish``)."""

    id: str = Field(description="The workflow id.")
    key: str = Field(description="The value's key.")
    value: Any = Field(default=None, description="The value last published under the key.")


class PublishedValues(Reply):
    """The values a workflow published, by key."""

    id: str = Field(description="The workflow id.")
    values: dict[str, Any] = Field(description="Each key's last published value.")


class ValuesPage(BaseModel):
    """Query parameters of ``GET .../values``."""

    after: str = Field(default="", max_length=MAX_NAME, description="List the keys after it.")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many keys.")


class WorkflowMessageRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        name = path_param(
            "name", f"A workflow of the app: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID
        )
        run = path_param("id", f"The workflow id: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID)
        topic = path_param("topic", f"The topic: {NAME_RULE}.", max_length=MAX_NAME)
        update = path_param("update", f"The update's name: {NAME_RULE}.", max_length=MAX_NAME)
        key = path_param("key", f"The value's key: {NAME_RULE}.", max_length=MAX_NAME)
        return [
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/messages/{topic}",
                self.send,
                "Send a message (the body) to a workflow's mailbox on a topic",
                {
                    202: Answer("Stored, numbered on its topic", MessageSent),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                    409: Answer("The workflow has finished"),
                    413: Answer("Body too large"),
                },
                (name, run, topic),
                Body("The message: any JSON value (none: null)"),
            ),
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/updates/{update}",
                self.update,
                "Ask a workflow for an update (the body is its data) and wait for its result",
                {
                    200: Answer("Applied: the handler's result", UpdateApplied),
                    400: Answer(BAD_PATH),
                    404: Answer("No workflow of that name and id, or no handler of that name"),
                    409: Answer(
                        "The workflow has finished (before applying it), or did not apply "
                        "it within the timeout"
                    ),
                    413: Answer("Body too large"),
                    422: Answer("Rejected: the handler raised (its error type and message)"),
                },
                (name, run, update, *query_params(UpdateOptions)),
                Body("The update's data: any JSON value (none: null)"),
            ),
            Operation(
                "GET",
                "/v1/workflows/{name}/{id}/values",
                self.values,
                "The values a workflow published, by key",
                {
                    200: Answer("Its values", PublishedValues),
                    400: Answer(BAD_PATH),
                    404: Answer(NOT_FOUND),
                },
                (name, run, *query_params(ValuesPage)),
            ),
            Operation(
                "GET",
                "/v1/workflows/{name}/{id}/values/{key}",
                self.value,
                "A value a workflow published, without waiting for the workflow",
                {
                    200: Answer("The value", PublishedValue),
                    400: Answer(BAD_PATH),
                    404: Answer("No workflow of that name and id, or no value under that key"),
                },
                (name, run, key),
            ),
        ]

    async def _run(self, request: Request) -> str:
        """The workflow id of the path, once the workflow is found under the path's name
        (WorkflowNotFound otherwise, whatever exists under another name)."""
        name = check_workflow_name(request.path_params["name"])
        run = check_workflow_id(request.path_params["id"])
        status = await self.app.workflows.status(run)
        if status.name != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)
        return run

    async def _json(self, request: Request) -> Any:
        _, value = await read_json(request, self.config.max_body_bytes, required=False)
        return value

    async def send(self, request: Request) -> Response:
        topic = check_name("topic", request.path_params["topic"])
        body = await self._json(request)
        run = await self._run(request)
        seq = await self.app.workflows.send_message(run, topic, body)
        return model_response(MessageSent(id=run, topic=topic, seq=seq), 202)

    async def update(self, request: Request) -> Response:
        update = check_name("update name", request.path_params["update"])
        options = parse(UpdateOptions, dict(request.query_params), "the query")
        body = await self._json(request)
        run = await self._run(request)
        result = await self.app.workflows.update(run, update, body, timeout=options.timeout)
        return model_response(UpdateApplied(id=run, update=update, result=result))

    async def values(self, request: Request) -> Response:
        page = parse(ValuesPage, dict(request.query_params), "the query")
        run = await self._run(request)
        found = await self.app.workflows.values(run, after=page.after, limit=page.limit)
        return model_response(PublishedValues(id=run, values=found))

    async def value(self, request: Request) -> Response:
        key = check_name("value key", request.path_params["key"])
        run = await self._run(request)
        value = await self.app.workflows.get(run, key)
        return model_response(PublishedValue(id=run, key=key, value=value))
