"""The sidecar's state API over HTTP and gRPC against statekeeper's in-process API, in
the same run.

    python bench/sidecar_bench.py --quick               # under a minute
    python bench/sidecar_bench.py                       # longer, stabler figures
    python bench/sidecar_bench.py --backend postgres --json results.json

A ``statekeeper sidecar`` process serves a database of its own; this process drives it
from 32 concurrent asyncio tasks over HTTP (one aiohttp session, kept-alive
connections) and over gRPC (one ``grpc.aio`` channel and Dapr's stub: the requests are
built once, so the figures are the server's, not a client library's). The in-process
side is ``App.state`` on another database, from 32 tasks in this process. Operations:

* ``get``   an existing key out of 1000 (a ~200-byte JSON document)
* ``save``  a random key out of 1000, unconditional (``App.state.put`` in process)

A fourth side, ``bare grpc``, is a grpc.aio server in a process of its own answering
every call with a constant: no state, no statekeeper. It is the ceiling any Python
gRPC server reaches on this machine, against which the sidecar's gRPC figures are read.

The three sides run in turn, every order in turn, so drift hits them alike. Ratios are
sidecar / in-process; targets: gRPC >= 0.5x, HTTP >= 0.35x. The client shares the
machine with the sidecar: the table shows the CPU time each process spent per
operation, so a client that is the bottleneck shows as such. The last line printed is
the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2
from google.protobuf import empty_pb2

# A sibling module: ``python bench/sidecar_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Plan, Tally
from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL

OpName = Literal["get", "save"]
Side = Literal["in-process", "grpc", "http", "bare grpc"]
OpFn = Callable[[int], Awaitable[None]]

N_KEYS = 1000
KEYS: list[str] = [f"user:{i:05d}" for i in range(N_KEYS)]
CONCURRENCY = 32
OPS: tuple[OpName, ...] = ("get", "save")
SIDES: tuple[Side, ...] = ("in-process", "grpc", "http", "bare grpc")
TARGETS: dict[Side, float] = {"grpc": 0.5, "http": 0.35}
STORE = "statestore"
APP_ID = "bench"
NAMESPACE = "sidecar_bench"

# A ~200-byte JSON document, the value every save writes and every key starts with.
VALUE: dict[str, Any] = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "plan": "pro",
    "tags": ["alpha", "beta", "gamma"],
    "prefs": {"theme": "dark", "lang": "en", "tz": "Europe/London"},
    "n": 0,
    "note": "the analytical engine weaves algebraic patterns",
}
VALUE_BYTES = json.dumps(VALUE, separators=(",", ":")).encode()


# --- the sidecar process ----------------------------------------------------------------


@dataclass
class SidecarProcess:
    process: asyncio.subprocess.Process
    http_port: int
    grpc_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def sidecar_process(url: str, directory: str) -> AsyncIterator[SidecarProcess]:
    """``statekeeper sidecar`` on ``url`` and free loopback ports, until SIGTERM."""
    http_port, grpc_port = free_port(), free_port()
    log = Path(directory) / "sidecar.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "STATEKEEPER_"))}
    env["PYTHONPATH"] = str(benchlib.REPO / "src")
    command = [
        sys.executable, "-m", "statekeeper", "--database", url, "sidecar", "--app-id", APP_ID,
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--grace", "3",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    sidecar = SidecarProcess(process, http_port, grpc_port, log)
    try:
        await wait_healthy(sidecar)
        yield sidecar
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_healthy(sidecar: SidecarProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if sidecar.process.returncode is not None:
                raise RuntimeError(f"the sidecar exited: {sidecar.log.read_text()}")
            try:
                async with session.get(f"{sidecar.url}/v1.0/healthz") as answer:
                    if answer.status == 204:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the sidecar never became healthy: {sidecar.log.read_text()}")


class BareDapr(dapr_pb2_grpc.DaprServicer):
    """The floor of any gRPC server in Python: grpc.aio answering constants, no state."""

    async def GetState(self, request: Any, context: Any) -> Any:
        return state_pb2.GetStateResponse(data=VALUE_BYTES, etag="bare")

    async def SaveState(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()


async def serve_bare(port: int) -> None:
    """The bare server (run in a process of its own with ``--serve-bare-grpc PORT``)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    dapr_pb2_grpc.add_DaprServicer_to_server(BareDapr(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


@asynccontextmanager
async def bare_process() -> AsyncIterator[tuple[int, int]]:
    """The bare gRPC server in a process of its own: its port and pid."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-bare-grpc", str(port)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
        yield port, process.pid
    finally:
        process.terminate()
        await process.wait()


# --- the sides ------------------------------------------------------------------------------


def in_process_ops(app: App) -> dict[OpName, OpFn]:
    store = app.state

    async def get(i: int) -> None:
        if await store.get(KEYS[i]) is None:
            raise RuntimeError(f"in-process: lost key {KEYS[i]!r}")

    async def save(i: int) -> None:
        await store.put(KEYS[i], VALUE)

    return {"get": get, "save": save}


def grpc_ops(stub: dapr_pb2_grpc.DaprStub) -> dict[OpName, OpFn]:
    gets = [state_pb2.GetStateRequest(store_name=STORE, key=k) for k in KEYS]
    saves = [
        state_pb2.SaveStateRequest(
            store_name=STORE, states=[common_pb2.StateItem(key=k, value=VALUE_BYTES)]
        )
        for k in KEYS
    ]
    get_state, save_state = stub.GetState, stub.SaveState

    async def get(i: int) -> None:
        if not (await get_state(gets[i])).etag:
            raise RuntimeError(f"gRPC: lost key {KEYS[i]!r}")

    async def save(i: int) -> None:
        await save_state(saves[i])

    return {"get": get, "save": save}


def http_ops(session: aiohttp.ClientSession, base: str) -> dict[OpName, OpFn]:
    urls = [f"{base}/v1.0/state/{STORE}/{k}" for k in KEYS]
    save_url = f"{base}/v1.0/state/{STORE}"
    bodies = [json.dumps([{"key": k, "value": VALUE}]).encode() for k in KEYS]
    headers = {"Content-Type": "application/json"}

    async def get(i: int) -> None:
        async with session.get(urls[i]) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP: GET {KEYS[i]!r} answered {answer.status}")

    async def save(i: int) -> None:
        async with session.post(save_url, data=bodies[i], headers=headers) as answer:
            await answer.read()
            if answer.status != 204:
                raise RuntimeError(f"HTTP: save answered {answer.status}")

    return {"get": get, "save": save}


# --- measuring ------------------------------------------------------------------------------


async def drive(op: OpFn, seconds: float, seed: int) -> Tally:
    """Run ``op`` from CONCURRENCY tasks for ``seconds``."""
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    counts = [0] * CONCURRENCY

    async def worker(index: int) -> None:
        pick = random.Random(seed * 1000 + index).randrange
        n = 0
        while clock() < deadline:
            await op(pick(N_KEYS))
            n += 1
        counts[index] = n

    start = clock()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return Tally(sum(counts), (clock() - start) / 1e9)


@dataclass
class Row:
    backend: Backend
    op: OpName
    side: Side
    ops_per_s: float
    ratio: float | None  # to the in-process side
    target: float | None
    met: bool | None
    client_cpu_us: float  # this process's CPU time per operation
    server_cpu_us: float | None  # the serving process's (the sidecar's)
    ops: int


def rotations(sides: tuple[Side, ...], slices: int) -> Iterator[Side]:
    """The sides in turn, each order a rotation of the last, so that over ``len(sides)``
    slices every side has had every place once (drift hits them alike)."""
    for i in range(slices):
        shift = i % len(sides)
        yield from sides[shift:] + sides[:shift]


async def measure(
    backend: Backend,
    sides: dict[Side, dict[OpName, OpFn]],
    servers: dict[Side, int],
    plan: Plan,
) -> list[Row]:
    """Each op on each side; ``servers``: the pid of the process serving a side."""
    rows: list[Row] = []
    seed = 0
    for op in OPS:
        for side in SIDES:
            seed += 1
            await drive(sides[side][op], plan.warmup, seed)
        tallies = {side: Tally() for side in SIDES}
        client_cpu = dict.fromkeys(SIDES, 0.0)
        server_cpu = dict.fromkeys(SIDES, 0.0)
        for side in rotations(SIDES, plan.slices):
            seed += 1
            gc.collect()
            pid = servers.get(side)
            own, theirs = time.process_time(), cpu_seconds(pid) if pid else 0.0
            tallies[side].add(await drive(sides[side][op], plan.slice_seconds, seed))
            client_cpu[side] += time.process_time() - own
            server_cpu[side] += (cpu_seconds(pid) - theirs) if pid else 0.0
        base = tallies["in-process"].rate
        for side in SIDES:
            tally = tallies[side]
            ratio = tally.rate / base if base and side != "in-process" else None
            target = TARGETS.get(side)
            row = Row(
                backend=backend,
                op=op,
                side=side,
                ops_per_s=tally.rate,
                ratio=ratio,
                target=target,
                met=None if ratio is None or target is None else ratio >= target,
                client_cpu_us=1e6 * client_cpu[side] / max(1, tally.count),
                server_cpu_us=1e6 * server_cpu[side] / max(1, tally.count)
                if side in servers
                else None,
                ops=tally.count,
            )
            print_row(row)
            rows.append(row)
    return rows


async def populate(app: App, session: aiohttp.ClientSession, sidecar: SidecarProcess) -> None:
    for start in range(0, N_KEYS, 100):
        chunk = KEYS[start : start + 100]
        await app.state.put_many([(k, VALUE) for k in chunk])
        body = json.dumps([{"key": k, "value": VALUE} for k in chunk])
        async with session.post(f"{sidecar.url}/v1.0/state/{STORE}", data=body) as answer:
            if answer.status != 204:
                raise RuntimeError(f"populating the sidecar: {answer.status} {await answer.text()}")


async def bench(
    plan: Plan, backend: Backend, sidecar_url: str, app_url: str, directory: str
) -> list[Row]:
    async with (
        sidecar_process(sidecar_url, directory) as sidecar,
        bare_process() as (bare_port, bare_pid),
        benchlib.statekeeper_app(app_url, NAMESPACE) as app,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY, keepalive_timeout=60)
        ) as session,
        grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{bare_port}") as bare_channel,
    ):
        await populate(app, session, sidecar)
        sides: dict[Side, dict[OpName, OpFn]] = {
            "in-process": in_process_ops(app),
            "grpc": grpc_ops(dapr_pb2_grpc.DaprStub(channel)),  # type: ignore[no-untyped-call]
            "http": http_ops(session, sidecar.url),
            "bare grpc": grpc_ops(dapr_pb2_grpc.DaprStub(bare_channel)),  # type: ignore[no-untyped-call]
        }
        pid = sidecar.process.pid
        servers: dict[Side, int] = {"grpc": pid, "http": pid, "bare grpc": bare_pid}
        return await measure(backend, sides, servers, plan)


async def bench_sqlite(plan: Plan) -> tuple[list[Row], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="sk-sidecar-bench-") as directory:
        rows = await bench(
            plan, "sqlite", f"sqlite:///{directory}/sidecar.db",
            f"sqlite:///{directory}/in-process.db", directory,
        )  # fmt: skip
        return rows, benchlib.sqlite_info(directory)


async def bench_postgres(plan: Plan, base_url: str) -> tuple[list[Row], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="sk-sidecar-bench-") as directory:
        async with benchlib.scratch_schemas(base_url, "sk_sidecar_bench", "_app") as schemas:
            rows = await bench(
                plan, "postgres", benchlib.with_schema(base_url, schemas[0]),
                benchlib.with_schema(base_url, schemas[1]), directory,
            )  # fmt: skip
            return rows, {"schemas": list(schemas)}


# --- output -------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<10} {'op':<5} {'side':<10} {'ops/s':>8} {'ratio':>7} {'target':>7} "
    f"{'met?':<4} {'client CPU us/op':>16} {'server CPU us/op':>16}"
)


def print_row(row: Row) -> None:
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
    target = "" if row.target is None else f"{row.target:.2f}x"
    met = "" if row.met is None else ("yes" if row.met else "NO")
    theirs = "" if row.server_cpu_us is None else f"{row.server_cpu_us:.0f}"
    print(
        f"{NAMES[row.backend]:<10} {row.op:<5} {row.side:<10} {row.ops_per_s:>8.0f} "
        f"{ratio:>7} {target:>7} {met:<4} {row.client_cpu_us:>16.0f} {theirs:>16}",
        flush=True,
    )


def headline(rows: list[Row]) -> str:
    found = {(r.backend, r.op, r.side): r.ratio for r in rows if r.ratio is not None}
    for backend in ("sqlite", "postgres"):
        parts = [
            f"{op} {side} {found[(backend, op, side)]:.2f}x"
            for side in ("grpc", "http")
            for op in OPS
            if (backend, op, side) in found
        ]
        if parts:
            return f"headline: {NAMES[backend]} sidecar vs in-process, c=32: " + ", ".join(parts)
    return "headline: nothing measured"


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    # A Redis cache configured in the environment would turn gets into cache hits.
    os.environ.pop(ENV_CACHE_URL, None)
    plan = benchlib.choose_plan(
        args,
        quick=Plan(warmup=0.4, slices=8, slice_seconds=0.4),
        full=Plan(warmup=1.0, slices=16, slice_seconds=1.0),
    )
    benchlib.announce(
        f"statekeeper sidecar (HTTP, gRPC) vs in-process state API, {CONCURRENCY} tasks: ",
        plan, HEADER,
    )  # fmt: skip
    got = await benchlib.each_backend(
        args, lambda: bench_sqlite(plan), lambda: bench_postgres(plan, args.pg_url)
    )
    if got is None:
        return 2
    for row in got.results:
        if row.side == "bare grpc":
            print(
                f"note: {NAMES[row.backend]} {row.op}: a bare grpc.aio server answering "
                f"constants (no state at all) did {row.ops_per_s:.0f} ops/s, "
                f"{row.ratio or 0:.2f}x in-process: the ceiling of a Python gRPC server here"
            )
    missed = [r for r in got.results if r.met is False]
    judged = [r for r in got.results if r.met is not None]
    print(
        f"{len(judged) - len(missed)}/{len(judged)} rows met their target; {got.seconds:.1f} s "
        "(client and sidecar share this machine's CPUs)"
    )
    return benchlib.finish(args, plan, headline(got.results), got, "rows")


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.bench_parser(__doc__, seconds_help="measured seconds per side and op")
    parser.set_defaults(backend="sqlite")
    parser.add_argument("--serve-bare-grpc", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare_grpc:
        asyncio.run(serve_bare(args.serve_bare_grpc))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
