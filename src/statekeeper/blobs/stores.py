"""Where a blob's chunks live: the database (``sk_blob_chunks``, the default) or a
directory. A store writes a run of chunks durably before it returns (the row that will
refer to the blob commits after), reads a run back, and removes a blob's chunks.

``STATEKEEPER_BLOB_STORE`` (or ``App(blob_store=)``) chooses: ``database``,
``file:/path/to/directory`` (``file:///abs/path`` too), or an S3-compatible bucket,
``s3://bucket/prefix`` with optional ``?endpoint_url=...&region=...`` (boto3, the ``s3``
extra; credentials from the standard AWS environment). Blobs already written stay
readable from the store that holds them: the database always, the others while they
are configured.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from statekeeper.errors import BlobMissing, BlobUnavailable, ConfigurationError
from statekeeper.storage.contracts import BlobStorage

DATABASE = "db"
DIRECTORY = "dir"
S3 = "s3"


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


class S3Chunks:
    """Chunks as objects ``<prefix><id[:2]>/<id>/<seq>`` of a bucket of an S3-compatible
    store, through boto3 (its calls block: they run in worker threads). A ``put`` returns
    once the store acknowledged every object (S3 writes are durable when acknowledged)."""

    kind = S3

    def __init__(
        self, bucket: str, prefix: str, options: dict[str, str], storage: Callable[[], BlobStorage]
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._options = options
        self._storage = storage
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:  # pragma: no cover - the extra is installed in tests
                raise ConfigurationError(
                    "an s3:// blob store needs boto3: pip install 'statekeeper[s3]'"
                ) from None
            self._client = boto3.client(
                "s3", endpoint_url=self._options.get("endpoint_url"),
                region_name=self._options.get("region"),
            )  # fmt: skip
        return self._client

    def _key(self, blob_id: bytes, seq: int | None = None) -> str:
        name = blob_id.hex()
        folder = f"{self.prefix}{name[:2]}/{name}/"
        return folder if seq is None else f"{folder}{seq}"

    async def put(self, blob_id: bytes, first: int, chunks: Sequence[bytes], now: float) -> None:
        if not await self._storage().touch(blob_id, now):
            raise BlobMissing(f"blob {blob_id.hex()} was removed while it was written")
        for n, data in enumerate(chunks):
            put = functools.partial(self._put_object, self._key(blob_id, first + n), data)
            await self._call("write", blob_id, put)

    async def get(self, blob_id: bytes, start: int, stop: int) -> list[bytes]:
        found = []
        for seq in range(start, stop):
            read = functools.partial(self._get_object, self._key(blob_id, seq))
            found.append(bytes(await self._call("read", blob_id, read)))
        return found

    def _put_object(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=key, Body=data)

    def _get_object(self, key: str) -> bytes:
        return bytes(self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    async def remove(self, blob_id: bytes) -> None:
        def remove_all() -> None:
            s3 = self._s3()
            listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(blob_id))
            keys = [{"Key": item["Key"]} for item in listed.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

        await self._call("remove", blob_id, remove_all)

    async def _call(self, what: str, blob_id: bytes, call: Callable[[], Any]) -> Any:
        """``call`` in a thread; a missing object is BlobMissing, any other failure of
        the store (unreachable, refused) BlobUnavailable."""
        try:
            return await asyncio.to_thread(call)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise BlobMissing(
                    f"blob {blob_id.hex()} is missing chunks in bucket {self.bucket!r}"
                ) from exc
            raise BlobUnavailable(
                f"cannot {what} blob {blob_id.hex()} in bucket {self.bucket!r}: "
                f"{type(exc).__name__}: {exc}"[:300]
            ) from exc


def _s3_store(spec: str, storage: Callable[[], BlobStorage]) -> S3Chunks:
    """``s3://bucket/prefix?endpoint_url=...&region=...``."""
    parsed = urlsplit(spec)
    if not parsed.netloc:
        raise ConfigurationError("the blob store s3:// needs a bucket: s3://bucket/prefix")
    options = dict(parse_qsl(parsed.query))
    unknown = sorted(set(options) - {"endpoint_url", "region"})
    if unknown:
        raise ConfigurationError(
            f"the blob store s3:// takes endpoint_url and region, not {unknown[0]!r}"
        )
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Chunks(parsed.netloc, prefix, options, storage)


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_chunk_store(spec: str, storage: Callable[[], BlobStorage]) -> ChunkStore:
    """The store ``spec`` names: ``database``, ``file:<directory>`` or ``s3://...``."""
    if spec == "database":
        return DatabaseChunks(storage)
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if path.startswith("//"):  # file:///abs/path
            path = path[2:]
        if not path:
            raise ConfigurationError("the blob store file: needs a directory: file:/path/to/dir")
        return DirectoryChunks(Path(path), storage)
    if spec.startswith("s3://"):
        return _s3_store(spec, storage)
    raise ConfigurationError(
        f"the blob store must be 'database', 'file:<directory>' or 's3://bucket/prefix', "
        f"got {spec!r}"
    )
