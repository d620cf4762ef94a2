"""Storage-first ingress: persist the request, answer 202 with a status URL, work later.

    POST /v1/queues/{queue}/messages   body: any JSON  ->  202, Location: /v1/requests/{id}
    GET  /v1/requests/{id}             ->  accepted | processing | failed |
                                           dead-lettered | succeeded (with result)

``Idempotency-Key`` (1-255 visible ASCII characters): a repeat returns the original
request without enqueuing again; the same key with another body (or options) is 422.
The body is strict UTF-8 JSON within the limits of ``statekeeper.codec``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.constants import MAX_DELAY_SECONDS
from statekeeper.errors import StatekeeperError
from statekeeper.http.body import read_json
from statekeeper.http.responses import error_response, from_error, json_response
from statekeeper.identifiers import check_idempotency_key, check_message_id, shown
from statekeeper.queues.requests import request_status

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig
    from statekeeper.queues import Queue


class Ingress:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self._token = None if config.token is None else config.token.encode()
        self._queues: dict[str, Queue] = {}

    def authorized(self, request: Request) -> Response | None:
        """None when the request may proceed, else the 401 to answer."""
        if self._token is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        message = "missing bearer token" if not header else "invalid bearer token"
        return error_response(
            401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="statekeeper"'}
        )

    async def post_message(self, request: Request) -> Response:
        denied = self.authorized(request)
        if denied is not None:
            return denied
        name = request.path_params["queue"]
        queue = self._queue(name)
        if queue is None:
            return error_response(404, "unknown_queue", f"there is no queue {name!r}")
        options: dict[str, Any] = {}
        if request.scope.get("query_string"):
            options, rejected = self._options(request)
            if rejected is not None:
                return rejected
        key = request.headers.get("idempotency-key")
        try:
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
        except StatekeeperError as error:
            return from_error(error)
        if sent.duplicate and not sent.same_content:
            return error_response(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was used before with a different request",
            )
        location = f"/v1/requests/{sent.id}"
        if not sent.duplicate:
            return json_response(
                {"id": sent.id, "queue": name, "status": "accepted", "status_url": location},
                202,
                {"Location": location},
            )
        document = await request_status(
            self.app.backend, self.app.namespace, sent.id, self.app.sealer
        )
        document = document or {"id": sent.id, "queue": name, "status": "accepted"}
        return json_response(
            {**document, "status_url": location},
            202,
            {"Location": location, "Idempotent-Replayed": "true"},
        )

    def _queue(self, name: str) -> Queue | None:
        """The app's queue ``name``, if requests may be posted to it."""
        queue = self._queues.get(name)
        if queue is None and self.app.has_queue(name):
            queue = self._queues[name] = self.app.queue(name)
        return queue

    async def get_request(self, request: Request) -> Response:
        denied = self.authorized(request)
        if denied is not None:
            return denied
        request_id = request.path_params["id"]
        try:
            check_message_id(request_id)
        except StatekeeperError:
            return error_response(404, "not_found", "there is no such request")
        try:
            document = await request_status(
                self.app.backend, self.app.namespace, request_id, self.app.sealer
            )
        except StatekeeperError as error:
            return from_error(error)
        if document is None:
            return error_response(404, "not_found", f"there is no request {request_id!r}")
        return json_response(document)

    def _options(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        params = request.query_params
        unknown = set(params) - {"delay", "group", "callback_url", "reply_queue"}
        if unknown:
            name = sorted(unknown)[0]
            return {}, error_response(400, "invalid_parameter", f"unknown parameter {name!r}")
        options: dict[str, Any] = {}
        if "delay" in params:
            try:
                delay = float(params["delay"])
            except ValueError:
                delay = math.nan
            if not (math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS):
                return {}, error_response(
                    400,
                    "invalid_parameter",
                    f"invalid delay {shown(params['delay'])}: delay is a number of seconds "
                    f"from 0 to {MAX_DELAY_SECONDS} (a year)",
                )
            options["delay"] = delay
        if "group" in params:
            options["group"] = params["group"]
        reply_to: dict[str, str] = {}
        if "reply_queue" in params:
            reply_to["queue"] = params["reply_queue"]
        if "callback_url" in params:
            reply_to["url"] = params["callback_url"]
        if reply_to:
            options["reply_to"] = reply_to
        return options, None


def _fingerprint(queue: str, raw: bytes, options: dict[str, Any]) -> str:
    digest = hashlib.sha256(queue.encode() + b"\0" + raw)
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()
