"""Callback tokens: unguessable, HMAC-signed names of one workflow's one wait.

``<payload>.<signature>``: the payload (URL-safe base64 of JSON) names the namespace,
the workflow, the event it waits for and when the token expires; the signature is
HMAC-SHA256 over the payload with the app's secret. A forged token fails the
signature; an expired one fails its expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from statekeeper.errors import NotFound, StatekeeperError

MAX_TOKEN = 4096
# URL-safe base64 without padding, a dot, 64 hex digits of HMAC-SHA256.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[0-9a-f]{64}")


class InvalidToken(StatekeeperError):
    """The callback token is not one this service issued."""

    code = "invalid_callback_token"
    http_status = 401
    exit_code = 4


class ExpiredToken(NotFound):
    """The callback token has expired."""

    code = "callback_expired"


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    namespace: str
    workflow_id: str
    event: str
    expires_at: float | None


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, target: CallbackTarget) -> str:
    document = [target.namespace, target.workflow_id, target.event, target.expires_at]
    payload = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: str, token: str, now: float) -> CallbackTarget:
    """The target of a token; InvalidToken if forged or malformed (any text: tokens
    arrive in URLs), ExpiredToken if expired."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN or _TOKEN.fullmatch(token) is None:
        raise InvalidToken()
    payload, _, signature = token.partition(".")
    # Both sides are ASCII here; compare bytes, as compare_digest refuses non-ASCII text.
    if not hmac.compare_digest(_signature(secret, payload).encode(), signature.encode()):
        raise InvalidToken()
    try:
        padded = payload + "=" * (-len(payload) % 4)
        namespace, workflow_id, event, expires_at = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError):
        raise InvalidToken() from None
    if expires_at is not None and now >= float(expires_at):
        raise ExpiredToken(f"the callback expired at {expires_at}")
    return CallbackTarget(str(namespace), str(workflow_id), str(event), expires_at)
