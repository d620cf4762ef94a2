"""Sealing payloads at rest: one envelope for every stored payload but state values.

With a keyring, every payload (queue bodies, attributes, reply_to, errors and results,
idempotency results, workflow inputs, outputs, errors, journal entries, events, messages
to workflows, updates and their outcomes, published values, schedule inputs, the event
store's events and aggregate snapshots, entities' states and answers) is sealed with
AES-GCM before it reaches storage, which stores bytes and text without knowing. Each
value carries the id of the key that sealed it:

    bytes (BLOB / bytea):  MAGIC | len(key id) (1 byte) | key id | nonce | ciphertext+tag
    text (TEXT columns):   TEXT_MAGIC | key id | ":" | base64(nonce | ciphertext+tag)

MAGIC's first byte, 0xFF, starts no JSON text in any encoding ``json`` reads
(it is no UTF-8 byte, and the UTF-16 byte order mark FF FE is not followed by
``S``); TEXT_MAGIC starts with the control character RS, which a plaintext error
written here never starts with (``seal_text`` without a keyring escapes it). A
value without the magic was written before a keyring was configured: it is read
as it is.

The associated data names where a value lives: its kind, namespace, the row's
ids and the field. A sealed value copied to another row, field or namespace does
not open. A message's values are bound to its id, not to its table: acknowledging
moves them from the live table to the archive as they are.
"""

from __future__ import annotations

import base64
import binascii

from statekeeper.constants import REF_MAGIC, REF_SIZE
from statekeeper.errors import DecryptionError
from statekeeper.keyring import Keyring

MAGIC = b"\xffSK1"
TEXT_MAGIC = "\x1esk1:"
# A reference to a payload stored out of line (constants.REF_MAGIC) is stored as it is:
# the blob's chunks are sealed, and the triggers that count references read it.


def is_ref(data: bytes | None) -> bool:
    """Whether a stored payload is a reference to a blob."""
    return data is not None and len(data) == REF_SIZE and data.startswith(REF_MAGIC)


# Kinds of sealed values (the first part of their associated data).
MESSAGE = "message"  # (namespace, message id, field): live and archived messages
IDEMPOTENCY = "idempotency"  # (namespace, key, "result")
WORKFLOW = "workflow"  # (namespace, workflow id, field): input, output, error
STEP = "step"  # (namespace, workflow id, position, field): the journal
EVENT = "event"  # (namespace, workflow id, event name, "data")
STREAM_EVENT = "stream event"  # (namespace, stream, event id, "data"): the event store
SNAPSHOT = "snapshot"  # (namespace, stream, version, "state"): an aggregate's snapshot
SCHEDULE = "schedule"  # (namespace, schedule id, "input"): a schedule's input
# (namespace, type, key, field): an entity's state (field "state"), and an answer to a
# call with an id (fields "call:<id>:result" and "call:<id>:error").
ENTITY = "entity"
# (namespace, blob id, chunk number, "chunk" or "last"): a chunk of a blob, the last
# one marked so that a blob cut short does not open (statekeeper.blobs).
BLOB = "blob"
# Messages to a workflow, its updates and published values reuse EVENT and WORKFLOW
# with their own ids: see message_where and value_where (workflows/mailbox.py),
# update_data_where and update_outcome_where (workflows/updates.py).


def associated_data(where: tuple[str, ...]) -> bytes:
    """Each part length-prefixed, so no two places share associated data; the leading
    NUL keeps it apart from a state value's (``namespace NUL key``, never empty)."""
    text = "".join(f"{len(part)}:{part}" for part in where)
    return b"\x00sk1" + text.encode("utf-8", "surrogatepass")


def describe(where: tuple[str, ...]) -> str:
    """``the body of message 'abc'``: what an error about a sealed value names."""
    kind, _namespace, *ids, field = where
    return f"the {field} of {kind} {'/'.join(ids)!r}"


def key_id_of(data: bytes) -> str | None:
    """The id of the key that sealed ``data``; None for a plaintext value."""
    return _split(data)[0] if data.startswith(MAGIC) else None


def _split(data: bytes) -> tuple[str, bytes]:
    """A sealed value's key id, and its nonce, ciphertext and tag."""
    start = len(MAGIC) + 1
    size = data[start - 1] if len(data) >= start else 0
    return data[start : start + size].decode("ascii", "replace"), data[start + size :]


def text_key_id_of(text: str) -> str | None:
    """The id of the key that sealed ``text``; None for a plaintext text."""
    if not text.startswith(TEXT_MAGIC):
        return None
    return text[len(TEXT_MAGIC) :].partition(":")[0]


class Sealer:
    """Seals and opens payloads with a keyring; without one, values pass unchanged
    (and a sealed value found then is a DecryptionError, never read as plaintext)."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring
        self._headers = {} if keyring is None else {k: header(k) for k in keyring.key_ids}

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def seal(self, data: bytes, *where: str) -> bytes:
        """``data`` sealed for the place ``where`` (kind, namespace, ids..., field)."""
        keyring = self.keyring
        if keyring is None or is_ref(data):
            return data
        sealed, key_id = keyring.seal(data, associated_data(where))
        return self._headers[key_id] + sealed

    def open(self, data: bytes, *where: str) -> bytes:
        """The plaintext of a value stored at ``where``; a plaintext value as it is."""
        if not data.startswith(MAGIC):
            return data
        key_id, sealed = _split(data)
        return self._open(sealed, key_id, where)

    def seal_text(self, text: str, *where: str) -> str:
        keyring = self.keyring
        if keyring is None:
            if text.startswith(TEXT_MAGIC):  # would read as sealed: escape it
                return "\ufffd" + text[1:]
            return text
        sealed, key_id = keyring.seal(text.encode("utf-8", "surrogatepass"), associated_data(where))
        return f"{TEXT_MAGIC}{key_id}:{base64.b64encode(sealed).decode('ascii')}"

    def open_text(self, text: str, *where: str) -> str:
        if not text.startswith(TEXT_MAGIC):
            return text
        key_id, _, encoded = text[len(TEXT_MAGIC) :].partition(":")
        try:
            sealed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(
                f"{describe(where)} is sealed but its envelope is damaged", key_id=key_id
            ) from None
        return self._open(sealed, key_id, where).decode("utf-8", "surrogatepass")

    def _open(self, sealed: bytes, key_id: str, where: tuple[str, ...]) -> bytes:
        keyring = self.keyring
        if keyring is None:
            raise DecryptionError(
                f"{describe(where)} is sealed (encryption key {key_id!r}) but no encryption "
                "keys are configured",
                key_id=key_id,
            )
        try:
            return keyring.open(sealed, key_id, associated_data(where))
        except DecryptionError as error:
            raise DecryptionError(f"{describe(where)}: {error.message}", key_id=key_id) from None

    def reseal(self, data: bytes, *where: str) -> bytes:
        """A stored value (sealed by any key, or plaintext) sealed by the primary key."""
        return self.seal(self.open(data, *where), *where)

    def reseal_text(self, text: str, *where: str) -> str:
        return self.seal_text(self.open_text(text, *where), *where)

    def primary_prefixes(self) -> tuple[bytes, str]:
        """How values sealed by the primary key begin (bytes, text): what needs no reseal."""
        if self.keyring is None:
            raise ValueError("no keyring")
        primary = self.keyring.primary
        return header(primary), f"{TEXT_MAGIC}{primary}:"


PLAIN = Sealer(None)


def header(key_id: str) -> bytes:
    """How a value sealed by ``key_id`` begins: MAGIC, the id's length, the id."""
    encoded = key_id.encode("ascii")
    return MAGIC + bytes([len(encoded)]) + encoded
