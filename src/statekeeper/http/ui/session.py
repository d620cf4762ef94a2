"""The dashboard's sign-in: a session cookie, and a CSRF token for every form.

Signing in takes the API token once (a form, compared in constant time) and answers a
cookie that is not the token: ``<expiry>.<nonce>.<HMAC-SHA256>`` under a key derived
from the token (rotating the token ends every session; the nonce makes each session its
own), ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Path=/ui`` and, over HTTPS,
``Secure``; it lasts ``SESSION_SECONDS``. Every form that changes something carries a
CSRF token derived from the session (an HMAC of it), checked in constant time before
anything is done. Signing out ends the session in this process (its nonce is refused
until the session would have expired) and clears the browser's cookie. Without a token
(``serve --dev``) the pages need no sign-in, and the forms carry the dev server's own
CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "sk_ui"
SESSION_SECONDS = 8 * 3600
MAX_ENDED = 10_000  # sessions signed out and not yet expired, remembered per process


class Sessions:
    """Sessions signed with a key derived from ``token`` (None: dev mode, no sign-in)."""

    def __init__(self, token: str | None, dev_key: bytes) -> None:
        self.token = token
        seed = token.encode() if token else dev_key
        self._key = hmac.new(seed, b"statekeeper dashboard sessions", hashlib.sha256).digest()
        self._ended: dict[str, int] = {}  # nonce: expiry, of sessions signed out

    @property
    def open(self) -> bool:
        """Whether the pages are served without signing in (dev mode)."""
        return self.token is None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def new(self, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        signed = f"{expiry}.{secrets.token_hex(16)}"
        return f"{signed}.{self._sign(signed)}"

    def valid(self, request: Request) -> str | None:
        """The request's session cookie when it is genuine, not expired and not signed
        out (always the dev session in dev mode); None otherwise."""
        if self.open:
            return "dev"
        value = request.cookies.get(COOKIE, "")
        signed, _, signature = value.rpartition(".")
        expiry, _, nonce = signed.partition(".")
        if not expiry.isdigit() or not _same(signature, self._sign(signed)):
            return None
        if int(expiry) <= time.time() or nonce in self._ended:
            return None
        return value

    def end(self, session: str) -> None:
        """Refuse ``session`` from now on (signing out), in this process."""
        now = time.time()
        if len(self._ended) >= MAX_ENDED:  # forget those expired anyway, then the oldest
            self._ended = {n: e for n, e in self._ended.items() if e > now}
            while len(self._ended) >= MAX_ENDED:
                del self._ended[next(iter(self._ended))]
        expiry, _, rest = session.partition(".")
        self._ended[rest.partition(".")[0]] = int(expiry)

    def csrf(self, session: str) -> str:
        return self._sign("csrf:" + session)

    def csrf_matches(self, session: str, given: str) -> bool:
        return _same(given, self.csrf(session))

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


def _same(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in constant time (any text: a cookie or a form
    field may hold characters that are not ASCII)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
