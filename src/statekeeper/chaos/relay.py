"""A TCP relay that puts distance between two hosts: every byte it forwards arrives a
set delay after it was sent, in each direction, in order, as over a longer wire.

The chaos harness (chaos/hosts.py) puts one in front of the database host, so that
workers reach PostgreSQL across a link with a round trip of ``2 x delay`` more than
the bare veth. It stands in for ``tc netem``, which not every kernel carries; what it
models is a link's latency and, with ``loss``, the stall a lost segment costs a TCP
connection (held for ``RETRANSMIT`` seconds, Linux's minimum retransmission timeout,
as the sender's resend would be), not lost bytes, which TCP never shows an application.

Each direction of each connection has a reader thread, which stamps every chunk with
the time it is due, and a writer thread, which sends it then: ``time.sleep`` keeps
sub-millisecond delays (an event loop's timer would round them up to a millisecond).

    relay = Relay(("10.0.0.1", 5433), ("127.0.0.1", 5432), delay=0.0005)
    relay.start()
    relay.configure(delay=0.002, loss=0.01)   # at any time, for bytes read from then on
    relay.stop()

``python -m statekeeper.chaos.relay LISTEN TARGET --delay-ms 0.5 [--control FILE]``
runs one as a process (inside a host's network namespace); with ``--control``, a JSON
file ``{"delay_ms": ..., "loss": ...}`` is read again every 0.1 s. ``LISTEN`` may be
``unix:PATH``, a Unix socket: a relay in a host's namespace listening on one lets a
process outside every host (the harness) reach a server that listens only there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

RETRANSMIT = 0.2
_CHUNK = 65536
_END = b""

Address = tuple[str, int] | str  # a host and port, or a Unix socket's path


class Relay:
    def __init__(
        self,
        listen: Address,
        target: tuple[str, int],
        *,
        delay: float = 0.0,
        loss: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.listen = listen
        self.target = target
        self.delay = delay
        self.loss = loss
        self._random = random.Random(seed)
        self._server: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "the relay has not started"
        return int(self._server.getsockname()[1])

    def configure(self, *, delay: float | None = None, loss: float | None = None) -> None:
        """Change the delay (seconds, each way) or the share of chunks stalled as lost,
        for what is read from now on."""
        if delay is not None:
            self.delay = max(0.0, delay)
        if loss is not None:
            self.loss = min(1.0, max(0.0, loss))

    def start(self) -> None:
        if isinstance(self.listen, str):
            Path(self.listen).unlink(missing_ok=True)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(self.listen)
            os.chmod(self.listen, 0o600)  # the account that runs the relay, only
            server.listen(512)
        else:
            server = socket.create_server(self.listen, reuse_port=False, backlog=512)
        self._server = server
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def stop(self) -> None:
        """Stop listening and cut every connection."""
        self._stopped.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            if isinstance(self.listen, str):
                Path(self.listen).unlink(missing_ok=True)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets |= {client, upstream}
            link = _Link(client, upstream, self)
            self._pipe(client, upstream, link)
            self._pipe(upstream, client, link)

    def _pipe(self, source: socket.socket, sink: socket.socket, link: _Link) -> None:
        due: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(source, due), daemon=True).start()
        threading.Thread(target=self._write, args=(sink, source, due, link), daemon=True).start()

    def _read(self, source: socket.socket, due: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        last = 0.0
        while True:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = _END
            at = time.monotonic() + self.delay
            if data and self.loss and self._random.random() < self.loss:
                at += RETRANSMIT
            last = max(last, at)  # in order: a chunk never overtakes one read before it
            due.put((last, data))
            if not data:
                return

    def _write(
        self,
        sink: socket.socket,
        source: socket.socket,
        due: queue.SimpleQueue[tuple[float, bytes]],
        link: _Link,
    ) -> None:
        while True:
            at, data = due.get()
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)  # the end passes on, after what came before
                    break
                sink.sendall(data)
            except OSError:
                with contextlib.suppress(OSError):
                    source.shutdown(socket.SHUT_RDWR)  # its reader ends, then this pipe
                break
        link.ended()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._sockets.discard(sock)
                sock.close()


class _Link:
    """One relayed connection: both sockets close when both directions have ended."""

    def __init__(self, client: socket.socket, upstream: socket.socket, relay: Relay) -> None:
        self._sockets = (client, upstream)
        self._relay = relay
        self._open = 2
        self._lock = threading.Lock()

    def ended(self) -> None:
        with self._lock:
            self._open -= 1
            done = self._open == 0
        if done:
            self._relay._forget(*self._sockets)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_listen(text: str) -> Address:
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text[len("unix:") :]
    return _address(text)


def _where(address: Address, port: int | None = None) -> str:
    if isinstance(address, str):
        return f"unix:{address}"
    return f"{address[0]}:{address[1] if port is None else port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statekeeper.chaos.relay")
    parser.add_argument("listen", type=parse_listen, help="HOST:PORT or unix:PATH to listen on")
    parser.add_argument("target", type=_address, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added delay, each way")
    parser.add_argument("--loss", type=float, default=0.0, help="share of chunks stalled")
    parser.add_argument("--control", type=Path, help="JSON file read again every 0.1 s")
    args = parser.parse_args(argv)
    relay = Relay(args.listen, args.target, delay=args.delay_ms / 1000, loss=args.loss)
    relay.start()
    where = _where(args.listen, None if isinstance(args.listen, str) else relay.port)
    print(f"relay {where} -> {_where(args.target)}, {args.delay_ms} ms each way",
          flush=True)  # fmt: skip
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    seen = None
    while not stopping.wait(0.1):
        if args.control is None:
            continue
        try:
            text = args.control.read_text()
        except OSError:
            continue
        if text != seen:
            seen = text
            try:
                settings = json.loads(text)
                relay.configure(delay=float(settings.get("delay_ms", 0)) / 1000,
                                loss=float(settings.get("loss", 0)))  # fmt: skip
            except (ValueError, TypeError, AttributeError) as exc:
                print(f"relay: ignoring {args.control}: {exc}", file=sys.stderr, flush=True)
    relay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
