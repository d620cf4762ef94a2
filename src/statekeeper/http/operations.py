"""A route of the HTTP API and its description, declared once.

Each route module (ingress, request status, workflows, callbacks, health, openapi)
lists its routes as ``Operation``s: the method, the path, the handler, and what it
takes and answers, with models from ``http/models.py``. The server turns them into
Starlette routes and the OpenAPI document describes the same list, so no route is
served undocumented or documented unserved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.http.models import ErrorBody

Endpoint = Callable[[Request], Awaitable[Response]]
Where = Literal["path", "query", "header"]


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter. ``choices``: the values the app knows (its
    queues, its workflows), listed as an enum when the document is served."""

    name: str
    where: Where
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    choices: Callable[[], list[str]] | None = None


@dataclass(frozen=True)
class Answer:
    """One status a route answers with: what it means, its body model (None: no body)
    and the headers it sets."""

    description: str
    model: type[BaseModel] | None = ErrorBody
    headers: tuple[str, ...] = ()
    # A body that is not JSON: its media type, described as text (the metrics page).
    media_type: str | None = None


@dataclass(frozen=True)
class Body:
    """The request body: ``model`` None means any JSON value (checked strictly)."""

    description: str
    model: type[BaseModel] | None = None
    required: bool = False
    # Not JSON: the body's media type, described as bytes (an upload's file).
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    answers: Mapping[int, Answer]
    params: tuple[Param, ...] = ()
    body: Body | None = None
    description: str = ""
    # The credentials of a route that checks its own (``http/auth.py`` lists it open):
    # security scheme names of the OpenAPI document, any one of which suffices.
    security: tuple[str, ...] = ()


def path_param(
    name: str, description: str, *, max_length: int | None = None,
    choices: Callable[[], list[str]] | None = None,
) -> Param:  # fmt: skip
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if max_length is not None:
        schema["maxLength"] = max_length
    return Param(name, "path", description, schema, choices)


def query_params(model: type[BaseModel]) -> tuple[Param, ...]:
    """One query parameter per field of ``model`` (its schema without the null branch:
    a parameter is absent or a value)."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        description = prop.get("description", "")
        prop = {k: v for k, v in prop.items() if k not in ("description", "title", "default")}
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            prop = {**branches[0], **prop}
        params.append(Param(name, "query", description, prop))
    return tuple(params)


IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    "1-255 visible ASCII characters: a repeat with the same request answers the first "
    "one's outcome; with another request it is 422.",
    {"type": "string", "minLength": 1, "maxLength": 255},
)
