"""Re-sealing stored payloads, for both adapters (queries in ``queries/reseal.sql``).

Storage does not open or seal anything: it finds, along an index from a cursor (a
namespace's range but for messages: see ``reseal.sql``), the rows holding a value that
does not begin the way the primary key's envelope begins, and writes the values it is
handed back, each only if the old bytes are still there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from statekeeper.constants import REF_MAGIC
from statekeeper.storage.rows import ResealChange, ResealRow
from statekeeper.storage.runner import Operations, Scripted


class ResealTable(NamedTuple):
    """A table whose payloads can be re-sealed: its primary key (what each update finds
    its row by), the other columns its scan returns (after the key, in this order), the
    columns holding payloads, and the columns of the scan's order and cursor within a
    namespace (``namespace = :namespace AND (order) > (cursor) ORDER BY order``)."""

    key: tuple[str, ...]
    columns: tuple[str, ...]
    binary: tuple[str, ...]  # BLOB / bytea
    text: tuple[str, ...]
    order: tuple[str, ...]
    # False: the scan walks ``order`` across every namespace, the namespace a filter (the
    # table has no index on every row that begins with namespace): see reseal.sql.
    by_namespace: bool = True


RESEAL_TABLES: dict[str, ResealTable] = {
    "state": ResealTable(("namespace", "key"), ("value", "key_id"), ("value",), (), ("key",)),
    "messages": ResealTable(
        ("seq",),
        ("namespace", "id", "body", "attributes", "reply_to", "last_error"),
        ("body",),
        ("attributes", "reply_to", "last_error"),
        ("seq",),
        by_namespace=False,
    ),
    "archive": ResealTable(  # along sk_message_archive_time, not its primary key (id)
        ("id",),
        ("namespace", "queue", "completed_at", "body", "result", "attributes", "reply_to"),
        ("body", "result"),
        ("attributes", "reply_to"),
        ("queue", "completed_at", "id"),
    ),
    "idempotency": ResealTable(("namespace", "key"), ("result",), ("result",), (), ("key",)),
    "workflows": ResealTable(
        ("namespace", "id"), ("input", "output", "error"), ("input", "output"), ("error",), ("id",)
    ),
    "steps": ResealTable(
        ("namespace", "workflow_id", "position"),
        ("input", "output", "error"),
        ("input", "output"),
        ("error",),
        ("workflow_id", "position"),
    ),
    "events": ResealTable(
        ("namespace", "workflow_id", "name"), ("data",), ("data",), (), ("workflow_id", "name")
    ),
    "workflow_messages": ResealTable(
        ("namespace", "workflow_id", "topic", "seq"),
        ("data",),
        ("data",),
        (),
        ("workflow_id", "topic", "seq"),
    ),
    "workflow_updates": ResealTable(
        ("namespace", "workflow_id", "seq"),
        ("name", "data", "result", "error"),
        ("data", "result"),
        ("error",),
        ("workflow_id", "seq"),
    ),
    "workflow_values": ResealTable(
        ("namespace", "workflow_id", "key"), ("value",), ("value",), (), ("workflow_id", "key")
    ),
    "workflow_streams": ResealTable(
        ("namespace", "workflow_id", "key", "seq"),
        ("value", "run", "position"),
        ("value",),
        (),
        ("workflow_id", "key", "seq"),
    ),
    "schedules": ResealTable(("namespace", "id"), ("input",), ("input",), (), ("id",)),
    "stream_events": ResealTable(
        ("namespace", "position"), ("stream", "id", "data"), ("data",), (), ("position",)
    ),
    "snapshots": ResealTable(
        ("namespace", "stream"), ("version", "data"), ("data",), (), ("stream",)
    ),
    "entities": ResealTable(
        ("namespace", "type", "key"), ("state",), ("state",), (), ("type", "key")
    ),
    "entity_calls": ResealTable(
        ("namespace", "type", "key", "call_id"),
        ("result", "error"),
        ("result",),
        ("error",),
        ("type", "key", "call_id"),
    ),
    # Chunks of blobs held in the database: walked along their primary key across
    # namespaces (the namespace is their blob's, a filter), as messages are.
    "blob_chunks": ResealTable(
        ("blob_id", "seq"),
        ("namespace", "chunks", "data"),
        ("data",),
        (),
        ("blob_id", "seq"),
        by_namespace=False,
    ),
}


class ResealOps(Operations):
    """``contracts.ResealStorage``: the block's operations over an adapter's statements."""

    async def scan(
        self,
        kind: str,
        after: tuple[Any, ...] | None,
        *,
        namespace: str | None,
        limit: int,
        primary: str,
        bytes_prefix: bytes,
        text_prefix: str,
    ) -> list[ResealRow]:
        """Up to ``limit`` rows of ``kind`` in ``namespace`` after the cursor ``after``
        (a row's ``cursor``; None: from the start) with a value not sealed by the
        ``primary`` key, in the scan's order. ``namespace`` None (every namespace) only
        for a table not walked by namespace (``by_namespace`` False): the others are
        walked one namespace at a time (``next_namespace``)."""
        table = RESEAL_TABLES[kind]
        if namespace is None and table.by_namespace:
            raise ValueError(f"the {kind} scan reads one namespace at a time")
        start = after if after is not None else _before_all(table.order)
        statement = self._bind(
            f"reseal_scan_{kind}", every_namespace=int(namespace is None),
            namespace=namespace or "", limit=limit, primary=primary, bytes_prefix=bytes_prefix,
            bytes_len=len(bytes_prefix), text_prefix=text_prefix, text_len=len(text_prefix),
            ref_prefix=REF_MAGIC,
            **{f"after_{name}": value for name, value in zip(table.order, start, strict=True)},
        )  # fmt: skip
        rows = await self._db.run_in_order(statement, f"cannot scan {kind} to re-seal")
        width = len(table.key)
        names = table.key + table.columns
        found = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            cursor = tuple(values[name] for name in table.order)
            found.append(ResealRow(tuple(row[:width]), values, cursor))
        return found

    async def next_namespace(self, kind: str, after: str | None) -> str | None:
        """The first namespace after ``after`` (None: the first of all) with rows of
        ``kind``'s table; None when there is none."""
        statement = self._bind(f"reseal_next_namespace_{kind}", after_namespace=after or "")
        found = await self._db.run_read(statement, f"cannot list the namespaces of {kind}", "first")
        return None if found is None else str(found)

    async def write(self, kind: str, changes: Sequence[ResealChange]) -> list[bool]:
        """Apply ``changes`` in one transaction; per change, whether the old value was
        still there (and is replaced)."""
        if not changes:
            return []
        key = RESEAL_TABLES[kind].key
        script: list[Scripted] = []
        for change in changes:
            statement = self._bind(
                f"reseal_{kind}_{change.field}", new=change.new, old=change.old,
                key_id=change.key_id, **dict(zip(key, change.key, strict=True)),
            )  # fmt: skip
            script.append((statement, "rowcount", False))
        counts = await self._db.run_atomic(script, f"cannot re-seal {kind}")
        return [bool(count) for count in counts or []]


def _before_all(order: tuple[str, ...]) -> tuple[Any, ...]:
    """A cursor before every row of a namespace: sequence numbers and positions are
    positive, times finite, text keys and queue names non-empty."""
    return tuple(
        -1 if name in ("seq", "position")
        else -math.inf if name == "completed_at"
        else b"" if name == "blob_id"
        else ""
        for name in order
    )  # fmt: skip
