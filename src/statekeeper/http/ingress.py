"""Storage-first ingress: persist the request, answer 202 with a status URL, work later.

    POST /v1/queues/{queue}/messages   body: any JSON  ->  202, Location: /v1/requests/{id}

``Idempotency-Key`` (1-255 visible ASCII characters): a repeat returns the original
request without enqueuing again; the same key with another body (or options) is 422.
The body is strict UTF-8 JSON within the limits of ``statekeeper.codec``, stored as
received once checked (no model: any JSON value is a message).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.constants import MAX_DELAY_SECONDS
from statekeeper.http.body import read_json
from statekeeper.http.models import MessageOptions, RequestStatus
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
from statekeeper.identifiers import MAX_QUEUE_NAME, QUEUE_NAME_RULE, check_idempotency_key, shown
from statekeeper.queues.requests import request_status

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig
    from statekeeper.queues import Queue

PATH = "/v1/queues/{queue}/messages"


class Ingress:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self._queues: dict[str, Queue] = {}

    def operations(self) -> list[Operation]:
        queue = path_param(
            "queue", f"A queue of the app: {QUEUE_NAME_RULE}.",
            max_length=MAX_QUEUE_NAME, choices=self.app.queue_names,
        )  # fmt: skip
        correlation = Param(
            "X-Correlation-Id", "header", "Follows the request through logs, queues and steps."
        )
        accepted = Answer("Accepted: persisted, to be processed", RequestStatus, ("Location",))
        return [
            Operation(
                "POST",
                PATH,
                self.post_message,
                "Persist a message and answer at once; it is processed later",
                {
                    202: accepted,
                    400: Answer("Malformed JSON, parameter or Idempotency-Key"),
                    404: Answer("Unknown queue"),
                    413: Answer("Body too large"),
                    422: Answer("Idempotency-Key reused with another request"),
                },
                (queue, *query_params(MessageOptions), IDEMPOTENCY_KEY, correlation),
                Body("The message: any JSON value", required=True),
            )
        ]

    async def post_message(self, request: Request) -> Response:
        name = request.path_params["queue"]
        queue = self._queue(name)
        if queue is None:
            return error_response(404, "unknown_queue", f"there is no queue {name!r}")
        options: dict[str, Any] = {}
        if request.scope.get("query_string"):
            options, rejected = _options(request)
            if rejected is not None:
                return rejected
        key = request.headers.get("idempotency-key")
        if key is not None:
            check_idempotency_key(key)
        # Stored as received once checked: strict UTF-8 JSON within every limit.
        raw, _ = await read_json(request, self.config.max_body_bytes, required=True)
        message = queue.new_encoded_message(
            raw,
            delay=options.get("delay"),
            group=options.get("group"),
            dedup_id=key,
            dedup_window=self.config.idempotency_window,
            fingerprint=_fingerprint(name, raw, options) if key else None,
            reply_to=options.get("reply_to"),
            correlation=request.headers.get("x-correlation-id") or None,
        )
        sent = await queue.send_message(message)
        if sent.duplicate and not sent.same_content:
            return error_response(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was used before with a different request",
            )
        location = f"/v1/requests/{sent.id}"
        if not sent.duplicate:
            accepted = RequestStatus(id=sent.id, queue=name, status="accepted", status_url=location)
            return model_response(accepted, 202, {"Location": location})
        app = self.app
        document = await request_status(app.backend, app.namespace, sent.id, app.sealer)
        document = document or {"id": sent.id, "queue": name, "status": "accepted"}
        replayed = RequestStatus.model_validate({**document, "status_url": location})
        return model_response(replayed, 202, {"Location": location, "Idempotent-Replayed": "true"})

    def _queue(self, name: str) -> Queue | None:
        """The app's queue ``name``, if requests may be posted to it."""
        queue = self._queues.get(name)
        if queue is None and self.app.has_queue(name):
            queue = self._queues[name] = self.app.queue(name)
        return queue


def _options(request: Request) -> tuple[dict[str, Any], Response | None]:
    """The query's options, or the 400 to answer."""
    given = dict(request.query_params)
    try:
        parsed = MessageOptions.model_validate(given)
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        unknown = sorted(str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden")
        if unknown:
            return {}, _invalid(f"unknown parameter {unknown[0]!r}")
        return {}, _invalid(
            f"invalid delay {shown(given.get('delay'))}: delay is a number of seconds "
            f"from 0 to {MAX_DELAY_SECONDS} (a year)"
        )
    options: dict[str, Any] = {}
    if parsed.delay is not None:
        options["delay"] = parsed.delay
    if parsed.group is not None:
        options["group"] = parsed.group
    reply_to: dict[str, str] = {}
    if parsed.reply_queue is not None:
        reply_to["queue"] = parsed.reply_queue
    if parsed.callback_url is not None:
        reply_to["url"] = parsed.callback_url
    if reply_to:
        options["reply_to"] = reply_to
    return options, None


def _invalid(message: str) -> Response:
    return error_response(400, "invalid_parameter", message)


def _fingerprint(queue: str, raw: bytes, options: dict[str, Any]) -> str:
    digest = hashlib.sha256(queue.encode() + b"\0" + raw)
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()
