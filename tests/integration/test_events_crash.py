"""A projection under SIGKILL, on SQLite and PostgreSQL: three ``statekeeper worker``
processes run the projection of ``events_crash_app`` (per stream: how many events, the
sum of their amounts, the last version; one of them holds its lease, the others wait to
take over) while another process appends 10,000 events in batches. Every 0.3-1 s the
worker holding the lease (now and then a waiting one) is SIGKILLed and a new one
started. When the appends end, the workers left catch up. The read model then equals a
replay of the log computed here: every event counted once, none lost, none twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App
from statekeeper.events.model import RecordedEvent
from tests.integration.cli_forkserver import Forked, Process
from tests.integration.crash_support import ROOT, small_pool

pytestmark = pytest.mark.crash

TOTAL = 10_000
APPEND_SECONDS = 10  # the appends are spread over this long: the workers are killed meanwhile
SCRIPT = Path(__file__).with_name("events_scripts.py")
READY = b"statekeeper worker running"
NAMESPACE = "evcrash"  # events_crash_app's
PROJECTION = "totals"


class Workers:
    """The worker processes running the projection, their logs in ``logs``."""

    def __init__(self, url: str, logs: Path, processes: list[Process]) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
            "EVENTS_CRASH_URL": small_pool(url),
            "EVENTS_CRASH_LEASE": "0.6",
        }
        self.logs = logs
        self.processes = processes  # every one started, for the fixture to clean up
        self.running: list[tuple[Process, Path]] = []
        self.started = 0

    def start(self) -> None:
        log = self.logs / f"worker{self.started}.err"
        self.started += 1
        with log.open("wb") as errors:
            process = Forked(["worker", "--app", "events_crash_app:app"], self.env,
                             stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
        self.processes.append(process)
        self.running.append((process, log))

    def appender(self) -> subprocess.Popen[bytes]:
        """The process appending TOTAL events, in appends of 1-50, over APPEND_SECONDS."""
        url = self.env["EVENTS_CRASH_URL"]
        with (self.logs / "appender.err").open("wb") as errors:
            process = subprocess.Popen(
                [sys.executable, str(SCRIPT), "append", url, NAMESPACE, str(TOTAL), "50",
                 str(APPEND_SECONDS)],
                env=self.env, stdout=subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def ready(self) -> list[Process]:
        """The workers whose app is open and running its services."""
        return [p for p, log in self.running if READY in log.read_bytes()]

    def kill(self, victim: Process) -> None:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.running = [(p, log) for p, log in self.running if p is not victim]
        self.start()

    def stop(self) -> list[int]:
        for process, _ in self.running:
            process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=60) for process, _ in self.running]

    def tracebacks(self) -> list[str]:
        """The logs of every worker started that show a traceback."""
        logs = [self.logs / f"worker{n}.err" for n in range(self.started)]
        return [log.read_text() for log in logs if b"Traceback" in log.read_bytes()]


def replay(log: list[RecordedEvent]) -> dict[str, Any]:
    """The read model, from scratch: per stream, count, sum and last version."""
    model: dict[str, Any] = {}
    for event in log:
        counter = model.setdefault(event.stream, {"count": 0, "sum": 0, "version": 0})
        counter["count"] += 1
        counter["sum"] += event.data["amount"]
        counter["version"] = event.version
    return model


async def whole_log(app: App) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    while batch := await app.events.read_all(after=len(found), limit=5000):
        found.extend(batch)
    return found


async def checkpoint(app: App) -> tuple[int, int | None]:
    """The projection's checkpoint and the pid of the process that holds its lease."""
    name = app.projections.get(PROJECTION).subscription(1)
    row = await app.backend.subscriptions.get(app.namespace, name)
    if row is None:
        return 0, None
    held = row.holder is not None and (row.lease_expires_at or 0) > time.time()
    return row.position, int(row.holder.split(":")[-2]) if held and row.holder else None


@dataclass
class Kills:
    total: int = 0
    holders: int = 0  # of the worker holding the projection's lease
    mid_work: int = 0  # of the holder while its checkpoint was moving


async def kill_while_appending(
    app: App, workers: Workers, appender: Process, rng: random.Random
) -> Kills:
    """Every 0.3-1 s, SIGKILL the worker at work (now and then one waiting for the
    lease) and start another, as long as another ready worker can take over: while the
    appends go on, and on until 8 kills if the projection has not caught up by then."""
    kills = Kills()
    while True:
        before, _ = await checkpoint(app)
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        position, holder = await checkpoint(app)
        if appender.poll() is not None and (kills.total >= 8 or position >= TOTAL):
            return kills
        ready = workers.ready()
        holding = [p for p in ready if p.pid == holder]
        waiting = [p for p in ready if p.pid != holder]
        if not waiting:
            continue  # nobody would take over: let the new workers start first
        victim = holding[0] if holding and rng.random() < 0.8 else rng.choice(waiting)
        if len(waiting) == 1 and victim is waiting[0]:
            continue
        kills.total += 1
        kills.holders += victim.pid == holder
        kills.mid_work += victim.pid == holder and position > before
        workers.kill(victim)


async def test_projection_workers_killed_while_events_arrive(
    backend_name: str,
    own_database_url: str,
    tmp_path: Path,
    processes: list[Process],
) -> None:
    started = time.monotonic()
    app = App(
        own_database_url, namespace=NAMESPACE, purge_interval=None,
        maintenance_interval=None, encryption=None,
    )  # fmt: skip

    @app.projection(PROJECTION)
    async def totals(event: RecordedEvent, view: Any) -> None:
        raise AssertionError("the projection runs in the worker processes only")

    async with app:  # the schema, before the first process
        workers = Workers(own_database_url, tmp_path, processes)
        for _ in range(3):
            workers.start()
        while len(workers.ready()) < 3:  # the kills start with the appends
            assert time.monotonic() - started < 120, "the workers did not start"
            await asyncio.sleep(0.1)
        appender = workers.appender()
        kills = await kill_while_appending(app, workers, appender, random.Random(2024))
        out, _ = appender.communicate()
        assert appender.returncode == 0, (tmp_path / "appender.err").read_text()
        assert json.loads(out)["appended"] == TOTAL
        appended = time.monotonic() - started

        assert await app.events.head() == TOTAL
        deadline = time.monotonic() + 180
        while (await checkpoint(app))[0] < TOTAL:
            assert time.monotonic() < deadline, "the workers did not catch up"
            await asyncio.sleep(0.2)
        # 0: a graceful stop; -SIGTERM: signalled while still importing.
        assert set(workers.stop()) <= {0, -signal.SIGTERM}
        assert workers.tracebacks() == []

        log = await whole_log(app)
        page = await app.projections.read_model(PROJECTION).list(limit=1000)
        status = await app.projections.status(PROJECTION)

    assert [e.position for e in log] == list(range(1, TOTAL + 1))
    model = dict(page)
    assert model == replay(log), "the read model differs from a replay of the log"
    assert sum(counter["count"] for counter in model.values()) == TOTAL
    current = status["current"]
    assert (current["position"], current["failures"], current["parked"]) == (TOTAL, 0, 0)
    assert kills.total >= 3 and kills.mid_work >= 1, f"too few kills to prove anything: {kills}"
    print(
        f"{backend_name}: {TOTAL} events, {kills.total} kills ({kills.holders} of the lease "
        f"holder, {kills.mid_work} mid-work), appended by {appended:.1f}s, caught up by "
        f"{time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
