"""Out-of-line payloads, for both adapters (queries in ``queries/blobs.sql``).

A blob is a row of ``sk_blobs`` and, when the database holds its bytes, rows of
``sk_blob_chunks``. The rows that refer to it are counted by triggers on every payload
column (migration ``blobs``); these operations create, fill, read and forget blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from statekeeper.storage.runner import Operations, Scripted


class BlobInfo(NamedTuple):
    """What ``sk_blobs`` knows of a blob: size and chunks are None until it is complete."""

    namespace: str
    store: str
    size: int | None
    chunks: int | None
    refs: int


class BlobOps(Operations):
    """``contracts.BlobStorage``: the block's operations over an adapter's statements."""

    async def create(self, namespace: str, id: bytes, store: str, now: float) -> None:
        statement = self._bind("blob_create", blob_id=id, namespace=namespace, store=store, now=now)
        await self._db.run_write(statement, "cannot store a blob", "rowcount")

    async def put_chunks(self, id: bytes, first: int, chunks: Sequence[bytes], now: float) -> bool:
        """Chunks ``first``, ``first + 1``, ... of blob ``id``, in one transaction with a
        touch of its row (``touch``); False (nothing written) if the blob is gone."""
        query = self._queries["blob_chunk"]
        rows = tuple(
            query.args(blob_id=id, seq=first + n, data=data) for n, data in enumerate(chunks)
        )
        script: list[Scripted] = [
            (self._bind("blob_touch", blob_id=id, now=now), "found", True),
            ((query.sql, rows), "many", False),
        ]
        return await self._db.run_atomic(script, "cannot store a blob") is not None

    async def touch(self, id: bytes, now: float) -> bool:
        """Mark blob ``id`` as being written now (the sweep leaves it alone a while
        longer); False if it is gone."""
        statement = self._bind("blob_touch", blob_id=id, now=now)
        return bool(await self._db.run_write(statement, "cannot store a blob", "found"))

    async def complete(self, id: bytes, size: int, chunks: int, now: float) -> bool:
        """Record the size of a blob fully written; False if it is gone."""
        statement = self._bind("blob_complete", blob_id=id, size=size, chunks=chunks, now=now)
        return bool(await self._db.run_write(statement, "cannot store a blob", "found"))

    async def info(self, id: bytes) -> BlobInfo | None:
        row = await self._db.run_read(
            self._bind("blob_info", blob_id=id), "cannot read a blob", "row"
        )
        if row is None:
            return None
        namespace, store, size, chunks, refs = row
        return BlobInfo(
            str(namespace), str(store), None if size is None else int(size),
            None if chunks is None else int(chunks), int(refs),
        )  # fmt: skip

    async def chunks(self, id: bytes, start: int, stop: int) -> list[tuple[int, bytes]]:
        """Chunks ``start`` to ``stop - 1`` of blob ``id`` that the database holds."""
        statement = self._bind("blob_chunks", blob_id=id, start=start, stop=stop)
        rows = await self._db.run_many(statement, "cannot read a blob")
        return [(int(seq), bytes(data)) for seq, data in rows]

    async def unreferenced(
        self, before: float, own_store: str, limit: int
    ) -> list[tuple[bytes, str]]:
        """Blobs no row refers to (released, or never referenced and last written before
        ``before``) whose chunks are in the database or in ``own_store``, oldest first:
        their ids and stores."""
        statement = self._bind("blob_unreferenced", before=before, own_store=own_store, limit=limit)
        rows = await self._db.run_many(statement, "cannot sweep blobs")
        return [(bytes(id), str(store)) for id, store in rows]

    async def forget(self, id: bytes) -> str | None:
        """Remove blob ``id`` (its row, and the chunks the database holds) if still no
        row refers to it: its store, or None if it was kept (or is gone already)."""
        script = [
            (self._bind("blob_forget", blob_id=id), "first", True),
            (self._bind("blob_forget_chunks", blob_id=id), "rowcount", False),
        ]
        done = await self._db.run_atomic(script, "cannot remove a blob")
        return None if done is None else str(done[0])
