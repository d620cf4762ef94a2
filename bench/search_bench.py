"""Workflow search: the cost of a filtered listing and count as the namespace grows.

    python bench/search_bench.py --quick           # under a minute
    python bench/search_bench.py --backend sqlite  # one backend

For each backend, two databases: one holding SMALL workflows, one holding BIG (1,000
and 100,000; --quick: 1,000 and 20,000), every workflow with two attributes (rows
written straight into the tables, never analyzed): ``customer`` (a keyword shared by 100
workflows whatever the size) and ``amount`` (an int; the range asked for holds 100
workflows whatever the size). Timed, per query, the mean of ``--repeat`` calls through
``app.workflows`` (the small database measured before and after the big one, the
better of the two kept):

* eq: ``list(attributes={"customer": ...}, limit=50)`` (one index range, read in order);
* eq+range: the same with ``amount`` in a range (the second filter checked per row);
* range: ``list(attributes={"amount": {"gte": .., "lt": ..}}, limit=50)`` (sorted);
* count: ``counts(attributes={"customer": ...})``.

The matches are the same in both databases, so a flat cost means a ratio near 1. The
last line is the headline: the worst BIG/SMALL ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import benchlib
from statekeeper import App

PG = "postgresql://postgres@127.0.0.1:5432/test"
MATCHES = 100  # workflows each filter selects, whatever the size


async def fill(app: App, count: int) -> None:
    now = time.time()
    groups = count // MATCHES
    workflows = [
        (app.namespace, f"w{n:06d}", "order", "succeeded", b"0", now + n, now) for n in range(count)
    ]
    attributes: list[tuple[Any, ...]] = []
    for n in range(count):
        created = now + n
        attributes.append((app.namespace, f"w{n:06d}", "customer", "keyword",
                           f"c-{n % groups}", None, created, now))  # fmt: skip
        attributes.append((app.namespace, f"w{n:06d}", "amount", "int", None, float(n),
                           created, now))  # fmt: skip
    kinds = [(app.namespace, "customer", "keyword", now), (app.namespace, "amount", "int", now)]
    inserts: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
         "updated_at) VALUES ({})", workflows),
        ("INSERT INTO sk_workflow_attributes (namespace, workflow_id, name, kind, text_value, "
         "number_value, created_at, updated_at) VALUES ({})", attributes),
        ("INSERT INTO sk_workflow_attribute_kinds (namespace, name, kind, created_at) "
         "VALUES ({})", kinds),
    ]  # fmt: skip
    for sql, rows in inserts:
        await benchlib.fill(app, sql, rows)


def queries(app: App, count: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    middle = count // 2
    customer = {"customer": "c-7"}
    amount = {"amount": {"gte": middle, "lt": middle + MATCHES}}
    return {
        "eq": lambda: app.workflows.list(attributes=customer, limit=50),
        "eq+range": lambda: app.workflows.list(
            attributes={**customer, "amount": {"gte": 0}}, limit=50
        ),
        "range": lambda: app.workflows.list(attributes=amount, limit=50),
        "count": lambda: app.workflows.counts(attributes=customer),
    }


async def measure(url: str, count: int, repeat: int) -> dict[str, float]:
    async with App(url, namespace="bench", purge_interval=None, encryption=None) as app:
        try:
            await fill(app, count)
            timings = {}
            for name, call in queries(app, count).items():
                found = await call()  # warm-up, and a check of what it finds
                size = found["total"] if isinstance(found, dict) else len(found)
                assert size == (50 if name != "count" else MATCHES), (name, size)
                started = time.perf_counter()
                for _ in range(repeat):
                    await call()
                timings[name] = (time.perf_counter() - started) / repeat * 1000
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
    parser.add_argument("--repeat", type=int, default=0, help="calls per query")
    options = parser.parse_args()
    small, big = (1_000, 20_000) if options.quick else (1_000, 100_000)
    repeat = options.repeat or (50 if options.quick else 200)
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results: dict[int, dict[str, float]] = {}
            # small, big, small again: each query's best small time (the first database
            # of a process pays for warming up).
            for n, count in enumerate((small, big, small)):
                url = (f"sqlite:///{tmp}/{backend}-{n}.db" if backend == "sqlite"
                       else f"{PG}?schema=sk_sbench_{secrets.token_hex(3)}")  # fmt: skip
                timings = await measure(url, count, repeat)
                earlier = results.get(count, timings)
                results[count] = {k: min(v, earlier[k]) for k, v in timings.items()}
            for name in results[small]:
                a, b = results[small][name], results[big][name]
                worst = max(worst, b / a)
                print(f"{backend:8} {name:9} {small:>7} runs {a:7.3f} ms   "
                      f"{big:>7} runs {b:7.3f} ms   ratio {b / a:5.2f}")  # fmt: skip
    print(f"headline: worst {big}/{small}-run cost ratio of a filtered search: {worst:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
