"""Re-sealing stored payloads, for both adapters (queries in ``queries/reseal.sql``).

Storage does not open or seal anything: it finds, in primary-key order, the rows
holding a value that does not begin the way the primary key's envelope begins,
and writes the values it is handed back, each only if the old bytes are still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from statekeeper.storage.rows import ResealChange, ResealRow
from statekeeper.storage.runner import Operations, Scripted


class ResealTable(NamedTuple):
    """A table whose payloads can be re-sealed: the columns its scan returns (its
    primary key first, the scan's order and cursor) and the columns holding payloads."""

    key: tuple[str, ...]
    columns: tuple[str, ...]
    binary: tuple[str, ...]  # BLOB / bytea
    text: tuple[str, ...]


RESEAL_TABLES: dict[str, ResealTable] = {
    "state": ResealTable(("namespace", "key"), ("value", "key_id"), ("value",), ()),
    "messages": ResealTable(
        ("seq",),
        ("namespace", "id", "body", "attributes", "reply_to", "last_error"),
        ("body",),
        ("attributes", "reply_to", "last_error"),
    ),
    "archive": ResealTable(
        ("id",),
        ("namespace", "body", "result", "attributes", "reply_to"),
        ("body", "result"),
        ("attributes", "reply_to"),
    ),
    "idempotency": ResealTable(("namespace", "key"), ("result",), ("result",), ()),
    "workflows": ResealTable(
        ("namespace", "id"), ("input", "output", "error"), ("input", "output"), ("error",)
    ),
    "steps": ResealTable(
        ("namespace", "workflow_id", "position"),
        ("input", "output", "error"),
        ("input", "output"),
        ("error",),
    ),
    "events": ResealTable(("namespace", "workflow_id", "name"), ("data",), ("data",), ()),
    "workflow_messages": ResealTable(
        ("namespace", "workflow_id", "topic", "seq"), ("data",), ("data",), ()
    ),
    "workflow_updates": ResealTable(
        ("namespace", "workflow_id", "seq"),
        ("name", "data", "result", "error"),
        ("data", "result"),
        ("error",),
    ),
    "workflow_values": ResealTable(("namespace", "workflow_id", "key"), ("value",), ("value",), ()),
    "schedules": ResealTable(("namespace", "id"), ("input",), ("input",), ()),
    "stream_events": ResealTable(
        ("namespace", "position"), ("stream", "id", "data"), ("data",), ()
    ),
    "snapshots": ResealTable(("namespace", "stream"), ("version", "data"), ("data",), ()),
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
        """Up to ``limit`` rows of ``kind`` of ``namespace`` (None: of every namespace)
        after the cursor ``after`` (None: from the start) with a value not sealed by the
        ``primary`` key, in primary-key order."""
        table = RESEAL_TABLES[kind]
        start = after if after is not None else _before_all(table.key)
        statement = self._bind(
            f"reseal_scan_{kind}", every_namespace=int(namespace is None),
            namespace=namespace or "", limit=limit, primary=primary, bytes_prefix=bytes_prefix,
            bytes_len=len(bytes_prefix), text_prefix=text_prefix, text_len=len(text_prefix),
            **{f"after_{name}": value for name, value in zip(table.key, start, strict=True)},
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot scan {kind} to re-seal")
        width = len(table.key)
        names = table.key + table.columns
        return [ResealRow(tuple(row[:width]), dict(zip(names, row, strict=True))) for row in rows]

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


def _before_all(key: tuple[str, ...]) -> tuple[Any, ...]:
    """A cursor before every row: sequence numbers and positions are positive, text keys
    non-empty."""
    return tuple(-1 if name in ("seq", "position") else "" for name in key)
