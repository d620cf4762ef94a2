"""One trace across processes: a request to ``serve`` enqueues a message; a worker's
consumer starts a workflow; the workflow's worker is SIGKILLed in its second step and
the other worker resumes it; a callback answered through ``serve`` ends it. Every
process exports its spans (the SDK, a file per process); together they are one trace
whose spans have the right parents (marker ``crash``: it kills a process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.certs import free_port

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
TOKEN = "trace-test-token-0123456789abcdef"
pytestmark = pytest.mark.crash


async def start(db: str, spans: Path, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
           "TRACE_DB_URL": db, "TRACE_DIR": str(spans), "STATEKEEPER_API_TOKEN": TOKEN,
           "STATEKEEPER_CALLBACK_SECRET": "trace-test-callback-secret-0123456789"}  # fmt: skip
    log = log_file(spans, args[0])
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statekeeper", "--log-format", "json", *args, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=log,
    )  # fmt: skip


def log_file(spans: Path, kind: str) -> Any:
    """A new file for a process's log (left for a failure's reading)."""
    return (spans / f"{kind}-{len(list(spans.glob('*.log')))}.log").open("wb")


def read_spans(spans: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in spans.glob("spans-*.jsonl")
            for line in f.read_text().splitlines()]  # fmt: skip


async def until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def spans_dir(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path


async def test_one_trace_from_request_to_callback_across_a_kill(
    database_url: str, spans_dir: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = await start(database_url, spans_dir, "serve", "--app", "trace_app:app",
                        "--port", str(port), "--no-workers")  # fmt: skip
    workers = [await start(database_url, spans_dir, "worker", "--app", "trace_app:app")
               for _ in range(2)]  # fmt: skip
    processes = [serve, *workers]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(up, "serve")
            sent = await client.post("/v1/queues/orders/messages", json={"n": 1})
            assert sent.status_code == 202, sent.text
            # The worker that runs the workflow's second step is killed in it.
            packing = await until(lambda: list(spans_dir.glob("packing-*")), "the packing step")
            victim = int(packing[0].name.split("-")[1])
            assert victim in {w.pid for w in workers}
            os.kill(victim, signal.SIGKILL)
            (spans_dir / "go").touch()
            token = await until(
                lambda: (spans_dir / "token").exists() and (spans_dir / "token").read_text(),
                "the callback's token",
            )  # fmt: skip
            answered = await client.post(f"/v1/callbacks/{token}",
                                         json={"status": "success", "data": "shipped"})  # fmt: skip
            assert answered.status_code == 202, answered.text

            async def done() -> Any:
                found = await client.get("/v1/workflows/fulfil/order-1")
                return found.status_code == 200 and found.json()["status"] == "succeeded"

            await until(done, "the workflow's end")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
    spans = read_spans(spans_dir)
    by_id = {s["span"]: s for s in spans}

    def named(prefix: str) -> list[dict[str, Any]]:
        return [s for s in spans if s["name"].startswith(prefix)]

    [request] = named("POST /v1/queues/{queue}/messages")
    trace_id = request["trace"]
    chain = [*named("process orders"), *named("start workflow fulfil"),
             *named("run workflow fulfil"), *named("step "),
             *named("callback success")]  # fmt: skip
    assert {s["trace"] for s in chain} == {trace_id}  # one trace, across every process
    [consumed] = named("process orders")
    assert consumed["parent"] == request["span"] and consumed["pid"] != request["pid"]
    [started] = named("start workflow fulfil")
    assert started["parent"] == consumed["span"]
    runs = named("run workflow fulfil")
    assert runs and all(r["parent"] == started["span"] for r in runs)
    survivor = {w.pid for w in workers} - {victim}
    assert {r["pid"] for r in runs} <= {w.pid for w in workers}
    steps = named("step ")
    assert {s["name"] for s in steps} >= {"step reserve", "step pack", "step tell"}
    assert all(by_id[s["parent"]]["name"] == "run workflow fulfil" for s in steps
               if by_id.get(s["parent"]))  # fmt: skip
    # The killed run's pack step never ended; the survivor's did, in the same trace.
    packed = [s for s in steps if s["name"] == "step pack"]
    assert [s["pid"] for s in packed] == list(survivor)
    [callback] = named("callback success")
    assert callback["parent"] == started["span"] and callback["pid"] == serve.pid
    # An entity call from the workflow, and its sleep, are in the run's trace too.
    calls = named("call stock.take")
    assert calls and all(by_id[c["parent"]]["name"] == "run workflow fulfil" for c in calls
                         if c["parent"] in by_id)  # fmt: skip
    assert any("sleep" in r["events"] for r in runs)
