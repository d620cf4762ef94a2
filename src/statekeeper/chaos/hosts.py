"""Test hosts on one machine: network namespaces joined by veth links to a bridge.

Each host is a network namespace of its own, with loopback and one interface (``eth0``,
10.213.0.N/24); the other end of its link sits on a bridge in a hub namespace that
belongs to the same network, so no address or route is added to the machine's own
namespace and two networks (two tests at once) never see each other. A process runs on
a host through ``ip netns exec``; the filesystem is shared, so a Unix socket (the
database's, say) reaches across hosts where TCP does not.

    with Network() as net:
        db = net.host("db")
        worker = net.host("w1")
        proc = worker.popen(["python", "-m", "statekeeper", "worker", ...], env=env)
        net.partition("w1")     # its link goes down: nothing in or out, no reset either
        net.heal("w1")

Faults: ``partition``/``heal`` take a host's link down and up (packets are dropped in
both directions, connections hang as behind a failed switch); latency and loss are a
``Relay`` (chaos/relay.py) run on the receiving host, since ``tc netem`` is not in every
kernel. Building a network needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): ``missing()``
says what is not there. Everything is torn down on ``close()``, and a network left by a
killed run is removed by the next one (``sweep``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

SUBNET = "10.213.0"
_OWNED = re.compile(r"^skh(\d+)x(\d+)-")
_counter = 0


class HostError(RuntimeError):
    """A network or host could not be set up (the failing command and its message)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = done.stderr.strip() or f"exit {done.returncode}"
        raise HostError(f"ip {' '.join(args)}: {message}")


def missing() -> str | None:
    """Why test hosts cannot be built here, or None when they can."""
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian package iproute2) is not installed"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    probe = f"skh{os.getpid()}x0-probe"
    try:
        _ip("netns", "add", probe)
    except HostError as exc:
        return f"network namespaces are not available: {exc}"
    _ip("netns", "del", probe)
    return None


def sweep() -> list[str]:
    """Delete the namespaces of networks whose process has died; their names."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        owner = _OWNED.match(name)
        if owner and not alive(int(owner.group(1))):
            with contextlib.suppress(HostError):
                _ip("netns", "del", name)
                removed.append(name)
    return removed


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Call ``check`` every 0.1 s until it is true (a HostError from it counts as not
    yet); the seconds it took. HostError naming ``what`` after ``timeout`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(HostError):
            if check():
                return time.monotonic() - started
        time.sleep(0.1)
    raise HostError(f"{what}: not within {timeout:.0f} s")


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Host:
    def __init__(self, network: Network, name: str, index: int) -> None:
        self.network = network
        self.name = name
        self.namespace = f"{network.prefix}-{name}"
        self.address = f"{SUBNET}.{index}"
        self.link = f"veth{index}"  # its end on the hub's bridge
        self._processes: list[subprocess.Popen[bytes]] = []

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def popen(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **options: object
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host (stopped with the network)."""
        process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            self.command(argv), env=dict(env) if env is not None else None, **options
        )
        self._processes.append(process)
        return process

    def run(self, argv: Sequence[str], **options: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            self.command(argv), capture_output=True, text=True, check=False, **options
        )

    def kill_all(self) -> None:
        """SIGKILL every process on this host, as when the machine is lost."""
        listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True,
                                text=True, check=False)  # fmt: skip
        for pid in listed.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def stop_processes(self, grace: float = 5.0) -> None:
        """SIGTERM what this host runs, SIGKILL what is left after ``grace`` seconds."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self._processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()


class Network:
    """Hosts on a bridge; a context manager that tears every one of them down."""

    def __init__(self) -> None:
        global _counter
        _counter += 1
        self.prefix = f"skh{os.getpid()}x{_counter}"
        self.hub = f"{self.prefix}-hub"
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> Network:
        self.build()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def build(self) -> None:
        reason = missing()
        if reason is not None:
            raise HostError(f"cannot build test hosts: {reason}")
        sweep()
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")

    def host(self, name: str) -> Host:
        """A new host on the bridge, named ``name`` (letters, digits, dashes)."""
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", name) or name == "hub":
            raise HostError(f"bad host name {name!r}: use up to 16 lowercase letters and digits")
        if name in self.hosts:
            raise HostError(f"host {name!r} exists already")
        host = Host(self, name, len(self.hosts) + 1)
        _ip("netns", "add", host.namespace)
        self.hosts[name] = host
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("link", "add", host.link, "netns", self.hub, "type", "veth",
            "peer", "name", "eth0", "netns", host.namespace)  # fmt: skip
        _ip("-n", self.hub, "link", "set", host.link, "master", "br0")
        _ip("-n", self.hub, "link", "set", host.link, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        return host

    def partition(self, name: str) -> None:
        """Cut ``name`` off from every other host: its link goes down."""
        _ip("-n", self.hub, "link", "set", self.hosts[name].link, "down")

    def heal(self, name: str) -> None:
        _ip("-n", self.hub, "link", "set", self.hosts[name].link, "up")

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop_processes()
        for namespace in [h.namespace for h in self.hosts.values()] + [self.hub]:
            with contextlib.suppress(HostError):
                _ip("netns", "del", namespace)
        self.hosts.clear()
