"""Programs that tests run as separate OS processes (to race or to be killed).

python tests/integration/worker_scripts.py increment URL NAMESPACE COUNT
python tests/integration/worker_scripts.py write-forever URL NAMESPACE TASKS
"""

from __future__ import annotations

import asyncio
import sys

from statekeeper import App


async def increment(url: str, namespace: str, count: int) -> None:
    async with App(url, namespace=namespace, purge_interval=None, encryption=None) as app:
        for _ in range(count):
            await app.state.update("counter", lambda v: (v or 0) + 1, max_attempts=10_000)


async def write_forever(url: str, namespace: str, tasks: int) -> None:
    """Concurrent writers; a line on stdout for each write only after it was acknowledged."""
    async with App(url, namespace=namespace, purge_interval=None, encryption=None) as app:

        def report(line: str) -> None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        async def writer(task: int) -> None:
            n = 0
            while True:
                key = f"t{task}:{n}"
                await app.state.put(key, {"task": task, "n": n})
                report(f"put {key}")
                n += 1

        async def counter() -> None:
            while True:
                item = await app.state.update("counter", lambda v: (v or 0) + 1)
                report(f"counter {item.value}")

        report("ready")
        await asyncio.gather(*(writer(t) for t in range(tasks)), counter())


if __name__ == "__main__":
    command, url, namespace, number = sys.argv[1:5]
    if command == "increment":
        asyncio.run(increment(url, namespace, int(number)))
    elif command == "write-forever":
        asyncio.run(write_forever(url, namespace, int(number)))
    else:
        raise SystemExit(f"unknown command {command!r}")
