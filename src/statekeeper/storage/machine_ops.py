"""Records of the Step Functions API (machines, versions, aliases), written once for
both adapters (``queries/state_machines.sql``). A record is a JSON document under a
kind and a name; ``list`` reads the names that start with a prefix, a page at a time,
in the primary key's order."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from statekeeper.storage.runner import Operations

_END = "\U0010ffff"  # after every name that starts with a prefix


class MachineRecord(NamedTuple):
    name: str
    doc: dict[str, Any]
    created_at: float


class MachineOps(Operations):
    """``contracts.MachineStorage``: the block's operations over an adapter's statements."""

    async def insert(
        self, namespace: str, kind: str, name: str, doc: dict[str, Any], now: float
    ) -> bool:
        """Store a new record; False if one of that kind and name exists."""
        statement = self._bind(
            "sm_insert", namespace=namespace, kind=kind, name=name, doc=_text(doc), now=now
        )
        return bool(await self._db.run_write(statement, f"cannot store {kind} {name!r}", "found"))

    async def update(self, namespace: str, kind: str, name: str, doc: dict[str, Any]) -> bool:
        """Replace a record's document; False if there is none."""
        statement = self._bind(
            "sm_update", namespace=namespace, kind=kind, name=name, doc=_text(doc)
        )
        return bool(await self._db.run_write(statement, f"cannot store {kind} {name!r}", "found"))

    async def get(self, namespace: str, kind: str, name: str) -> MachineRecord | None:
        statement = self._bind("sm_get", namespace=namespace, kind=kind, name=name)
        row = await self._db.run_read(statement, f"cannot read {kind} {name!r}", "row")
        return None if row is None else MachineRecord(name, json.loads(row[0]), float(row[1]))

    async def list(
        self,
        namespace: str,
        kind: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[MachineRecord]:
        """Up to ``limit`` records of ``kind`` whose names start with ``prefix``, in name
        order (``newest_first``: backwards), after (before) the name ``after``."""
        bounds = {"namespace": namespace, "kind": kind, "low": prefix, "high": prefix + _END}
        if newest_first:
            statement = self._bind(
                "sm_list_back", **bounds, below=_END if after is None else after, limit=limit
            )
        else:
            statement = self._bind("sm_list", **bounds, after=after or "", limit=limit)
        rows = await self._db.run_many(statement, f"cannot list the {kind} records")
        return [MachineRecord(row[0], json.loads(row[1]), float(row[2])) for row in rows]

    async def delete(self, namespace: str, kind: str, name: str) -> bool:
        statement = self._bind("sm_delete", namespace=namespace, kind=kind, name=name)
        return bool(await self._db.run_write(statement, f"cannot delete {kind} {name!r}", "found"))

    async def delete_prefix(self, namespace: str, kind: str, prefix: str) -> None:
        """Delete every record of ``kind`` whose name starts with ``prefix``."""
        statement = self._bind(
            "sm_delete_range", namespace=namespace, kind=kind, low=prefix, high=prefix + _END
        )
        await self._db.run_write(statement, f"cannot delete the {kind} records", "rowcount")


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
