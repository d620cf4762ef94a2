"""Entity calls from workflows and signals under SIGKILL (PostgreSQL): three workers, one
SIGKILLed every ~0.5 s and started again, run 12 workflows that each make 15
``ctx.call`` increments (writing each answer to a durable stream) and 180 signals of
``increment``, sent in six waves 0.5 s apart. At the end every workflow succeeded, its
stream holds its answers once each in order, the entity the workflows call holds
exactly 180 (each call applied once, whatever the workflow's run that made it), every
workflow's results are distinct values of 1..180 in increasing order, and the entity
the signals call holds exactly 180 with every signal's request succeeded."""

from __future__ import annotations

import asyncio

import pytest

from statekeeper import App
from statekeeper.queues.requests import request_status
from statekeeper.workflows import WorkflowContext
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, stop_workers

pytestmark = pytest.mark.crash

WORKER = ["worker", "--app", "entity_calls_crash_app:app"]
WORKFLOWS, CALLS, SIGNALS, WAVES = 12, 15, 180, 6


async def bump(ctx: WorkflowContext, calls: int) -> list[int]:
    raise AssertionError("the worker processes run it (entity_calls_crash_app.py)")


async def test_calls_from_workflows_and_signals_apply_once_across_kills(
    schema: str, processes: list[Process]
) -> None:
    url = f"{pg_dsn()}?schema={schema}"
    async with App(url, namespace="crash", purge_interval=None) as app:
        tally = app.entity("tally", initial=0)

        @tally.handler
        def increment(ctx: object, by: int) -> None:
            raise AssertionError("the worker processes run it")

        app.workflows.register(bump, "bump")
        runs: list[str] = []
        signals: list[str] = []

        async def send_all() -> None:
            # In waves 0.5 s apart, so the run lasts through several kills however fast
            # the machine is.
            for wave in range(WAVES):
                await asyncio.sleep(0.5)
                for n in range(WORKFLOWS // WAVES):
                    run = f"b{wave}-{n}"
                    runs.append(await app.workflows.start("bump", CALLS, id=run))
                for _ in range(SIGNALS // WAVES):
                    signals.append(await app.entities.signal("tally", "signals", "increment", 1))

        sending = asyncio.create_task(send_all())

        async def finished() -> bool:
            if not sending.done():
                return False
            statuses = [await app.workflows.status(run) for run in runs]
            if not all(s.done for s in statuses):
                return False
            got = await app.entities.get("tally", "signals")
            return got is not None and got.version == SIGNALS

        workers, kills = await kill_workers_until(
            schema, processes, finished, seed=21, limit=120, worker=WORKER
        )
        await sending
        results = [await app.workflows.result(run, timeout=120) for run in runs]
        streamed = [[v async for v in app.workflows.read_stream(run, "got")] for run in runs]
        calls = await app.entities.get("tally", "calls")
        signalled = await app.entities.get("tally", "signals")
        documents = [
            await request_status(app.backend, app.namespace, id, app.sealer) for id in signals
        ]
        stop_workers(workers)
    assert kills >= 4, "too few kills to prove anything"
    assert calls is not None and (calls.state, calls.version) == (WORKFLOWS * CALLS,) * 2
    values = [v for result in results for v in result]
    assert sorted(values) == list(range(1, WORKFLOWS * CALLS + 1))  # each call once
    assert all(result == sorted(result) for result in results)
    assert streamed == results  # each workflow's stream: its answers, each once, in order
    assert signalled is not None and (signalled.state, signalled.version) == (SIGNALS, SIGNALS)
    assert all(d is not None and d["status"] == "succeeded" for d in documents)
