"""The dashboard's pages: what one costs as the namespace's history grows.

    python bench/dashboard_bench.py --quick           # under a minute
    python bench/dashboard_bench.py --backend sqlite  # one backend

For each backend, two databases: one holding SMALL finished workflows, one BIG (1,000
and 100,000; --quick: 1,000 and 20,000; rows written straight into the tables, never
analyzed), all created more than an hour ago, besides the same 100 runs created in the
last hour (10 of them failed) whatever the size. Timed, per page, the mean of
``--repeat`` requests through the ASGI app (in process, no network): the overview (its
queue and run counts and the last hour's charts), the runs listed, the failed runs
listed, and one run's page. What each page shows is the same in both databases, so a
flat cost means a ratio near 1. The last line is the headline: the worst BIG/SMALL
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import httpx

import benchlib
from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app

PG = "postgresql://postgres@127.0.0.1:5432/test"
RECENT = 100  # runs created in the last hour, whatever the size
PAGES = ("/ui", "/ui/workflows", "/ui/workflows?status=failed", "/ui/workflows/r000007")


async def fill(app: App, count: int) -> None:
    now = time.time()
    old = [
        (app.namespace, f"w{n:06d}", "order", "succeeded", b"0", now - 7200 - n, now - 7200)
        for n in range(count)
    ]
    recent = [
        (app.namespace, f"r{n:06d}", "order", "failed" if n % 10 == 7 else "succeeded",
         b"0", now - 30 * n, now - 30 * n)
        for n in range(RECENT)
    ]  # fmt: skip
    steps = [(app.namespace, "r000007", n, "step", f"step{n}", b"1", now - 1, now)
             for n in range(1, 21)]  # fmt: skip
    inserts: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
         "updated_at) VALUES ({})", old + recent),
        ("INSERT INTO sk_workflow_steps (namespace, workflow_id, position, kind, name, "
         "output, started_at, finished_at) VALUES ({})", steps),
    ]  # fmt: skip
    for sql, rows in inserts:
        await benchlib.fill(app, sql, rows)


async def measure(url: str, count: int, repeat: int) -> dict[str, float]:
    async with App(url, namespace="bench", purge_interval=None, encryption=None) as app:
        try:
            await fill(app, count)
            http = create_http_app(app, HttpConfig(dev=True))
            transport = httpx.ASGITransport(app=http)
            timings = {}
            async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
                for page in PAGES:
                    first = await client.get(page)  # warm-up, and a check
                    assert first.status_code == 200, (page, first.status_code, first.text)
                    started = time.perf_counter()
                    for _ in range(repeat):
                        await client.get(page)
                    timings[page] = (time.perf_counter() - started) / repeat * 1000
            return timings
        finally:
            backend: Any = app.backend
            if backend.dialect == "postgres":
                async with backend.pool.acquire() as conn:
                    await conn.execute(f'DROP SCHEMA "{backend.schema}" CASCADE')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=0, help="requests per page")
    options = parser.parse_args()
    small, big = (1_000, 20_000) if options.quick else (1_000, 100_000)
    repeat = options.repeat or (30 if options.quick else 100)
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results: dict[int, dict[str, float]] = {}
            # small, big, small again: each page's best small time (the first database
            # of a process pays for warming up).
            for n, count in enumerate((small, big, small)):
                url = (f"sqlite:///{tmp}/{backend}-{n}.db" if backend == "sqlite"
                       else f"{PG}?schema=sk_dbench_{secrets.token_hex(3)}")  # fmt: skip
                timings = await measure(url, count, repeat)
                earlier = results.get(count, timings)
                results[count] = {k: min(v, earlier[k]) for k, v in timings.items()}
            for page in PAGES:
                a, b = results[small][page], results[big][page]
                worst = max(worst, b / a)
                print(f"{backend:8} {page:30} {small:>7} runs {a:7.2f} ms   "
                      f"{big:>7} runs {b:7.2f} ms   ratio {b / a:5.2f}")  # fmt: skip
    print(f"headline: worst {big}/{small}-run cost ratio of a dashboard page: {worst:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
