"""``statekeeper demo``: the state store at work, on the embedded SQLite default.

Each scene prints what it did and checks what it claims; a failed check raises.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import socket
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from statekeeper.app import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    TransactionConflict,
    WrongExpectedVersion,
)
from statekeeper.state import Keyring
from statekeeper.storage.url import redact

console = Console(highlight=False)


def scene(title: str) -> None:
    console.print(f"\n[bold cyan]== {title}[/]")


def show(label: str, value: Any) -> None:
    console.print(f"  {label}: [green]{value}[/]")


def check(condition: bool, claim: str) -> None:
    if not condition:
        raise AssertionError(f"demo check failed: {claim}")
    console.print(f"  [bold green]✓[/] {claim}")


async def run_demo(database_url: str | None = None) -> None:
    async with App(database_url, namespace="demo", purge_interval=None) as app:
        console.print(f"[bold]statekeeper demo[/] on {app.url.redacted()}")
        # Start clean, so the demo can run again and again.
        page = await app.state.list(limit=1000)
        async with app.state.transaction() as tx:
            for item in page.items:
                tx.delete(item.key)

        await _etags(app)
        await _ttl(app)
        await _transactions(app)
        await _concurrent_updates(app)
        await _listing(app)
        await _orders(app)
    await _encryption(database_url)
    await _cache(database_url)
    console.print("\n[bold green]demo finished: every check passed[/]")


async def _etags(app: App) -> None:
    scene("External storage with optimistic concurrency (ETags)")
    first = await app.state.put("user:ada", {"name": "Ada", "plan": "free"})
    show("put user:ada, etag", first.etag)
    second = await app.state.put("user:ada", {"name": "Ada", "plan": "pro"}, if_match=first.etag)
    show("conditional put with the current etag, new etag", second.etag)
    try:
        await app.state.put("user:ada", {"name": "Ada", "plan": "gone"}, if_match=first.etag)
        check(False, "a stale etag is refused")
    except ConflictError as error:
        check(True, f"a stale etag is refused: {error.message}")
    try:
        await app.state.put("user:ada", {}, only_if_absent=True)
        check(False, "only_if_absent refuses an existing key")
    except AlreadyExists:
        check(True, "only_if_absent refuses an existing key")
    item = await app.state.get("user:ada")
    check(item is not None and item.value["plan"] == "pro", "the winning write is stored")


async def _ttl(app: App) -> None:
    scene("Transient state with a TTL")
    item = await app.state.put("session:42", {"cart": ["book"]}, ttl=0.5)
    show("session:42 expires at", item.expires.isoformat() if item.expires else None)
    check(await app.state.get("session:42") is not None, "visible before it expires")
    await asyncio.sleep(0.6)
    check(await app.state.get("session:42") is None, "invisible at once after it expires")
    purged = await app.state.purge_expired()
    show("purged expired rows", purged)


async def _transactions(app: App) -> None:
    scene("Transactions: all or nothing")
    await app.state.put_many({"account:a": {"balance": 100}, "account:b": {"balance": 0}})
    a = await app.state.get("account:a")
    b = await app.state.get("account:b")
    assert a is not None and b is not None
    async with app.state.transaction() as tx:
        tx.put("account:a", {"balance": 70}, if_match=a.etag)
        tx.put("account:b", {"balance": 30}, if_match=b.etag)
    show("moved 30 from a to b; new etags", tx.etags)
    try:
        async with app.state.transaction() as tx:
            tx.put("account:a", {"balance": 0}, if_match=a.etag)  # stale now
            tx.put("account:b", {"balance": 100})
        check(False, "a transaction with a stale condition is refused")
    except TransactionConflict as error:
        check(True, f"a transaction with a stale condition is refused: {error.message}")
    balances = await app.state.get_many(["account:a", "account:b", "account:nobody"])
    values = {k: (v.value["balance"] if v else None) for k, v in balances.items()}
    show("balances", values)
    check(
        values == {"account:a": 70, "account:b": 30, "account:nobody": None},
        "nothing of it applied",
    )


async def _concurrent_updates(app: App) -> None:
    scene("No lost updates: 50 concurrent increments")

    def increment(value: Any) -> int:
        return (value or 0) + 1

    await asyncio.gather(*(app.state.update("counter:visits", increment) for _ in range(50)))
    item = await app.state.get("counter:visits")
    show("counter:visits", item.value if item else None)
    check(item is not None and item.value == 50, "every increment counted once")


async def _listing(app: App) -> None:
    scene("Composite keys and prefix listing")
    await app.state.put_many({f"order:ada:{n:03d}": {"total": n * 10} for n in range(1, 8)})
    keys: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await app.state.list("order:ada:", limit=3, cursor=cursor)
        keys += [item.key for item in page.items]
        pages += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    show("orders of ada, 3 a page", f"{len(keys)} items in {pages} pages")
    check(keys == sorted(keys) and len(keys) == 7, "every order once, in key order")


def _order_service() -> ModuleType | None:
    """examples/order_service.py of the source tree this package runs from (None when
    the package is installed without it)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "order_service.py"
    spec = importlib.util.spec_from_file_location("statekeeper_demo_orders", path)
    if not path.is_file() or spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


_SHOWN = ("status", "total", "paid", "version")


async def _orders(demo: App) -> None:
    scene("CQRS with event sourcing: the order service of examples/order_service.py")
    service = _order_service()
    if service is None:
        console.print("  (examples/order_service.py is not beside this package; skipping)")
        return
    app = service.build(demo.in_namespace("demo-orders"))
    run = uuid.uuid4().hex[:6]  # new orders each run: the event log keeps the old ones
    customer, first, second = f"ada-{run}", f"{run}-1", f"{run}-2"
    book = {"sku": "book", "quantity": 2, "price": 1250}
    pen = {"sku": "pen", "quantity": 3, "price": 150}
    await service.execute(app, first, service.place, customer, [book])
    order = await service.execute(app, first, service.add_line, pen)
    show(f"order {first}: placed with a book, a line of pens added",
         f"version {order.version}, total {order.total}")  # fmt: skip
    try:
        await service.execute(app, first, service.ship)
        check(False, "an unpaid order does not ship")
    except ConflictError as error:
        check(error.code == "rule_violation", f"a rule refuses a command: {error.message}")
    stale = await service.load(app, first)  # a command reads version 2 ...
    await service.execute(app, first, service.pay)  # ... another appends meanwhile
    try:
        events = service.remove_line(stale, "pen")
        await app.events.append(service.stream_of(first), events, expected_version=stale.version)
        check(False, "an append on a stale version is refused")
    except WrongExpectedVersion as error:
        check(True, f"an append on a stale version is refused: {error.message}")
    try:  # decided again on what the payment left, the command is refused by a rule
        await service.execute(app, first, service.remove_line, "pen")
        check(False, "decided again, the removal is refused")
    except ConflictError as error:
        check(error.code == "rule_violation", f"decided again: {error.message}")
    await service.execute(app, first, service.ship)
    await service.execute(app, second, service.place, customer, [pen])
    await service.execute(app, second, service.pay)
    await service.execute(app, second, service.cancel)
    for name in ("orders", "daily-revenue"):
        await app.projections.catch_up(name)
    model = app.projections.read_model("orders")
    for order_id in (first, second):
        summary = await model.get(f"order/{order_id}")
        show(f"read model order/{order_id}", {k: summary[k] for k in _SHOWN})
        replayed = await service.load(app, order_id)
        check(summary == replayed.to_dict(), f"order {order_id}: the read model is its replay")
    index = await model.get(f"customer/{customer}")
    show(f"read model customer/{customer}", f"{index['orders']}, spent {index['spent']}")
    check(
        index["orders"] == {first: {"status": "shipped", "total": 2950},
                            second: {"status": "cancelled", "total": 450}}
        and index["spent"] == 2950,
        "the customer's index has both orders; the cancelled one was refunded",
    )  # fmt: skip
    [placed] = await app.events.read_stream(service.stream_of(first), limit=1)
    day = datetime.datetime.fromtimestamp(placed.recorded_at, datetime.UTC).date()
    revenue = await app.projections.read_model("daily-revenue").get(f"day/{day.isoformat()}")
    amounts = {status: found["amount"] for status, found in revenue.items() if status != "day"}
    show(f"read model day/{day.isoformat()}, amounts by status (the day's demo runs)", amounts)


async def _encryption(database_url: str | None) -> None:
    scene("Encryption at rest (AES-GCM) and key rotation")
    k1, k2 = Keyring.generate_key(), Keyring.generate_key()
    url = database_url
    async with App(
        url, namespace="demo-sealed", encryption=Keyring.parse(f"k1:{k1}"), purge_interval=None
    ) as app:
        await app.state.put("secret:card", {"number": "4111-1111-1111-1111"})
        stored = await app.backend.state.get("demo-sealed", "secret:card", app.clock())
        assert stored is not None
        check(b"4111" not in stored.value, f"stored sealed under key id {stored.key_id!r}")
    rotated = Keyring.parse(f"k2:{k2},k1:{k1}")  # k2 is the new primary; k1 still opens
    async with App(url, namespace="demo-sealed", encryption=rotated, purge_interval=None) as app:
        report = await app.state.reencrypt()
        show("re-encrypted under the new primary k2", report)
        stored = await app.backend.state.get("demo-sealed", "secret:card", app.clock())
        check(stored is not None and stored.key_id == "k2", "the value is now sealed by k2")
        item = await app.state.get("secret:card")
        check(item is not None and item.value["number"].startswith("4111"), "and reads back intact")
        await app.state.delete("secret:card")


async def _cache(database_url: str | None) -> None:
    scene("Cache-aside on Redis")
    cache_url = os.environ.get(ENV_CACHE_URL, "redis://127.0.0.1:6379/0")
    try:
        parts = urlsplit(cache_url)
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.3):
            pass
    except (OSError, ValueError):  # ValueError: a port that is not a number
        console.print(f"  (no Redis at {redact(cache_url)}; skipping the cache scene)")
        return
    async with App(database_url, namespace="demo", cache_url=cache_url, purge_interval=None) as app:
        await app.state.put("profile:ada", {"theme": "dark"})
        for _ in range(5):
            await app.state.get("profile:ada")
        await app.state.put("profile:ada", {"theme": "light"})
        item = await app.state.get("profile:ada")
        stats = app.state.cache_stats()
        show("cache stats", stats)
        check(
            item is not None and item.value["theme"] == "light",
            "a write is never followed by a stale read",
        )
        check(stats is not None and stats.hits >= 4, "repeated reads are served from Redis")
