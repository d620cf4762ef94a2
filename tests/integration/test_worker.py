"""The worker: consumers run with bounded concurrency, retries, heartbeats, graceful stop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from statekeeper import App, Message, Retry
from tests.support import run_until

FAST = Retry(max_attempts=3, initial_interval=0.01, backoff_rate=1.0, jitter=False)


async def test_async_and_sync_consumers_process_and_keep_results(live_app: App) -> None:
    app = live_app
    seen_threads: set[str] = set()

    @app.consumer("async-q")
    async def double(message: Message) -> int:
        return int(message.body) * 2

    @app.consumer("sync-q")
    def shout(message: Message) -> str:
        seen_threads.add(threading.current_thread().name)
        return str(message.body).upper()

    ids = [(await app.queue("async-q").send(n)).id for n in range(20)]
    sync_id = (await app.queue("sync-q").send("hi")).id
    worker = app.worker(poll=0.1)
    await run_until(worker, lambda: worker.processed == 21)
    found = await app.backend.queues.find(app.namespace, ids[7])
    assert found is not None and found.state == "done" and found.result == b"14"
    sync_found = await app.backend.queues.find(app.namespace, sync_id)
    assert sync_found is not None and sync_found.result == b'"HI"'
    assert threading.main_thread().name not in seen_threads


async def test_failures_retry_then_dead_letter(live_app: App) -> None:
    app = live_app
    app.queue("flaky", retry=FAST)
    attempts: list[int] = []

    @app.consumer("flaky")
    async def always_fails(message: Message) -> None:
        attempts.append(message.attempt)
        raise RuntimeError(f"attempt {message.attempt} failed")

    await app.queue("flaky").send("x")
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: len(attempts) == 3)
    await asyncio.sleep(0.1)
    [dead] = await app.queue("flaky").peek(dead=True)
    assert attempts == [1, 2, 3]
    assert str(dead.last_error) == "RuntimeError: attempt 3 failed"
    assert dead.last_error is not None and dead.last_error.traceback is not None


async def test_non_retryable_errors_dead_letter_at_once(live_app: App) -> None:
    app = live_app
    calls: list[int] = []

    @app.consumer("strict", non_retryable=(ValueError,))
    async def reject(message: Message) -> None:
        calls.append(1)
        raise ValueError("malformed order")

    await app.queue("strict").send({"bad": True})
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: worker.failed == 1)
    await asyncio.sleep(0.05)
    assert calls == [1]
    assert (await app.queue("strict").stats()).dead == 1


async def test_concurrency_is_bounded(live_app: App) -> None:
    app = live_app
    running = 0
    peak = 0

    @app.consumer("bounded", concurrency=3)
    async def slow(message: Message) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await app.queue("bounded").send_batch(list(range(15)))
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: worker.processed == 15)
    assert peak == 3


async def test_heartbeat_keeps_a_long_message_leased(live_app: App) -> None:
    app = live_app
    app.queue("long", visibility_timeout=0.6)
    runs: list[str] = []

    @app.consumer("long", concurrency=2)
    async def long_job(message: Message) -> None:
        runs.append(message.id)
        await asyncio.sleep(1.5)  # two and a half lease lengths

    await app.queue("long").send("job")
    first, second = app.worker(poll=0.05), app.worker(poll=0.05)
    task = asyncio.create_task(second.run())
    await run_until(first, lambda: first.processed + second.processed == 1)
    second.stop()
    await task
    assert len(runs) == 1  # never redelivered while its consumer was alive


async def test_graceful_stop_finishes_or_gives_back(live_app: App) -> None:
    app = live_app
    started = asyncio.Event()

    @app.consumer("stop-q", concurrency=2)
    async def job(message: Message) -> str:
        started.set()
        await asyncio.sleep(0.2 if message.body == "quick" else 30)
        return "done"

    await app.queue("stop-q").send_batch(["quick", "endless"])
    worker = app.worker(poll=0.05, grace=0.6)
    task = asyncio.create_task(worker.run())
    await started.wait()
    await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert worker.processed == 1  # the quick one finished within the grace period
    [back] = await app.queue("stop-q").peek()
    assert back.body == "endless" and back.state == "ready" and back.attempts == 0


async def test_outcome_goes_to_the_reply_queue(live_app: App) -> None:
    app = live_app
    app.queue("work", retry=Retry(max_attempts=1))

    @app.consumer("work")
    async def handle(message: Message) -> dict[str, int]:
        if message.body == "bad":
            raise RuntimeError("no good")
        return {"len": len(message.body)}

    q = app.queue("work")
    ok = await q.send_message(q.new_message("hello", reply_to={"queue": "done"}))
    bad = await q.send_message(q.new_message("bad", reply_to={"queue": "done"}))
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: worker.processed + worker.failed == 2)
    outcomes = {m.body["request_id"]: m.body for m in await app.queue("done").receive(10)}
    assert outcomes[ok.id]["status"] == "succeeded"
    assert outcomes[ok.id]["result"] == {"len": 5}
    assert outcomes[bad.id]["status"] == "dead-lettered"
    assert outcomes[bad.id]["error"] == {"type": "RuntimeError", "message": "no good"}


async def test_the_worker_runs_workflows_with_real_timers(live_app: App) -> None:
    app = live_app

    @app.function
    async def reserve(item: str) -> str:
        return f"reserved {item}"

    @app.workflow
    async def booking(ctx: Any, item: str) -> list[str]:
        first = await ctx.step(reserve, item)
        await ctx.sleep(0.3)
        event = await ctx.wait_for_event("confirmed", timeout=10)
        return [first, event]

    run = await app.workflows.start("booking", "seat 7")
    worker = app.worker(poll=0.05)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if (await app.workflows.status(run)).status == "waiting":
                break
            await asyncio.sleep(0.02)
        await app.workflows.send_event(run, "confirmed", "by mail")
        assert await app.workflows.result(run, timeout=10) == ["reserved seat 7", "by mail"]
    finally:
        worker.stop()
        await task
    history = await app.backend.workflows.history(app.namespace, run)
    assert [h.name for h in history] == ["reserve", "sleep", "confirmed", "confirmed"]
