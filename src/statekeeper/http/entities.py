"""Entity routes (docs/entities.md).

POST /v1/entities/{type}/{key}/{handler}   body: the argument (JSON; none: null)
    exclusive handler: stored, then 202 with Location /v1/requests/{id} (a worker runs
    it once); with ?wait=S, run here too and answered 200 {result} once committed
    (409 entity_call_failed if the handler raised), or 202 if it takes longer than S
    seconds; ?delay=S runs it later (a reminder from outside). ``Idempotency-Key``:
    a repeat answers the first request's outcome and runs nothing again.
    read-only handler: run at once on the committed state, 200 {result}.
GET  /v1/entities/{type}/{key}             its committed state (404 never called)
GET  /v1/entities/{type}                   entities of a type in key order (?after=, ?limit=)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.constants import MAX_DELAY_SECONDS
from statekeeper.entities.api import MAX_LIST, EntitySnapshot
from statekeeper.entities.signals import ENTITY_CALLS, signal_call_id
from statekeeper.errors import EntityCallFailed, EntityNotFound, StatekeeperError
from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, RequestStatus, parse
from statekeeper.http.operations import (
    IDEMPOTENCY_KEY,
    Answer,
    Body,
    Operation,
    Param,
    path_param,
    query_params,
)
from statekeeper.http.responses import error_response, model_response
from statekeeper.identifiers import (
    MAX_ENTITY_KEY,
    MAX_WORKFLOW_ID,
    WORKFLOW_ID_RULE,
    check_entity_key,
    check_idempotency_key,
)
from statekeeper.queues.requests import request_status

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

MAX_WAIT = 300.0
BAD_CALL = "Malformed type, key, handler, parameter, Idempotency-Key or JSON"


class CallOptions(BaseModel):
    """Query parameters of ``POST /v1/entities/{type}/{key}/{handler}``."""

    model_config = {"extra": "forbid"}

    wait: float = Field(
        default=0.0, ge=0, le=MAX_WAIT, allow_inf_nan=False,
        description="Seconds to wait for the call's answer (at most 300): 200 with the "
        "result once committed, 202 past them. 0: answer 202 at once.",
    )  # fmt: skip
    delay: float | None = Field(
        default=None, ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False,
        description="Run the call this many seconds later (not with wait).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_of(self) -> CallOptions:
        if self.wait and self.delay:
            raise ValueError("wait and delay exclude each other: a delayed call is not waited for")
        return self


class EntityCallResult(Reply):
    """A call's answer: what the handler returned."""

    entity: str = Field(description="The entity type.")
    key: str = Field(description="The entity's key.")
    handler: str = Field(description="The handler.")
    result: Any = Field(default=None, description="What the handler returned.")
    request_id: str | None = Field(
        default=None, description="The stored request (exclusive handlers): /v1/requests/{id}."
    )


class EntityState(Reply):
    """An entity as last committed."""

    key: str = Field(description="The entity's key.")
    state: Any = Field(default=None, description="Its state.")
    version: int = Field(description="How many calls changed it.")
    updated_at: float = Field(description="Unix time it last changed.")
    leased_by: str | None = Field(default=None, description="The process holding its lease.")


class EntityPage(Reply):
    """Entities of a type in key order."""

    entity: str = Field(description="The entity type.")
    entities: list[EntityState] = Field(description="The entities, by key.")
    next_after: str | None = Field(
        default=None, description="Pass as ?after= for the next page (null: no more)."
    )


class ListOptions(BaseModel):
    """Query parameters of ``GET /v1/entities/{type}``."""

    model_config = {"extra": "forbid"}

    after: str = Field(default="", max_length=MAX_ENTITY_KEY, description="List keys after it.")
    limit: int = Field(default=100, ge=1, le=MAX_LIST, description="At most this many.")


class EntityRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        types = path_param(
            "type", f"An entity type of the app: {WORKFLOW_ID_RULE}.",
            max_length=MAX_WORKFLOW_ID, choices=lambda: sorted(self.app.entity_types.names()),
        )  # fmt: skip
        key = path_param("key", "The entity's key: 1-256 characters.", max_length=MAX_ENTITY_KEY)
        handler = path_param(
            "handler", f"A handler of the type: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID
        )
        correlation = Param(
            "X-Correlation-Id", "header", "Follows the request through logs, queues and steps."
        )
        accepted = Answer(
            "Stored: a worker runs it (or the wait ended first)", RequestStatus, ("Location",)
        )
        return [
            Operation(
                "POST",
                "/v1/entities/{type}/{key}/{handler}",
                self.call,
                "Call an entity's handler (the body is its argument)",
                {
                    200: Answer("Answered: the handler's result", EntityCallResult),
                    202: accepted,
                    400: Answer(BAD_CALL),
                    404: Answer("No entity type or handler of that name"),
                    409: Answer("The handler raised: the call changed nothing"),
                    413: Answer("Body too large"),
                    422: Answer("Idempotency-Key reused with another request"),
                },
                (types, key, handler, *query_params(CallOptions), IDEMPOTENCY_KEY, correlation),
                Body("The handler's argument: any JSON value (none: null)"),
                description="An exclusive handler's call is stored before it is answered "
                "and runs once, one call at a time per key; a read-only handler runs at "
                "once on the committed state (200).",
            ),
            Operation(
                "GET",
                "/v1/entities/{type}/{key}",
                self.get,
                "An entity's committed state",
                {
                    200: Answer("Its state", EntityState),
                    400: Answer(BAD_CALL),
                    404: Answer("No entity type of that name, or no call to that key yet"),
                },
                (types, key),
            ),
            Operation(
                "GET",
                "/v1/entities/{type}",
                self.list,
                "Entities of a type, in key order",
                {
                    200: Answer("A page of entities", EntityPage),
                    400: Answer(BAD_CALL),
                    404: Answer("No entity type of that name"),
                },
                (types, *query_params(ListOptions)),
            ),
        ]

    async def call(self, request: Request) -> Response:
        entities = self.app.entities
        entity, handler = entities.types.target(
            request.path_params["type"], request.path_params["handler"]
        )
        key = check_entity_key(request.path_params["key"])
        options = parse(CallOptions, dict(request.query_params), "the query")
        idempotency = request.headers.get("idempotency-key")
        if idempotency is not None:
            check_idempotency_key(idempotency)
        raw, arg = await read_json(request, self.config.max_body_bytes, required=False)
        if handler.readonly:
            result = await entities.call(entity.name, key, handler.name, arg)
            return model_response(
                EntityCallResult(entity=entity.name, key=key, handler=handler.name, result=result)
            )
        sent = await entities.send_signal(
            entity.name, key, handler.name, arg, delay=options.delay, dedup_id=idempotency,
            fingerprint=_fingerprint(request, raw, options) if idempotency else None,
            dedup_window=self.config.idempotency_window,
            correlation=request.headers.get("x-correlation-id") or None,
        )  # fmt: skip
        if sent.duplicate and not sent.same_content:
            return error_response(
                422, "idempotency_key_reused",
                f"Idempotency-Key {idempotency!r} was used before with a different request",
            )  # fmt: skip
        if options.wait:
            call = asyncio.ensure_future(entities.call(
                entity.name, key, handler.name, arg, call_id=signal_call_id(sent.id)
            ))  # fmt: skip
            call.add_done_callback(_heard)
            try:
                result = await asyncio.wait_for(asyncio.shield(call), options.wait)
            except EntityCallFailed:
                raise  # the handler raised: 409 with its error
            except (TimeoutError, StatekeeperError):
                pass  # still running, or failed here (closing, the database): stored, 202
            else:
                return model_response(EntityCallResult(
                    entity=entity.name, key=key, handler=handler.name, result=result,
                    request_id=sent.id,
                ))  # fmt: skip
        return await self._accepted(sent.id, sent.duplicate)

    async def _accepted(self, id: str, repeat: bool) -> Response:
        location = f"/v1/requests/{id}"
        headers = {"Location": location}
        document: dict[str, Any] | None = None
        if repeat:
            headers["Idempotent-Replayed"] = "true"
            app = self.app
            document = await request_status(app.backend, app.namespace, id, app.sealer)
        document = document or {"id": id, "queue": ENTITY_CALLS, "status": "accepted"}
        status = RequestStatus.model_validate({**document, "status_url": location})
        return model_response(status, 202, headers)

    async def get(self, request: Request) -> Response:
        type = self._type(request)
        key = check_entity_key(request.path_params["key"])
        found = await self.app.entities.get(type, key)
        if found is None:
            raise EntityNotFound(f"entity {type}/{key} was never called", entity=type, key=key)
        return model_response(_state(found))

    async def list(self, request: Request) -> Response:
        type = self._type(request)
        page = parse(ListOptions, dict(request.query_params), "the query")
        found = await self.app.entities.list(type, after=page.after, limit=page.limit)
        following = found[-1].key if len(found) == page.limit else None
        return model_response(
            EntityPage(entity=type, entities=[_state(s) for s in found], next_after=following)
        )

    def _type(self, request: Request) -> str:
        return self.app.entity_types.find(request.path_params["type"]).name


def _state(found: EntitySnapshot) -> EntityState:
    return EntityState.model_validate(found.to_dict())


def _fingerprint(request: Request, raw: bytes, options: CallOptions) -> str:
    """What a repeated Idempotency-Key must match: the path, the body and the delay (not
    how long the client waits)."""
    digest = hashlib.sha256(request.url.path.encode() + b"\0" + raw)
    digest.update(json.dumps(options.delay).encode())
    return digest.hexdigest()


def _heard(call: asyncio.Future[Any]) -> None:
    """A call whose waiter left before its end: its outcome is the request's status."""
    if not call.cancelled():
        call.exception()
