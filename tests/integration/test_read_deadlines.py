"""``statekeeper serve``'s read deadlines and head size limit, over real sockets: heads
too large are refused with bounded memory, and pipelined requests behind a slow one
are answered in order, their deadlines running only once they are the current one.

The slow request is a real one: a message posted while the test holds the SQLite
database's write lock waits for it (the busy timeout) and is answered once it is
released. Back-pressure runs on statekeeper's own uvicorn server in this process, with
an application that reads its body late."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statekeeper.http.application import uvicorn_server
from tests.integration.certs import free_port
from tests.integration.test_serve_edge import (
    HEAD,
    TOKEN,
    Server,
    connect,
    received,
    waiting_orders,
)

DEADLINE = 0.5


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, int, Path]]:
    """A ``serve`` process on SQLite with deadlines of ``DEADLINE`` seconds."""
    db_file = tmp_path / "edge.db"
    port = free_port()
    server = Server(
        ["--log-level", "info", "serve", "--app", "edge_app:app", "--port", str(port),
         "--no-workers", "--header-timeout", str(DEADLINE)],
        f"sqlite:///{db_file}",
        {"STATEKEEPER_BODY_TIMEOUT": str(DEADLINE)},
    )  # fmt: skip
    try:
        server.wait_for("statekeeper serving")
        yield server, port, db_file
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()


def responses(data: bytes) -> list[tuple[int, dict[str, object]]]:
    """The (status, JSON body) of each response in ``data``, in order."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(fields["content-length"])
        found.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        data = rest[length:]
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_ignoring_resets(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` from a thread; the server may close the connection meanwhile."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def health(extra: bytes = b"", target: bytes = b"/healthz") -> bytes:
    return (
        b"GET " + target + b" HTTP/1.1\r\nHost: sk\r\nAuthorization: Bearer "
        + TOKEN.encode() + b"\r\n" + extra + b"Connection: close\r\n\r\n"
    )  # fmt: skip


def test_heads_too_large_are_refused(served: tuple[Server, int, Path]) -> None:
    """A 30 MB header gets 431 and the server's memory barely moves; so do many
    headers in one packet; a 100 KiB URL gets 414; a 60 KiB head is served."""
    server, port, _ = served
    before = rss_kib(server.process.pid)
    big = connect(port)
    sending = send_ignoring_resets(big, health(b"X-Big: " + b"a" * 30_000_000 + b"\r\n"))
    answer, _ = received(big, 10)
    sending.join(10)
    assert responses(answer) == [
        (431, {"error": {"code": "headers_too_large",
                         "message": "the request line and headers exceed 65536 bytes"}}),
    ]  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert rss_kib(server.process.pid) - before < 10_000

    many = connect(port)
    many.sendall(health(b"".join(b"X-Pad-%d: %s\r\n" % (i, b"b" * 1000) for i in range(100))))
    assert [status for status, _ in responses(received(many, 10)[0])] == [431]

    long_url = connect(port)
    sending = send_ignoring_resets(long_url, health(target=b"/healthz?q=" + b"c" * 100_000))
    status, body = responses(received(long_url, 10)[0])[0]
    sending.join(10)
    assert (status, body["error"]) == (
        414,
        {"code": "uri_too_long", "message": "the URL is longer than 32768 bytes"},
    )

    within = connect(port)
    within.sendall(health(b"X-Pad: " + b"d" * 60_000 + b"\r\n"))
    assert responses(received(within, 10)[0]) == [(200, {"status": "ok"})]
    server.wait_for("refusing a request head too large")
    stderr = server.stop()
    assert '"head_bytes"' in stderr and '"limit": 65536' in stderr
    for bad in ("Traceback", "unexpected error", "Exception in ASGI", "Invalid HTTP"):
        assert bad not in stderr


def test_a_request_that_is_not_http_gets_a_json_400(served: tuple[Server, int, Path]) -> None:
    """What the HTTP parser cannot read (here a Content-Length that is no number) is
    answered in the API's error shape, as JSON, and the connection closed."""
    server, port, _ = served
    malformed = connect(port)
    malformed.sendall(b"GET /healthz HTTP/1.1\r\nHost: sk\r\nContent-Length: Tcr0\r\n\r\n")
    answer, _ = received(malformed, 10)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n")
    [(status, body)] = responses(answer)
    error = body["error"]
    assert status == 400 and isinstance(error, dict) and error["code"] == "invalid_http_request"
    assert "Traceback" not in server.stop()


def post(n: int, *, close: bool = False) -> tuple[bytes, bytes]:
    """The head and the body of a request posting ``{"n": n}``."""
    body = json.dumps({"n": n}).encode()
    last = b"Connection: close\r\n" if close else b""
    return HEAD + b"Content-Length: %d\r\n" % len(body) + last + b"\r\n", body


def test_pipelined_requests_behind_a_slow_one(served: tuple[Server, int, Path]) -> None:
    """Behind a request held up (by the database's write lock) longer than the
    deadlines, a pipelined request with a pause in its head, between head and body,
    or in its body is answered after it, in order; one left unfinished gets its 408
    once the earlier answer is out, its body deadline starting then."""
    server, port, db_file = served
    lock = sqlite3.connect(db_file, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    held = time.monotonic()
    first_parts: dict[str, list[bytes]] = {}
    rest_parts: dict[str, bytes] = {}
    numbers = {"between": (1, 2), "in_body": (3, 4), "in_head": (5, 6), "unfinished": (7, 8)}
    for name, (slow, pipelined) in numbers.items():
        head, body = post(pipelined, close=True)
        whole = b"".join(post(slow))
        cut = {"between": len(head), "in_body": len(head) + 3, "in_head": 30,
               "unfinished": len(head) + 3}[name]  # fmt: skip
        first_parts[name] = [whole, (head + body)[:cut]]
        rest_parts[name] = b"" if name == "unfinished" else (head + body)[cut:]
    sockets = {name: connect(port) for name in numbers}
    for name, sock in sockets.items():
        sock.sendall(first_parts[name][0])
    time.sleep(0.1)  # the slow requests are in the application, waiting for the lock
    for name, sock in sockets.items():
        sock.sendall(first_parts[name][1])
    time.sleep(DEADLINE * 1.6)  # past both deadlines
    for name, sock in sockets.items():
        sock.sendall(rest_parts[name])
    time.sleep(0.2)
    lock.execute("ROLLBACK")
    released = time.monotonic()
    assert released - held > DEADLINE * 1.5

    answers = {name: received(sock, 10) for name, sock in sockets.items()}
    stored = {m.id: m.body for m in asyncio.run(waiting_orders(f"sqlite:///{db_file}"))}
    for name, (slow, pipelined) in numbers.items():
        data, _ = answers[name]
        got = responses(data)
        assert [status for status, _ in got][:1] == [202], (name, data)
        if name == "unfinished":
            assert [status for status, _ in got] == [202, 408]
            assert got[1][1]["error"] == {
                "code": "request_timeout",
                "message": f"the request body did not arrive within {DEADLINE:g} seconds",
            }
            assert [stored[str(got[0][1]["id"])]] == [{"n": slow}]
            assert {"n": pipelined} not in stored.values()
        else:
            assert [status for status, _ in got] == [202, 202], (name, data)
            assert [stored[str(body["id"])] for _, body in got] == [{"n": slow}, {"n": pipelined}]
    # the unfinished one's body deadline ran from the first answer, not before
    assert time.monotonic() - released > DEADLINE * 0.9
    server.wait_for('"waiting_for": "body"')
    stderr = server.stop()
    assert stderr.count('"waiting_for"') == 1
    for bad in ("Traceback", "unexpected error", "Exception in ASGI"):
        assert bad not in stderr


async def slow_reader(request: Request) -> Response:
    """Waits past the deadlines before reading its body, then says how long it was."""
    await asyncio.sleep(float(request.query_params.get("sleep", "0")))
    return JSONResponse({"read": len(await request.body())})


@pytest.fixture
def in_process() -> Iterator[int]:
    """statekeeper's uvicorn server, deadlines of ``DEADLINE``, serving ``slow_reader``."""
    server = uvicorn_server(
        Starlette(routes=[Route("/read", slow_reader, methods=["POST", "GET"])]),
        header_timeout=DEADLINE,
        body_timeout=DEADLINE,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_back_pressure_stops_the_body_clock(in_process: int) -> None:
    """A body sent at once but read by the application only after twice the body
    deadline (reading paused meanwhile: the server's doing, not the client's) is
    read whole; a pipelined head too large behind a slow request is refused after
    that request's answer."""
    body = b"x" * 1_000_000
    sock = connect(in_process)
    head = b"POST /read?sleep=%g HTTP/1.1\r\nHost: sk\r\nContent-Length: %d\r\n" % (
        DEADLINE * 2,
        len(body),
    )
    sending = send_ignoring_resets(sock, head + b"Connection: close\r\n\r\n" + body)
    answer, _ = received(sock, 10)
    sending.join(10)
    assert responses(answer) == [(200, {"read": len(body)})]

    sock = connect(in_process)
    slow = b"GET /read?sleep=%g HTTP/1.1\r\nHost: sk\r\n\r\n" % DEADLINE
    huge = b"GET /read HTTP/1.1\r\nHost: sk\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    sending = send_ignoring_resets(sock, slow + huge)
    answer, _ = received(sock, 10)
    sending.join(10)
    assert [status for status, _ in responses(answer)] == [200, 431]
