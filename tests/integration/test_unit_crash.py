"""The unit of work under SIGKILL, on SQLite and PostgreSQL: a process committing units
(a state write, a message, a workflow step each) from eight tasks is killed at a random
moment, three times over; every unit is then there whole or not at all, and every unit
it reported committed is there."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest

from statekeeper import App
from statekeeper.storage import create_backend, parse
from tests.integration.test_processes import spawn

pytestmark = pytest.mark.crash


def run_and_kill(url: str, namespace: str, seconds: float) -> set[tuple[int, int]]:
    process = spawn("commit-forever", url, namespace, "8")
    assert process.stdout is not None
    committed: set[tuple[int, int]] = set()
    deadline = None
    killed = False
    for raw in process.stdout:
        if not raw.endswith(b"\n"):
            break  # cut short by the kill: not reported
        line = raw.decode().strip()
        if line == "ready":
            deadline = time.monotonic() + seconds
        elif line.startswith("unit "):
            _, task, n = line.split()
            committed.add((int(task), int(n)))
        if not killed and deadline is not None and time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            killed = True
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()  # type: ignore[union-attr]
    return committed


async def settled(url: str, namespace: str, committed: set[tuple[int, int]]) -> int:
    """``check_whole`` once the killed process's last commit has landed: a COMMIT it
    sent before the kill still completes in the server, and the check reads the three
    tables with separate statements, so a commit landing between them looks like half a
    unit. A unit that stays half there over three checks, a second apart, fails."""
    for attempt in range(3):
        try:
            return await check_whole(url, namespace, committed)
        except AssertionError:
            if attempt == 2:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def check_whole(url: str, namespace: str, committed: set[tuple[int, int]]) -> int:
    """Every unit all there or all absent, every reported one there; how many are there."""
    storage = create_backend(parse(url))
    await storage.open()
    try:
        present = 0
        for task in range(8):
            journal = {e.position for e in await storage.workflows.journal(namespace, f"w{task}")}
            top = max([n for t, n in committed if t == task] + list(journal) + [0]) + 3
            keys = [f"k{task}:{n}" for n in range(1, top)]
            items = await storage.state.get_many(namespace, keys, time.time())
            for n in range(1, top):
                found = await storage.queues.find(namespace, f"{namespace}:m{task}:{n}")
                parts = (f"k{task}:{n}" in items, found is not None, n in journal)
                assert len(set(parts)) == 1, f"unit {task}:{n} half there: {parts}"
                if (task, n) in committed:
                    assert all(parts), f"unit {task}:{n} was reported committed and is gone"
                present += parts[0]
        return present
    finally:
        await storage.close()


async def test_a_killed_committer_leaves_whole_units(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path}/units.db" if backend_name == "sqlite" else fresh_pg_url
    async with App(url, purge_interval=None):
        pass  # the schema, before the first process
    rng = random.Random(11)
    for round_ in range(3):
        namespace = f"units{round_}"
        committed = run_and_kill(url, namespace, 0.5 + rng.random())
        assert len(committed) > 50, "too little committed to prove anything"
        present = await settled(url, namespace, committed)
        assert present >= len(committed)
