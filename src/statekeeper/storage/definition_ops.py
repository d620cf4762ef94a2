"""Workflow definitions, written once for both adapters (``queries/definitions.sql``)."""

from __future__ import annotations

from collections.abc import Iterable

from statekeeper.storage.rows import DefinitionRow
from statekeeper.storage.runner import Operations


class DefinitionOps(Operations):
    """``contracts.DefinitionStorage``: the block's operations over an adapter's statements."""

    async def define(
        self, namespace: str, name: str, kind: str, definition: str | None, now: float
    ) -> int:
        """Define ``name`` (again); its revision, raised only when something changed."""
        statement = self._bind(
            "def_define", namespace=namespace, name=name, kind=kind, definition=definition,
            now=now,
        )  # fmt: skip
        what = f"cannot define workflow {name!r}"
        revision = await self._db.run_write(statement, what, "first")
        if revision is not None:
            return int(revision)
        unchanged = await self.get(namespace, name)
        return 1 if unchanged is None else unchanged.revision

    async def announce_code(self, namespace: str, names: Iterable[str], now: float) -> None:
        """Make the workflows of a worker's code known by name (kind ``code``)."""
        for name in names:
            statement = self._bind("def_announce_code", namespace=namespace, name=name, now=now)
            await self._db.run_write(statement, f"cannot announce workflow {name!r}", "rowcount")

    async def get(self, namespace: str, name: str) -> DefinitionRow | None:
        statement = self._bind("def_get", namespace=namespace, name=name)
        row = await self._db.run_read(statement, f"cannot read workflow {name!r}", "row")
        return None if row is None else DefinitionRow(*row)

    async def list(self, namespace: str) -> list[DefinitionRow]:
        statement = self._bind("def_list", namespace=namespace)
        rows = await self._db.run_many(statement, "cannot read the workflow definitions")
        return [DefinitionRow(*row) for row in rows]

    async def delete(self, namespace: str, name: str) -> bool:
        statement = self._bind("def_delete", namespace=namespace, name=name)
        found = await self._db.run_write(statement, f"cannot delete workflow {name!r}", "found")
        return bool(found)
