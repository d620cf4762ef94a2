"""Numbered schema migrations per dialect, and the fresh schema they add up to.

A new database gets ``schema/<dialect>.sql`` at once; an existing one gets the
migrations it lacks, in order. Adapters run either under a lock (SQLite's write
lock, PostgreSQL's advisory lock), so concurrent start-ups migrate once.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from statekeeper.errors import SchemaError
from statekeeper.storage.queries import Dialect

MIGRATIONS_TABLE = "sk_schema_migrations"
# Any fixed 64-bit number, the same in every process: the advisory lock's id.
POSTGRES_LOCK_ID = 0x5354_4B45_4550_0001

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of ``dialect``, by version."""
    found: list[Migration] = []
    for entry in resources.files(__name__).joinpath(dialect).iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return found


def fresh_schema(dialect: Dialect) -> str:
    """The whole current schema as one script."""
    package = resources.files("statekeeper.storage.schema")
    return package.joinpath(f"{dialect}.sql").read_text(encoding="utf-8")


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (SQLite's own completeness test)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            current = []
    if current and "\n".join(current).strip():
        raise SchemaError("a migration script ends in the middle of a statement")
    return statements


def check_not_newer(dialect: Dialect, applied: set[int]) -> None:
    """Refuse a database migrated by a newer statekeeper."""
    known = len(migrations(dialect))
    if applied and max(applied) > known:
        raise SchemaError(
            f"the database schema is at version {max(applied)}, newer than this "
            f"statekeeper knows ({known}); upgrade statekeeper"
        )


def plan(dialect: Dialect, applied: set[int], fresh: bool) -> tuple[list[str], list[Migration]]:
    """The scripts to run, and the migrations to record as applied.

    A database with no migration recorded gets the fresh schema at once (unless
    ``fresh`` is False, as tests do to prove the two paths agree).
    """
    check_not_newer(dialect, applied)
    pending = [m for m in migrations(dialect) if m.version not in applied]
    if not applied and fresh:
        return [fresh_schema(dialect)], pending
    return [m.sql for m in pending], pending
