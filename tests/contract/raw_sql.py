"""Reading and writing a test database behind statekeeper's back, on either backend:
what an operator, a backup or an attacker with the files sees and can do."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from tests.conftest import pg_dsn
from tests.servers import postgres_binary


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def pg_schema(url: str) -> str:
    return parse_qs(urlsplit(url).query)["schema"][0]


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` (parameters written ``$1``, ``$2``...) and return its rows."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            rows = conn.execute(re.sub(r"\$\d+", "?", sql), args).fetchall()
        finally:
            conn.close()
        return [tuple(row) for row in rows]
    pg = await asyncpg.connect(pg_dsn(), server_settings={"search_path": pg_schema(url)})
    try:
        return [tuple(row) for row in await pg.fetch(sql, *args)]
    finally:
        await pg.close()


def pg_dump(url: str) -> bytes:
    """A plain-text dump of the test's schema, as a backup would hold it."""
    parts = urlsplit(pg_dsn())
    command = [
        postgres_binary("pg_dump"), "--no-owner",
        "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
        "-U", parts.username or "postgres", "-n", pg_schema(url), parts.path.lstrip("/"),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


def sqlite_images(url: str) -> dict[str, bytes]:
    """The bytes of the database file and, when present, its -wal and -shm files."""
    path = sqlite_path(url)
    images = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            with open(path + suffix, "rb") as handle:
                images[suffix or "db"] = handle.read()
        except FileNotFoundError:
            pass
    return images


def checkpoint(url: str) -> None:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def found_in(image: bytes, marker: str) -> bool:
    """Whether ``marker`` appears as text, or as the hex a dump writes bytea in."""
    return marker.encode() in image or marker.encode().hex().encode() in image
