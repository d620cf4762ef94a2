"""The disk-full scenario: the chaos workload on SQLite whose folder fills up mid-work.

One process runs it all, in a mount namespace of its own where the database's folder
is a small tmpfs: the workload app (chaos/workload_app.py, its effects kept as state
items of the app itself) with its worker, and eight writers making the API's calls
(chaos/clients.py: state puts, messages, workflows, entity calls). After the warm-up a
ballast file takes every free byte of the folder; for the fault's seconds writes fail
with ``StorageFull`` (HTTP 507); then the ballast is removed and work goes on. The
report (chaos/report.py) is printed as JSON on the last line; once the writers stop
and the worker has finished, the invariants are read back from the database, then
again after reopening it, and SQLite checks the file (``PRAGMA integrity_check``; a
damaged file counts as an acknowledged item lost).

    run_disk_full(seconds=10)                     # root: the namespace and the tmpfs
    python -m statekeeper.chaos.disk_full FOLDER  # inside them (run_disk_full does it)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from statekeeper.app import App
from statekeeper.chaos.clients import (
    API_KINDS,
    Calls,
    entity_calls_applied,
    left_in_queues,
    write_mixed,
)
from statekeeper.chaos.hosts import HostError
from statekeeper.chaos.report import Marks, Report, summarize
from statekeeper.constants import ENV_CHAOS_DSN, ENV_CHAOS_HOST, ENV_DATABASE_URL

NAME = "disk-full"
WHAT = "the SQLite database's disk filled (a ballast file), then freed"
TMPFS_SIZE = "24m"
WRITERS = 8
SETTLE = 120.0


def missing() -> str | None:
    """Why the scenario cannot run here, or None."""
    if os.geteuid() != 0:
        return "a mount namespace and a tmpfs need root"
    if shutil.which("unshare") is None:
        return "unshare is not installed (Debian package util-linux)"
    return None


def run_disk_full(*, seconds: float = 10.0) -> Report:
    """The scenario in a mount namespace of its own; its report."""
    reason = missing()
    if reason is not None:
        raise HostError(reason)
    folder = Path(tempfile.mkdtemp(prefix="statekeeper-disk-full-"))
    script = (
        f"mount -t tmpfs -o size={TMPFS_SIZE} tmpfs {folder} && exec {sys.executable} "
        f"-m statekeeper.chaos.disk_full {folder} --seconds {seconds:g}"
    )
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, timeout=seconds + SETTLE + 120, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise HostError(f"the disk-full run failed: {done.stderr.strip()[-1500:]}")
    return Report(**json.loads(lines[-1]))


def fill(folder: Path) -> Path:
    """A ballast file that takes every free byte of ``folder``'s filesystem."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # smaller and smaller, to the end
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return ballast


async def _run(folder: Path, seconds: float, warmup: float = 5.0, after: float = 5.0) -> Report:
    from statekeeper.chaos import workload_app  # reads the environment set in main

    app = workload_app.app
    calls = Calls.of(API_KINDS)
    stop = asyncio.Event()
    async with app:
        worker = app.worker(grace=5.0, poll=0.2)
        working = asyncio.create_task(worker.run())
        begun = time.monotonic()
        writers = [asyncio.create_task(write_mixed(app, calls, n, stop)) for n in range(WRITERS)]
        await asyncio.sleep(warmup)
        fault_start, wall_start = time.monotonic(), time.time()
        ballast = await asyncio.to_thread(fill, folder)
        await asyncio.sleep(seconds)
        fault_end, wall_end = time.monotonic(), time.time()
        ballast.unlink()
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*writers)
        wall_stop = time.time()
        await _wait_idle(app, calls)
        worker.stop()
        await working
    tries = sum(workload_app.TRIES.values())
    times = workload_app.EFFECT_TIMES
    marks = (wall_start - warmup / 2, wall_start, wall_end, wall_stop)
    spans = [(marks[n], marks[n + 1]) for n in range(3)]
    pace = {
        name: round(sum(low <= t < high for t in times) / (high - low), 1)
        for name, (low, high) in zip(("before", "during", "after"), spans, strict=True)
    }
    invariants = await _invariants(calls)  # the database reopened: what a restart finds
    return summarize(
        NAME, WHAT, calls, Marks(begun, begun + warmup / 2, fault_start, fault_end),
        pace=pace, repeated=tries - len(times), invariants=invariants, cache={},
    )  # fmt: skip


async def _wait_idle(app: App, calls: Calls) -> None:
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        if await left_in_queues(app) == 0 and await _unfinished(app, calls) == 0:
            return
        await asyncio.sleep(0.5)


async def _unfinished(app: App, calls: Calls) -> int:
    """How many acknowledged workflows have not succeeded (yet)."""
    runs = [await app.workflows.status(w) for w in calls.workflows()]
    return sum(1 for run in runs if run.status != "succeeded")


async def _invariants(calls: Calls) -> dict[str, int]:
    """The invariants, read from the database opened again by a new app."""
    lost = twice = 0
    async with App(os.environ[ENV_DATABASE_URL], namespace="chaos", purge_interval=None) as app:
        wanted = [
            *calls.acked["state"],
            *(f"effect/message/{m}" for m in calls.messages()),
        ]
        for low in range(0, len(wanted), 500):
            found = await app.state.get_many(wanted[low : low + 500])
            lost += sum(1 for item in found.values() if item is None)
        ledger: Counter[str] = Counter()
        cursor = None
        while True:
            page = await app.state.list("effect/ledger/", limit=1000, cursor=cursor)
            ledger.update(item.key.split("/")[2] for item in page.items)
            cursor = page.cursor
            if cursor is None:
                break
        lost += sum(1 for w in calls.workflows() if not ledger[w])
        twice += sum(1 for count in ledger.values() if count > 1)
        entities_lost, entities_twice = await entity_calls_applied(app, calls)
        lost, twice = lost + entities_lost, twice + entities_twice
        stuck = await left_in_queues(app) + await _unfinished(app, calls)
    path = os.environ[ENV_DATABASE_URL].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        checked = db.execute("PRAGMA integrity_check").fetchone()[0]
    return {
        "acknowledged_lost": lost + (0 if checked == "ok" else 1),
        "stale_reads": calls.stale,
        "applied_twice": twice,
        "stuck_leases": stuck,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statekeeper.chaos.disk_full")
    parser.add_argument("folder", type=Path, help="the database's folder (a small tmpfs)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the disk is full")
    args = parser.parse_args(argv)
    os.environ[ENV_DATABASE_URL] = f"sqlite:///{args.folder / 'state.db'}"
    os.environ[ENV_CHAOS_HOST] = "sqlite"
    os.environ.pop(ENV_CHAOS_DSN, None)  # effects as the app's own state items
    try:
        report = asyncio.run(_run(args.folder, args.seconds))
    except OSError as error:
        if error.errno == errno.ENOSPC:
            print(f"disk-full: the workload's own files did not fit: {error}", file=sys.stderr)
            return 1
        raise
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
