"""Programs that tests run as separate OS processes (to race or to be killed).

python tests/integration/worker_scripts.py increment URL NAMESPACE COUNT
python tests/integration/worker_scripts.py write-forever URL NAMESPACE TASKS
python tests/integration/worker_scripts.py commit-forever URL NAMESPACE TASKS
"""

from __future__ import annotations

import asyncio
import sys
import time

from statekeeper import App
from statekeeper.storage import create_backend, parse
from statekeeper.storage.rows import NewMessage, PutOp, StepRecord, UnitOfWork


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


async def commit_forever(url: str, namespace: str, tasks: int) -> None:
    """Concurrent units of work, each a state write, a message and a workflow step (one
    workflow per task); a line ``unit T N`` only after unit N of task T committed."""
    storage = create_backend(parse(url))
    await storage.open()
    fences = {}
    for task in range(tasks):
        await storage.workflows.create(namespace, f"w{task}", "flow", b"null", None, time.time())
    leased = await storage.workflows.lease(
        namespace, ["flow"], owner="o", lease_end=time.time() + 3600, limit=tasks, now=time.time()
    )
    fences = {w.id: w.fence for w in leased}

    async def committer(task: int) -> None:
        n = 0
        while True:
            n += 1
            now = time.time()
            unit = UnitOfWork(
                namespace,
                now,
                writes=[PutOp(f"k{task}:{n}", b"1", "e")],
                messages=[
                    NewMessage(
                        id=f"{namespace}:m{task}:{n}", queue="q", body=b"{}", available_at=now
                    )
                ],
                step=StepRecord(f"w{task}", fences[f"w{task}"], n, "step", "s", now + 3600),
            )
            done = await storage.commit(unit)
            assert done.applied
            sys.stdout.write(f"unit {task} {n}\n")
            sys.stdout.flush()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(committer(t) for t in range(tasks)))


if __name__ == "__main__":
    command, url, namespace, number = sys.argv[1:5]
    if command == "increment":
        asyncio.run(increment(url, namespace, int(number)))
    elif command == "write-forever":
        asyncio.run(write_forever(url, namespace, int(number)))
    elif command == "commit-forever":
        asyncio.run(commit_forever(url, namespace, int(number)))
    else:
        raise SystemExit(f"unknown command {command!r}")
