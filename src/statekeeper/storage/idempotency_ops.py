"""Idempotency records, for both adapters (their SQL differs by placeholders only)."""

from __future__ import annotations

from typing import NamedTuple

from statekeeper.storage.runner import StatementRunner


class IdempotencyRecord(NamedTuple):
    fingerprint: str
    state: str  # running or done
    owner: str | None
    lease_expires_at: float | None
    result: bytes | None
    expires_at: float


class IdempotencyOps(StatementRunner):
    """Mixed into both backends."""

    async def idempotency_claim(
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
        return bool(await self.run_write(statement, f"cannot claim key {key!r}", "found"))

    async def idempotency_get(
        self, namespace: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        statement = self._bind("idempotency_get", namespace=namespace, key=key, now=now)
        row = await self.run_read(statement, f"cannot read key {key!r}", "row")
        return None if row is None else IdempotencyRecord(*row)

    async def idempotency_complete(
        self, namespace: str, key: str, owner: str, result: bytes, expires_at: float
    ) -> bool:
        statement = self._bind(
            "idempotency_complete", namespace=namespace, key=key, owner=owner, result=result,
            expires_at=expires_at,
        )  # fmt: skip
        return bool(await self.run_write(statement, f"cannot complete key {key!r}", "found"))

    async def idempotency_extend(
        self, namespace: str, key: str, owner: str, lease_expires_at: float
    ) -> bool:
        statement = self._bind(
            "idempotency_extend", namespace=namespace, key=key, owner=owner,
            lease_expires_at=lease_expires_at,
        )  # fmt: skip
        return bool(await self.run_write(statement, f"cannot extend key {key!r}", "found"))

    async def idempotency_abandon(self, namespace: str, key: str, owner: str) -> bool:
        statement = self._bind("idempotency_abandon", namespace=namespace, key=key, owner=owner)
        return bool(await self.run_write(statement, f"cannot abandon key {key!r}", "found"))

    async def idempotency_forget(self, now: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired records; how many."""
        statement = self._bind("idempotency_forget", now=now, limit=limit)
        return int(await self.run_write(statement, "cannot forget idempotency keys", "rowcount"))
