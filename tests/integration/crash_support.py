"""Starting statekeeper processes for the crash tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Forked, Process

ROOT = Path(__file__).parents[2]
TOKEN = "crash-test-token-0123456789abcdef"
WORKER_POOL = 4


def environment(schema: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **(extra or {}),
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
        "CRASH_PG_DSN": pg_dsn(),
        "CRASH_PG_SCHEMA": schema,
        # What the workers' apps open: small pools, so that two crash tests running at
        # once (each with workers killed and started again) stay within PostgreSQL's
        # 100 connections.
        "CRASH_PG_URL": small_pool(f"{pg_dsn()}?schema={schema}"),
        "STATEKEEPER_API_TOKEN": TOKEN,
    }


def small_pool(url: str) -> str:
    """A worker's database URL with the small pool of WORKER_POOL (PostgreSQL)."""
    return f"{url}&pool_max={WORKER_POOL}" if url.startswith("postgres") else url


def start(args: list[str], schema: str, extra: dict[str, str] | None = None) -> Forked:
    """``python -m statekeeper ARGS``, forked from a process with the imports done (see
    cli_forkserver), so a worker started after a kill works at once."""
    return Forked(args, environment(schema, extra), stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE)  # fmt: skip


WORKER = ["worker", "--app", "crash_app:app"]


async def kill_workers_until(
    schema: str,
    processes: list[Process],
    finished: Callable[[], Awaitable[bool]],
    *,
    seed: int,
    limit: float,
    extra: dict[str, str] | None = None,
    worker: list[str] = WORKER,
    killed: list[int] | None = None,
    every: float = 0.5,
) -> tuple[list[Process], int]:
    """Run 3 workers (the command ``worker``); every ~0.5 s, until ``finished()``,
    SIGKILL a random one (its pid appended to ``killed``) and start it again. The
    workers still running, and how many kills there were."""
    workers: list[Process] = [start(worker, schema, extra) for _ in range(3)]
    processes.extend(workers)
    rng = random.Random(seed)
    kills = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        if await finished():
            break
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        kills += 1
        if killed is not None:
            killed.append(workers[victim].pid)
        workers[victim] = start(worker, schema, extra)
        processes.append(workers[victim])
    return workers, kills


def stop_workers(workers: list[Process]) -> list[int]:
    """SIGTERM every worker and wait: their exit codes."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    return [worker.wait(timeout=60) for worker in workers]
