"""JSON responses and errors of the HTTP API: every error is ``{"error": {code, message}}``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from statekeeper.errors import StatekeeperError


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(data, status, headers=headers, media_type="application/json")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def from_error(error: StatekeeperError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    return json_response({"error": body}, error.http_status)
