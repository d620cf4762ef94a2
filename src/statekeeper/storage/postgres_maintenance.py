"""Keeping statekeeper's tables healthy on PostgreSQL, whatever autovacuum does.

A queue table churns: every message is inserted, updated when leased and deleted when
acknowledged, leaving dead rows (and dead index entries at the front of the ready order)
until a vacuum reclaims them; a backlog that builds up in a minute leaves the planner
with the statistics of an empty table until an analyze. Autovacuum does both, but at
most once a minute per table and only where it is on (it may be off, as on servers tuned
for short tests). So the app's background loop calls ``maintain`` every few seconds: it
reads the statistics system's counts and vacuums (with ANALYZE) the tables with enough
dead rows, and analyzes those with enough changed rows since their last analyze.
``SKIP_LOCKED`` means it never waits for a table another vacuum holds. The measurements
are in docs/decisions/0005-flat-cost.md.
"""

from __future__ import annotations

import logging
import re

import asyncpg

from statekeeper.storage.postgres_common import translated
from statekeeper.storage.queries import load
from statekeeper.storage.rows import Maintenance

log = logging.getLogger("statekeeper.storage")
Q = load("postgres")
_TABLE = re.compile(r"sk_[a-z_]{1,60}")

# A table is vacuumed once it holds this many dead rows, or this share of its live rows
# if that is more; analyzed once this many rows (or this share) changed since the last.
VACUUM_DEAD_ROWS = 1000
ANALYZE_CHANGED_ROWS = 500
SHARE = 0.1


class TableKeeper:
    """Vacuums and analyzes statekeeper's tables of one pool when they need it."""

    def __init__(self) -> None:
        self.refused = False  # tables this role does not own: said once

    async def maintain(self, pool: asyncpg.Pool) -> Maintenance:
        done = Maintenance([], [])
        with translated("cannot read table statistics"):
            rows = await pool.fetch(Q["maintenance_tables"].sql)
        for name, live, dead, changed, owned in rows:
            if not _TABLE.fullmatch(name):
                continue
            if not owned:
                if not self.refused:
                    self.refused = True
                    log.warning(
                        "this role does not own statekeeper's tables, so it cannot vacuum "
                        "them; their owner or autovacuum must",
                        extra={"table": name},
                    )
                continue
            if dead >= max(VACUUM_DEAD_ROWS, SHARE * live):
                statement, into = f'VACUUM (ANALYZE, SKIP_LOCKED) "{name}"', done.vacuumed
            elif changed >= max(ANALYZE_CHANGED_ROWS, SHARE * live):
                statement, into = f'ANALYZE (SKIP_LOCKED) "{name}"', done.analyzed
            else:
                continue
            with translated(f"cannot maintain table {name}"):
                await pool.execute(statement)
            into.append(name)
        return done
