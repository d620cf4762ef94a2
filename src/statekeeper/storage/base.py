"""The Backend protocol: one method per domain operation.

The layers above speak only this interface; they never import an adapter or a
driver. Values arrive here already encoded (JSON bytes, or sealed ciphertext with
its ``key_id``); times are Unix seconds from the app's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from statekeeper.storage.queries import Dialect


class StoredItem(NamedTuple):
    """One state row as stored (a named tuple: built for every row read, so cheap)."""

    key: str
    value: bytes
    etag: str
    expires_at: float | None
    key_id: str | None


@dataclass(frozen=True, slots=True)
class PutOp:
    """Write ``value`` under ``key`` with the new ``etag``, if its condition holds.

    ``if_match``: the current ETag must equal it. ``only_if_absent``: the key must
    not exist (an expired item counts as absent). Neither: last write wins.
    """

    key: str
    value: bytes
    etag: str
    expires_at: float | None = None
    key_id: str | None = None
    if_match: str | None = None
    only_if_absent: bool = False
    kind: Literal["put"] = "put"


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete ``key``; with ``if_match``, only while its ETag equals it."""

    key: str
    if_match: str | None = None
    kind: Literal["delete"] = "delete"


WriteOp = PutOp | DeleteOp


class Backend(Protocol):
    """What every storage adapter provides."""

    dialect: Dialect

    async def open(self) -> None:
        """Connect, and bring the schema up to date under a lock."""

    async def close(self) -> None:
        """Release every connection and thread."""

    async def state_get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        """The visible item under ``key``, or None."""

    async def state_get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        """The visible items among ``keys``; missing keys are simply absent."""

    async def state_list(
        self,
        namespace: str,
        *,
        after: str,
        low: str,
        high: str | None,
        limit: int,
        now: float,
    ) -> list[StoredItem]:
        """Visible items with ``low <= key < high`` and ``key > after``, in key order."""

    async def state_put(self, namespace: str, op: PutOp, now: float) -> None:
        """Apply one put; raise ConflictError or AlreadyExists when its condition fails."""

    async def state_delete(
        self, namespace: str, key: str, if_match: str | None, now: float
    ) -> bool:
        """Delete one key; True when a visible item was deleted.

        Raises ConflictError when ``if_match`` is given and does not hold.
        """

    async def state_apply(self, namespace: str, ops: Sequence[WriteOp], now: float) -> list[bool]:
        """Apply every op in one transaction, all or nothing.

        Returns, per op, True (put applied, or delete removed a visible item) or
        False (unconditional delete of an absent key). Raises
        TransactionConflict naming the first op whose condition failed.
        """

    async def state_reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        """Replace the stored bytes of an unchanged item (same ETag); False if it changed."""

    async def state_purge_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired rows of any namespace; how many were deleted."""
