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

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from statekeeper.chaos.hosts import Host, HostError, Network
from statekeeper.chaos.postgres import bindir

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
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
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

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--clear-groups", *argv]  # fmt: skip

    def _home(self, name: str) -> dict[str, str]:
        home = self.directory / name
        home.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(home, self.user.pw_uid, self.user.pw_gid)
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
                self._as_postgres(["pg_autoctl", *args]), env=self._home(name),
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
        self._wait(lambda: self._monitor_sql("SELECT 1") == "1", timeout, "the monitor")
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
            self._wait(self._in_state(name, wanted), timeout, f"node {name} ({wanted})")
        self._wait(self._in_state("pg1", "primary"), timeout, "the primary with its secondary")

    def _in_state(self, name: str, state: str) -> Callable[[], bool]:
        """Whether the monitor has ``name`` in ``state``, reported and its goal."""
        return lambda: self.states().get(name) == (state, state)

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except HostError:
                pass
            time.sleep(0.3)
        raise HostError(f"{what} did not come up in {timeout:.0f} s; see {self.directory}/*.log")

    def _monitor_sql(self, sql: str) -> str:
        done = self.hosts["mon"].run(self._as_postgres([
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
        started = time.monotonic()
        self._wait(lambda: self.primary() == name, timeout, f"{name} as the primary")
        return time.monotonic() - started

    def kill_host(self, name: str) -> None:
        """SIGKILL every process on the node's host: its keeper and its postmaster go at
        once, as when the machine is lost."""
        namespace = self.hosts[name].namespace
        listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                                text=True, check=False)  # fmt: skip
        for pid in listed.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

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
