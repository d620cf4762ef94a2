"""The app that the state machine crash test runs in its worker processes.

Its Task functions apply effects the way idempotent functions do: each effect is a row
keyed by what it is for (execution, state and Map item), inserted only if absent, so a
task run again after its worker died finds its effect there and gives back what the
first run gave. The effects live in a SQLite file of their own (``ASL_CRASH_EFFECTS``),
apart from the database under test, and so does a row for every run of a task (which
process, and whether it applied its effect or found it applied), so the test can count
re-runs. An exclusive ``flock`` per execution, held while a task runs, shows whether two
tasks of one execution ever ran at the same time, in any process (a killed process's
lock goes with it).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from statekeeper import App

EFFECTS = Path(os.environ["ASL_CRASH_EFFECTS"])
LOCKS = EFFECTS.parent / "locks"
TASK_SECONDS = float(os.environ.get("ASL_CRASH_TASK_SECONDS", "0.04"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY, seq INTEGER NOT NULL, value TEXT NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, pid INTEGER NOT NULL,
    applied INTEGER);  -- NULL: the run did not reach its effect; 1 applied it; 0 found it
CREATE TABLE IF NOT EXISTS overlaps (key TEXT NOT NULL, pid INTEGER NOT NULL);
"""

LOCKS.mkdir(parents=True, exist_ok=True)
app = App(os.environ["ASL_CRASH_URL"], namespace="aslcrash", purge_interval=None)
app.workflows.lease = 2.0  # killed runners' executions come back quickly


_prepared = False


def _connect() -> sqlite3.Connection:
    global _prepared
    db = sqlite3.connect(EFFECTS, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    if not _prepared:  # once per process; the first process creates them
        db.executescript(SCHEMA)
        _prepared = True
    return db


@contextmanager
def _alone(execution: str, key: str) -> Iterator[None]:
    """Hold the execution's lock while a task of it runs; an overlap row if another
    task of the same execution holds it."""
    fd = os.open(LOCKS / f"{execution}.lock", os.O_CREAT | os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            db = _connect()
            try:
                db.execute("INSERT INTO overlaps (key, pid) VALUES (?, ?)", (key, os.getpid()))
            finally:
                db.close()
        yield
    finally:
        os.close(fd)  # releases the lock


def apply(execution: str, key: str, make: Any) -> Any:
    """Run a task's effect once for ``key``: the first run stores ``make(seq)`` (seq: the
    effect's serial number); every run gives back what was stored."""
    with _alone(execution, key):
        db = _connect()
        try:
            run = db.execute(
                "INSERT INTO runs (key, pid) VALUES (?, ?)", (key, os.getpid())
            ).lastrowid
            time.sleep(TASK_SECONDS / 2)  # a kill here: the effect is not applied yet
            db.execute("BEGIN IMMEDIATE")
            found = db.execute("SELECT value FROM effects WHERE key = ?", (key,)).fetchone()
            if found is None:
                seq = 1 + db.execute("SELECT count(*) FROM effects").fetchone()[0]
                value = json.dumps(make(seq))
                db.execute(
                    "INSERT INTO effects (key, seq, value, pid) VALUES (?, ?, ?, ?)",
                    (key, seq, value, os.getpid()),
                )
            else:
                value = found[0]
            db.execute("UPDATE runs SET applied = ? WHERE id = ?", (found is None, run))
            db.execute("COMMIT")
        finally:
            db.close()
        time.sleep(TASK_SECONDS / 2)  # a kill here: applied, but not yet journaled
    return json.loads(value)


class CardDeclined(Exception):
    """The error the machine's Catch takes."""


@app.task_function
def reserve(event: dict[str, Any]) -> dict[str, Any]:
    execution = event["execution"]
    total = sum(item["cost"] for item in event["items"])
    return apply(  # type: ignore[no-any-return]
        execution, f"{execution}/Reserve", lambda seq: {"id": f"R{seq}", "total": total}
    )


@app.task_function
def pack(event: dict[str, Any]) -> str:
    execution, index, item = event["execution"], event["index"], event["item"]
    return apply(  # type: ignore[no-any-return]
        execution, f"{execution}/PackItem/{index}", lambda seq: f"packed {item['name']} #{seq}"
    )


@app.task_function
def charge(event: dict[str, Any]) -> dict[str, Any]:
    """A declined card is an effect too (the attempt is recorded once), then an error."""
    execution, total, card = event["execution"], event["total"], event["card"]

    def made(seq: int) -> dict[str, Any]:
        if card == "declined":
            return {"declined": total}
        return {"charged": total, "receipt": f"C{seq}"}

    outcome = apply(execution, f"{execution}/Charge", made)
    if "declined" in outcome:
        raise CardDeclined(f"card declined for {outcome['declined']}")
    return outcome  # type: ignore[no-any-return]


@app.task_function
def release(event: dict[str, Any]) -> str:
    execution, reservation = event["execution"], event["reservation"]
    return apply(  # type: ignore[no-any-return]
        execution, f"{execution}/Release", lambda seq: f"released {reservation} #{seq}"
    )
