"""Uploads through signed URLs, for both adapters (queries in ``queries/uploads.sql``).

An upload's row is pending until its file is written (a blob, counted by the trigger on
``sk_uploads.blob``), then complete; ``started`` records what it started, and a start
that keeps failing is given up (failed). The upkeep tries unstarted ones again, and
forgets expired pending rows, failed ones kept long enough, and rows whose workflow or
message is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from statekeeper.storage.runner import Operations


class UploadRow(NamedTuple):
    id: str
    state: str  # pending, complete or failed (its start given up)
    target_kind: str  # workflow or queue
    target: str
    max_bytes: int
    sha256: str | None  # the SHA-256 the file must have, if given
    content_type: str | None
    created_at: float
    expires_at: float
    blob: bytes | None
    size: int | None
    digest: str | None  # the SHA-256 it has
    completed_at: float | None
    started: str | None
    attempts: int = 0  # starts that failed
    start_error: str | None = None  # the last one's error


class UploadOps(Operations):
    """``contracts.UploadStorage``: the block's operations over an adapter's statements."""

    async def create(self, namespace: str, row: UploadRow, now: float) -> None:
        statement = self._bind(
            "upload_create", namespace=namespace, id=row.id, target_kind=row.target_kind,
            target=row.target, max_bytes=row.max_bytes, sha256=row.sha256,
            content_type=row.content_type, now=now, expires_at=row.expires_at,
        )  # fmt: skip
        await self._db.run_write(statement, "cannot create an upload", "rowcount")

    async def get(self, namespace: str, id: str) -> UploadRow | None:
        statement = self._bind("upload_get", namespace=namespace, id=id)
        row = await self._db.run_read(statement, f"cannot read upload {id!r}", "row")
        if row is None:
            return None
        (state, kind, target, max_bytes, sha256, content_type, created_at, expires_at, blob,
         size, digest, completed_at, started, attempts, start_error) = row  # fmt: skip
        return UploadRow(
            id, str(state), str(kind), str(target), int(max_bytes), sha256, content_type,
            float(created_at), float(expires_at), None if blob is None else bytes(blob),
            None if size is None else int(size), digest,
            None if completed_at is None else float(completed_at), started, int(attempts),
            start_error,
        )  # fmt: skip

    async def complete(
        self,
        namespace: str,
        id: str,
        blob: bytes,
        size: int,
        digest: str,
        now: float,
        retry_at: float,
    ) -> bool:
        """Record the file (the upkeep starts it from ``retry_at`` unless it is started
        before); False if the upload is not pending (any more)."""
        statement = self._bind(
            "upload_complete", namespace=namespace, id=id, blob=blob, size=size,
            digest=digest, now=now, retry_at=retry_at,
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot complete upload {id!r}", "found"))

    async def started(self, namespace: str, id: str, started: str, now: float) -> None:
        statement = self._bind(
            "upload_started", namespace=namespace, id=id, started=started, now=now
        )
        await self._db.run_write(statement, f"cannot record upload {id!r}", "rowcount")

    async def unstarted(
        self, namespaces: Sequence[str], now: float, limit: int
    ) -> list[tuple[str, str, int]]:
        """Complete uploads of ``namespaces`` not started and due to be tried at
        ``now``: (namespace, id, failed attempts)."""
        statement = self._bind(
            "upload_unstarted", now=now, limit=limit, **self._list_arg("namespaces", namespaces)
        )
        rows = await self._db.run_many(statement, "cannot list uploads")
        return [(str(namespace), str(id), int(attempts)) for namespace, id, attempts in rows]

    async def start_failed(
        self, namespace: str, id: str, error: str, retry_at: float, *, failed: bool
    ) -> bool:
        """Count a failed start: tried again at ``retry_at``, or given up (``failed``:
        then forgotten at ``retry_at``). False if the upload is not complete and
        unstarted (any more)."""
        statement = self._bind(
            "upload_start_failed", namespace=namespace, id=id, error=error,
            retry_at=retry_at, failed=int(failed),
        )  # fmt: skip
        return bool(await self._db.run_write(statement, f"cannot record upload {id!r}", "rowcount"))

    async def forget_failed(self, now: float, limit: int) -> int:
        statement = self._bind("upload_forget_failed", now=now, limit=limit)
        return int(await self._db.run_write(statement, "cannot forget uploads", "rowcount"))

    async def forget_expired(self, now: float, limit: int) -> int:
        statement = self._bind("upload_forget_expired", now=now, limit=limit)
        return int(await self._db.run_write(statement, "cannot forget uploads", "rowcount"))

    async def least_checked(self, limit: int) -> list[tuple[str, str, str, str]]:
        """Started uploads, least recently checked first: (namespace, id, kind, started)."""
        statement = self._bind("upload_least_checked", limit=limit)
        rows = await self._db.run_many(statement, "cannot list uploads")
        return [(str(ns), str(id), str(kind), str(started)) for ns, id, kind, started in rows]

    async def checked(self, namespace: str, id: str, now: float) -> None:
        statement = self._bind("upload_checked", namespace=namespace, id=id, now=now)
        await self._db.run_write(statement, f"cannot record upload {id!r}", "rowcount")

    async def forget(self, namespace: str, id: str) -> bool:
        """Remove an upload (and so its file); False if there was none."""
        statement = self._bind("upload_forget", namespace=namespace, id=id)
        return bool(await self._db.run_write(statement, f"cannot forget upload {id!r}", "rowcount"))
