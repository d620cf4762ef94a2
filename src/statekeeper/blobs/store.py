"""Blobs: payloads written in chunks to a chunk store (``stores``), each chunk sealed
on its own (bound to the blob, its number and whether it is the last), their row in
``sk_blobs`` counting the rows that refer to them.

Writing creates the row (no reference yet), writes the chunks a few at a time (each
batch touching the row), then records the size: memory holds a few chunks beyond the
payload itself. The row that refers to the blob commits afterwards; the triggers count
it. ``prepare`` seals a blob to be inserted with its row instead, in one transaction (a
message body). Reading checks the row (same namespace, complete) and opens the chunks
in order. A blob whose last reference went is released; ``sweep`` removes released
blobs, and blobs whose writer stopped before its row committed once they are older than
the grace period.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable

from statekeeper.blobs.refs import blob_id_of, new_blob_id, ref_to
from statekeeper.blobs.stores import DATABASE, ChunkStore, DatabaseChunks
from statekeeper.errors import BlobMissing, BlobUnavailable, PayloadTooLarge
from statekeeper.sealing import BLOB, Sealer
from statekeeper.storage.blob_ops import BlobInfo
from statekeeper.storage.contracts import BlobStorage
from statekeeper.storage.rows import PreparedBlob

CHUNK = 1 << 20  # bytes of payload per chunk
BATCH = 8  # chunks per write or read: what memory holds beyond the payload
# A blob no row refers to is kept this long after it was written (its row may still
# be about to commit); then the sweep removes it.
GRACE = 3600.0


class BlobStore:
    """Blobs of every namespace of one database; ``store`` is where new blobs go."""

    def __init__(
        self,
        storage: Callable[[], BlobStorage],
        sealer: Sealer,
        store: ChunkStore,
        clock: Callable[[], float],
    ) -> None:
        self._storage = storage
        self._sealer = sealer
        self.store = store
        self._database = store if store.kind == DATABASE else DatabaseChunks(storage)
        self._clock = clock

    # --- writing ------------------------------------------------------------------------

    async def write(self, namespace: str, data: bytes) -> bytes:
        """Store ``data`` as a new blob of ``namespace``: the reference a row holds."""
        blob_id = new_blob_id()
        storage = self._storage()
        await storage.create(namespace, blob_id, self.store.kind, self._clock())
        count = _count(data)
        for first in range(0, count, BATCH):
            chunks = self._sealed(namespace, blob_id, data, first, min(first + BATCH, count))
            await self.store.put(blob_id, first, chunks, self._clock())
        if not await storage.complete(blob_id, len(data), count, self._clock()):
            raise BlobMissing(f"blob {blob_id.hex()} was removed while it was written")
        return ref_to(blob_id)

    def prepare(self, namespace: str, data: bytes) -> PreparedBlob:
        """``data`` as a blob to insert in the transaction of the row that refers to it
        (``rows.PreparedBlob``: chunks sealed here, held in the database), without
        writing anything: nothing can be left behind if that transaction fails."""
        blob_id = new_blob_id()
        chunks = self._sealed(namespace, blob_id, data, 0, _count(data))
        return PreparedBlob(blob_id, namespace, len(data), tuple(chunks))

    def _sealed(
        self, namespace: str, blob_id: bytes, data: bytes, start: int, stop: int
    ) -> list[bytes]:
        """Chunks ``start`` to ``stop - 1`` of ``data``, sealed (a few at a time: the
        payload is never copied whole)."""
        view, last = memoryview(data), _count(data) - 1
        return [
            self._sealer.seal(
                bytes(view[seq * CHUNK : (seq + 1) * CHUNK]),
                *chunk_where(namespace, blob_id, seq, last=seq == last),
            )
            for seq in range(start, stop)
        ]

    async def write_stream(
        self, namespace: str, source: AsyncIterable[bytes], max_bytes: int
    ) -> tuple[bytes, int, str]:
        """Store what ``source`` yields as a new blob of ``namespace``, a few chunks in
        memory at a time: its reference, size and SHA-256 (hex). PayloadTooLarge past
        ``max_bytes``; on any failure the partial blob is removed."""
        blob_id = new_blob_id()
        storage = self._storage()
        await storage.create(namespace, blob_id, self.store.kind, self._clock())
        hashing = hashlib.sha256()
        size = written = 0
        buffer = bytearray()
        held: bytes | None = None  # a full chunk, sealed once it is known not to be last
        batch: list[bytes] = []

        async def seal(data: bytes, last: bool) -> None:
            nonlocal written
            where = chunk_where(namespace, blob_id, written + len(batch), last=last)
            batch.append(self._sealer.seal(data, *where))
            if len(batch) == BATCH or last:
                await self.store.put(blob_id, written, batch, self._clock())
                written += len(batch)
                batch.clear()

        try:
            async for piece in source:
                size += len(piece)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"the file is larger than the limit of {max_bytes} bytes", limit=max_bytes
                    )
                hashing.update(piece)
                buffer += piece
                while len(buffer) >= CHUNK:
                    if held is not None:
                        await seal(held, last=False)
                    held = bytes(buffer[:CHUNK])
                    del buffer[:CHUNK]
            if held is not None and buffer:
                await seal(held, last=False)
                held = None
            await seal(held if held is not None else bytes(buffer), last=True)
            if not await storage.complete(blob_id, size, written, self._clock()):
                raise BlobMissing(f"blob {blob_id.hex()} was removed while it was written")
        except BaseException:
            await self.discard(ref_to(blob_id))
            raise
        return ref_to(blob_id), size, hashing.hexdigest()

    async def discard(self, ref: bytes) -> None:
        """Remove a blob no row refers to (one just written and not used); a blob a row
        refers to stays."""
        blob_id = blob_id_of(ref)
        kind = await asyncio.shield(self._storage().forget(blob_id))
        if kind is not None and kind != DATABASE and kind == self.store.kind:
            await self.store.remove(blob_id)

    # --- reading ------------------------------------------------------------------------

    async def info(self, namespace: str, ref: bytes) -> BlobInfo:
        """The blob's row, checked: in ``namespace`` and complete (else BlobMissing)."""
        blob_id = blob_id_of(ref)
        info = await self._storage().info(blob_id)
        if info is None or info.namespace != namespace:
            raise BlobMissing(f"the payload stored out of line as blob {blob_id.hex()} is missing")
        if info.size is None or info.chunks is None:
            raise BlobMissing(f"blob {blob_id.hex()} was never completed")
        return info

    async def chunks(self, namespace: str, ref: bytes) -> AsyncIterator[bytes]:
        """The blob's bytes, chunk by chunk, opened and checked."""
        info = await self.info(namespace, ref)
        assert info.chunks is not None
        blob_id = blob_id_of(ref)
        store = self._store_of(info, blob_id)
        for first in range(0, info.chunks, BATCH):
            stop = min(first + BATCH, info.chunks)
            found = await store.get(blob_id, first, stop)
            for seq, sealed in zip(range(first, stop), found, strict=True):
                where = chunk_where(namespace, blob_id, seq, last=seq == info.chunks - 1)
                yield self._sealer.open(sealed, *where)

    def _store_of(self, info: BlobInfo, blob_id: bytes) -> ChunkStore:
        if info.store == self.store.kind:
            return self.store
        if info.store == DATABASE:
            return self._database
        raise BlobUnavailable(
            f"blob {blob_id.hex()} is in a {info.store!r} store, which this process "
            "does not have configured (STATEKEEPER_BLOB_STORE)"
        )

    async def read(self, namespace: str, ref: bytes) -> bytearray:
        """The blob's bytes in one buffer (sized once: no copy of the whole)."""
        info = await self.info(namespace, ref)
        assert info.size is not None
        data = bytearray(info.size)
        offset = 0
        async for chunk in self.chunks(namespace, ref):
            if offset + len(chunk) > info.size:
                raise BlobMissing(f"blob {blob_id_of(ref).hex()} is longer than recorded")
            data[offset : offset + len(chunk)] = chunk
            offset += len(chunk)
        if offset != info.size:
            raise BlobMissing(f"blob {blob_id_of(ref).hex()} is shorter than recorded")
        return data

    async def read_text(self, namespace: str, ref: bytes) -> list[str]:
        """The blob's bytes as UTF-8 text, in pieces (so its bytes are never whole in
        memory beside the text): join them to read it."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pieces: list[str] = []
        try:
            async for chunk in self.chunks(namespace, ref):
                pieces.append(decoder.decode(chunk))
            pieces.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise BlobMissing(f"blob {blob_id_of(ref).hex()} is not UTF-8 text") from None
        return pieces

    # --- upkeep -------------------------------------------------------------------------

    async def sweep(self, *, grace: float = GRACE, limit: int = 100) -> int:
        """Remove up to ``limit`` blobs no row refers to: released ones, and those never
        referenced and older than ``grace`` seconds. How many went."""
        storage = self._storage()
        gone = 0
        found = await storage.unreferenced(self._clock() - grace, self.store.kind, limit)
        for blob_id, kind in found:  # in the database, or in this process's store
            store = await storage.forget(blob_id)
            if store is None:  # referred to meanwhile, or removed by another sweep
                continue
            if kind != DATABASE:
                await self.store.remove(blob_id)
            gone += 1
        return gone


def _count(data: bytes) -> int:
    """How many chunks hold ``data`` (an empty payload too has one)."""
    return max(1, -(-len(data) // CHUNK))


def chunk_where(namespace: str, blob_id: bytes, seq: int, *, last: bool) -> tuple[str, ...]:
    """Where chunk ``seq`` of a blob is sealed: bound to the blob, its place, and
    whether it is the last (so a blob cut short does not open)."""
    return (BLOB, namespace, blob_id.hex(), str(seq), "last" if last else "chunk")
