"""PostgreSQL with automatic failover on test hosts: pg_auto_failover's monitor, a
primary and a synchronous secondary, each on a host of its own (chaos/hosts.py).

    with Network() as net:
        formation = Formation(net, Path(folder))
        formation.start()                    # monitor, pg1 (primary), pg2 (secondary)
        formation.url                        # both nodes, read-write: the primary
        formation.socket_url                 # the same through the nodes' Unix sockets
        formation.primary()                  # "pg1"
        formation.kill_host("pg1")           # SIGKILL of every process on the host
        formation.wait_primary("pg2")        # the monitor has promoted the secondary

The nodes replicate synchronously (pg_auto_failover's default with one secondary:
``synchronous_standby_names`` names it), so what a primary acknowledged is on the
secondary too, and the monitor promotes the secondary when the primary stops answering
its health checks. The monitor's checks are made faster here than pg_auto_failover's
defaults (every second, unhealthy after 4 s instead of 20 s), as in a deployment
tuned for quick failover. Needs Debian's ``postgresql-15-auto-failover`` and
``pg-auto-failover-cli`` (``pg_autoctl``); ``missing()`` says when they are not there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from statekeeper.chaos.hosts import Host, HostError, Network, wait_until
from statekeeper.chaos.postgres import as_server, bindir, own_by_server

# Ports of their own: the servers' Unix sockets are in the machine's shared socket
# folder (pg_autoctl puts them there), beside any PostgreSQL the machine runs.
MONITOR_PORT = 6500
NODE_PORTS = {"pg1": 6501, "pg2": 6502}
SOCKETS = Path("/var/run/postgresql")
MONITOR_SETTINGS = {  # milliseconds
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "4000",
    "pgautofailover.primary_demote_timeout": "5000",
}


def missing() -> str | None:
    """Why a formation cannot be built here, or None."""
    if shutil.which("pg_autoctl") is None:
        return (
            "pg_autoctl is not installed (Debian packages postgresql-15-auto-failover "
            "and pg-auto-failover-cli)"
        )
    return None


class Formation:
    def __init__(self, network: Network, directory: Path) -> None:
        self.network = network
        self.directory = directory
        self.bin = bindir()
        self.hosts: dict[str, Host] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # --- where things are -------------------------------------------------------------

    @property
    def monitor_url(self) -> str:
        address = self.hosts["mon"].address
        return f"postgres://autoctl_node@{address}:{MONITOR_PORT}/pg_auto_failover?sslmode=disable"

    @property
    def url(self) -> str:
        """Both nodes over the network; connections go to whichever is the primary."""
        hosts = ",".join(f"{self.hosts[n].address}:{p}" for n, p in NODE_PORTS.items())
        return f"postgresql://postgres@{hosts}/test?target_session_attrs=read-write"

    @property
    def socket_url(self) -> str:
        """Both nodes through their Unix sockets (for the harness, outside the hosts)."""
        folders = ",".join(str(SOCKETS) for _ in NODE_PORTS)
        ports = ",".join(str(p) for p in NODE_PORTS.values())
        return (
            f"postgresql://postgres@/test?host={folders}&port={ports}"
            "&target_session_attrs=read-write"
        )

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    # --- running ----------------------------------------------------------------------

    def _home(self, name: str) -> dict[str, str]:
        home = self.directory / name
        home.mkdir(parents=True, exist_ok=True)
        own_by_server(home)
        return {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_RUNTIME_DIR": str(home / "run"),
        }

    def _autoctl(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        host = self.hosts[name]
        with open(self.log(name), "ab") as log:
            process = host.popen(
                as_server(["pg_autoctl", *args]), env=self._home(name),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes[name] = process
        return process

    def start(self, timeout: float = 180.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o755)
        for name in ("mon", *NODE_PORTS):
            self.hosts[name] = self.network.host(name)
        self._autoctl("mon", [
            "create", "monitor", "--pgdata", str(self.directory / "mon" / "pgdata"),
            "--pgport", str(MONITOR_PORT), "--hostname", self.hosts["mon"].address,
            "--auth", "trust", "--no-ssl", "--run",
        ])  # fmt: skip
        wait_until(
            lambda: self._monitor_sql("SELECT 1") == "1",
            timeout,
            f"the monitor (logs in {self.directory})",
        )
        for setting, value in MONITOR_SETTINGS.items():
            self._monitor_sql(f"ALTER SYSTEM SET {setting} = '{value}'")
        self._monitor_sql("SELECT pg_reload_conf()")
        for name, port in NODE_PORTS.items():
            self._autoctl(name, [
                "create", "postgres", "--pgdata", str(self.directory / name / "pgdata"),
                "--pgport", str(port),
                "--hostname", self.hosts[name].address, "--name", name, "--dbname", "test",
                "--monitor", self.monitor_url, "--auth", "trust", "--no-ssl", "--pg-hba-lan",
                "--run",
            ])  # fmt: skip
            wanted = "single" if name == "pg1" else "secondary"
            wait_until(self._in_state(name, wanted), timeout,
                       f"node {name} as {wanted} (logs in {self.directory})")  # fmt: skip
        wait_until(self._in_state("pg1", "primary"), timeout,
                   f"the primary with its secondary (logs in {self.directory})")  # fmt: skip

    def _in_state(self, name: str, state: str) -> Callable[[], bool]:
        """Whether the monitor has ``name`` in ``state``, reported and its goal."""
        return lambda: self.states().get(name) == (state, state)

    def _monitor_sql(self, sql: str) -> str:
        done = self.hosts["mon"].run(as_server([
            str(self.bin / "psql"), "-X", "-At", "-h", str(SOCKETS), "-p", str(MONITOR_PORT),
            "-U", "postgres", "-d", "pg_auto_failover", "-c", sql,
        ]))  # fmt: skip
        if done.returncode != 0:
            raise HostError(f"monitor: {done.stderr.strip()[-300:]}")
        return done.stdout.strip()

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported state, goal state), as the monitor has them."""
        rows = self._monitor_sql(
            "SELECT json_agg(json_build_array(nodename, reportedstate, goalstate)) "
            "FROM pgautofailover.node"
        )
        return {n: (r, g) for n, r, g in json.loads(rows or "[]") or []}

    def primary(self) -> str | None:
        for name, (reported, goal) in self.states().items():
            if reported in ("primary", "wait_primary", "single") and reported == goal:
                return name
        return None

    def wait_primary(self, name: str, timeout: float = 120.0) -> float:
        """Until the monitor reports ``name`` as the primary; the seconds it took."""
        return wait_until(lambda: self.primary() == name, timeout, f"{name} as the primary")

    def rejoin(self, name: str) -> None:
        """Start a lost node's keeper again on its data: the monitor makes it a
        secondary of the node promoted meanwhile."""
        self._autoctl(name, ["run", "--pgdata", str(self.directory / name / "pgdata")])

    def kill_host(self, name: str) -> None:
        """SIGKILL every process on the node's host: its keeper and its postmaster go at
        once, as when the machine is lost."""
        self.hosts[name].kill_all()

    def stop(self) -> None:
        """Stop the nodes, then the monitor (SIGTERM: pg_autoctl stops its Postgres)."""
        for name in (*NODE_PORTS, "mon"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    self.kill_host(name)
                    process.wait()
