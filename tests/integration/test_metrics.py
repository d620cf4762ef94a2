"""``/metrics`` scraped from ``statekeeper serve`` and two ``statekeeper worker``
processes sharing one database (both backends), parsed with prometheus-client's own
parser, checked against the work done: the database's figures (dead letters, active
runs) are the same from every process; each process's counters count its own work,
and summed over the processes they count all of it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.certs import free_port

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
TOKEN = "metrics-test-token-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Process:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    async def start(cls, db: str, *args: str, port: int) -> Process:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
               "METRICS_DB_URL": db, "STATEKEEPER_API_TOKEN": TOKEN}  # fmt: skip
        env.pop("STATEKEEPER_METRICS", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statekeeper", *args, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        started = cls(process, f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"{started.url}/readyz")).status_code == 200:
                        return started
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"{args} did not come up")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 30)


@pytest.fixture
async def processes(database_url: str) -> AsyncIterator[list[Process]]:
    """serve (HTTP only) and two workers, each with its own port."""
    ports = [free_port() for _ in range(3)]
    started: list[Process] = []
    try:
        started.append(await Process.start(
            database_url, "serve", "--app", "metrics_app:app", "--port", str(ports[0]),
            "--no-workers", port=ports[0],
        ))  # fmt: skip
        for port in ports[1:]:
            started.append(await Process.start(
                database_url, "worker", "--app", "metrics_app:app", "--health-port", str(port),
                port=port,
            ))  # fmt: skip
        yield started
    finally:
        await asyncio.gather(*(p.stop() for p in started))


async def scrape(client: httpx.AsyncClient, process: Process) -> Samples:
    answer = await client.get(
        f"{process.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_metrics_from_serve_and_two_workers(processes: list[Process]) -> None:
    serve = processes[0]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        for n in range(15):  # 10 that fail for good, 5 that succeed
            body = {"fail": True} if n < 10 else {"n": n}
            sent = await client.post(f"{serve.url}/v1/queues/jobs/messages", json=body)
            assert sent.status_code == 202, sent.text
        runs = []
        for n in range(4):
            started = await client.post(f"{serve.url}/v1/workflows/three_steps", json=n)
            assert started.status_code == 202, started.text
            runs.append(started.json()["id"])
        for _ in range(400):  # until the workers are done
            seen = [await scrape(client, p) for p in processes]
            dead = value(seen[0], "statekeeper_queue_messages", queue="jobs", state="dead")
            finished = sum(value(s, "statekeeper_workflows_finished_total") for s in seen[1:])
            handled = sum(value(s, "statekeeper_messages_handled_total") for s in seen[1:])
            if dead == 10 and finished == 4 and handled == 15:
                break
            await asyncio.sleep(0.05)
        seen = [await scrape(client, p) for p in processes]  # all after the work is done
        serve_seen, *worker_seen = seen
        # The database's figures: the same from every process.
        for samples in seen:
            assert value(samples, "statekeeper_queue_messages", queue="jobs", state="dead") == 10
            assert value(samples, "statekeeper_queue_messages", queue="jobs", state="ready") == 0
            assert value(samples, "statekeeper_workflows_active") == 0

        # Each worker's own counters; summed, all of the work.
        def total(name: str, **labels: str) -> float:
            return sum(value(s, name, **labels) for s in worker_seen)

        assert total("statekeeper_messages_handled_total", queue="jobs",
                     outcome="dead_lettered") == 10  # fmt: skip
        assert total("statekeeper_messages_handled_total", queue="jobs", outcome="acked") == 5
        assert total("statekeeper_message_handler_seconds_count", queue="jobs") == 15
        assert total("statekeeper_workflows_finished_total", workflow="three_steps",
                     status="succeeded") == 4  # fmt: skip
        assert total("statekeeper_workflow_step_seconds_count", workflow="three_steps",
                     outcome="succeeded") == 12  # fmt: skip
        assert total("statekeeper_database_seconds_count") > 0
        # serve started the runs and took the requests (by route template, not path).
        assert value(serve_seen, "statekeeper_workflows_started_total",
                     workflow="three_steps") == 4  # fmt: skip
        assert (
            value(
                serve_seen,
                "statekeeper_http_requests_total",
                route="/v1/queues/{queue}/messages",
                method="POST",
                status="202",
            )
            == 15
        )
        assert value(serve_seen, "statekeeper_messages_handled_total") == 0  # no consumers
        # No token, no metrics (the probes stay open).
        for process in processes:
            async with httpx.AsyncClient() as anonymous:
                assert (await anonymous.get(f"{process.url}/metrics")).status_code == 401
                assert (await anonymous.get(f"{process.url}/healthz")).status_code == 200


async def test_the_alert_rules_read_metrics_that_exist(tmp_path: Path) -> None:
    """Every metric an alert rule reads is one /metrics has; promtool (installed by
    ``make tools``) finds the rules valid when it is there."""
    from statekeeper import App
    from statekeeper.observability.scrape import exposition

    rules = ROOT / "deploy" / "prometheus" / "alerts.yml"
    async with App(f"sqlite:///{tmp_path / 'm.db'}", namespace="alerts", purge_interval=None,
                   cache_url="redis://127.0.0.1:1") as app:  # fmt: skip
        app.queue("jobs")
        text = (await exposition(app.with_views())).decode()
    exposed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                        "gauge": ("",)}[kind]  # fmt: skip
            exposed |= {name.removesuffix("_total") + suffix for suffix in suffixes}
    document = yaml.safe_load(rules.read_text())
    read = set()
    for group in document["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["annotations"]["summary"], rule
            read |= set(re.findall(r"\bstatekeeper_[a-z_]+", rule["expr"]))
    assert read and read <= exposed, sorted(read - exposed)
    promtool = shutil.which("promtool")
    if promtool is not None:
        checked = await asyncio.to_thread(
            subprocess.run, [promtool, "check", "rules", str(rules)], capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_a_database_that_does_not_answer_leaves_the_process_counters(
    tmp_path: Path,
) -> None:
    from statekeeper import App
    from statekeeper.observability.scrape import exposition

    app = App(f"sqlite:///{tmp_path / 'gone.db'}", namespace="gone", purge_interval=None)
    text = (await exposition(app.with_views())).decode()  # never opened: no database
    assert "statekeeper_database_up 0.0" in text
    assert "# TYPE statekeeper_messages_handled_total counter" in text
    async with app:
        text = (await exposition(app.with_views())).decode()
    assert "statekeeper_database_up 1.0" in text
