"""Helpers shared by tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from statekeeper import App
from statekeeper.runtime import Worker
from statekeeper.workflows import WorkflowRunner


async def run_until(worker: Worker, condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Run the worker until ``condition`` holds (checked every 20 ms), then stop it;
    fails if it does not hold within ``limit`` seconds."""
    task = asyncio.create_task(worker.run())
    deadline = asyncio.get_running_loop().time() + limit
    try:
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "condition never held"
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(task, limit)


async def drive(app: App, rounds: int = 20) -> None:
    """Run every due workflow of ``app`` until none is left (each run goes on until it
    finishes, sleeps or waits)."""
    runner = WorkflowRunner(app.workflows)
    for _ in range(rounds):
        if not await runner.run_due():
            return
