"""Large payloads under SIGKILL: 30 workflows whose inputs and step results are stored
out of line, run by 3 PostgreSQL workers of which one is killed every ~0.5 s: every run
ends with the right results, and the reference counts match the rows (no blob that a
row refers to is missing, none is counted wrong; blobs of writes cut short are left
unreferenced for the sweep)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, stop_workers

pytestmark = pytest.mark.crash


def text(seed: str, size: int) -> str:  # as blob_crash_app's steps make it
    block = hashlib.sha256(seed.encode()).hexdigest()
    return (block * (size // 64 + 1))[:size]


WORKER = ["worker", "--app", "blob_crash_app:app"]
TOTAL = 30
# How many rows refer to each blob, counted from the payload columns that hold them.
REFERENCES = """
SELECT id, count(*) FROM (
    SELECT substring(input FROM 5 FOR 16) AS id FROM sk_workflows
    WHERE substring(input FROM 1 FOR 4) = '\\xff534b52'::bytea
    UNION ALL SELECT substring(output FROM 5 FOR 16) FROM sk_workflows
    WHERE substring(output FROM 1 FOR 4) = '\\xff534b52'::bytea
    UNION ALL SELECT substring(input FROM 5 FOR 16) FROM sk_workflow_steps
    WHERE substring(input FROM 1 FOR 4) = '\\xff534b52'::bytea
    UNION ALL SELECT substring(output FROM 5 FOR 16) FROM sk_workflow_steps
    WHERE substring(output FROM 1 FOR 4) = '\\xff534b52'::bytea
) AS refs GROUP BY id
"""


@pytest.fixture
async def prepared(schema: str) -> AsyncIterator[App]:
    url = f"{pg_dsn()}?schema={schema}"
    app = App(url, namespace="blobcrash", purge_interval=None, blob_threshold=4096)

    @app.workflow(name="bulky")
    async def bulky(ctx: Any, data: Any) -> list[str]:  # the name the workers run
        raise AssertionError("runs only in the worker processes")

    async with app:
        yield app


async def test_large_payloads_survive_killed_workers(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    app = prepared
    for n in range(TOTAL):  # inputs out of line too
        await app.workflows.start("bulky", {"seed": f"w{n}", "pad": "p" * 20_000}, id=f"w{n}")
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:

        async def all_done() -> bool:
            done = "SELECT count(*) FROM sk_workflows WHERE status = 'succeeded'"
            return int(await conn.fetchval(done)) >= TOTAL

        workers, kills = await kill_workers_until(
            schema, processes, all_done, seed=5, limit=180, worker=WORKER
        )
        stop_workers(workers)
        counted = {bytes(id): int(n) for id, n in await conn.fetch(REFERENCES)}
        stored = {bytes(r["id"]): (r["refs"], r["size"]) for r in await conn.fetch(
            "SELECT id, refs, size FROM sk_blobs"
        )}  # fmt: skip
    finally:
        await conn.close()
    assert kills >= 3, "too few kills to prove anything"
    for n in range(TOTAL):
        expected = [hashlib.sha256(text(f"w{n}-{i}", 300_000).encode()).hexdigest()
                    for i in range(6)]  # fmt: skip
        assert await app.workflows.result(f"w{n}", timeout=5) == expected
    # Every referenced blob is there, complete, and counted exactly; the others are
    # writes cut short or runs superseded: nothing refers to them (the sweep's).
    for id, references in counted.items():
        assert id in stored, "a row refers to a blob that is gone"
        refs, size = stored[id]
        assert (refs, size is not None) == (references, True)
    assert all(refs == 0 for id, (refs, _) in stored.items() if id not in counted)
