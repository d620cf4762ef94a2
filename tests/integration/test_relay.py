"""The chaos harness's relay (statekeeper/chaos/relay.py) on loopback: it delays each
direction by what it is set to, keeps every byte in order, stalls a "lost" chunk for a
retransmission timeout, and cuts its connections when stopped."""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from statekeeper.chaos.relay import RETRANSMIT, Relay, parse_listen


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server on loopback; its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def round_trips(port: int, count: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        took = []
        for n in range(count):
            started = time.perf_counter()
            conn.sendall(b"%d" % n)
            assert conn.recv(100) == b"%d" % n
            took.append(time.perf_counter() - started)
        return took


def test_each_direction_is_delayed_by_the_setting(echo: int) -> None:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", echo), delay=0.002)
    relay.start()
    try:
        slow = statistics.median(round_trips(relay.port, 30))
        relay.configure(delay=0.0)
        fast = statistics.median(round_trips(relay.port, 30))
    finally:
        relay.stop()
    assert 0.004 <= slow < 0.004 + 0.004, slow  # two delays, and little more
    assert fast < 0.002, fast


def test_bytes_arrive_whole_and_in_order(echo: int) -> None:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", echo), delay=0.0005, loss=0.05, seed=3)
    relay.start()
    payload = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()
    try:
        with socket.create_connection(("127.0.0.1", relay.port)) as conn:
            sender = threading.Thread(target=conn.sendall, args=(payload,))
            sender.start()
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                assert chunk, "the relay closed the connection early"
                received += chunk
            sender.join()
    finally:
        relay.stop()
    assert bytes(received) == payload


def test_a_lost_chunk_costs_a_retransmission_timeout(echo: int) -> None:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", echo), loss=1.0)
    relay.start()
    try:
        (took,) = round_trips(relay.port, 1)
    finally:
        relay.stop()
    assert 2 * RETRANSMIT <= took < 2 * RETRANSMIT + 0.1  # stalled each way


def test_stopping_cuts_every_connection(echo: int) -> None:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", echo))
    relay.start()
    conn = socket.create_connection(("127.0.0.1", relay.port))
    round_trips(relay.port, 1)
    relay.stop()
    conn.settimeout(5)
    with conn:
        try:
            conn.sendall(b"x")
            assert conn.recv(10) == b""
        except ConnectionError:
            pass  # reset: cut as well
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=1)


def test_a_unix_socket_reaches_a_tcp_server_and_only_its_owner_may_connect(
    echo: int, tmp_path: Path
) -> None:
    path = tmp_path / "relay.sock"
    relay = Relay(str(path), ("127.0.0.1", echo))
    relay.start()
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            conn.sendall(b"through the socket")
            assert conn.recv(100) == b"through the socket"
    finally:
        relay.stop()
    assert not path.exists()  # removed when the relay stops


def test_the_command_line_takes_unix_paths_and_refuses_bad_addresses() -> None:
    assert parse_listen("unix:/run/x.sock") == "/run/x.sock"
    assert parse_listen("10.0.0.1:5432") == ("10.0.0.1", 5432)
    for bad in ("unix:", "nowhere", "host:port"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected HOST:PORT"):
            parse_listen(bad)
