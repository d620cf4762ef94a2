"""A deployment across test hosts: a database host and worker hosts.

    with Cluster(workers=2, delay_ms=0.5, ingress=True) as cluster:
        cluster.socket_url               # the database, for the harness's own checks
        cluster.worker_dsn               # the database as the worker hosts reach it
        cluster.start_statekeeper("w1", ["worker", "--app", "myapp:app"], env, log="w1.log")
        cluster.start_statekeeper("in", ["serve", "--app", "myapp:app"], env, log="in.log")
        cluster.expose("in", 8000)       # a Unix socket reaching the ingress host's port
        cluster.partition("w1"); cluster.heal("w1")
        cluster.set_link(delay_ms=5, loss=0.01)

The database host runs PostgreSQL (chaos/postgres.py) and, in front of it on port
6432, a relay (chaos/relay.py) that adds ``delay_ms`` each way: the worker hosts reach
the database only through it, so every round trip they make costs ``2 x delay_ms``
more than the bare link. Its settings change while the cluster runs (``set_link``); a
host cut off by ``partition`` reaches nothing until ``heal``. With ``ingress``, a host
named ``in`` is there for ``statekeeper serve``: clients outside the hosts reach it
through a Unix socket (``expose``), and it reaches the database as the workers do.
With ``failover``, the database is pg_auto_failover's formation instead
(chaos/failover.py: a monitor, a primary and a synchronous secondary, on hosts ``mon``,
``pg1`` and ``pg2``), reached through a multi-host URL without the relay; the database
host then runs Redis only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from statekeeper.chaos.failover import Formation
from statekeeper.chaos.hosts import Host, HostError, Network, wait_until
from statekeeper.chaos.postgres import HostPostgres

RELAY_PORT = 6432
REDIS_PORT = 6379


class Cluster:
    def __init__(
        self, *, workers: int = 2, delay_ms: float = 0.0, ingress: bool = False,
        failover: bool = False, directory: Path | None = None,
    ) -> None:  # fmt: skip
        self.worker_names = [f"w{n + 1}" for n in range(workers)]
        self.ingress = ingress
        self.formation: Formation | None = None
        self._failover = failover
        self._lost: str | None = None  # the formation's node killed by kill_primary
        self.delay_ms = delay_ms
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="statekeeper-hosts-"))
        self.network = Network()
        self.db: Host | None = None
        self.postgres: HostPostgres | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.control = self.directory / "link.json"
        self.logs = self.directory / "logs"

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        # PostgreSQL runs as another account: it must reach its folder.
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o755)
        self.logs.mkdir(exist_ok=True)
        self.network.build()
        self.db = self.network.host("db")
        for name in [*self.worker_names, *(["in"] if self.ingress else [])]:
            self.network.host(name)
        if self._failover:
            self.formation = Formation(self.network, self.directory / "formation")
            self.formation.start()
        else:
            self._start_postgres(self.db)
        if shutil.which("redis-server"):
            self.start_redis()

    def _start_postgres(self, db: Host) -> None:
        """PostgreSQL on the database host, behind the relay."""
        self.postgres = HostPostgres(db, self.directory / "postgres")
        self.postgres.start()
        self.set_link(delay_ms=self.delay_ms)
        with open(self.logs / "relay.log", "ab") as log:
            db.popen(
                [sys.executable, "-m", "statekeeper.chaos.relay",
                 f"{db.address}:{RELAY_PORT}", f"127.0.0.1:{self.postgres.port}",
                 "--delay-ms", str(self.delay_ms), "--control", str(self.control)],
                stdout=log, stderr=log,
            )  # fmt: skip
        self._wait_relay()

    def kill_primary(self) -> None:
        """SIGKILL of every process on the formation's primary's host."""
        assert self.formation is not None, "a cluster with failover=True"
        self._lost = self.formation.primary() or "pg1"
        self.formation.kill_host(self._lost)

    def rejoin(self) -> None:
        """The node ``kill_primary`` lost, started again: it rejoins as a secondary."""
        assert self.formation is not None and self._lost is not None
        self.formation.rejoin(self._lost)

    def log_files(self) -> list[Path]:
        """Every process's log: the hosts' and, with failover, the formation's."""
        found = sorted(self.logs.glob("*.log"))
        if self.formation is not None:
            found += sorted(self.formation.directory.glob("*.log"))
        return found

    def start_redis(self) -> None:
        """Redis on the database host (the workers' cache), on its address and on a
        Unix socket in the cluster's folder (the harness's); nothing kept on disk."""
        assert self.db is not None
        with open(self.logs / "redis.log", "ab") as log:
            self.redis = self.db.popen(
                ["redis-server", "--port", str(REDIS_PORT), "--bind", self.db.address,
                 "--unixsocket", str(self.redis_socket), "--unixsocketperm", "700",
                 "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                 "--protected-mode", "no"],  # the worker hosts' own network, no password
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.redis_socket.exists():
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise HostError("Redis did not start on the database host; see logs/redis.log")
            time.sleep(0.05)

    def stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(15)
        self.redis_socket.unlink(missing_ok=True)

    def clock_file(self, host: str) -> Path:
        """The offset of ``host``'s wall clock (libfaketime's format: ``+30s``), read
        by the processes started with ``clock_env`` at every clock reading."""
        return self.directory / f"{host}.clock"

    def clock_env(self, host: str) -> dict[str, str]:
        """What puts a process's wall clock under ``clock_file(host)``: libfaketime
        (Debian's package libfaketime) preloaded, its monotonic clocks left true (a
        wall clock that jumps, as when NTP steps it); empty without libfaketime."""
        found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
        if not found:
            return {}
        clock = self.clock_file(host)
        if not clock.exists():
            clock.write_text("+0s\n")
        return {
            "LD_PRELOAD": str(found[0]),
            "FAKETIME_TIMESTAMP_FILE": str(clock),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def jump_clock(self, host: str, seconds: float) -> None:
        """Set ``host``'s wall clock ``seconds`` off the machine's (0: back to it)."""
        if not self.clock_env(host):
            raise HostError("clock jumps need libfaketime (Debian package libfaketime)")
        _replace(self.clock_file(host), f"{seconds:+g}s\n")

    @property
    def redis_socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def cache_url(self) -> str | None:
        """Redis as the worker hosts reach it (None without Redis)."""
        assert self.db is not None
        return f"redis://{self.db.address}:{REDIS_PORT}/0" if self.redis else None

    @property
    def socket_cache_url(self) -> str | None:
        """Redis through its Unix socket, for the harness (None without Redis)."""
        return f"unix://{self.redis_socket}?db=0" if self.redis else None

    def _wait_relay(self) -> None:
        assert self.db is not None
        probe = (f"import socket; socket.create_connection(('{self.db.address}', {RELAY_PORT}), "
                 "timeout=1).close()")  # fmt: skip
        host = self.host(self.worker_names[0] if self.worker_names else "db")
        wait_until(lambda: host.run([sys.executable, "-c", probe]).returncode == 0, 15,
                   "the relay on the database host, listening")  # fmt: skip

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def expose(self, name: str, port: int) -> Path:
        """A Unix socket in the cluster's folder that reaches ``port`` on the loopback
        of host ``name`` (a relay in the host), for clients outside every host."""
        path = self.directory / f"{name}-{port}.sock"
        with open(self.logs / f"{name}-relay.log", "ab") as log:
            self.host(name).popen(
                [sys.executable, "-m", "statekeeper.chaos.relay", f"unix:{path}",
                 f"127.0.0.1:{port}"],
                stdout=log, stderr=log,
            )  # fmt: skip
        wait_until(path.exists, 15, f"the relay to {name}:{port}, listening")
        return path

    @property
    def worker_dsn(self) -> str:
        """The database as the other hosts reach it (through the relay; with failover,
        both nodes of the formation, read-write)."""
        if self.formation is not None:
            return self.formation.url
        assert self.db is not None
        return f"postgresql://postgres@{self.db.address}:{RELAY_PORT}/test"

    @property
    def socket_url(self) -> str:
        if self.formation is not None:
            return self.formation.socket_url
        assert self.postgres is not None
        return self.postgres.socket_url

    def set_link(self, *, delay_ms: float | None = None, loss: float | None = None) -> None:
        """Change the database host's link for bytes read from now on (the relay reads
        its control file every 0.1 s: wait that long for it to apply)."""
        settings = json.loads(self.control.read_text()) if self.control.exists() else {}
        if delay_ms is not None:
            settings["delay_ms"] = delay_ms
        if loss is not None:
            settings["loss"] = loss
        _replace(self.control, json.dumps(settings))

    def partition(self, name: str) -> None:
        self.network.partition(name)

    def heal(self, name: str) -> None:
        self.network.heal(name)

    def start_statekeeper(
        self, host: str, args: Sequence[str], env: Mapping[str, str], *, log: str
    ) -> subprocess.Popen[bytes]:
        """``python -m statekeeper ARGS`` on ``host``, its output in ``logs/LOG``."""
        with open(self.logs / log, "ab") as out:
            return self.host(host).popen(
                [sys.executable, "-m", "statekeeper", *args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def close(self) -> None:
        """Stop the hosts' processes (the database last), remove the hosts and the
        folder (unless it was given)."""
        databases = [self.db, *(self.formation.hosts.values() if self.formation else ())]
        for host in self.network.hosts.values():
            if host not in databases:
                host.stop_processes()
        if self.postgres is not None:
            self.postgres.stop()
        if self.formation is not None:
            self.formation.stop()
        self.network.close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole (a reader polling it never sees it half written)."""
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    partial.replace(path)
