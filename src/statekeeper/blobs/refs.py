"""What a payload column holds in place of a payload stored out of line: the bytes
FF 53 4B 52 and the blob's 16-byte id (20 bytes). The triggers of every payload column
count references by these bytes (storage migration ``blobs``), so their form is fixed.

The first byte, 0xFF, starts no JSON text, and the sealed envelope starts with
FF 53 4B 31: a reference is told apart from a plaintext or a sealed payload.
"""

from __future__ import annotations

import os

from statekeeper.constants import REF_MAGIC, REF_SIZE
from statekeeper.sealing import is_ref

__all__ = ["REF_MAGIC", "REF_SIZE", "blob_id_of", "is_ref", "new_blob_id", "ref_to"]


def new_blob_id() -> bytes:
    return os.urandom(16)


def ref_to(blob_id: bytes) -> bytes:
    return REF_MAGIC + blob_id


def blob_id_of(ref: bytes) -> bytes:
    return bytes(ref[len(REF_MAGIC) :])
