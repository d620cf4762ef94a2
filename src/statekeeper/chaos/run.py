"""One chaos run: a mixed workload on test hosts, a fault in the middle of it, and a
report of what clients saw and whether anything acknowledged was lost or applied twice.

The cluster (chaos/cluster.py): a database host (PostgreSQL behind a relay adding
0.5 ms each way; or, for the failover scenario, pg_auto_failover's monitor, primary
and secondary on hosts of their own), two worker hosts, each running ``statekeeper
worker`` with the workload app (chaos/workload_app.py), and an ingress host running
``statekeeper serve`` with it (HTTP only). The harness is the client (chaos/clients.py):
eight writers each in turn put a state item, send a message to the ``work`` queue and
start a ``booking`` workflow (three steps with effects, then a transaction step writing
state and a ``ledger`` message exactly once) through the app's API on the database's
Unix socket, then post a message and start a workflow through the ingress (202).

Timeline: ``warmup`` seconds of work, the fault for ``seconds``, ``after`` seconds more,
then the writers stop and the workers finish. The report (``Report``, as a table and as
JSON): the fault's window, calls acknowledged, errors by kind, p99 of acknowledged
calls before, during and after the fault, the recovery time (from the fault's end until
the first call started after the last failure was acknowledged), how long clients saw
failures (from the first failure after the fault began to that same moment), tries
repeated, and the invariants, which must all be zero: acknowledged items lost, effects
applied twice (a workflow with two ledger messages, an entity call's token twice in an
account), stuck leases (messages still in flight, or workflows not finished, once the
workers have had two minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import asyncpg

from statekeeper.app import App
from statekeeper.chaos.clients import (
    API_KINDS,
    KINDS,
    QUEUES,
    Calls,
    Ingress,
    create_tables,
    entity_calls_applied,
    harness_app,
    left_in_queues,
    write_mixed,
)
from statekeeper.chaos.cluster import Cluster
from statekeeper.chaos.disk_full import run_disk_full
from statekeeper.chaos.hosts import HostError
from statekeeper.chaos.report import Marks, Report, summarize
from statekeeper.chaos.scenarios import SCENARIOS, Fleet, Scenario
from statekeeper.constants import (
    ENV_API_TOKEN,
    ENV_CACHE_URL,
    ENV_CHAOS_DSN,
    ENV_CHAOS_HOST,
    ENV_LOG_LEVEL,
)

WRITERS = 8
SETTLE = 120.0  # seconds the workers have to finish once the writers stop
WORKER_APP = "statekeeper.chaos.workload_app:app"
INGRESS = "in"  # the ingress host's name
INGRESS_PORT = 8000


class ChaosRun:
    def __init__(
        self, scenario: Scenario, *, seconds: float = 10.0, warmup: float = 5.0,
        after: float = 5.0,
    ) -> None:  # fmt: skip
        self.scenario = scenario
        self.seconds, self.warmup, self.after = seconds, warmup, after
        self._token = secrets.token_urlsafe(24)  # the ingress's bearer token

    def _process(self, cluster: Cluster, host: str) -> subprocess.Popen[bytes]:
        """A worker host's ``statekeeper worker``, or the ingress host's ``serve``
        (HTTP only: the worker hosts run what it accepts)."""
        env = {
            **os.environ,
            ENV_CHAOS_HOST: host,
            ENV_CHAOS_DSN: cluster.worker_dsn,
            **({ENV_CACHE_URL: cluster.cache_url} if cluster.cache_url else {}),
            ENV_LOG_LEVEL: "INFO",
            **(cluster.clock_env(host) if host == "w1" else {}),  # its clock may jump
        }
        args = ["worker", "--app", WORKER_APP]
        if host == INGRESS:
            env[ENV_API_TOKEN] = self._token
            args = ["serve", "--app", WORKER_APP, "--host", "127.0.0.1",
                    "--port", str(INGRESS_PORT), "--no-workers"]  # fmt: skip
        return cluster.start_statekeeper(host, args, env, log=f"{host}.log")

    async def _ingress(self, cluster: Cluster, fleet: Fleet) -> Ingress | None:
        """The ingress host's server, started and ready; its client (None without)."""
        if not cluster.ingress:
            return None
        fleet.launch(INGRESS)
        ingress = Ingress(await asyncio.to_thread(cluster.expose, INGRESS, INGRESS_PORT),
                          self._token)  # fmt: skip
        deadline = time.monotonic() + 60
        while not await ingress.ready():
            if time.monotonic() > deadline or fleet.workers[INGRESS].poll() is not None:
                await ingress.close()
                raise HostError(f"the ingress did not get ready; see {cluster.logs}/in.log")
            await asyncio.sleep(0.2)
        return ingress

    async def run(self, cluster: Cluster) -> Report:
        begin, end = self.scenario.begin, self.scenario.end
        assert begin is not None and end is not None, "a scenario on test hosts"
        await create_tables(cluster.socket_url)
        fleet = Fleet(lambda host: self._process(cluster, host))
        for host in cluster.worker_names:
            fleet.launch(host)
        ingress = await self._ingress(cluster, fleet)
        app = harness_app(cluster.socket_url, cluster.socket_cache_url)
        calls = Calls.of(KINDS if ingress is not None else API_KINDS)
        stop = asyncio.Event()
        async with app:
            begun = time.monotonic()
            writers = [
                asyncio.create_task(write_mixed(app, calls, n, stop, ingress))
                for n in range(WRITERS)
            ]
            await asyncio.sleep(self.warmup)
            fault_start, wall_start = time.monotonic(), time.time()
            await asyncio.to_thread(begin, cluster, fleet)
            await asyncio.sleep(self.seconds)
            # The fault ends when its end begins (a restart takes its own time).
            fault_end, wall_end = time.monotonic(), time.time()
            await asyncio.to_thread(end, cluster, fleet)
            await asyncio.sleep(self.after)
            stop.set()
            await asyncio.gather(*writers)
            wall_stop = time.time()
            invariants, repeated = await settle(cluster.socket_url, app, calls)
            counted = app.state.cache_stats()
            cache = (
                {} if counted is None else
                {"hits": counted.hits, "misses": counted.misses, "errors": counted.errors}
            )  # fmt: skip
            pace = await self._pace(
                cluster, (wall_start - self.warmup / 2, wall_start, wall_end, wall_stop)
            )
        if ingress is not None:
            await ingress.close()
        for worker in fleet.workers.values():
            worker.terminate()
        for worker in fleet.workers.values():
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        marks = Marks(begun, begun + self.warmup / 2, fault_start, fault_end)
        return summarize(self.scenario.name, self.scenario.what, calls, marks, pace=pace,
                         repeated=repeated, invariants=invariants, cache=cache)  # fmt: skip

    async def _pace(self, cluster: Cluster, marks: tuple[float, ...]) -> dict[str, float]:
        """Effects per second in the windows between ``marks`` (Unix times): before
        (the second half of the warm-up), during and after the fault."""
        conn = await asyncpg.connect(cluster.socket_url)
        try:
            window = (
                "SELECT count(*) FROM effects WHERE at >= to_timestamp($1) "
                "AND at < to_timestamp($2)"
            )
            counts = [await conn.fetchval(window, low, high) for low, high in pairwise(marks)]
        finally:
            await conn.close()
        spans = [high - low for low, high in pairwise(marks)]
        names = ("before", "during", "after")
        return {n: round(c / s, 1) for n, c, s in zip(names, counts, spans, strict=True)}


async def settle(url: str, app: App, calls: Calls) -> tuple[dict[str, int], int]:
    """Wait (up to SETTLE seconds) for the workers to finish what ``calls`` had
    acknowledged, at the database ``url``; the invariants, and how many tries were
    repeated."""
    workflows = calls.workflows()
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            finished = await conn.fetchval(
                "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' "
                "AND id = ANY($1) AND status = 'succeeded'", workflows,
            )  # fmt: skip
            stats = [await app.queue(name).stats() for name in QUEUES]
            idle = sum(q.ready + q.in_flight + q.delayed for q in stats) == 0
            if finished == len(workflows) and idle:
                break
            await asyncio.sleep(0.5)
        effects = {(r[0], r[1]) for r in await conn.fetch("SELECT kind, key FROM effects")}
        attempts = int(await conn.fetchval("SELECT count(*) FROM attempts"))
        twice = int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT split_part(key, '/', 1) FROM effects "
                "WHERE kind = 'ledger' GROUP BY 1 HAVING count(*) > 1) t"
            )
        )
        unfinished = await conn.fetchval(
            "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' AND id = ANY($1) "
            "AND status <> 'succeeded'", workflows,
        )  # fmt: skip
    finally:
        await conn.close()
    keys = calls.acked["state"]
    lost = 0
    for low in range(0, len(keys), 1000):  # a thousand keys a round trip
        found = await app.state.get_many(keys[low : low + 1000])
        lost += sum(1 for item in found.values() if item is None)
    lost += sum(1 for m in calls.messages() if ("message", m) not in effects)
    booked = {key.split("/")[0] for kind, key in effects if kind == "ledger"}
    lost += sum(1 for w in workflows if w not in booked)
    entities_lost, entities_twice = await entity_calls_applied(app, calls)
    lost, twice = lost + entities_lost, twice + entities_twice
    # Still in flight, or still delayed (sent by a process whose clock is ahead: it
    # stamps the message visible from its own "now").
    in_flight = await left_in_queues(app, ready=False)
    invariants = {
        "acknowledged_lost": lost,
        "stale_reads": calls.stale,
        "applied_twice": twice,
        "stuck_leases": int(unfinished) + in_flight,
    }
    return invariants, attempts - len(effects)


def _run_on_hosts(scenario: Scenario, seconds: float, report_dir: Path | None) -> Report:
    failover = scenario.database == "failover"
    # No relay in front of a failover formation: its nodes are reached directly.
    with Cluster(
        workers=2, delay_ms=0.0 if failover else 0.5, ingress=True, failover=failover
    ) as cluster:
        try:
            return asyncio.run(ChaosRun(scenario, seconds=seconds).run(cluster))
        finally:
            if report_dir is not None:
                logs = report_dir / f"{scenario.name}-logs"
                logs.mkdir(parents=True, exist_ok=True)
                for log in cluster.log_files():
                    (logs / log.name).write_bytes(log.read_bytes())


def run_scenario(name: str, *, seconds: float = 10.0, report_dir: Path | None = None) -> Report:
    """Build the hosts, run ``name``'s fault in the workload, tear it all down; the
    report (also written to ``report_dir/NAME.json`` and ``.txt`` when given)."""
    scenario = SCENARIOS[name]
    if scenario.database == "sqlite":
        report = run_disk_full(seconds=seconds)
    else:
        report = _run_on_hosts(scenario, seconds, report_dir)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"{name}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        (report_dir / f"{name}.txt").write_text(report.table() + "\n")
    return report


if __name__ == "__main__":  # python -m statekeeper.chaos.run SCENARIO
    print(run_scenario(sys.argv[1], report_dir=Path("chaos-reports")).table())
