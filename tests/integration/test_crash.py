"""Crash safety: a writer is SIGKILLed mid-work; everything it acknowledged survives."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from statekeeper import App
from tests.integration.test_processes import spawn

pytestmark = pytest.mark.crash


def run_and_kill(url: str, namespace: str, seconds: float) -> tuple[list[str], int]:
    """Run the writer for ``seconds`` after it is ready, SIGKILL it; its acknowledged puts."""
    process = spawn("write-forever", url, namespace, "16")
    assert process.stdout is not None
    acked: list[str] = []
    counter = 0
    deadline = None
    killed = False
    for raw in process.stdout:
        if not raw.endswith(b"\n"):
            break  # a line cut short by the kill: not acknowledged
        line = raw.decode().strip()
        if line == "ready":
            deadline = time.monotonic() + seconds
        elif line.startswith("put "):
            acked.append(line[4:])
        elif line.startswith("counter "):
            counter = max(counter, int(line[8:]))
        if not killed and deadline is not None and time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            killed = True  # then read on: what it printed before it died was acknowledged
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()  # type: ignore[union-attr]
    return acked, counter


async def check_survivors(url: str, namespace: str, acked: list[str], counter: int) -> None:
    async with App(url, namespace=namespace, purge_interval=None, encryption=None) as app:
        for start in range(0, len(acked), 500):
            chunk = acked[start : start + 500]
            found = await app.state.get_many(chunk)
            missing = [key for key, item in found.items() if item is None]
            assert missing == [], f"{len(missing)} acknowledged writes lost"
            for key, item in found.items():
                assert item is not None
                task, n = key[1:].split(":")
                assert item.value == {"task": int(task), "n": int(n)}
        stored = await app.state.get("counter")
        # Every acknowledged increment is there; at most the one in flight is extra.
        assert stored is not None and counter <= stored.value <= counter + 1


async def test_sqlite_writer_killed_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    total = 0
    for round_ in range(3):
        acked, counter = run_and_kill(url, f"crash{round_}", 1.0)
        assert len(acked) > 100, "the writer made too little progress to prove anything"
        total += len(acked)
        conn = sqlite3.connect(path)  # the file opens cleanly and is intact
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
        await check_survivors(url, f"crash{round_}", acked, counter)
    assert total > 300


async def test_postgres_writer_killed_loses_nothing_acknowledged(fresh_pg_url: str) -> None:
    for round_ in range(2):
        acked, counter = run_and_kill(fresh_pg_url, f"crash{round_}", 1.0)
        assert len(acked) > 100
        await check_survivors(fresh_pg_url, f"crash{round_}", acked, counter)
