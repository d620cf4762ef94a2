"""The app that the SQL target's crash test runs in ``statekeeper worker`` processes.

Its projection ``ledger`` keeps, in a separate PostgreSQL database, a balance per
account (``account-N`` streams) that every deposit adds to, and a row per event handled
in ``applied``, which has no key: an event whose effects committed twice shows there
as two rows, and in the balances. Each call of the handler is also written to a trace
file of its process (unbuffered), rolled back or not, to count the events a killed
worker's transaction made handle again.

CRASH_PG_DSN, CRASH_PG_SCHEMA: the event store; CRASH_TARGET_URL: the read database;
CRASH_TRACE_DIR: where the trace files go; CRASH_HANDLER_SECONDS: a pause per event
(long transactions: a kill lands inside one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from statekeeper import App
from statekeeper.events.model import RecordedEvent
from statekeeper.events.sql_target import SqlContext, SqlTarget

PROJECTION = "ledger"
ACCOUNTS = (
    "CREATE TABLE {table} (id text PRIMARY KEY, balance bigint NOT NULL, "
    "deposits int NOT NULL, last_position bigint NOT NULL)"
)
APPLIED = "CREATE TABLE {table} (position bigint NOT NULL, stream text NOT NULL)"
_PAUSE = float(os.environ.get("CRASH_HANDLER_SECONDS", "0"))
_trace: int | None = None


async def ledger(event: RecordedEvent, sql: SqlContext) -> None:
    if _trace is not None:
        os.write(_trace, f"{event.position}\n".encode())
    accounts = sql.table("accounts")
    await sql.execute(
        f"INSERT INTO {accounts} AS a VALUES ($1, $2, 1, $3) ON CONFLICT (id) DO UPDATE "
        "SET balance = a.balance + EXCLUDED.balance, deposits = a.deposits + 1, "
        "last_position = EXCLUDED.last_position",
        event.stream,
        int(event.data["amount"]),
        event.position,
    )
    await sql.execute(
        f"INSERT INTO {sql.table('applied')} VALUES ($1, $2)", event.position, event.stream
    )
    if _PAUSE:
        await asyncio.sleep(_PAUSE)


def ledger_app(database_url: str, target_url: str) -> App:
    """The app, with its projection into ``target_url``."""
    app = App(database_url, namespace="crash", purge_interval=None, encryption=None)
    target = SqlTarget(target_url, tables={"accounts": ACCOUNTS, "applied": APPLIED})
    app.projection(PROJECTION, category="account", types=["Deposited"], batch=100,
                   target=target)(ledger)  # fmt: skip
    projection = app.projections.registered[PROJECTION]
    projection.options = dataclasses.replace(projection.options, poll=0.2)
    return app


if "CRASH_TARGET_URL" in os.environ:
    app = ledger_app(
        os.environ["CRASH_PG_URL"],
        os.environ["CRASH_TARGET_URL"],
    )
    if os.environ.get("CRASH_TRACE_DIR"):
        _trace = os.open(
            os.path.join(os.environ["CRASH_TRACE_DIR"], f"{os.getpid()}.trace"),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        )
