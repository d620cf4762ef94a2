"""Appending events inside a SQLite writer job (``unit.commit_job``): each stream's
expected version checked in one statement, global positions taken from the
namespace's log row, the events inserted. PostgreSQL does the same in
``sk_events_append`` (migration 0012)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from statekeeper.errors import WrongExpectedVersion
from statekeeper.storage.queries import Query
from statekeeper.storage.rows import ANY_VERSION, STREAM_EXISTS, NewEvent, StreamAppend
from statekeeper.storage.runner import Statement

Queries = dict[str, Query]


def _bind(queries: Queries, query_name: str, /, **values: Any) -> Statement:
    query = queries[query_name]
    return query.sql, query.args(**values)


def expected_text(expected: int) -> str:
    """An expected version in words, for WrongExpectedVersion."""
    if expected == ANY_VERSION:
        return "any version"
    if expected == STREAM_EXISTS:
        return "an existing stream"
    return "no stream (version 0)" if expected == 0 else f"version {expected}"


def wrong_version(append: StreamAppend, actual: int) -> WrongExpectedVersion:
    return WrongExpectedVersion(append.stream, expected_text(append.expected), actual)


def append_events(
    conn: sqlite3.Connection,
    queries: Queries,
    namespace: str,
    appends: Sequence[StreamAppend],
    now: float,
) -> tuple[int | None, list[int]]:
    """Check each stream's expected version, take global positions, insert the events;
    the first event's global position (None: no event) and each stream's version."""
    total = sum(len(a.events) for a in appends)
    if total == 0:
        return None, []
    rows: list[tuple[str, str, int, NewEvent]] = []
    after: list[int] = []
    for append in appends:
        if append.versions is not None:
            versions = list(append.versions)
            version = _set_versions(conn, queries, namespace, append, versions, now)
        else:
            version = _bump(conn, queries, namespace, append, now)
            versions = list(range(version - len(append.events) + 1, version + 1))
        after.append(version)
        rows.extend(
            (append.stream, append.category, v, e)
            for v, e in zip(versions, append.events, strict=True)
        )
    last = conn.execute(*_bind(queries, "ev_log_take", namespace=namespace, count=total)).fetchone()
    first = int(last[0]) - total + 1
    # The insert's parameters in their order (checked below, at import).
    values = [
        (namespace, first + i, stream, version, category, e.id, e.type, e.data, e.metadata, now)
        for i, (stream, category, version, e) in enumerate(rows)
    ]
    insert = queries["ev_insert"].sql
    if len(values) == 1:
        conn.execute(insert, values[0])
    else:
        conn.executemany(insert, values)
    return first, after


INSERT_ORDER = ("namespace", "position", "stream", "version", "category", "id", "type", "data",
                "metadata", "now")  # fmt: skip


def _bump(
    conn: sqlite3.Connection,
    queries: Queries,
    namespace: str,
    append: StreamAppend,
    now: float,
) -> int:
    """The stream's version after the append, checked against its expected version in
    one statement (a second only to name the actual version of a refused one)."""
    expected, count = append.expected, len(append.events)
    where = {"namespace": namespace, "stream": append.stream, "count": count, "now": now}
    if expected == 0:
        row = conn.execute(*_bind(queries, "ev_stream_create", **where)).fetchone()
    else:
        bump = _bind(queries, "ev_stream_bump", expected=max(expected, -1), **where)
        row = conn.execute(*bump).fetchone()
        if row is None and expected == ANY_VERSION:  # a new stream
            row = conn.execute(*_bind(queries, "ev_stream_create", **where)).fetchone()
    if row is None:
        found = conn.execute(
            *_bind(queries, "ev_stream_version", namespace=namespace, stream=append.stream)
        ).fetchone()
        raise wrong_version(append, 0 if found is None else int(found[0]))
    return int(row[0])


def _set_versions(
    conn: sqlite3.Connection,
    queries: Queries,
    namespace: str,
    append: StreamAppend,
    versions: list[int],
    now: float,
) -> int:
    """Events with their own versions (a taken one fails the insert): the stream's
    version becomes the highest."""
    found = conn.execute(
        *_bind(queries, "ev_stream_version", namespace=namespace, stream=append.stream)
    ).fetchone()
    version = max(0 if found is None else int(found[0]), *versions)
    conn.execute(*_bind(
        queries, "ev_stream_set", namespace=namespace, stream=append.stream,
        version=version, now=now,
    ))  # fmt: skip
    return version
