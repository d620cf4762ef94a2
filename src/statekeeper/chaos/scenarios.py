"""The chaos harness's faults: each begins at a moment of a running workload and ends
some seconds later (chaos/run.py runs them on a cluster of test hosts).

    worker-kill   SIGKILL of the first worker host's worker; started again at the end
    ingress-kill  SIGKILL of the ingress host's server; started again at the end
    partition     the first worker host cut off from every other host, then healed
    db-partition  the database host cut off from every other host (the workers and the
                  ingress lose it; the harness, on its Unix socket, does not), then healed
    latency       20 ms more each way and 2% of chunks stalled as lost, on the database
                  host's link; back to the cluster's own at the end
    db-restart    PostgreSQL stopped (a fast shutdown), then started again
    db-kill       PostgreSQL's postmaster SIGKILLed, then started again (crash recovery)
    redis-stop    Redis (the cache of every process) stopped, then started again
    clock-jump    the first worker host's wall clock 30 s ahead, then back (libfaketime)
    failover      every process on the primary's host SIGKILLed: pg_auto_failover
                  promotes the secondary; the lost node started again at the end, to
                  rejoin as a secondary (a cluster built with failover=True)
    disk-full     the SQLite database's disk filled, then freed (chaos/disk_full.py: one
                  process on SQLite, in a mount namespace, runs it all)
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from statekeeper.chaos import disk_full, failover, hosts
from statekeeper.chaos.cluster import Cluster
from statekeeper.chaos.hosts import HostError


@dataclass
class Fleet:
    """The worker processes, by host, and how to start one again."""

    start: Callable[[str], subprocess.Popen[bytes]]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def launch(self, host: str) -> None:
        self.workers[host] = self.start(host)

    def kill(self, host: str) -> None:
        worker = self.workers[host]
        worker.send_signal(signal.SIGKILL)
        worker.wait()


Action = Callable[[Cluster, Fleet], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    begin: Action | None  # None: the scenario's run makes its fault itself (disk-full)
    end: Action | None
    # "postgres": the cluster's database host; "failover": pg_auto_failover's formation
    # (Cluster(failover=True)); "sqlite": one process on SQLite (chaos/disk_full.py)
    database: str = "postgres"

    def missing(self) -> str | None:
        """Why this scenario cannot run on this machine, or None."""
        if self.database == "sqlite":
            return disk_full.missing()
        return hosts.missing() or (failover.missing() if self.database == "failover" else None)


def _restart_postgres(cluster: Cluster, fleet: Fleet) -> None:
    assert cluster.postgres is not None
    deadline = time.monotonic() + 30
    while True:  # a killed postmaster's backends may hold its memory for a moment
        try:
            cluster.postgres.start()
            return
        except HostError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _stop_postgres(cluster: Cluster, fleet: Fleet) -> None:
    assert cluster.postgres is not None
    cluster.postgres.stop()


def _kill_postgres(cluster: Cluster, fleet: Fleet) -> None:
    assert cluster.postgres is not None
    cluster.postgres.kill()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "worker-kill", "SIGKILL of worker host w1's worker, started again at the end",
            lambda c, f: f.kill("w1"), lambda c, f: f.launch("w1"),
        ),
        Scenario(
            "ingress-kill", "SIGKILL of the ingress host's server, started again at the end",
            lambda c, f: f.kill("in"), lambda c, f: f.launch("in"),
        ),
        Scenario(
            "partition", "worker host w1 cut off from every other host, then healed",
            lambda c, f: c.partition("w1"), lambda c, f: c.heal("w1"),
        ),
        Scenario(
            "db-partition", "the database host cut off from the worker and ingress hosts, "
            "then healed",
            lambda c, f: c.partition("db"), lambda c, f: c.heal("db"),
        ),
        Scenario(
            "latency", "20 ms more each way and 2% of chunks stalled as lost on the database "
            "host's link, then back",
            lambda c, f: c.set_link(delay_ms=20, loss=0.02),
            lambda c, f: c.set_link(delay_ms=c.delay_ms, loss=0.0),
        ),
        Scenario(
            "db-restart", "PostgreSQL stopped (fast shutdown), then started again",
            _stop_postgres, _restart_postgres,
        ),
        Scenario(
            "clock-jump", "worker host w1's wall clock jumps 30 s ahead, then back",
            lambda c, f: c.jump_clock("w1", 30), lambda c, f: c.jump_clock("w1", 0),
        ),
        Scenario(
            "redis-stop", "Redis (every process's state cache) stopped, then started again",
            lambda c, f: c.stop_redis(), lambda c, f: c.start_redis(),
        ),
        Scenario(
            "db-kill", "PostgreSQL's postmaster SIGKILLed, then started again (crash recovery)",
            _kill_postgres, _restart_postgres,
        ),
        Scenario(
            "failover", "every process on the primary's host SIGKILLed (pg_auto_failover "
            "promotes the secondary); the lost node started again at the end",
            lambda c, f: c.kill_primary(), lambda c, f: c.rejoin(), database="failover",
        ),
        Scenario(disk_full.NAME, disk_full.WHAT, None, None, database="sqlite"),
    )
}  # fmt: skip
