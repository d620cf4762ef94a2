"""Out-of-line payloads (the claim check): payloads above a threshold are stored as
blobs, in chunks, and their rows hold a reference (``refs``); ``BlobStore`` writes and
reads blobs in the database or a directory (``stores``), sealed chunk by chunk;
``Payloads`` is what the blocks call to store and read a payload either way."""

from statekeeper.blobs.payloads import Payloads, database_payloads, payloads_from_options
from statekeeper.blobs.store import BlobStore
from statekeeper.blobs.stores import open_chunk_store

__all__ = [
    "BlobStore",
    "Payloads",
    "database_payloads",
    "open_chunk_store",
    "payloads_from_options",
]
