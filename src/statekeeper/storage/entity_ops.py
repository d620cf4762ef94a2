"""Keyed entities, for both adapters (queries in ``queries/entities.sql``).

An entity's writer is whoever holds its lease: ``lease`` takes it when it is free or
ran out (and creates the entity's row), answering the token that fences the holder's
commits (``rows.EntityCommit`` in a unit of work) and the stored state. Reads need no
lease: they see the last committed state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statekeeper.storage.rows import EntityAnswer, EntityLease, EntityRow
from statekeeper.storage.runner import Operations


class EntityOps(Operations):
    """``contracts.EntityStorage``: the block's operations over an adapter's statements."""

    async def lease(
        self, namespace: str, type: str, key: str, holder: str, until: float, now: float
    ) -> EntityLease | None:
        """The entity's lease until ``until`` if no one else holds it (None if someone
        does): its token, state and version."""
        statement = self._bind(
            "entity_lease", namespace=namespace, type=type, key=key, holder=holder,
            until=until, now=now,
        )  # fmt: skip
        row = await self._db.run_write(statement, f"cannot lease entity {type}/{key}", "row")
        return None if row is None else EntityLease(int(row[0]), _bytes(row[1]), int(row[2]))

    async def extend(
        self, namespace: str, type: str, key: str, holder: str, token: int, until: float
    ) -> bool:
        """Hold the lease until ``until``; False if it was lost."""
        statement = self._bind(
            "entity_extend", namespace=namespace, type=type, key=key, holder=holder,
            token=token, until=until,
        )  # fmt: skip
        what = f"cannot extend the lease of entity {type}/{key}"
        return bool(await self._db.run_write(statement, what, "found"))

    async def release(self, namespace: str, type: str, key: str, token: int) -> bool:
        """Give the lease back without a commit; False if it was taken over."""
        statement = self._bind("entity_release", namespace=namespace, type=type, key=key,
                               token=token)  # fmt: skip
        what = f"cannot release entity {type}/{key}"
        return bool(await self._db.run_write(statement, what, "found"))

    async def get(self, namespace: str, type: str, key: str) -> EntityRow | None:
        statement = self._bind("entity_get", namespace=namespace, type=type, key=key)
        row = await self._db.run_read(statement, f"cannot read entity {type}/{key}", "row")
        return None if row is None else _entity(key, row)

    async def answers(
        self, namespace: str, type: str, key: str, call_ids: Sequence[str]
    ) -> dict[str, EntityAnswer]:
        """The recorded answers among ``call_ids``, by call id."""
        if not call_ids:
            return {}
        statement = self._bind(
            "entity_answers", namespace=namespace, type=type, key=key,
            **self._list_arg("ids", call_ids),
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot read answers of {type}/{key}")
        return {str(r[0]): EntityAnswer(str(r[0]), str(r[1]), _bytes(r[2]), r[3]) for r in rows}

    async def list(self, namespace: str, type: str, after: str, limit: int) -> list[EntityRow]:
        """Entities of ``type`` with a key after ``after``, in key order."""
        statement = self._bind(
            "entity_list", namespace=namespace, type=type, after=after, limit=limit
        )
        rows = await self._db.run_in_order(statement, f"cannot list entities {type}")
        return [_entity(str(r[0]), r[1:]) for r in rows]

    async def forget(self, now: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired answers; how many."""
        statement = self._bind("entity_forget", now=now, limit=limit)
        return int(await self._db.run_write(statement, "cannot forget answers", "rowcount"))


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _entity(key: str, row: Sequence[Any]) -> EntityRow:
    state, version, updated_at, holder, lease_until, token = row
    return EntityRow(
        key, _bytes(state), int(version), float(updated_at),
        None if holder is None else str(holder),
        None if lease_until is None else float(lease_until), int(token),
    )  # fmt: skip
