"""What the state store hands back: items and pages of items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class Item:
    """One stored value with its ETag and expiry (Unix seconds, or None).

    Not frozen: a frozen dataclass costs a microsecond more to build, on every read.
    """

    key: str
    value: Any
    etag: str
    expires_at: float | None = None

    @property
    def expires(self) -> datetime | None:
        """The expiry as an aware UTC datetime."""
        if self.expires_at is None:
            return None
        return datetime.fromtimestamp(self.expires_at, UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "etag": self.etag,
            "expires_at": self.expires.isoformat() if self.expires else None,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored item as a listing shows it, its value unread: ``stored_bytes`` is what
    its row holds (the value as stored: encoded, and sealed when encrypted; for a value
    stored ``out_of_line``, only the reference to its blob)."""

    key: str
    etag: str
    expires_at: float | None
    stored_bytes: int
    out_of_line: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass ``cursor`` back to get the next, None when done."""

    items: list[Item]
    cursor: str | None
