"""No lost update across OS processes: 8 processes x 500 increments of one counter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from statekeeper import App
from tests.integration.crash_support import small_pool

SCRIPT = Path(__file__).with_name("worker_scripts.py")
ROOT = Path(__file__).parents[2]


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_eight_processes_increment_one_counter(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    url = (
        f"sqlite:///{tmp_path}/counter.db" if backend_name == "sqlite" else small_pool(fresh_pg_url)
    )
    async with App(url, namespace="race", purge_interval=None):
        pass  # create the schema once, before the race
    workers = [spawn("increment", url, "race", "500") for _ in range(8)]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err.decode()
    async with App(url, namespace="race", purge_interval=None) as app:
        item = await app.state.get("counter")
    assert item is not None and item.value == 4000
