"""Payloads either way: inline (sealed) below the threshold, out of line (a blob, and
a reference in the row) above it. The blocks call ``seal`` where they sealed a payload
and ``open`` / ``value`` where they opened one; the rest of their code does not know.

``where`` is a sealed payload's place (kind, namespace, ids..., field): the namespace
(its second part) owns the blob. A value read out of line is decoded from pieces of
text, so the payload's bytes, its text and its value are never all in memory at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from statekeeper.app_options import positive_int
from statekeeper.blobs.refs import is_ref
from statekeeper.blobs.store import BlobStore
from statekeeper.blobs.stores import DatabaseChunks, open_chunk_store
from statekeeper.codec import decode_as, decode_pieces_as, encode_value
from statekeeper.constants import (
    DEFAULT_BLOB_THRESHOLD,
    DEFAULT_MAX_PAYLOAD_BYTES,
    ENV_BLOB_STORE,
    ENV_BLOB_THRESHOLD,
    ENV_MAX_PAYLOAD_BYTES,
)
from statekeeper.errors import ConfigurationError
from statekeeper.sealing import Sealer
from statekeeper.storage.contracts import BlobStorage
from statekeeper.storage.rows import PreparedBlob

log = logging.getLogger("statekeeper.blobs")
T = TypeVar("T")


class Payloads:
    """Stores and reads the payloads of one app (every namespace)."""

    def __init__(
        self,
        blobs: BlobStore,
        sealer: Sealer,
        *,
        threshold: int = DEFAULT_BLOB_THRESHOLD,
        max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.blobs = blobs
        self.sealer = sealer
        self.threshold = threshold
        self.max_bytes = max_bytes

    def encode(self, subject: str, value: Any) -> bytes:
        """``value`` as JSON, within the payload limit (``max_bytes``)."""
        return encode_value("", value, self.max_bytes, subject)

    async def seal(self, plain: bytes, *where: str) -> bytes:
        """What a row stores for ``plain``: it sealed, or a reference to a blob (a
        reference given stays as it is: the row shares that blob)."""
        if len(plain) > self.threshold and not is_ref(plain):
            return await self.blobs.write(where[1], plain)
        return self.sealer.seal(plain, *where)

    def prepare(self, namespace: str, plain: bytes) -> PreparedBlob | None:
        """A blob of ``plain`` to insert with the row that refers to it, if ``plain`` is
        above the threshold (a message body: ``Queue``'s spill); None if it stays inline."""
        if len(plain) > self.threshold:
            return self.blobs.prepare(namespace, plain)
        return None

    async def kept_by(self, stored: bytes | None, write: Awaitable[T]) -> T:
        """Await ``write``, which stores a row referring to ``stored`` (a payload sealed
        by ``seal``); if it fails, the payload's blob, if it has one, goes."""
        try:
            return await write
        except BaseException:
            await asyncio.shield(self.discard([stored]))
            raise

    async def discard(self, stored: Iterable[bytes | None]) -> None:
        """Remove the blobs of payloads sealed for a row that did not commit (those a
        row refers to after all stay); a failure is logged, and the sweep removes them
        after the grace period instead."""
        for one in stored:
            if one is not None and is_ref(one):
                try:
                    await self.blobs.discard(one)
                except Exception:
                    log.warning("could not remove an unused blob", exc_info=True)

    async def fill(self, namespace: str, stored: bytes) -> bytes:
        """``stored`` as it is, or the bytes of the blob it refers to (``Queue``'s fill)."""
        if is_ref(stored):
            return bytes(await self.blobs.read(namespace, stored))
        return stored

    async def open(self, stored: bytes, *where: str) -> bytes:
        """The plaintext of what a row stores (read from its blob if it refers to one)."""
        if is_ref(stored):
            return bytes(await self.blobs.read(where[1], stored))
        return self.sealer.open(stored, *where)

    async def value(self, stored: bytes, hint: Any, subject: str, *where: str) -> Any:
        """The value a row stores, as type ``hint`` (None: as JSON)."""
        if is_ref(stored):
            pieces = await self.blobs.read_text(where[1], stored)
            return decode_pieces_as(pieces, hint, subject)
        return decode_as(self.sealer.open(stored, *where), hint, subject)


def database_payloads(
    storage: Callable[[], BlobStorage], sealer: Sealer, clock: Callable[[], float]
) -> Payloads:
    """Payloads with blobs in the database and the default limits."""
    return Payloads(BlobStore(storage, sealer, DatabaseChunks(storage), clock), sealer)


def payloads_from_options(
    storage: Callable[[], BlobStorage],
    sealer: Sealer,
    clock: Callable[[], float],
    *,
    store: str | None = None,
    threshold: int | None = None,
    max_bytes: int | None = None,
) -> Payloads:
    """The payloads of ``App(blob_store=, blob_threshold=, max_payload_bytes=)``, each
    option defaulting to its environment variable, then to its default."""
    spec = store or os.environ.get(ENV_BLOB_STORE) or "database"
    blobs = BlobStore(storage, sealer, open_chunk_store(spec, storage), clock)
    return Payloads(
        blobs, sealer,
        threshold=size_option(
            "blob_threshold", threshold, ENV_BLOB_THRESHOLD, DEFAULT_BLOB_THRESHOLD
        ),
        max_bytes=size_option(
            "max_payload_bytes", max_bytes, ENV_MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES
        ),
    )  # fmt: skip


def size_option(option: str, given: int | None, variable: str, default: int) -> int:
    """A size in bytes: ``given``, else environment variable ``variable``, else
    ``default``; a positive integer (ConfigurationError naming the option otherwise)."""
    if given is not None:
        return positive_int(option, given)
    text = os.environ.get(variable)
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise ConfigurationError(f"{variable} must be a positive number of bytes, got {text!r}")
    return int(text)
