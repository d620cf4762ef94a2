"""JSON responses, and the error shape: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import StatekeeperError

MEDIA_TYPE = "application/json"


def model_response(
    body: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``body`` as JSON, with the fields it was given (none filled in by defaults)."""
    return Response(body.model_dump_json(exclude_unset=True), status, headers, MEDIA_TYPE)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(data, status, headers=headers, media_type=MEDIA_TYPE)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def from_error(error: StatekeeperError) -> Response:
    return error_response(error.http_status, error.code, error.message)


async def answer_error(request: Request, exc: Exception) -> Response:
    """The exception handler of StatekeeperError: routes raise, this answers."""
    assert isinstance(exc, StatekeeperError)
    return from_error(exc)
