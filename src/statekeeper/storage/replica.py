"""A PostgreSQL hot standby to read from where a caller accepts eventual consistency.

``App(url, replica_url="postgresql://app@standby/prod?max_staleness=5")`` (or
``STATEKEEPER_REPLICA_URL``): reads asked for with ``consistent=False`` go to the
standby when it is at most ``max_staleness`` seconds behind (5 by default), and to the
primary otherwise, or when the standby cannot be reached. The standby's lag is measured
before each such read, on the standby: the time since the commit of the last
transaction it has replayed (``pg_last_xact_replay_timestamp()``). A read that follows
sees at least that much (a standby only moves forward), so what it returns was current
on the primary at most ``max_staleness`` seconds before the check, plus the clocks'
difference between the two servers. A primary with no writes for longer than the bound
looks stale too: reads then go to the primary, never to an older standby.

The standby is only read: no migration runs there (it has the primary's schema). A
standby that is down, at start or later, is read around: the primary answers (a
warning is logged when the standby stops answering).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from statekeeper.storage.contracts import StateStorage
from statekeeper.storage.postgres import PostgresBackend
from statekeeper.storage.url import DatabaseURL

log = logging.getLogger("statekeeper.replica")

DEFAULT_MAX_STALENESS = 5.0
LAG = (
    "SELECT CASE WHEN pg_is_in_recovery() "
    "THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 "
    "ELSE 0.0 END"
)


class Replica:
    def __init__(self, url: DatabaseURL) -> None:
        self.url = url
        self.max_staleness = float(url.options.get("max_staleness", DEFAULT_MAX_STALENESS))
        # No connection at open: a standby that is down does not stop the app (its
        # reads go to the primary until it answers).
        lazy = replace(url, options={**url.options, "pool_min": "0"})
        self._backend = PostgresBackend(lazy, read_only=True)
        self._down = False  # whether the last look at the standby failed

    async def open(self) -> None:
        await self._backend.open()

    async def close(self) -> None:
        await self._backend.close()

    @property
    def state(self) -> StateStorage:
        return self._backend.state

    async def lag(self) -> float | None:
        """Seconds the standby is behind (0 on a primary; None before it has replayed
        anything)."""
        found = await self._backend.pool.fetchval(LAG)
        return None if found is None else max(0.0, float(found))

    async def fresh(self) -> bool:
        """Whether a read from here now is within the bound (False when unreachable:
        logged once when the standby stops answering, and once when it answers again)."""
        try:
            behind = await self.lag()
        except Exception as error:  # statekeeper's, the driver's or the socket's
            if not self._down:
                self._down = True
                log.warning("the replica cannot be read; reading the primary", exc_info=error)
            return False
        if self._down:
            self._down = False
            log.info("the replica answers again")
        return behind is not None and behind <= self.max_staleness
