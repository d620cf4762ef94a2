"""The chaos harness's clients: writers that call the app's API and its HTTP ingress in
turn, and the record of what they were acknowledged.

Each writer cycles through seven calls: a state put (read back through the cache), a
message sent to ``work``, a ``booking`` workflow started and an entity call signalled
(``account``'s ``deposit``, run by a worker), through the app's API on the database;
then a message posted to the ingress host's ``statekeeper serve`` (``202 Accepted``:
persisted), a workflow started and an entity call stored there (``202``). An entity
call's argument is a token of its own, which its handler appends to the account's
state (chaos/workload_app.py). A call is acknowledged
when it returns (or answers 202); one that fails is counted by its error's kind (an
exception's class, ``HTTP 503 database_unavailable``, ``HTTP timeout``) and not tried again:
its item is in doubt, a new one comes next.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpcore

from statekeeper.app import App
from statekeeper.chaos.tables import TABLES
from statekeeper.entities.signals import ENTITY_CALLS
from statekeeper.errors import StatekeeperError

KINDS = (
    "state", "message", "workflow", "entity",
    "ingress message", "ingress workflow", "ingress entity",
)  # fmt: skip
API_KINDS = KINDS[:4]  # without an ingress
ACCOUNTS = [f"acct-{n}" for n in range(16)]  # the entity keys the calls go to
QUEUES = ("work", "ledger", ENTITY_CALLS)  # what the workers consume
HTTP_TIMEOUTS = {"connect": 5.0, "read": 15.0, "write": 5.0, "pool": 15.0}


@dataclass
class Calls:
    """What the writers' calls did: acknowledged items by kind, timings, failures."""

    acked: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    done: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    failed: list[float] = field(default_factory=list)  # when each failure came
    errors: Counter[str] = field(default_factory=Counter)
    stale: int = 0  # reads after an acknowledged put that did not return it

    @classmethod
    def of(cls, kinds: tuple[str, ...]) -> Calls:
        """A record of calls of these ``kinds`` only (the writers make those)."""
        return cls(acked={kind: [] for kind in kinds})

    def messages(self) -> list[str]:
        """Every acknowledged message id, sent through the API or the ingress."""
        return self.acked.get("message", []) + self.acked.get("ingress message", [])

    def workflows(self) -> list[str]:
        return self.acked.get("workflow", []) + self.acked.get("ingress workflow", [])

    def entity_calls(self) -> list[str]:
        """The tokens of every acknowledged entity call."""
        return self.acked.get("entity", []) + self.acked.get("ingress entity", [])

    def available_again(self, since: float) -> float | None:
        """When the first call started after the last failure (and after ``since``) was
        acknowledged: the end of the unavailability; None if none was."""
        last_failure = max(self.failed, default=since)
        back = [end for start, end in self.done if start >= last_failure]
        return back[0] if back else None


class CallFailed(Exception):
    """A call the writer counts as failed, by ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Ingress:
    """An HTTP client of ``statekeeper serve`` through a Unix socket (the cluster's
    ``expose``), with its bearer token."""

    def __init__(self, socket: Path, token: str) -> None:
        self._pool = httpcore.AsyncConnectionPool(uds=str(socket), max_connections=16)
        self._headers = [
            (b"Host", b"ingress"),
            (b"Authorization", f"Bearer {token}".encode()),
            (b"Content-Type", b"application/json"),
        ]

    async def post(self, path: str, body: Any) -> dict[str, Any]:
        """The JSON answer of a POST that must answer 202; CallFailed otherwise."""
        try:
            response = await self._pool.request(
                "POST", f"http://ingress{path}", headers=self._headers,
                content=json.dumps(body).encode(), extensions={"timeout": HTTP_TIMEOUTS},
            )  # fmt: skip
        except httpcore.TimeoutException as error:
            raise CallFailed("HTTP timeout") from error
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise CallFailed("HTTP connection lost") from error
        try:
            answer: dict[str, Any] = json.loads(response.content)
        except ValueError:
            answer = {}
        if response.status != 202:
            code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
            raise CallFailed(f"HTTP {response.status} {code}".strip())
        return answer

    async def ready(self) -> bool:
        try:
            response = await self._pool.request(
                "GET", "http://ingress/readyz", extensions={"timeout": HTTP_TIMEOUTS}
            )
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
            return False
        return response.status == 200

    async def close(self) -> None:
        await self._pool.aclose()


def harness_app(url: str, cache_url: str | None = None) -> App:
    """The harness's client of the workload app: it sends to ``work`` and starts
    ``booking`` runs, which only the worker hosts run."""
    app = App(url, namespace="chaos", purge_interval=None, encryption=None, cache_url=cache_url)

    @app.workflow
    async def booking(ctx: object, workflow_id: str) -> int:
        raise AssertionError("runs only on the worker hosts")

    app.queue("work")

    @app.entity("account", initial=list).handler
    def deposit(ctx: object, token: str) -> int:
        raise AssertionError("runs only on the worker hosts")

    return app


async def entity_calls_applied(app: App, calls: Calls) -> tuple[int, int]:
    """The acknowledged entity calls whose token no account holds (lost), and the
    tokens an account holds twice (applied twice)."""
    applied: Counter[str] = Counter()
    for account in ACCOUNTS:
        snapshot = await app.entities.get("account", account)
        applied.update(snapshot.state if snapshot is not None else [])
    lost = sum(1 for token in calls.entity_calls() if not applied[token])
    return lost, sum(1 for count in applied.values() if count > 1)


async def left_in_queues(app: App, *, ready: bool = True) -> int:
    """Messages the workers have not finished: in flight, delayed and (``ready``)
    waiting."""
    left = 0
    for queue in QUEUES:
        stats = await app.queue(queue).stats()
        left += stats.in_flight + stats.delayed + (stats.ready if ready else 0)
    return left


def account_of(token: str) -> str:
    return ACCOUNTS[zlib.crc32(token.encode()) % len(ACCOUNTS)]


async def create_tables(url: str) -> None:
    """The workload's effect tables (chaos/tables.py), empty."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(TABLES)
    finally:
        await conn.close()


async def _call(app: App, ingress: Ingress | None, kind: str, key: str, i: int) -> str | None:
    """One call of ``kind``; the acknowledged item's key, or None if its read was stale."""
    if kind == "state":
        await app.state.put(key, {"i": i})
        read = await app.state.get(key)  # through the cache, when there is one
        return key if read is not None and read.value == {"i": i} else None
    if kind == "message":
        return (await app.queue("work").send({"key": key})).id
    if kind == "workflow":
        await app.workflows.start("booking", key, id=key)
        return key
    if kind == "entity":
        await app.entities.signal("account", account_of(key), "deposit", key)
        return key
    assert ingress is not None
    if kind == "ingress message":
        return str((await ingress.post("/v1/queues/work/messages", {"key": key}))["id"])
    if kind == "ingress workflow":
        await ingress.post(f"/v1/workflows/booking?id={key}", key)
    else:
        await ingress.post(f"/v1/entities/account/{account_of(key)}/deposit?wait=0", key)
    return key


async def write_mixed(
    app: App, calls: Calls, writer: int, stop: asyncio.Event, ingress: Ingress | None = None
) -> None:
    """Each kind of call ``calls`` records, in turn, until ``stop``; each failure
    counted, not retried. The ingress kinds need ``ingress``."""
    kinds = list(calls.acked)
    i = 0
    while not stop.is_set():
        kind = kinds[i % len(kinds)]
        key = f"{kind.replace(' ', '-')}-{writer}-{i}"
        i += 1
        started = time.monotonic()
        try:
            acked = await _call(app, ingress, kind, key, i)
        except (StatekeeperError, CallFailed) as error:
            name = error.kind if isinstance(error, CallFailed) else type(error).__name__
            calls.errors[name] += 1
            calls.failed.append(time.monotonic())
            await asyncio.sleep(0.1)
            continue
        calls.done.append((started, time.monotonic()))
        if acked is None:
            calls.stale += 1
            acked = key
        calls.acked[kind].append(acked)
        await asyncio.sleep(0.02)
