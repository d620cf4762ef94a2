"""The dashboard's sign-in: a session cookie, and a CSRF token for every form.

Signing in takes the API token once (a form, compared in constant time) and answers a
cookie that is not the token: ``<expiry>.<HMAC-SHA256>`` under a key derived from the
token (rotating the token ends every session), ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Path=/ui`` and, over HTTPS,
``Secure``; it lasts ``SESSION_SECONDS``. Every form that changes something carries a
CSRF token derived from the session (an HMAC of it), checked in constant time before
anything is done. Without a token (``serve --dev``) the pages need no sign-in, and the
forms carry the dev server's own CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "sk_ui"
SESSION_SECONDS = 8 * 3600


class Sessions:
    """Sessions signed with a key derived from ``token`` (None: dev mode, no sign-in)."""

    def __init__(self, token: str | None, dev_key: bytes) -> None:
        self.token = token
        seed = token.encode() if token else dev_key
        self._key = hmac.new(seed, b"statekeeper dashboard sessions", hashlib.sha256).digest()

    @property
    def open(self) -> bool:
        """Whether the pages are served without signing in (dev mode)."""
        return self.token is None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def new(self, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        return f"{expiry}.{self._sign(str(expiry))}"

    def valid(self, request: Request) -> str | None:
        """The request's session cookie when it is genuine and not expired (always the
        dev session in dev mode); None otherwise."""
        if self.open:
            return "dev"
        value = request.cookies.get(COOKIE, "")
        expiry, _, signature = value.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(signature, self._sign(expiry)):
            return None
        return value if int(expiry) > time.time() else None

    def csrf(self, session: str) -> str:
        return self._sign("csrf:" + session)

    def csrf_matches(self, session: str, given: str) -> bool:
        return hmac.compare_digest(given, self.csrf(session))

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(
            COOKIE, value, max_age=SESSION_SECONDS, path="/ui", httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE, path="/ui", httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
