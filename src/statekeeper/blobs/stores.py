"""Where a blob's chunks live: the database (``sk_blob_chunks``, the default) or a
directory. A store writes a run of chunks durably before it returns (the row that will
refer to the blob commits after), reads a run back, and removes a blob's chunks.

``STATEKEEPER_BLOB_STORE`` (or ``App(blob_store=)``) chooses: ``database``, or
``file:/path/to/directory`` (``file:///abs/path`` too). Blobs already written stay
readable from the store that holds them: the database always, the directory while it is
configured.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from statekeeper.errors import BlobMissing, BlobUnavailable, ConfigurationError
from statekeeper.storage.contracts import BlobStorage

DATABASE = "db"
DIRECTORY = "dir"


class ChunkStore(Protocol):
    kind: str  # what sk_blobs.store records

    async def put(self, blob_id: bytes, first: int, chunks: Sequence[bytes], now: float) -> None:
        """Chunks ``first``, ``first + 1``, ... of a blob, durably, and its row touched
        (BlobMissing if the blob is gone: swept while it was written)."""

    async def get(self, blob_id: bytes, start: int, stop: int) -> list[bytes]:
        """Chunks ``start`` to ``stop - 1``: every one, in order (BlobMissing if not)."""

    async def remove(self, blob_id: bytes) -> None:
        """Every chunk of a blob (none: nothing to do)."""


class DatabaseChunks:
    """Chunks as rows of ``sk_blob_chunks``: written in the transactions of ``put``,
    removed with the blob's row (by the trigger at its last reference, or the sweep)."""

    kind = DATABASE

    def __init__(self, storage: Callable[[], BlobStorage]) -> None:
        self._storage = storage

    async def put(self, blob_id: bytes, first: int, chunks: Sequence[bytes], now: float) -> None:
        if not await self._storage().put_chunks(blob_id, first, chunks, now):
            raise BlobMissing(f"blob {blob_id.hex()} was removed while it was written")

    async def get(self, blob_id: bytes, start: int, stop: int) -> list[bytes]:
        rows = await self._storage().chunks(blob_id, start, stop)
        if [seq for seq, _ in rows] != list(range(start, stop)):
            raise BlobMissing(f"blob {blob_id.hex()} is missing chunks in the database")
        return [data for _, data in rows]

    async def remove(self, blob_id: bytes) -> None:
        """The database removes the chunks with the blob's row."""


class DirectoryChunks:
    """Chunks as files ``<directory>/<id[:2]>/<id>/<seq>``, each written to a temporary
    name, synced and renamed, the directory synced after (so a blob's chunks are on disk
    before its row refers to it)."""

    kind = DIRECTORY

    def __init__(self, root: Path, storage: Callable[[], BlobStorage]) -> None:
        self.root = root
        self._storage = storage

    def _folder(self, blob_id: bytes) -> Path:
        name = blob_id.hex()
        return self.root / name[:2] / name

    async def put(self, blob_id: bytes, first: int, chunks: Sequence[bytes], now: float) -> None:
        if not await self._storage().touch(blob_id, now):
            raise BlobMissing(f"blob {blob_id.hex()} was removed while it was written")
        await asyncio.to_thread(self._put, blob_id, first, chunks)

    def _put(self, blob_id: bytes, first: int, chunks: Sequence[bytes]) -> None:
        folder = self._folder(blob_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for n, data in enumerate(chunks):
                final = folder / str(first + n)
                temporary = folder / f"{first + n}.partial"
                with open(temporary, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, final)
            _sync_directory(folder)
            if first == 0:
                _sync_directory(folder.parent)
        except OSError as exc:
            raise BlobUnavailable(
                f"cannot write blob {blob_id.hex()} to {folder}: {exc.strerror}"
            ) from exc

    async def get(self, blob_id: bytes, start: int, stop: int) -> list[bytes]:
        return await asyncio.to_thread(self._get, blob_id, start, stop)

    def _get(self, blob_id: bytes, start: int, stop: int) -> list[bytes]:
        folder = self._folder(blob_id)
        try:
            return [(folder / str(seq)).read_bytes() for seq in range(start, stop)]
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {blob_id.hex()} is missing chunks in {folder}") from exc
        except OSError as exc:  # the volume, permissions: maybe not for long
            raise BlobUnavailable(
                f"cannot read blob {blob_id.hex()} from {folder}: {exc.strerror}"
            ) from exc

    async def remove(self, blob_id: bytes) -> None:
        await asyncio.to_thread(shutil.rmtree, self._folder(blob_id), True)


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_chunk_store(spec: str, storage: Callable[[], BlobStorage]) -> ChunkStore:
    """The store ``spec`` names: ``database``, or ``file:<directory>``."""
    if spec == "database":
        return DatabaseChunks(storage)
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if path.startswith("//"):  # file:///abs/path
            path = path[2:]
        if not path:
            raise ConfigurationError("the blob store file: needs a directory: file:/path/to/dir")
        return DirectoryChunks(Path(path), storage)
    raise ConfigurationError(
        f"the blob store must be 'database' or 'file:<directory>', got {spec!r}"
    )
