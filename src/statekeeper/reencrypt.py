"""Re-sealing everything under the primary key, after a key rotation (``statekeeper
reencrypt``).

Every table that holds payloads is walked in batches, for the namespaces asked for
(the app's own by default; every namespace of the database only when asked: another
namespace may belong to an app with other keys, or with none, which could no longer
read values sealed for it), one namespace after another, each along its range of the
table's primary key (the archive's: its index by namespace; messages are walked along
their sequence number, every namespace at once: see ``queries/reseal.sql``), so a batch
costs the same however big the table. The rows holding a value not sealed by the
primary key (sealed by an older key, or written before a keyring was configured) are
opened and sealed again, and each batch is written in one transaction by
compare-and-swap on the old bytes, so a value its owner rewrote meanwhile (already
under the primary key) is left alone and counted. A run stopped anywhere loses nothing; the next run
finds only what is left. A value that does not open with the configured keys is
left as it is and counted ``unreadable``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from statekeeper.blobs.refs import is_ref
from statekeeper.blobs.store import chunk_where
from statekeeper.entities.writers import answer_where, state_where
from statekeeper.errors import DecryptionError, ValidationError
from statekeeper.keyring import Keyring
from statekeeper.sealing import (
    EVENT,
    IDEMPOTENCY,
    MESSAGE,
    SCHEDULE,
    SNAPSHOT,
    STEP,
    STREAM_EVENT,
    WORKFLOW,
    Sealer,
)
from statekeeper.state.encryption import associated_data
from statekeeper.storage.contracts import Storage
from statekeeper.storage.reseal_ops import RESEAL_TABLES
from statekeeper.storage.rows import ResealChange, ResealRow
from statekeeper.workflows.mailbox import message_where, value_where
from statekeeper.workflows.streams import stream_where
from statekeeper.workflows.updates import update_data_where, update_outcome_where

log = logging.getLogger("statekeeper.reencrypt")

# In this order: state first, then queues, idempotency, workflows (their journals, events,
# messages, updates, published values and durable streams), schedules, the event store,
# entities.
KINDS = ("state", "messages", "archive", "idempotency", "workflows", "steps", "events",
         "workflow_messages", "workflow_updates", "workflow_values", "workflow_streams",
         "schedules", "stream_events", "snapshots", "entities", "entity_calls",
         "blob_chunks")  # fmt: skip
MAX_BATCH = 10_000

# Called with a namespace and the state keys re-sealed in it (to drop them from a cache).
StateResealed = Callable[[str, list[str]], Awaitable[None]]


@dataclass(slots=True)
class KindReport:
    examined: int = 0  # rows found holding a value not sealed by the primary key
    rewritten: int = 0
    changed_meanwhile: int = 0  # rewritten by their owner between the scan and the swap
    unreadable: int = 0  # a value did not open with the configured keys: left as it is

    def to_dict(self) -> dict[str, int]:
        return {
            "examined": self.examined,
            "rewritten": self.rewritten,
            "changed_meanwhile": self.changed_meanwhile,
            "unreadable": self.unreadable,
        }


@dataclass(slots=True)
class ReencryptReport:
    primary: str
    complete: bool = False  # False when stopped after max_batches: run again to finish
    batches: int = 0
    kinds: dict[str, KindReport] = field(default_factory=lambda: {k: KindReport() for k in KINDS})

    def total(self, name: str) -> int:
        return sum(int(getattr(kind, name)) for kind in self.kinds.values())

    def to_dict(self) -> dict[str, Any]:
        totals = ("examined", "rewritten", "changed_meanwhile", "unreadable")
        return {
            "primary_key": self.primary,
            "complete": self.complete,
            "batches": self.batches,
            **{name: self.total(name) for name in totals},
            "kinds": {name: kind.to_dict() for name, kind in self.kinds.items()},
        }


async def reencrypt(
    backend: Storage,
    keyring: Keyring,
    *,
    namespace: str | None,
    batch_size: int = 500,
    max_batches: int | None = None,
    state_resealed: StateResealed | None = None,
) -> ReencryptReport:
    """Re-seal the stored values of ``namespace`` (None: every namespace) under
    ``keyring``'s primary key; stop after ``max_batches`` batches if given (the report
    then says it is not complete)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationError(f"batch size must be an integer, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError(f"batch size must be 1 to {MAX_BATCH}, got {batch_size}")
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise ValidationError(f"max batches must be a positive integer, got {max_batches!r}")
    sealer = Sealer(keyring)
    bytes_prefix, text_prefix = sealer.primary_prefixes()
    report = ReencryptReport(keyring.primary)
    for kind in KINDS:
        table = RESEAL_TABLES[kind]
        counts = report.kinds[kind]
        unreadable: dict[str, tuple[int, str]] = {}  # per namespace: how many, the first why
        # The namespace asked for; for every namespace, each of the table's in turn (a
        # scan reads one namespace's range of its index), or all at once for a table
        # walked across namespaces (messages, along seq).
        each = namespace is None and table.by_namespace
        where = await backend.reseal.next_namespace(kind, None) if each else namespace
        after: tuple[Any, ...] | None = None
        while where is not None or not each:  # (each namespace: until none is left)
            if max_batches is not None and report.batches >= max_batches:
                return report
            rows = await backend.reseal.scan(
                kind, after, namespace=where, limit=batch_size, primary=keyring.primary,
                bytes_prefix=bytes_prefix, text_prefix=text_prefix,
            )  # fmt: skip
            if rows:
                await _reseal_batch(backend, sealer, kind, rows, counts, unreadable)
                report.batches += 1
                if kind == "state" and state_resealed is not None:
                    await _announce_state(state_resealed, rows)
                after = rows[-1].cursor
            if len(rows) == batch_size:
                continue
            if not each:
                break
            where, after = await backend.reseal.next_namespace(kind, where), None
        for name, (count, why) in unreadable.items():  # (not `namespace`: the one asked for)
            log.warning(
                "values not re-sealed: they do not open with the configured keys",
                extra={"kind": kind, "namespace": name, "count": count, "first": why},
            )
    report.complete = True
    return report


async def _reseal_batch(
    backend: Storage,
    sealer: Sealer,
    kind: str,
    rows: list[ResealRow],
    counts: KindReport,
    unreadable: dict[str, tuple[int, str]],
) -> None:
    """Open and seal again the values of ``rows`` not sealed by the primary key, and write
    them in one transaction (each only if its old bytes are still there)."""
    bytes_prefix, text_prefix = sealer.primary_prefixes()
    changes: list[ResealChange] = []
    owners: list[int] = []  # per change, the index of its row
    for index, row in enumerate(rows):
        counts.examined += 1
        try:
            found = _changes(sealer, kind, row, bytes_prefix, text_prefix)
        except DecryptionError as error:
            counts.unreadable += 1
            where = str(row.values["namespace"])
            seen, why = unreadable.get(where, (0, error.message))
            unreadable[where] = (seen + 1, why)
            continue
        changes += found
        owners += [index] * len(found)
    landed = await backend.reseal.write(kind, changes)
    missed = {owners[i] for i, ok in enumerate(landed) if not ok}
    counts.changed_meanwhile += len(missed)
    counts.rewritten += len(set(owners) - missed)


def _changes(
    sealer: Sealer, kind: str, row: ResealRow, bytes_prefix: bytes, text_prefix: str
) -> list[ResealChange]:
    """The row's values not sealed by the primary key, opened and sealed by it."""
    values = row.values
    if kind == "state":
        if values["key_id"] is None and is_ref(bytes(values["value"])):
            return []  # out of line: the reference stays (its chunks are re-sealed)
        return [_state_change(sealer, row)]
    table = RESEAL_TABLES[kind]
    changes = []
    for name in table.binary:
        value = values[name]
        if value is None or is_ref(bytes(value)):
            continue  # a reference stays as it is (the blob's chunks are re-sealed)
        if not bytes(value).startswith(bytes_prefix):
            stored = bytes(value)
            new = sealer.reseal(stored, *_place(kind, values, name))
            changes.append(ResealChange(name, row.key, stored, new))
    for name in table.text:
        value = values[name]
        if value is not None and not value.startswith(text_prefix):
            changes.append(
                ResealChange(
                    name, row.key, value, sealer.reseal_text(value, *_place(kind, values, name))
                )
            )
    return changes


def _state_change(sealer: Sealer, row: ResealRow) -> ResealChange:
    """A state value keeps its own scheme: raw sealed bytes, the key id in a column."""
    keyring = sealer.keyring
    assert keyring is not None
    namespace, key = row.key
    stored, key_id = bytes(row.values["value"]), row.values["key_id"]
    aad = associated_data(namespace, key)
    try:
        plain = stored if key_id is None else keyring.open(stored, key_id, aad)
    except DecryptionError as error:
        raise DecryptionError(f"state key {key!r}: {error.message}", key_id=key_id) from None
    sealed, primary = keyring.seal(plain, aad)
    return ResealChange("value", row.key, stored, sealed, primary)


def _place(kind: str, values: dict[str, Any], name: str) -> tuple[str, ...]:
    """Where a value lives, as its writer sealed it (see sealing.py)."""
    namespace = values["namespace"]
    if kind in ("messages", "archive"):  # a message's values are bound to its id
        return (MESSAGE, namespace, values["id"], name)
    if kind == "idempotency":
        return (IDEMPOTENCY, namespace, values["key"], name)
    if kind == "workflows":
        return (WORKFLOW, namespace, values["id"], name)
    if kind == "steps":
        return (STEP, namespace, values["workflow_id"], str(values["position"]), name)
    if kind == "stream_events":
        return (STREAM_EVENT, namespace, values["stream"], values["id"], name)
    if kind == "snapshots":
        return (SNAPSHOT, namespace, values["stream"], str(values["version"]), "state")
    if kind == "workflow_messages":  # a message to a workflow: bound to its topic
        return message_where(namespace, values["workflow_id"], values["topic"])
    if kind == "workflow_updates":  # its data bound to its name, its outcome to its number
        if name == "data":
            return update_data_where(namespace, values["workflow_id"], values["name"])
        return update_outcome_where(namespace, values["workflow_id"], int(values["seq"]), name)
    if kind == "workflow_values":
        return value_where(namespace, values["workflow_id"], values["key"])
    if kind == "workflow_streams":  # a stream's value: bound to the entry that wrote it
        where = (values["workflow_id"], values["key"], int(values["run"]), int(values["position"]))
        return stream_where(namespace, *where)
    if kind == "schedules":
        return (SCHEDULE, namespace, values["id"], name)
    if kind == "entities":
        return state_where(namespace, values["type"], values["key"])
    if kind == "entity_calls":  # an answer: bound to its call id
        return answer_where(namespace, values["type"], values["key"], values["call_id"], name)
    if kind == "blob_chunks":  # bound to its blob, its number and whether it is the last
        seq = int(values["seq"])
        return chunk_where(namespace, bytes(values["blob_id"]), seq,
                           last=seq == int(values["chunks"]) - 1)  # fmt: skip
    return (EVENT, namespace, values["workflow_id"], values["name"], name)


async def _announce_state(state_resealed: StateResealed, rows: list[ResealRow]) -> None:
    by_namespace: dict[str, list[str]] = {}
    for row in rows:
        namespace, key = row.key
        by_namespace.setdefault(namespace, []).append(key)
    for namespace, keys in by_namespace.items():
        await state_resealed(namespace, keys)
