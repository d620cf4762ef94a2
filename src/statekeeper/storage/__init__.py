"""The persistence layer: the Backend protocol and its SQLite and PostgreSQL adapters."""

from __future__ import annotations

from statekeeper.storage.base import Backend, DeleteOp, PutOp, StoredItem, WriteOp
from statekeeper.storage.url import DatabaseURL, parse, resolve

__all__ = [
    "Backend",
    "DatabaseURL",
    "DeleteOp",
    "PutOp",
    "StoredItem",
    "WriteOp",
    "create_backend",
    "parse",
    "resolve",
]


def create_backend(url: DatabaseURL, *, fresh_schema: bool = True) -> Backend:
    """The adapter for ``url``; drivers are imported only when their backend is used."""
    if url.scheme == "sqlite":
        from statekeeper.storage.sqlite import SQLiteBackend

        return SQLiteBackend(url, fresh_schema=fresh_schema)
    from statekeeper.storage.postgres import PostgresBackend

    return PostgresBackend(url, fresh_schema=fresh_schema)
