"""HTTP settings: authentication, limits, callback signing."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field

from statekeeper.constants import ENV_API_TOKEN, ENV_DEV, ENV_MAX_STREAMS, ENV_UPLOAD_SECRET
from statekeeper.errors import ConfigurationError

_VISIBLE_ASCII = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class HttpConfig:
    """``token``: the bearer token every request but those of the open routes
    (``http/auth.py``) must carry (16 or more visible ASCII characters; surrounding
    whitespace is refused, not stripped); only ``dev=True`` (an explicit choice)
    serves without one. ``max_body_bytes``: larger requests get 413.
    ``idempotency_window``: how long an Idempotency-Key is remembered.
    ``max_streams``: live event streams open at once in the process (503 past it).
    ``upload_secret``: signs upload and download URLs (``upload_key``)."""

    token: str | None = None
    dev: bool = False
    max_body_bytes: int = 256 * 1024
    idempotency_window: float = 24 * 3600.0
    max_streams: int = 1000
    upload_secret: str | None = None
    # A dev server without a token or an upload secret signs with a key of its own.
    _dev_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def upload_key(self) -> bytes:
        """The key of upload and download URLs' signatures: from the upload secret,
        else derived from the API token (every process serving the API shares it), else
        (dev mode) this process's own."""
        if self.upload_secret:
            return hashlib.sha256(b"statekeeper uploads\n" + self.upload_secret.encode()).digest()
        if self.token:
            return hmac.new(self.token.encode(), b"statekeeper uploads", hashlib.sha256).digest()
        return self._dev_key

    def __post_init__(self) -> None:
        if self.upload_secret is not None and len(self.upload_secret) < 32:
            raise ConfigurationError(
                f"the upload secret ({ENV_UPLOAD_SECRET}) must be at least 32 characters long"
            )
        if (
            isinstance(self.max_streams, bool)
            or not isinstance(self.max_streams, int)
            or (not 1 <= self.max_streams <= 1_000_000)
        ):
            raise ConfigurationError(
                f"max_streams ({ENV_MAX_STREAMS}) must be 1 to 1000000, got {self.max_streams!r}"
            )
        if not self.dev and not self.token:
            raise ConfigurationError(
                f"the HTTP API needs a bearer token ({ENV_API_TOKEN}); "
                f"serve without one only in dev mode (--dev or {ENV_DEV}=1)"
            )
        if self.token is None:
            return
        if self.token != self.token.strip():
            raise ConfigurationError(
                f"the API token ({ENV_API_TOKEN}) has leading or trailing whitespace, so no "
                "Authorization header could match it; remove the whitespace"
            )
        if not _VISIBLE_ASCII.fullmatch(self.token):
            raise ConfigurationError(
                f"the API token ({ENV_API_TOKEN}) must be visible ASCII characters ('!' to '~'), "
                "as an Authorization header carries them"
            )
        if len(self.token) < 16:
            raise ConfigurationError("the API token must be at least 16 characters long")

    @classmethod
    def from_env(cls, *, dev: bool | None = None, token: str | None = None) -> HttpConfig:
        chosen_dev = dev if dev is not None else os.environ.get(ENV_DEV, "") in ("1", "true")
        streams = os.environ.get(ENV_MAX_STREAMS, "").strip() or "1000"
        if not streams.isascii() or not streams.isdigit():
            raise ConfigurationError(f"{ENV_MAX_STREAMS} must be a whole number, got {streams!r}")
        return cls(
            token=token or os.environ.get(ENV_API_TOKEN) or None, dev=chosen_dev,
            max_streams=int(streams), upload_secret=os.environ.get(ENV_UPLOAD_SECRET) or None,
        )  # fmt: skip
