"""The queue verbs and the worker, as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from statekeeper import App, Retry
from tests.integration.cli_support import environment, statekeeper

ROOT = Path(__file__).parents[2]
APP_MODULE = """
from statekeeper import App, Message, Retry

app = App("{url}", namespace="jobs", purge_interval=None)
app.queue("jobs", retry=Retry(max_attempts=1))


@app.consumer("jobs", concurrency=4)
async def double(message: Message) -> int:
    if message.body == "poison":
        raise ValueError("cannot double poison")
    return message.body * 2
"""


def cli(tmp: Path, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command run in ``tmp``; ``answer`` is its standard input (to a prompt)."""
    return statekeeper(*args, cwd=tmp, stdin=answer)


def spawn_worker(tmp: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "statekeeper", "worker", "--app", "jobsapp:app"],
        env=environment(),
        cwd=tmp,
        stderr=subprocess.PIPE,
    )


async def test_worker_and_queue_verbs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    (tmp_path / "jobsapp.py").write_text(APP_MODULE.format(url=url))
    async with App(url, namespace="jobs", purge_interval=None) as app:
        queue = app.queue("jobs", retry=Retry(max_attempts=1))
        await queue.send_batch([*range(20), "poison"])
        worker = spawn_worker(tmp_path)
        try:
            for _ in range(300):
                stats = await queue.stats()
                if stats.ready + stats.in_flight == 0 and stats.dead == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert worker.stderr is not None
        banner, *logged, summary = worker.stderr.read().decode().splitlines()
        assert banner.startswith("statekeeper worker running; consumers: jobs;")
        assert summary.startswith("statekeeper worker stopped; messages processed: 20; failed: 1")
        # Every other line is a JSON log line (no stray traceback); the dead letter's
        # carries the handler's traceback.
        [dead_letter] = [json.loads(line) for line in logged]
        assert dead_letter["message"] == "message dead-lettered"
        assert "ValueError: cannot double poison" in dead_letter["exception"]

    env_db = ["--database", url, "--namespace", "jobs"]
    stats = json.loads(cli(tmp_path, *env_db, "queue", "stats", "jobs", "--json").stdout)
    assert stats["ready"] == 0 and stats["dead"] == 1
    dead = cli(tmp_path, *env_db, "queue", "peek", "jobs", "--dead", "--json").stdout
    [entry] = json.loads(dead)["items"]
    assert entry["body"] == "poison" and "cannot double poison" in entry["last_error"]["message"]
    table = cli(tmp_path, *env_db, "queue", "peek", "jobs", "--dead")
    assert table.returncode == 0 and "poison" in table.stdout
    redriven = json.loads(cli(tmp_path, *env_db, "queue", "redrive", "jobs").stdout)
    assert redriven == {"queue": "jobs", "redriven": 1}
    purged = json.loads(cli(tmp_path, *env_db, "queue", "purge", "jobs", "--yes").stdout)
    assert purged == {"queue": "jobs", "purged": 1}
    replayed = cli(tmp_path, *env_db, "queue", "replay", "jobs", "--limit", "5")
    assert json.loads(replayed.stdout) == {"queue": "jobs", "replayed": 5}
    bad = cli(tmp_path, *env_db, "queue", "replay", "jobs", "--attribute", "novalue")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_worker_without_an_app_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "worker")
    assert result.returncode == 3 and "name the app to run" in result.stderr
    result = cli(tmp_path, "worker", "--app", "no_such_module:app")
    assert result.returncode == 3 and "cannot import 'no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli(tmp_path, "serve", "--app", "json:dumps")
    assert result.returncode == 3 and "is not a statekeeper App" in result.stderr


async def test_workflow_verbs(tmp_path: Path) -> None:
    from statekeeper.workflows import WorkflowContext

    url = f"sqlite:///{tmp_path}/wf.db"
    async with App(url, namespace="flows", purge_interval=None) as app:

        async def broken() -> None:
            raise RuntimeError("down")

        @app.workflow
        async def sleeper(ctx: WorkflowContext, _: object) -> None:
            await ctx.sleep(3600)

        @app.workflow
        async def failing(ctx: WorkflowContext, _: object) -> None:
            await ctx.step(broken, retry=Retry(max_attempts=1))

        from statekeeper.workflows import WorkflowRunner

        await app.workflows.start("sleeper", id="nap")
        await app.workflows.start("failing", id="oops")
        runner = WorkflowRunner(app.workflows)
        for leased in await runner._lease(["sleeper", "failing"], 10):
            await runner.execute(leased)

    db = ["--database", url, "--namespace", "flows"]
    listed = json.loads(cli(tmp_path, *db, "workflows", "list", "--json").stdout)["items"]
    assert {w["id"]: w["status"] for w in listed} == {"nap": "sleeping", "oops": "failed"}
    table = cli(tmp_path, *db, "workflows", "list", "--status", "failed")
    assert "oops" in table.stdout and "nap" not in table.stdout
    described = json.loads(cli(tmp_path, *db, "workflows", "describe", "oops", "--json").stdout)
    assert described["status"] == "failed" and "down" in described["error"]["message"]
    history = json.loads(cli(tmp_path, *db, "workflows", "history", "oops", "--json").stdout)[
        "items"
    ]
    assert history[0]["name"].endswith("broken") and history[0]["error"]["type"] == "RuntimeError"
    assert cli(tmp_path, *db, "workflows", "cancel", "nap").returncode == 0
    finished = cli(tmp_path, *db, "workflows", "cancel", "oops")
    assert finished.returncode == 5 and finished.stderr.startswith("error: workflow_finished")
    assert cli(tmp_path, *db, "workflows", "retry", "oops").returncode == 0
    missing = cli(tmp_path, *db, "workflows", "describe", "nobody")
    assert missing.returncode == 6 and "Traceback" not in missing.stderr


async def test_purge_deletes_ready_and_waiting_messages_not_those_in_hand(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/purge.db"

    args = ["--database", url, "--namespace", "jobs", "queue", "purge", "jobs"]

    async def purge(answer: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(cli, tmp_path, *args, answer=answer)

    async with App(url, namespace="jobs", purge_interval=None) as app:
        queue = app.queue("jobs")
        await queue.send("head", group="g")
        await queue.send("behind", group="g")  # waiting: its group's head is in hand
        await queue.send("ready")
        await queue.send("later", delay=3600)
        [held] = await queue.receive(1)
        assert held.body == "head"
        refused = await purge("n\n")
        assert refused.returncode == 1
        assert "delete every ready or waiting message (not in hand) of jobs?" in refused.stdout
        stats = await queue.stats()
        assert (stats.ready, stats.delayed, stats.waiting, stats.in_flight) == (1, 1, 1, 1)
        done = await purge("y\n")
        assert done.returncode == 0, done.stderr
        reply = done.stdout[done.stdout.index("{") :]
        assert json.loads(reply) == {"queue": "jobs", "purged": 3}
        stats = await queue.stats()
        assert (stats.ready, stats.delayed, stats.waiting, stats.in_flight) == (0, 0, 0, 1)
        await queue.ack(held, "kept")
