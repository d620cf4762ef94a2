"""The persistence layer: each block's storage protocol, the unit of work, and the
SQLite and PostgreSQL adapters that provide them."""

from __future__ import annotations

from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import DeleteOp, PutOp, StoredItem, UnitOfWork, WriteOp
from statekeeper.storage.url import DatabaseURL, parse, resolve

__all__ = [
    "DatabaseURL",
    "DeleteOp",
    "PutOp",
    "Storage",
    "StoredItem",
    "UnitOfWork",
    "WriteOp",
    "create_backend",
    "parse",
    "resolve",
]


def create_backend(url: DatabaseURL, *, fresh_schema: bool = True) -> Storage:
    """The adapter for ``url``; drivers are imported only when their backend is used."""
    if url.scheme == "sqlite":
        from statekeeper.storage.sqlite import SQLiteBackend

        return SQLiteBackend(url, fresh_schema=fresh_schema)
    from statekeeper.storage.postgres import PostgresBackend

    return PostgresBackend(url, fresh_schema=fresh_schema)
