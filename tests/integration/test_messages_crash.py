"""Crash safety of messages and updates (PostgreSQL): three workers run one workflow,
one SIGKILLed every ~0.5 s, while 60 messages and 30 updates are sent to it in waves
of concurrent senders.
Every message is received once, in the order the sends committed; every update is
applied once (its handler's journaled effect appears once, and the results the callers
got are 1..30, each once)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, stop_workers

pytestmark = pytest.mark.crash


async def ledger(ctx: object, sizes: dict[str, int]) -> dict[str, list[Any]]:
    raise AssertionError("the worker processes run it (messages_crash_app.py)")


WORKER = ["worker", "--app", "messages_crash_app:app"]


async def test_messages_and_updates_survive_killed_workers(
    schema: str, processes: list[Process]
) -> None:
    messages, updates = 60, 30
    async with App(f"{pg_dsn()}?schema={schema}", namespace="crash", purge_interval=None) as app:
        app.workflows.register(ledger, "ledger")  # known here; the workers run it
        await app.workflows.start("ledger", {"messages": messages, "updates": updates}, id="l1")

        async def finished() -> bool:
            return (await app.workflows.status("l1")).done

        async def send_all() -> tuple[list[int], list[int]]:
            # Sent in waves 0.5 s apart (concurrent within a wave), so the run lasts
            # through many kills however fast the machine is.
            numbers: list[int] = []
            results: list[int] = []
            for wave in range(6):
                await asyncio.sleep(0.5)
                numbers += await asyncio.gather(
                    *(
                        app.workflows.send_message("l1", "t", n)
                        for n in range(wave * 10, wave * 10 + 10)
                    )
                )
            for wave in range(6):
                await asyncio.sleep(0.5)
                results += await asyncio.gather(
                    *(
                        app.workflows.update("l1", "add", n, timeout=90)
                        for n in range(wave * 5, wave * 5 + 5)
                    )
                )
            return numbers, results

        sending = asyncio.create_task(send_all())
        workers, kills = await kill_workers_until(
            schema, processes, finished, seed=12, limit=50, worker=WORKER
        )
        numbers, results = await asyncio.wait_for(sending, 60)
        output = await app.workflows.result("l1", timeout=60)
        stop_workers(workers)
    assert kills >= 6  # the waves last 6 s or more, a kill every ~0.5 s
    by_number = {seq: n for n, seq in enumerate(numbers)}
    assert output["got"] == [by_number[seq] for seq in range(1, messages + 1)]
    assert sorted(output["items"]) == list(range(updates))  # each applied once
    assert sorted(results) == list(range(1, updates + 1))
