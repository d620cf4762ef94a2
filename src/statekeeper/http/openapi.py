"""The OpenAPI document of the HTTP API, served at /openapi.json.

Built from the same operations the server routes (``http/operations.py``): paths,
parameters, bodies and answers, with the JSON Schemas of the pydantic models in
``http/models.py`` as components. Routes that need no token (``http/auth.py``) say
so (``security: []``) and the others document the 401 the middleware answers.
Path parameters naming the app's queues and workflows list them as an enum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from statekeeper import __version__
from statekeeper.http.auth import is_open
from statekeeper.http.models import ApiDocument, ErrorBody
from statekeeper.http.operations import Answer, Operation, Param
from statekeeper.http.responses import json_response

PATH = "/openapi.json"
TITLE = "statekeeper"
REF = "#/components/schemas/{model}"
UNAUTHORIZED = Answer("Missing or wrong bearer token")


def openapi_operation(operations: Callable[[], Sequence[Operation]]) -> Operation:
    """The route serving the document of ``operations()`` (which includes this one)."""

    async def serve(request: Request) -> Response:
        return json_response(document(operations()))

    return Operation(
        "GET",
        PATH,
        serve,
        "This document: every route of the API",
        {200: Answer("The OpenAPI 3.1 document", ApiDocument)},
    )


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    refs, schemas = _schemas(_models(operations))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "awsSigV4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4 (AWS4-HMAC-SHA256), by a key "
                    "of STATEKEEPER_AWS_CREDENTIALS",
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


Models = tuple[tuple[type[BaseModel], str], ...]


def _models(operations: Sequence[Operation]) -> Models:
    """Every model the operations use, with the JSON Schema mode it is shown in."""
    found: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for op in operations:
        if op.body is not None and op.body.model is not None:
            found[(op.body.model, "validation")] = None
        for answer in op.answers.values():
            if answer.model is not None:
                found[(answer.model, "serialization")] = None
    return tuple(found)


Refs = dict[tuple[Any, str], Any]


@functools.cache
def _schemas(models: Models) -> tuple[Refs, dict[str, Any]]:
    """The references to the models and the component schemas (computed once)."""
    chosen = [(model, mode) for model, mode in models]
    refs, defs = models_json_schema(chosen, ref_template=REF)  # type: ignore[arg-type]
    return {(model, mode): ref for (model, mode), ref in refs.items()}, defs.get("$defs", {})


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    answers = dict(op.answers)
    if not is_open(op.path):
        answers.setdefault(401, UNAUTHORIZED)
    described: dict[str, Any] = {"summary": op.summary}
    if op.description:
        described["description"] = op.description
    if is_open(op.path):
        described["security"] = [{name: []} for name in op.security]
    if op.params:
        described["parameters"] = [_param(param) for param in op.params]
    if op.body is not None:
        schema = {} if op.body.model is None else refs[(op.body.model, "validation")]
        if op.body.media_type != "application/json":
            schema = {"type": "string", "format": "binary"}
        described["requestBody"] = {
            "description": op.body.description,
            "required": op.body.required,
            "content": {op.body.media_type: {"schema": schema}},
        }
    described["responses"] = {
        str(status): _answer(answer, refs) for status, answer in sorted(answers.items())
    }
    return described


def _param(param: Param) -> dict[str, Any]:
    schema = dict(param.schema)
    if param.choices is not None:
        names = param.choices()
        if names:
            schema = {"type": "string", "enum": names}
    described: dict[str, Any] = {"name": param.name, "in": param.where, "schema": schema}
    if param.description:
        described["description"] = param.description
    if param.where == "path":
        described["required"] = True
    return described


def _answer(answer: Answer, refs: Refs) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        described["headers"] = {name: {"schema": {"type": "string"}} for name in answer.headers}
    if answer.model is not None:
        schema = refs[(answer.model, "serialization")]
        described["content"] = {"application/json": {"schema": schema}}
    elif answer.media_type is not None:
        described["content"] = {answer.media_type: {"schema": {"type": "string"}}}
    return described
