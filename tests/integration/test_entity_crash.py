"""Entities under SIGKILL, on SQLite and PostgreSQL: 8 processes call ``increment`` of
one entity key 500 times each (every call with its own id, 25 at a time) while one of
them is SIGKILLed every ~0.4 s and started again (calling every id again). At the end
the entity holds exactly 4,000, each call id got one answer however often it was asked,
the 4,000 answers are the numbers 1 to 4,000 (each call applied once, in turn), and a
reader that kept calling a read-only handler never saw a half-applied state."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from statekeeper import App
from tests.integration.crash_support import small_pool
from tests.integration.entity_crash_app import ENTITY, KEY, declare

pytestmark = pytest.mark.crash

SCRIPT = Path(__file__).with_name("entity_crash_app.py")
ROOT = Path(__file__).parents[2]
PROCESSES, CALLS = 8, 500


class Caller:
    """One caller process and every ``id value`` line its incarnations printed."""

    def __init__(self, url: str, who: str) -> None:
        self.url, self.who = url, who
        self.lines: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnations = 0
        self.start()

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), self.url, self.who, str(CALLS)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.incarnations += 1
        process = self.process
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.decode().strip())

    def kill_and_restart(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.start()

    def done(self) -> bool:
        return self.process is not None and self.process.poll() is not None


async def test_eight_callers_killed_and_restarted_apply_every_call_once(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    url = (
        f"sqlite:///{tmp_path}/entities.db"
        if backend_name == "sqlite"
        else small_pool(fresh_pg_url)
    )
    async with App(url, namespace="entity-crash", purge_interval=None) as app:
        declare(app)
        callers = [Caller(url, f"p{n}") for n in range(PROCESSES)]
        rng = random.Random(13)
        seen: list[dict[str, int]] = []
        kills = 0
        try:
            for _ in range(600):  # at most ~4 minutes
                await asyncio.sleep(0.4)
                seen.append(await app.entities.call(ENTITY, KEY, "read"))
                running = [c for c in callers if not c.done()]
                if not running:
                    break
                if kills < 12:
                    rng.choice(running).kill_and_restart()
                    kills += 1
            for caller in callers:
                assert caller.process is not None
                _, err = caller.process.communicate(timeout=120)
                assert caller.process.returncode == 0, err.decode()[-3000:]
        finally:
            for caller in callers:
                if caller.process is not None and caller.process.poll() is None:
                    caller.process.kill()
        final = await app.entities.get(ENTITY, KEY)
    assert kills >= 6, "too few kills to prove anything"
    assert final is not None and final.state == {"a": 4000, "b": 4000}
    assert final.version == 4000  # no call applied twice, none lost
    answers: dict[str, set[int]] = {}
    for caller in callers:
        for line in caller.lines:
            call_id, value = line.split()
            answers.setdefault(call_id, set()).add(int(value))
    assert len(answers) == PROCESSES * CALLS  # every call answered
    assert all(len(values) == 1 for values in answers.values())  # the same answer each time
    assert sorted(v for values in answers.values() for v in values) == list(range(1, 4001))
    assert all(s["a"] == s["b"] for s in seen)  # never half-applied
    assert [s["a"] for s in seen] == sorted(s["a"] for s in seen)  # never going back
