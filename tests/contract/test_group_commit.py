"""SQLite group commit: concurrent writes share commits, each still atomic and isolated."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from statekeeper import App
from statekeeper.errors import ConflictError, TransactionConflict
from statekeeper.storage.sqlite import SQLiteBackend


async def test_concurrent_writes_are_committed_in_batches(tmp_path: Path) -> None:
    async with App(f"sqlite:///{tmp_path}/g.db", purge_interval=None) as app:
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        before_batches, before_jobs = backend.writer.batches, backend.writer.jobs
        await asyncio.gather(*(app.state.put(f"k{i}", i) for i in range(400)))
        jobs = backend.writer.jobs - before_jobs
        batches = backend.writer.batches - before_batches
        assert jobs == 400
        assert batches < 100, f"{batches} commits for 400 concurrent writes: no grouping"
        page = await app.state.list(limit=1000)
        assert len(page.items) == 400


async def test_a_failing_transaction_in_a_batch_leaves_the_others_applied(tmp_path: Path) -> None:
    async with App(f"sqlite:///{tmp_path}/g.db", purge_interval=None) as app:
        stale = await app.state.put("guard", 0)
        await app.state.put("guard", 1)

        async def doomed() -> None:
            async with app.state.transaction() as tx:
                tx.put("doomed:a", 1)
                tx.put("guard", 2, if_match=stale.etag)

        outcomes = await asyncio.gather(
            *(app.state.put(f"ok{i}", i) for i in range(50)),
            doomed(),
            *(app.state.put(f"ok{i}", i) for i in range(50, 100)),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], TransactionConflict)
        assert await app.state.get("doomed:a") is None
        guard = await app.state.get("guard")
        assert guard is not None and guard.value == 1
        found = await app.state.get_many([f"ok{i}" for i in range(100)])
        assert all(item is not None for item in found.values())


async def test_conditional_writes_in_one_batch_see_each_other(tmp_path: Path) -> None:
    """Two only_if_absent puts of one key in the same batch: exactly one wins."""
    async with App(f"sqlite:///{tmp_path}/g.db", purge_interval=None) as app:
        for round_ in range(20):
            outcomes = await asyncio.gather(
                *(app.state.put(f"k{round_}", n, only_if_absent=True) for n in range(5)),
                return_exceptions=True,
            )
            wins = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(wins) == 1
            assert all(isinstance(o, ConflictError) for o in outcomes if o not in wins)


async def test_committed_writes_are_in_the_file_for_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    async with App(f"sqlite:///{path}", purge_interval=None) as app:
        await asyncio.gather(*(app.state.put(f"k{i}", i) for i in range(100)))
        other = sqlite3.connect(path)
        try:
            (count,) = other.execute("SELECT count(*) FROM sk_state").fetchone()
            (mode,) = other.execute("PRAGMA journal_mode").fetchone()
        finally:
            other.close()
    assert count == 100
    assert mode == "wal"


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    from statekeeper.errors import ClosedError

    app = App(f"sqlite:///{tmp_path}/g.db", purge_interval=None)
    await app.open()
    store = app.state
    await app.close()
    with pytest.raises(ClosedError):
        await store.put("k", 1)


async def test_a_broken_batch_fails_its_jobs_and_the_writer_lives_on(tmp_path: Path) -> None:
    """A job that wrecks the writer's own savepoint makes the batch's statements fail:
    every job of that batch gets an error, none hangs, and later writes work."""
    import sqlite3 as sqlite

    from statekeeper.errors import StorageError

    async with App(f"sqlite:///{tmp_path}/g.db", purge_interval=None) as app:
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)

        def wreck(conn: sqlite.Connection) -> None:
            conn.execute("RELEASE job")  # the writer's RELEASE will now fail

        outcomes = await asyncio.wait_for(
            asyncio.gather(
                app.state.put("before", 1),
                backend.writer.run(wreck, "wreck"),
                app.state.put("after", 1),
                return_exceptions=True,
            ),
            timeout=10,
        )
        assert any(isinstance(o, StorageError) for o in outcomes)
        await app.state.put("later", 1)
        assert await app.state.get("later") is not None
