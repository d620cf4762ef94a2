"""Mailbox order across OS processes: three processes send 40 messages each, all at
once, to one waiting workflow; it receives every message once, in the order the sends
committed (the numbers each send returned)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.integration.crash_support import small_pool

ROOT = Path(__file__).parents[2]
SENDER = """
import asyncio, json, sys
from statekeeper import App

async def main(url, who, count):
    async with App(url, namespace="mail", purge_interval=None) as app:
        numbers = await asyncio.gather(*(
            app.workflows.send_message("box", "t", f"{who}-{n}") for n in range(count)))
    print(json.dumps({f"{who}-{n}": seq for n, seq in enumerate(numbers)}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def spawn(script: Path, url: str, who: str, count: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(script), url, who, str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def register(app: App) -> None:
    @app.workflow
    async def collect(ctx: WorkflowContext, count: int) -> list[Any]:
        return [await ctx.receive("t") for _ in range(count)]


async def test_three_processes_send_to_one_mailbox(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    # small pools: three processes sending 40 at once would each open 16 connections
    url = f"sqlite:///{tmp_path}/mail.db" if backend_name == "sqlite" else small_pool(fresh_pg_url)
    senders, each = 3, 40
    async with App(url, namespace="mail", purge_interval=None) as app:
        register(app)
        await app.workflows.start("collect", senders * each, id="box")
        await WorkflowRunner(app.workflows).run_due()  # it waits for the first
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    processes = [spawn(script, url, f"p{n}", each) for n in range(senders)]
    numbered: dict[str, int] = {}
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        numbered.update(json.loads(out.decode().strip().splitlines()[-1]))
    assert sorted(numbered.values()) == list(range(1, senders * each + 1))
    async with App(url, namespace="mail", purge_interval=None) as app:
        register(app)
        runner = WorkflowRunner(app.workflows)
        while await runner.run_due():
            pass
        received = await app.workflows.result("box", timeout=10)
    assert received == sorted(numbered, key=numbered.__getitem__)
