"""Idempotency records, for both adapters (their SQL differs by placeholders only)."""

from __future__ import annotations

from statekeeper.storage.rows import IdempotencyRecord
from statekeeper.storage.runner import Operations


class IdempotencyOps(Operations):
    """``contracts.IdempotencyStorage``: the block's operations over an adapter's statements."""

    async def claim(
        self,
        namespace: str,
        key: str,
        *,
        fingerprint: str,
        owner: str,
        lease_expires_at: float,
        expires_at: float,
        now: float,
    ) -> bool:
        """Take the key (new, expired, or running with a lapsed lease); True if taken."""
        statement = self._bind(
            "idempotency_claim", namespace=namespace, key=key, fingerprint=fingerprint,
            owner=owner, lease_expires_at=lease_expires_at, expires_at=expires_at, now=now,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot claim key {key!r}", "found"))

    async def get(self, namespace: str, key: str, now: float) -> IdempotencyRecord | None:
        statement = self._bind("idempotency_get", namespace=namespace, key=key, now=now)
        row = await self._db.run_read(statement, f"cannot read key {key!r}", "row")
        return None if row is None else IdempotencyRecord(*row)

    async def complete(
        self, namespace: str, key: str, owner: str, result: bytes, expires_at: float
    ) -> bool:
        statement = self._bind(
            "idempotency_complete", namespace=namespace, key=key, owner=owner, result=result,
            expires_at=expires_at,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot complete key {key!r}", "found"))

    async def extend(self, namespace: str, key: str, owner: str, lease_expires_at: float) -> bool:
        statement = self._bind(
            "idempotency_extend", namespace=namespace, key=key, owner=owner,
            lease_expires_at=lease_expires_at,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot extend key {key!r}", "found"))

    async def abandon(self, namespace: str, key: str, owner: str) -> bool:
        statement = self._bind("idempotency_abandon", namespace=namespace, key=key, owner=owner)
        return bool(await self._db.run_write(statement, f"cannot abandon key {key!r}", "found"))

    async def forget(self, now: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired records; how many."""
        statement = self._bind("idempotency_forget", now=now, limit=limit)
        what = "cannot forget idempotency keys"
        return int(await self._db.run_write(statement, what, "rowcount"))
