"""The OpenAPI document of the HTTP API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from statekeeper import __version__

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_STATUS = {
    "type": "object",
    "required": ["id", "queue", "status"],
    "properties": {
        "id": {"type": "string"},
        "queue": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["accepted", "processing", "failed", "dead-lettered", "succeeded"],
        },
        "attempts": {"type": "integer"},
        "status_url": {"type": "string"},
        "result": {},
        "error": {"type": ["string", "null"]},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def document(queue_names: list[str]) -> dict[str, Any]:
    queue_param = {
        "name": "queue",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": queue_names} if queue_names else {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "statekeeper", "version": __version__},
        "components": {
            "schemas": {"Error": _ERROR, "RequestStatus": _STATUS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/queues/{queue}/messages": {
                "post": {
                    "summary": "Persist a message and answer at once; it is processed later",
                    "parameters": [
                        queue_param,
                        {
                            "name": "delay",
                            "in": "query",
                            "schema": {"type": "number", "minimum": 0},
                        },
                        {"name": "group", "in": "query", "schema": {"type": "string"}},
                        {"name": "reply_queue", "in": "query", "schema": {"type": "string"}},
                        {"name": "callback_url", "in": "query", "schema": {"type": "string"}},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {}}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted: persisted, to be processed",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/RequestStatus"}
                                }
                            },
                        },
                        "400": _error("Malformed JSON or parameters"),
                        "401": _error("Missing or wrong bearer token"),
                        "404": _error("Unknown queue"),
                        "413": _error("Body too large"),
                        "422": _error("Idempotency-Key reused with another request"),
                    },
                }
            },
            "/v1/requests/{id}": {
                "get": {
                    "summary": "Where a request stands",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The request's status",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/RequestStatus"}
                                }
                            },
                        },
                        "401": _error("Missing or wrong bearer token"),
                        "404": _error("No such request"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability",
                    "security": [],
                    "responses": {
                        "200": {"description": "Healthy"},
                        "503": _error("The database cannot be reached"),
                    },
                }
            },
        },
    }
