"""The HTTP ingress (POST a message, answer 202) against a bare Starlette endpoint.

    python bench/ingress_bench.py --quick               # under a minute
    python bench/ingress_bench.py                       # longer, stabler figures
    python bench/ingress_bench.py --backend sqlite --json results.json

For each backend (SQLite, PostgreSQL) two server processes run side by side:

* ``sk``    ``python -m statekeeper serve --app <tmp module>:app --no-workers``, the app
  being ``App(url, namespace="bench", purge_interval=None)`` with one queue ``bench``;
  no consumer runs, so only the ingress is measured.
* ``bare``  this file run with ``--serve-bare``: a Starlette app under uvicorn with
  the same settings as ``serve`` (log_level warning, no access log, lifespan off),
  one POST route that checks the same bearer token (``hmac.compare_digest``),
  reads and JSON-parses the body, INSERTs one row of the same shape into a table
  created by statekeeper's own migrations (indexes included) and answers 202 with
  ``{id, queue, status, status_url}`` and a Location header. SQLite: sqlite3 in a
  single writer thread (``run_in_executor``), WAL, ``synchronous=FULL``, one
  ``BEGIN IMMEDIATE ... COMMIT`` per request. PostgreSQL: an asyncpg pool of
  statekeeper's size (2-16), one autocommit INSERT; connections are handed back
  without asyncpg's reset query, as statekeeper's pool does, so the baseline is
  not slowed by a round trip statekeeper skips.

Both get ``POST /v1/queues/bench/messages`` with a ~200-byte JSON body and
``Authorization: Bearer ...`` from a load generator on loopback: ``wrk`` (one
thread, 32 keep-alive connections) when installed, else httpx in this process (32
tasks, each with its own AsyncClient and keep-alive connection; on a small machine
httpx itself is then the limit, which a note says). The load generator shares the
machine's CPUs with the servers, so the two sides alternate in slices (sk, bare,
bare, sk, ...) and drift hits both alike. wrk's latency histogram (with its
coordinated-omission correction) or httpx's per-request timings of all slices
give p50/p99. The last line printed is the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib.util
import json
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# A sibling module: ``python bench/ingress_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Plan
from statekeeper.constants import ENV_CACHE_URL, ENV_DATABASE_URL

Side = Literal["sk", "bare"]

TOKEN = "ingress-bench-token-0123456789abcdef"
ENV_TOKEN = "STATEKEEPER_API_TOKEN"
ENV_CALLBACK_SECRET = "STATEKEEPER_CALLBACK_SECRET"
ENV_APP_URL = "INGRESS_BENCH_DATABASE_URL"
NAMESPACE = "bench"
QUEUE = "bench"
PATH = f"/v1/queues/{QUEUE}/messages"
CONCURRENCY = 32
TARGET = 0.8
CLIENT_SATURATED = 0.5  # cores: above this the load generator is the bottleneck
SIDES: tuple[Side, ...] = ("sk", "bare")
SK_MODULE = "ingress_bench_app"
READY_TIMEOUT = 60.0

# The statekeeper app a server process serves: written to a temporary directory.
SK_APP_SOURCE = f'''"""The app of bench/ingress_bench.py: one queue, no consumers."""

import os

from statekeeper import App

app = App(os.environ["{ENV_APP_URL}"], namespace="{NAMESPACE}", purge_interval=None)
app.queue("{QUEUE}")
'''

# A ~200-byte JSON document, the body of every request.
DOCUMENT: dict[str, Any] = {
    "event": "order.created",
    "order_id": "ord_7Hq2Lm9XcV",
    "customer": {"id": "cus_41", "email": "ada@example.com", "tier": "pro"},
    "items": [{"sku": "SKU-1042", "qty": 2}, {"sku": "SKU-2210", "qty": 1}],
    "total": 129.5,
    "currency": "EUR",
}
BODY = json.dumps(DOCUMENT, separators=(",", ":")).encode()

# --- the bare endpoint: this file run with --serve-bare -----------------------------------

COLUMNS = (
    "id, namespace, queue, body, attributes, correlation_id, group_id, "
    "state, available_at, attempts, enqueued_at, reply_to"
)
SQLITE_INSERT = (
    f"INSERT INTO sk_messages ({COLUMNS}) "
    "VALUES (?, ?, ?, ?, NULL, ?, NULL, 'ready', ?, 0, ?, NULL)"
)
PG_INSERT = (
    f"INSERT INTO sk_messages ({COLUMNS}) "
    "VALUES ($1, $2, $3, $4, NULL, $5, NULL, 'ready', $6, 0, $7, NULL)"
)
Row = tuple[str, str, str, bytes, str, float, float]
Insert = Callable[[Row], Awaitable[None]]


class BareSQLite:
    """sqlite3 in one writer thread, a durable transaction per request."""

    def __init__(self, path: str) -> None:
        self.writer = benchlib.SQLiteWriter(path, "bare-sqlite-writer")

    async def open(self) -> None:
        await self.writer.open()

    async def insert(self, row: Row) -> None:
        await self.writer.call(self.writer.transaction, SQLITE_INSERT, row)

    async def close(self) -> None:
        await self.writer.close()


async def _keep_connection(conn: asyncpg.Connection) -> None:
    """Hand pooled connections back as they are (statekeeper's pool does the same)."""


class BarePostgres:
    """An asyncpg pool, one autocommit INSERT per request."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self.pool = await benchlib.raw_pool(self.url, self.schema, reset=_keep_connection)

    async def insert(self, row: Row) -> None:
        assert self.pool is not None
        await self.pool.execute(PG_INSERT, *row)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def bare_app(insert: Insert, token: str) -> Starlette:
    expected = token.encode()

    async def post_message(request: Request) -> Response:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return JSONResponse({"error": "unauthorized"}, 401)
        queue = request.path_params["queue"]
        if queue != QUEUE:
            return JSONResponse({"error": "unknown queue"}, 404)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "malformed json"}, 400)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        message_id = uuid.uuid4().hex
        now = time.time()
        await insert((message_id, NAMESPACE, queue, data, uuid.uuid4().hex, now, now))
        location = f"/v1/requests/{message_id}"
        document = {"id": message_id, "queue": queue, "status": "accepted"}
        return JSONResponse({**document, "status_url": location}, 202, {"Location": location})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/queues/{queue}/messages", post_message, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def serve_bare(args: argparse.Namespace) -> int:
    store: BareSQLite | BarePostgres
    if args.sqlite_path:
        store = BareSQLite(args.sqlite_path)
    else:
        store = BarePostgres(args.pg_url, args.schema)
    await store.open()
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                bare_app(store.insert, os.environ[ENV_TOKEN]),
                host="127.0.0.1",
                port=args.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        await server.serve()  # until SIGTERM or SIGINT
    finally:
        await store.close()
    return 0


# --- server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    side: Side
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the {self.side} server exited with {self.process.returncode}:\n"
                        f"{self.log_tail()}"
                    )
                with suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the {self.side} server did not start:\n{self.log_tail()}")

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        await asyncio.to_thread(self.process.wait)


def child_environment(directory: str, database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (ENV_CACHE_URL, ENV_CALLBACK_SECRET, ENV_DATABASE_URL)
    }
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (directory, src, env.get("PYTHONPATH")) if p)
    env[ENV_TOKEN] = TOKEN
    env[ENV_APP_URL] = database_url
    return env


def start_server(
    stack: AsyncExitStack, side: Side, command: list[str], directory: str, database_url: str
) -> Server:
    """Start a server process; ``stack`` stops it (SIGTERM, then SIGKILL) when it closes."""
    port = free_port()
    log = Path(directory) / f"{side}-server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=directory,
            env=child_environment(directory, database_url),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    server = Server(side, process, port, log)
    stack.push_async_callback(server.stop)
    return server


async def wait_ready(*servers: Server) -> None:
    outcomes = await asyncio.gather(*(s.wait_ready() for s in servers), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def sk_command(directory: str) -> list[str]:
    Path(directory, f"{SK_MODULE}.py").write_text(SK_APP_SOURCE, encoding="utf-8")
    return [sys.executable, "-m", "statekeeper", "serve", "--app", f"{SK_MODULE}:app",
            "--no-workers"]  # fmt: skip


def bare_command(where: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve-bare", *where]


# --- load generators ----------------------------------------------------------------------


@dataclass
class Slice:
    requests: int  # answered, whatever the status
    ok: int  # answered 2xx
    errors: int  # socket errors, timeouts and non-2xx answers
    seconds: float
    latency_us: Counter[int]
    server_cpu: float | None
    client_cpu: float  # the load generator's CPU seconds


class LoadGenerator:
    name = ""

    async def run(self, server: Server, seconds: float) -> Slice:
        raise NotImplementedError

    async def close(self) -> None:
        pass


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("INGRESS-BENCH summary %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  local parts = {{}}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%d:%d", value, count)
  end
  io.write("INGRESS-BENCH latency " .. table.concat(parts, " ") .. "\\n")
end
"""


class Wrk(LoadGenerator):
    """wrk, one thread: keep-alive connections, C and Lua, light on the shared CPUs."""

    name = "wrk"

    def __init__(self, binary: str, directory: str, concurrency: int) -> None:
        self.binary = binary
        self.concurrency = concurrency
        self.script = Path(directory) / "ingress_bench.lua"
        self.script.write_text(WRK_SCRIPT.format(body=BODY.decode(), token=TOKEN), encoding="utf-8")

    async def run(self, server: Server, seconds: float) -> Slice:
        whole = max(1, round(seconds))  # wrk takes whole seconds
        command = [self.binary, "-t1", f"-c{self.concurrency}", f"-d{whole}s", "--timeout", "10s",
                   "-s", str(self.script), server.url + PATH]  # fmt: skip
        cpu_before = cpu_seconds(server.process.pid)
        children_before = _children_cpu()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        cpu_after = cpu_seconds(server.process.pid)
        client_cpu = _children_cpu() - children_before
        summary: list[int] | None = None
        latency: Counter[int] = Counter()
        for line in out.decode().splitlines():
            if line.startswith("INGRESS-BENCH summary "):
                summary = [int(x) for x in line.split()[2:]]
            elif line.startswith("INGRESS-BENCH latency "):
                for pair in line.split()[2:]:
                    value, _, count = pair.partition(":")
                    latency[int(value)] += int(count)
        if process.returncode != 0 or summary is None:
            raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}{out.decode()}")
        requests, duration_us, connect, read, write, status, timeout = summary
        return Slice(
            requests=requests,
            ok=requests - status,
            errors=connect + read + write + status + timeout,
            seconds=duration_us / 1e6,
            latency_us=latency,
            server_cpu=_delta(cpu_before, cpu_after),
            client_cpu=client_cpu,
        )


class Httpx(LoadGenerator):
    """httpx in this process: concurrent tasks, each with its own keep-alive connection.

    One AsyncClient per task: httpcore's pool scans every connection on each request,
    which at 32 connections in one pool costs more CPU than the servers spend.
    """

    name = "httpx"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.clients: dict[int, list[httpx.AsyncClient]] = {}
        if importlib.util.find_spec("sniffio") is None:
            # httpcore tries ``import sniffio`` on every lock it takes; without sniffio
            # each try searches sys.path. A None entry makes the import fail at once.
            sys.modules["sniffio"] = None  # type: ignore[assignment]

    def clients_for(self, server: Server) -> list[httpx.AsyncClient]:
        if server.port not in self.clients:
            self.clients[server.port] = [
                httpx.AsyncClient(
                    base_url=server.url,
                    headers={
                        "Authorization": f"Bearer {TOKEN}",
                        "Content-Type": "application/json",
                    },
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                    timeout=10,
                )
                for _ in range(self.concurrency)
            ]
        return self.clients[server.port]

    async def run(self, server: Server, seconds: float) -> Slice:
        clock = time.perf_counter_ns
        deadline = clock() + int(seconds * 1e9)
        latency: Counter[int] = Counter()
        counts = {"requests": 0, "ok": 0, "errors": 0}

        async def worker(client: httpx.AsyncClient) -> None:
            while clock() < deadline:
                t0 = clock()
                try:
                    answer = await client.post(PATH, content=BODY)
                except httpx.TransportError:
                    counts["errors"] += 1
                    continue
                latency[(clock() - t0) // 1000] += 1
                counts["requests"] += 1
                if 200 <= answer.status_code < 300:
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1

        cpu_before = cpu_seconds(server.process.pid)
        client_before = time.process_time()
        start = clock()
        await asyncio.gather(*(worker(c) for c in self.clients_for(server)))
        elapsed = (clock() - start) / 1e9
        cpu_after = cpu_seconds(server.process.pid)
        return Slice(
            requests=counts["requests"],
            ok=counts["ok"],
            errors=counts["errors"],
            seconds=elapsed,
            latency_us=latency,
            server_cpu=_delta(cpu_before, cpu_after),
            client_cpu=time.process_time() - client_before,
        )

    async def close(self) -> None:
        for clients in self.clients.values():
            for client in clients:
                await client.aclose()
        self.clients.clear()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def choose_loadgen(choice: str, directory: str, concurrency: int) -> LoadGenerator:
    binary = shutil.which("wrk")
    if choice == "wrk" and binary is None:
        raise SystemExit("wrk is not installed (use --loadgen httpx)")
    if choice != "httpx" and binary is not None:
        return Wrk(binary, directory, concurrency)
    return Httpx(concurrency)


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float | None = 0.0
    client_cpu: float = 0.0
    latency_us: Counter[int] = field(default_factory=Counter)

    def add(self, part: Slice) -> None:
        self.requests += part.requests
        self.ok += part.ok
        self.errors += part.errors
        self.seconds += part.seconds
        self.latency_us.update(part.latency_us)
        self.client_cpu += part.client_cpu
        if self.server_cpu is not None and part.server_cpu is not None:
            self.server_cpu += part.server_cpu
        else:
            self.server_cpu = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.server_cpu is None or not self.ok:
            return None
        return self.server_cpu / self.ok * 1e6

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU use, in cores."""
        return self.client_cpu / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_share(self) -> float | None:
        return (
            None if self.server_cpu is None or not self.seconds else self.server_cpu / self.seconds
        )

    def percentile_ms(self, pct: float) -> float | None:
        total = sum(self.latency_us.values())
        if not total:
            return None
        rank = max(1, math.ceil(pct / 100 * total))
        seen = 0
        for value in sorted(self.latency_us):
            seen += self.latency_us[value]
            if seen >= rank:
                return value / 1000
        return max(self.latency_us) / 1000


@dataclass
class Result:
    backend: Backend
    sk_req_per_s: float
    bare_req_per_s: float
    ratio: float
    target: float
    met: bool
    sk_p50_ms: float | None
    sk_p99_ms: float | None
    bare_p50_ms: float | None
    bare_p99_ms: float | None
    sk_requests: int
    bare_requests: int
    sk_errors: int
    bare_errors: int
    sk_cpu_us_per_request: float | None
    bare_cpu_us_per_request: float | None
    sk_server_cores: float | None
    bare_server_cores: float | None
    sk_client_cores: float
    bare_client_cores: float
    sk_rows: int = 0
    bare_rows: int = 0


async def measure(
    backend: Backend, servers: dict[Side, Server], loadgen: LoadGenerator, plan: Plan
) -> Result:
    for side in SIDES:
        await loadgen.run(servers[side], plan.warmup)
    tallies = {side: Tally() for side in SIDES}
    for side in benchlib.turns(SIDES, plan.slices):
        tallies[side].add(await loadgen.run(servers[side], plan.slice_seconds))
    sk, bare = tallies["sk"], tallies["bare"]
    ratio = sk.rate / bare.rate if bare.rate else float("inf")
    return Result(
        backend=backend,
        sk_req_per_s=sk.rate,
        bare_req_per_s=bare.rate,
        ratio=ratio,
        target=TARGET,
        met=ratio >= TARGET,
        sk_p50_ms=sk.percentile_ms(50),
        sk_p99_ms=sk.percentile_ms(99),
        bare_p50_ms=bare.percentile_ms(50),
        bare_p99_ms=bare.percentile_ms(99),
        sk_requests=sk.ok,
        bare_requests=bare.ok,
        sk_errors=sk.errors,
        bare_errors=bare.errors,
        sk_cpu_us_per_request=sk.cpu_us_per_request,
        bare_cpu_us_per_request=bare.cpu_us_per_request,
        sk_server_cores=sk.server_cpu_share,
        bare_server_cores=bare.server_cpu_share,
        sk_client_cores=sk.client_cpu_share,
        bare_client_cores=bare.client_cpu_share,
    )


# --- the backends ---------------------------------------------------------------------------


def sqlite_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM sk_messages").fetchone()[0])


async def postgres_rows(base_url: str, schema: str) -> int:
    conn = await asyncpg.connect(base_url)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".sk_messages'))
    finally:
        await conn.close()


async def bench_sqlite(
    plan: Plan, directory: str, loadgen: LoadGenerator
) -> tuple[list[Result], dict[str, Any]]:
    sk_path = Path(directory) / "statekeeper.db"
    bare_path = Path(directory) / "bare.db"
    await benchlib.create_tables(f"sqlite:///{bare_path}")
    async with AsyncExitStack() as stack:
        sk_url = f"sqlite:///{sk_path}"
        sk = start_server(stack, "sk", sk_command(directory), directory, sk_url)
        bare_args = ["--sqlite-path", str(bare_path)]
        bare = start_server(stack, "bare", bare_command(bare_args), directory, "")
        await wait_ready(sk, bare)
        result = await measure("sqlite", {"sk": sk, "bare": bare}, loadgen, plan)
    result.sk_rows = sqlite_rows(sk_path)
    result.bare_rows = sqlite_rows(bare_path)
    print_row(result)
    return [result], benchlib.sqlite_info(directory)


async def bench_postgres(
    plan: Plan, directory: str, loadgen: LoadGenerator, base_url: str
) -> tuple[list[Result], dict[str, Any]]:
    async with benchlib.scratch_schemas(base_url, "sk_ibench", "_bare") as (sk_schema, bare_schema):
        await benchlib.create_tables(benchlib.with_schema(base_url, bare_schema))
        bare_args = ["--pg-url", base_url, "--schema", bare_schema]
        async with AsyncExitStack() as stack:
            sk_url = benchlib.with_schema(base_url, sk_schema)
            sk = start_server(stack, "sk", sk_command(directory), directory, sk_url)
            bare = start_server(stack, "bare", bare_command(bare_args), directory, "")
            await wait_ready(sk, bare)
            result = await measure("postgres", {"sk": sk, "bare": bare}, loadgen, plan)
        result.sk_rows = await postgres_rows(base_url, sk_schema)
        result.bare_rows = await postgres_rows(base_url, bare_schema)
        conn = await asyncpg.connect(base_url)
        try:
            info = {**await benchlib.postgres_info(conn), "schemas": [sk_schema, bare_schema]}
        finally:
            await conn.close()
        print_row(result)
        return [result], info


# --- output -------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<10} {'sk req/s':>9} {'bare req/s':>10} {'ratio':>6} {'target':>6} "
    f"{'met?':<4}  {'sk p50/p99 ms':>13}  {'bare p50/p99 ms':>15}"
)


def print_row(result: Result) -> None:
    print(
        f"{NAMES[result.backend]:<10} {result.sk_req_per_s:>9.0f} {result.bare_req_per_s:>10.0f} "
        f"{result.ratio:>5.2f}x {result.target:>5.1f}x {'yes' if result.met else 'NO':<4}  "
        f"{benchlib.latency_pair(result.sk_p50_ms, result.sk_p99_ms):>13}  "
        f"{benchlib.latency_pair(result.bare_p50_ms, result.bare_p99_ms):>15}",
        flush=True,
    )


def notes(result: Result) -> list[str]:
    name = NAMES[result.backend]
    lines = []
    if result.sk_cpu_us_per_request is not None and result.bare_cpu_us_per_request is not None:
        lines.append(
            f"note: {name} server CPU per request: sk {result.sk_cpu_us_per_request:.0f} us, "
            f"bare {result.bare_cpu_us_per_request:.0f} us; cores busy (server/load generator): "
            f"sk {result.sk_server_cores or 0:.2f}/{result.sk_client_cores:.2f}, "
            f"bare {result.bare_server_cores or 0:.2f}/{result.bare_client_cores:.2f}"
        )
    if max(result.sk_client_cores, result.bare_client_cores) > CLIENT_SATURATED:
        lines.append(
            f"WARNING: {name}: the load generator kept a core busy; the figures may be its "
            "limit rather than the servers' (install wrk)"
        )
    if result.sk_errors or result.bare_errors:
        lines.append(
            f"WARNING: {name} errors or non-2xx answers: sk {result.sk_errors}, "
            f"bare {result.bare_errors}"
        )
    # Rows cover every 2xx answer counted (and those the load generator cut off at the end).
    if result.sk_rows < result.sk_requests or result.bare_rows < result.bare_requests:
        lines.append(
            f"WARNING: {name} rows fewer than 2xx answers: sk {result.sk_rows} < "
            f"{result.sk_requests} or bare {result.bare_rows} < {result.bare_requests}"
        )
    return lines


def headline(results: list[Result]) -> str:
    if not results:
        return "headline: nothing measured"
    worst = min(r.ratio for r in results)
    return f"headline: ingress vs bare Starlette (min over backends) = {worst:.2f}x"


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.bench_parser(__doc__)
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator (default: wrk when installed, else httpx)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help=f"default {CONCURRENCY}"
    )
    # Internal: run the bare endpoint (started by the benchmark itself).
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sqlite-path", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    # Few, whole-second slices (wrk counts in seconds), alternated against drift.
    plan = benchlib.choose_plan(
        args,
        quick=Plan(warmup=1.0, slices=3, slice_seconds=1.0),
        full=Plan(warmup=2.0, slices=6, slice_seconds=3.0),
        whole_seconds=True,
    )
    with tempfile.TemporaryDirectory(prefix="sk-ingress-bench-") as directory:
        loadgen = choose_loadgen(args.loadgen, directory, args.concurrency)
        what = (
            f"statekeeper ingress vs bare Starlette: {loadgen.name}, "
            f"{args.concurrency} connections, "
        )
        benchlib.announce(what, plan, HEADER)
        try:
            got = await benchlib.each_backend(
                args,
                lambda: bench_sqlite(plan, directory, loadgen),
                lambda: bench_postgres(plan, directory, loadgen, args.pg_url),
            )
        finally:
            await loadgen.close()
    if got is None:
        return 2
    results = got.results
    for result in results:
        for line in notes(result):
            print(line)
    missed = [r for r in results if not r.met]
    print(
        f"{len(results) - len(missed)}/{len(results)} backends met the target; {got.seconds:.1f} s"
    )
    settings = {"loadgen": loadgen.name, "concurrency": args.concurrency, "bare_auth_check": True}
    return benchlib.finish(args, plan, headline(results), got, "results", settings)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return asyncio.run(serve_bare(args))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
