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


_WORKFLOW = {
    "type": "object",
    "required": ["id", "name", "status"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {
            "type": "string",
            "enum": [
                "pending", "running", "sleeping", "waiting",
                "succeeded", "failed", "cancelled", "compensated",
            ],
        },
        "output": {},
        "error": {"type": ["string", "null"]},
        "created_at": {"type": "number"},
        "updated_at": {"type": "number"},
        "status_url": {"type": "string"},
    },
}  # fmt: skip
_WORKFLOW_REF = {"$ref": "#/components/schemas/Workflow"}
_UNAUTHORIZED = "Missing or wrong bearer token"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {}}}}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _named(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values} if values else {"type": "string"}


_ANY_BODY = {"required": False, "content": {"application/json": {"schema": {}}}}


def document(queue_names: list[str], workflow_names: list[str] | None = None) -> dict[str, Any]:
    """Every route of the API; path parameters list the app's queues and workflows."""
    queue_param = _path("queue", _named(queue_names))
    flow = _path("name", _named(workflow_names or []))
    workflow_id = _path("id")
    return {
        "openapi": "3.1.0",
        "info": {"title": "statekeeper", "version": __version__},
        "components": {
            "schemas": {"Error": _ERROR, "RequestStatus": _STATUS, "Workflow": _WORKFLOW},
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
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("Unknown queue"),
                        "413": _error("Body too large"),
                        "422": _error("Idempotency-Key reused with another request"),
                    },
                }
            },
            "/v1/requests/{id}": {
                "get": {
                    "summary": "Where a request stands",
                    "parameters": [_path("id")],
                    "responses": {
                        "200": {
                            "description": "The request's status",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/RequestStatus"}
                                }
                            },
                        },
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("No such request"),
                    },
                }
            },
            "/v1/workflows/{name}": {
                "post": {
                    "summary": "Start a workflow with the body as its input (the id is idempotent)",
                    "parameters": [
                        flow,
                        {"name": "id", "in": "query", "schema": {"type": "string"}},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": _ANY_BODY,
                    "responses": {
                        "202": {
                            **_json("Started (or already started with this id)", _WORKFLOW_REF),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "400": _error("Malformed JSON, id, Idempotency-Key or name"),
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("Unknown workflow"),
                        "413": _error("Body too large"),
                        "422": _error("Id or Idempotency-Key reused with another name or input"),
                    },
                }
            },
            "/v1/workflows/{name}/{id}": {
                "get": {
                    "summary": "A workflow's status and output",
                    "parameters": [flow, workflow_id],
                    "responses": {
                        "200": _json("The workflow", _WORKFLOW_REF),
                        "400": _error("Malformed id or name"),
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("No workflow of that name and id"),
                    },
                }
            },
            "/v1/workflows/{name}/{id}/events/{event}": {
                "post": {
                    "summary": "Deliver an event (the body is its data) to a workflow, once",
                    "parameters": [flow, workflow_id, _path("event")],
                    "requestBody": _ANY_BODY,
                    "responses": {
                        "202": _json("Delivered"),
                        "400": _error("Malformed JSON, id, name or event"),
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("No workflow of that name and id"),
                        "409": _error("The event was delivered before, or the workflow ended"),
                        "413": _error("Body too large"),
                    },
                }
            },
            "/v1/workflows/{name}/{id}/cancel": {
                "post": {
                    "summary": "Ask a workflow to stop (compensating its saga)",
                    "parameters": [flow, workflow_id],
                    "responses": {
                        "202": _json("Cancel requested"),
                        "400": _error("Malformed id or name"),
                        "401": _error(_UNAUTHORIZED),
                        "404": _error("No workflow of that name and id"),
                        "409": _error("The workflow has finished"),
                    },
                }
            },
            "/v1/callbacks/{token}": {
                "post": {
                    "summary": "Answer a workflow's callback; the signed token is the credential",
                    "security": [],
                    "parameters": [_path("token")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {
                                        "status": {
                                            "type": "string",
                                            "enum": ["success", "failure", "heartbeat"],
                                        },
                                        "data": {},
                                        "error": {},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Accepted"),
                        "400": _error("Malformed JSON or answer"),
                        "401": _error("Forged or malformed token"),
                        "404": _error("Expired token, or callbacks are not enabled"),
                        "409": _error("Answered before"),
                        "413": _error("Body too large"),
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
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json("The OpenAPI document")},
                }
            },
        },
    }
