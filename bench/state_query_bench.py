"""State queries (the sidecar's Dapr query API): their plans and their cost as the app's
keys grow, on SQLite and PostgreSQL.

    python bench/state_query_bench.py                    # 1k and 100k keys, both backends
    python bench/state_query_bench.py --quick            # 1k and 20k keys: under a minute
    python bench/state_query_bench.py --backend sqlite --sizes 1000 10000

A namespace holds ``size`` keys of the app (``app||e<n>``: documents like Dapr's query
example, ``{"person": {"org", "id"}, "state", "city"}``) and as many of another app;
each query is timed (median of ``--repeat`` runs) through ``StateStore.query``:

- ``filter``: EQ on ``state`` (one row in 10 matches), page of 100, no sort;
- ``filter+sort``: the same, sorted by ``person.id`` DESC;
- ``sort-all``: every key sorted by ``person.id``, page of 100;
- ``next page``: the second page of ``filter`` (keyset: starts after the token's key).

Each line prints the plan (EXPLAIN) and the time; the last lines print the ratio of the
big size's time to the small one's: a query reads this app's key range (the primary
key index) and filters it, so its cost grows with the app's keys, not with the other
app's, unless it stops early (a page without a sort).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from typing import Any

from statekeeper import App
from statekeeper.storage.state_query import Compare, Position, SortKey, StateQuery
from statekeeper.storage.state_query_ops import compile_query

PG = "postgresql://postgres@127.0.0.1:5432/test"
STATES = ["WA", "CA", "NY", "OR", "TX", "FL", "IL", "OH", "GA", "NC"]
QUERIES: dict[str, StateQuery] = {
    "filter": StateQuery(Compare("EQ", ("state",), "CA"), limit=100),
    "filter+sort": StateQuery(
        Compare("EQ", ("state",), "CA"), (SortKey(("person", "id"), True),), limit=100
    ),
    "sort-all": StateQuery(None, (SortKey(("person", "id")),), limit=100),
}


def document(n: int) -> bytes:
    doc = {"person": {"org": f"org{n % 7}", "id": n}, "state": STATES[n % 10], "city": "c"}
    return json.dumps(doc, separators=(",", ":")).encode()


async def fill(app: App, size: int) -> None:
    rows = [(app.namespace, f"{owner}||e{n:07d}", document(n), "etag0000000a")
            for owner in ("app", "other") for n in range(size)]  # fmt: skip
    sql = "INSERT INTO sk_state (namespace, key, value, etag) VALUES ({})"
    backend: Any = app.backend
    if backend.dialect == "sqlite":
        statement = sql.format("?, ?, ?, ?")
        await backend.writer.run(lambda c: c.executemany(statement, rows), "fill")
        await backend.writer.run(lambda c: c.execute("ANALYZE"), "analyze")
    else:
        async with backend.pool.acquire() as conn:
            await conn.executemany(sql.format("$1, $2, $3, $4"), rows)
            await conn.execute("ANALYZE sk_state")


async def plan(app: App, query: StateQuery) -> str:
    backend: Any = app.backend
    sql, args = compile_query(backend.dialect, app.namespace, "app||", "app|}", query, 0.0)
    if backend.dialect == "sqlite":
        rows = await backend.writer.run(
            lambda c: c.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall(), "explain"
        )
        return "; ".join(str(r[3]) for r in rows)
    async with backend.pool.acquire() as conn:
        lines = await conn.fetch("EXPLAIN " + sql, *args)
    return "; ".join(r[0].strip() for r in lines if "Filter" not in r[0])


async def timed(app: App, query: StateQuery, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await app.state.query(query, prefix="app||")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure(url: str, size: int, repeat: int) -> dict[str, float]:
    found: dict[str, float] = {}
    async with App(url, namespace=f"qb{secrets.token_hex(3)}", purge_interval=None,
                   encryption=None) as app:  # fmt: skip
        await fill(app, size)
        first = await app.state.query(QUERIES["filter"], prefix="app||")
        last: Position = first[-1].position
        queries = {**QUERIES, "next page": StateQuery(QUERIES["filter"].filter, (), 100, last)}
        for name, query in queries.items():
            seconds = await timed(app, query, repeat)
            found[name] = seconds
            print(f"{app.backend.dialect:8} {size:>7} {name:12} {seconds * 1000:9.2f} ms  "
                  f"plan: {await plan(app, query)}")  # fmt: skip
        backend: Any = app.backend
        if backend.dialect == "postgres":  # the benchmark's own schema goes
            async with backend.pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{backend.schema}" CASCADE')
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="1k and 20k keys, 3 runs each: under a minute"
    )
    options = parser.parse_args()
    if options.quick:
        options.sizes, options.repeat = [1000, 20_000], 3
    headline = []
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory() as folder:
            results = []
            for size in options.sizes:
                url = (f"sqlite:///{folder}/q{size}.db" if backend == "sqlite"
                       else f"{PG}?schema=sk_qbench_{secrets.token_hex(3)}")  # fmt: skip
                results.append(await measure(url, size, options.repeat))
            small, big = results
            for name in small:
                print(f"{backend:8} {name:12} {options.sizes[1]}/{options.sizes[0]} keys: "
                      f"x{big[name] / small[name]:.1f} the time")  # fmt: skip
            headline.append(
                f"{backend} filtered page x{big['filter'] / small['filter']:.1f}, "
                f"sorted x{big['filter+sort'] / small['filter+sort']:.1f}"
            )
    print(
        f"headline: time at {options.sizes[1]} keys / at {options.sizes[0]}: " + "; ".join(headline)
    )


if __name__ == "__main__":
    asyncio.run(main())
