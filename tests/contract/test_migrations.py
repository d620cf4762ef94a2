"""Migrations: the migrated schema equals the fresh one; start-ups migrate once, under a lock."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from statekeeper import App
from statekeeper.errors import SchemaError
from statekeeper.storage import create_backend, parse
from statekeeper.storage.migrations import MIGRATIONS_TABLE, migrations
from statekeeper.storage.queries import Dialect
from tests.conftest import pg_dsn


def sqlite_schema(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        columns = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns += [(table, *row) for row in conn.execute(f"PRAGMA table_xinfo({table})")]
        # A table's stored CREATE text keeps the shape of every ALTER that built it, so
        # tables compare by structure (columns below, WITHOUT ROWID here); indexes by text.
        normal = [
            (t, n, tb, "WITHOUT ROWID" in (sql or "").upper())
            if t == "table"
            else (t, n, tb, " ".join((sql or "").split()))
            for t, n, tb, sql in objects
        ]
        return sorted(normal) + sorted(columns)
    finally:
        conn.close()


async def postgres_schema(schema: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(pg_dsn())
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, "
            "collation_name, column_default FROM information_schema.columns "
            "WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            schema,
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, replace(indexdef, $1, '') FROM pg_indexes "
            "WHERE schemaname = $2 ORDER BY indexname",
            f"{schema}.",
            schema,
        )
        constraints = await conn.fetch(
            "SELECT (SELECT relname FROM pg_class WHERE oid = c.conrelid), conname, contype, "
            "pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = $1 ORDER BY conname",
            schema,
        )
        functions = await conn.fetch(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc) "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = $1 ORDER BY p.proname",
            schema,
        )
        triggers = await conn.fetch(
            "SELECT c.relname, t.tgname, replace(pg_get_triggerdef(t.oid), $1, '') "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $2 AND NOT t.tgisinternal ORDER BY t.tgname",
            f"{schema}.",
            schema,
        )
        storage = await conn.fetch(
            "SELECT c.relname, c.reloptions FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.reloptions IS NOT NULL ORDER BY c.relname",
            schema,
        )
        return [
            tuple(r) for r in [*columns, *indexes, *constraints, *functions, *triggers, *storage]
        ]
    finally:
        await conn.close()


async def test_sqlite_migrated_schema_equals_fresh_schema(tmp_path: Path) -> None:
    for name, fresh in (("fresh.db", True), ("migrated.db", False)):
        backend = create_backend(parse(f"sqlite:///{tmp_path}/{name}"), fresh_schema=fresh)
        await backend.open()
        await backend.close()
    fresh_schema = sqlite_schema(tmp_path / "fresh.db")
    assert any(row[1] == "sk_state" for row in fresh_schema)
    assert fresh_schema == sqlite_schema(tmp_path / "migrated.db")


async def test_postgres_migrated_schema_equals_fresh_schema(pg_schema_prefix: str) -> None:
    schemas = {}
    for label, fresh in (("fresh", True), ("migrated", False)):
        schema = f"{pg_schema_prefix}_mig_{label}"
        backend = create_backend(parse(f"{pg_dsn()}?schema={schema}"), fresh_schema=fresh)
        await backend.open()
        await backend.close()
        schemas[label] = await postgres_schema(schema)
    assert any(row[0] == "sk_state" for row in schemas["fresh"])
    assert any(row[0] == "sk_state_apply" for row in schemas["fresh"])
    assert schemas["fresh"] == schemas["migrated"]


async def test_sqlite_upgrades_from_an_older_version(tmp_path: Path) -> None:
    """A database left at migration 1 gets migration 2 and later on the next start."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    first = migrations("sqlite")[0]
    conn.executescript(
        f"CREATE TABLE {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at REAL NOT NULL); {first.sql}"
        f"INSERT INTO {MIGRATIONS_TABLE} VALUES (1, '{first.name}', 0);"
    )
    conn.execute("INSERT INTO sk_state VALUES ('default', 'kept', X'31', 'e', NULL, NULL)")
    conn.commit()
    conn.close()
    async with App(f"sqlite:///{path}", purge_interval=None) as app:
        item = await app.state.get("kept")
        assert item is not None and item.value == 1
    conn = sqlite3.connect(path)
    versions = [row[0] for row in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")]
    conn.close()
    assert versions == list(range(1, len(migrations("sqlite")) + 1))


async def test_concurrent_startups_migrate_once(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path}/race.db" if backend_name == "sqlite" else fresh_pg_url
    apps = [App(url, purge_interval=None) for _ in range(6)]
    await asyncio.gather(*(app.open() for app in apps))
    try:
        await apps[0].state.put("k", 1)
        assert (await apps[5].state.get("k")) is not None
    finally:
        await asyncio.gather(*(app.close() for app in apps))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with App(f"sqlite:///{path}", purge_interval=None):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (999, 'from_the_future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer than this statekeeper knows"):
        async with App(f"sqlite:///{path}", purge_interval=None):
            pass


async def test_unreachable_postgres_is_a_clear_error() -> None:
    from statekeeper.errors import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable) as caught:
        async with App("postgresql://postgres@127.0.0.1:1/test", purge_interval=None):
            pass
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/test" in str(
        caught.value
    )
    assert caught.value.http_status == 503


async def test_missing_postgres_database_is_a_clear_error() -> None:
    from statekeeper.errors import DatabaseUnavailable

    missing = urlsplit(pg_dsn())._replace(path="/no_such_db_sk").geturl()
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        async with App(missing, purge_interval=None):
            pass


async def database_before(
    migration: str, backend_name: str, tmp_path: Path, fresh_pg_url: str,
    insert: str, rows: list[tuple[Any, ...]],
) -> str:  # fmt: skip
    """A database migrated up to (not including) ``migration``, holding ``rows`` put
    there by ``insert`` (with ``?`` placeholders); its URL."""
    dialect: Dialect = "sqlite" if backend_name == "sqlite" else "postgres"
    version = next(m.version for m in migrations(dialect) if m.name == migration)
    before = [m for m in migrations(dialect) if m.version < version]
    if dialect == "sqlite":
        conn = sqlite3.connect(tmp_path / "old.db")
        conn.executescript(
            f"CREATE TABLE {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at REAL NOT NULL);"
        )
        for m in before:
            conn.executescript(m.sql)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, 0)", (m.version, m.name))
        conn.executemany(insert, rows)
        conn.commit()
        conn.close()
        return f"sqlite:///{tmp_path}/old.db"
    schema = fresh_pg_url.rsplit("schema=", 1)[1]
    pg = await asyncpg.connect(pg_dsn())
    try:
        await pg.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        await pg.execute(
            f"CREATE TABLE {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT "
            "NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        for m in before:
            await pg.execute(m.sql)
            await pg.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} VALUES ($1, $2, 0)", m.version, m.name
            )
        numbered = insert.split("?")
        sql = numbered[0] + "".join(f"${i}{part}" for i, part in enumerate(numbered[1:], 1))
        await pg.executemany(sql, rows)
    finally:
        await pg.close()
    return fresh_pg_url


async def test_fifo_groups_survive_the_upgrade_to_group_heads(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    """Messages of a group stored before groups had heads (every one 'ready') migrate to
    one head per group, the rest waiting, and still go out in order."""
    rows = [
        (f"m{n}", "default", "jobs", b'{"n": %d}' % n, "g1" if n % 2 else "g2", float(n), float(n))
        for n in range(6)
    ]
    insert = (
        "INSERT INTO sk_messages (id, namespace, queue, body, group_id, state, available_at, "
        "attempts, enqueued_at) VALUES (?, ?, ?, ?, ?, 'ready', ?, 0, ?)"
    )
    url = await database_before("flat_cost", backend_name, tmp_path, fresh_pg_url, insert, rows)
    async with App(url, purge_interval=None, clock=lambda: 100.0) as app:
        q = app.queue("jobs")
        stats = await q.stats()
        assert (stats.ready, stats.waiting) == (2, 4)
        order = []
        for _ in range(6):
            messages = await q.receive(10)
            assert len(messages) <= 2  # one in hand per group
            for message in messages:
                order.append(message.body["n"])
                await message.ack()
        assert [n for n in order if n % 2] == [1, 3, 5]
        assert [n for n in order if not n % 2] == [0, 2, 4]


async def test_plain_text_errors_become_records_on_upgrade(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    """Errors recorded as text before records were JSON read back with their type and
    message apart; a text with no type name is the message of an Error."""
    texts = {
        "typed": "KeyError: 'missing'",
        "bare": "EventTimeout",
        "sentence": "lease expired: on attempt 2",
        "colon": "Bad thing: it broke: twice",
    }
    insert = (
        "INSERT INTO sk_workflows (namespace, id, name, status, input, error, created_at, "
        "updated_at) VALUES ('default', ?, 'w', 'failed', ?, ?, 1.0, 1.0)"
    )
    rows = [(id, b"null", text) for id, text in texts.items()]
    url = await database_before(
        "workflow_records", backend_name, tmp_path, fresh_pg_url, insert, rows
    )
    async with App(url, purge_interval=None, encryption=None) as app:
        found = {id: (await app.workflows.status(id)).error for id in texts}
    assert {id: (e.type, e.message) for id, e in found.items() if e is not None} == {
        "typed": ("KeyError", "'missing'"),
        "bare": ("EventTimeout", ""),
        "sentence": ("Error", "lease expired: on attempt 2"),
        "colon": ("Error", "Bad thing: it broke: twice"),
    }
