"""Subscriptions to the event log (checkpoints under leases, failures, parked events)
and projections' generations, written once for both adapters
(``queries/subscriptions.sql``). A checkpoint advances in a unit of work
(``rows.Checkpoint``), with the handler's writes."""

from __future__ import annotations

from typing import Any, NamedTuple

from statekeeper.storage.runner import Operations


class Lease(NamedTuple):
    """A subscription held: its checkpoint, and the event it is failing on (if any)."""

    position: int
    failing_position: int | None
    failures: int


class SubscriptionRow(NamedTuple):
    name: str
    position: int
    holder: str | None
    lease_expires_at: float | None
    failing_position: int | None
    failures: int
    last_error: str | None
    parked: int
    created_at: float
    updated_at: float


class ParkedRow(NamedTuple):
    position: int
    error: str
    attempts: int
    parked_at: float


class ProjectionRow(NamedTuple):
    generation: int
    building: int | None
    updated_at: float


def _subscription(row: Any) -> SubscriptionRow:
    return SubscriptionRow(
        row[0], int(row[1]), row[2], row[3], row[4], int(row[5]), row[6], int(row[7]),
        float(row[8]), float(row[9]),
    )  # fmt: skip


class SubscriptionOps(Operations):
    """``contracts.SubscriptionStorage``: the block's operations over an adapter's
    statements."""

    async def create(self, namespace: str, name: str, position: int, now: float) -> None:
        """The subscription, starting after ``position``, unless it exists."""
        statement = self._bind(
            "sub_create", namespace=namespace, name=name, position=position, now=now
        )
        await self._db.run_write(statement, f"cannot create subscription {name!r}", "rowcount")

    async def lease(
        self, namespace: str, name: str, token: str, holder: str, lease_end: float, now: float
    ) -> Lease | None:
        """Take or renew the lease; None while another process holds it."""
        statement = self._bind(
            "sub_lease", namespace=namespace, name=name, token=token, holder=holder,
            lease_end=lease_end, now=now,
        )  # fmt: skip
        row = await self._db.run_write(statement, f"cannot lease subscription {name!r}", "row")
        return None if row is None else Lease(int(row[0]), row[1], int(row[2]))

    async def release(self, namespace: str, name: str, token: str) -> None:
        statement = self._bind("sub_release", namespace=namespace, name=name, token=token)
        await self._db.run_write(statement, f"cannot release subscription {name!r}", "rowcount")

    async def fail(
        self, namespace: str, name: str, token: str, position: int, error: str, now: float
    ) -> int | None:
        """Record a failure on the event at ``position``: the failures in a row so far
        (None: the lease is lost)."""
        statement = self._bind(
            "sub_fail", namespace=namespace, name=name, token=token, position=position,
            error=error, now=now,
        )  # fmt: skip
        found = await self._db.run_write(statement, f"cannot record a failure of {name!r}", "first")
        return None if found is None else int(found)

    async def get(self, namespace: str, name: str) -> SubscriptionRow | None:
        statement = self._bind("sub_get", namespace=namespace, name=name)
        row = await self._db.run_read(statement, f"cannot read subscription {name!r}", "row")
        return None if row is None else _subscription(row)

    async def page(
        self, namespace: str, *, after: str = "", limit: int = 100
    ) -> list[SubscriptionRow]:
        statement = self._bind("sub_list", namespace=namespace, after=after, limit=limit)
        rows = await self._db.run_in_order(statement, "cannot list the subscriptions")
        return [_subscription(row) for row in rows]

    async def delete(self, namespace: str, name: str) -> None:
        """Forget a subscription and its parked events."""
        await self._db.run_atomic(
            [
                (self._bind("sub_parked_delete_all", namespace=namespace, name=name),
                 "rowcount", False),
                (self._bind("sub_delete", namespace=namespace, name=name), "rowcount", False),
            ],
            f"cannot delete subscription {name!r}",
        )  # fmt: skip

    async def parked(
        self, namespace: str, name: str, *, after: int = 0, limit: int = 100
    ) -> list[ParkedRow]:
        statement = self._bind(
            "sub_parked", namespace=namespace, name=name, after=after, limit=limit
        )
        rows = await self._db.run_many(statement, f"cannot list the parked events of {name!r}")
        return [ParkedRow(int(r[0]), r[1], int(r[2]), float(r[3])) for r in rows]

    async def projection(self, namespace: str, name: str, now: float) -> ProjectionRow:
        """A projection's generations (created at generation 1 on first use)."""
        statement = self._bind("proj_get", namespace=namespace, name=name)
        row = await self._db.run_read(statement, f"cannot read projection {name!r}", "row")
        if row is None:
            create = self._bind("proj_create", namespace=namespace, name=name, now=now)
            await self._db.run_write(create, f"cannot create projection {name!r}", "rowcount")
            row = await self._db.run_read(statement, f"cannot read projection {name!r}", "row")
        return ProjectionRow(int(row[0]), row[1], float(row[2]))

    async def start_build(self, namespace: str, name: str, building: int, now: float) -> bool:
        """Start building generation ``building``; False if one is being built."""
        statement = self._bind(
            "proj_build", namespace=namespace, name=name, building=building, now=now
        )
        return bool(await self._db.run_write(statement, f"cannot rebuild {name!r}", "found"))

    async def switch(self, namespace: str, name: str, building: int, now: float) -> bool:
        """Readers move to generation ``building``; False if it is not the one built."""
        statement = self._bind(
            "proj_switch", namespace=namespace, name=name, building=building, now=now
        )
        return bool(await self._db.run_write(statement, f"cannot switch {name!r}", "found"))
