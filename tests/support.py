"""Helpers shared by tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from statekeeper.runtime import Worker


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
