"""Read deadlines for HTTP requests: slow clients are disconnected (slowloris).

uvicorn's HTTP protocol times out idle kept-alive connections only: a client that
sends its headers a byte at a time, or stops in the middle of a body, holds a
connection (and a request task) forever. The protocol here adds two deadlines:

- headers: from the connection, or from the first byte of a later request on it,
  the whole head must arrive within ``header_timeout``; else the connection is
  closed;
- body: from the end of the headers, the whole body must arrive within
  ``body_timeout``; else the server answers 408 (unless a response has begun) and
  closes the connection, and the application sees the client as disconnected.

The protocol is uvicorn's httptools one (a C parser): about twice the requests per
second of its h11 one on this machine (docs/decisions/0012-http-parser-and-loop.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("statekeeper.http")

Waiting = Literal["headers", "body"]


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the same header and body read deadlines."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # What the connection waits for from the client: a head, a body, or nothing
        # (a request is being answered, or it is idle between requests).
        self._waiting: Waiting | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm("headers")  # no-op on a new connection: its deadline runs from the start

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, waiting: Waiting) -> None:
        if self._waiting == waiting:
            return
        self._disarm()
        seconds = self.header_timeout if waiting == "headers" else self.body_timeout
        self._waiting = waiting
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting = None

    def _expired(self) -> None:
        waiting, self._waiting, self._deadline = self._waiting, None, None
        if self.transport.is_closing():
            return
        seconds = self.header_timeout if waiting == "headers" else self.body_timeout
        log.info(
            "closing a slow connection",
            extra={"client": _address(self.client), "waiting_for": waiting, "timeout": seconds},
        )
        cycle = self.cycle
        if waiting == "body" and cycle is not None and not cycle.response_started:
            self.transport.write(
                _raw_408(f"the request body did not arrive within {seconds:g} seconds")
            )
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def _raw_408(message: str) -> bytes:
    body = json.dumps({"error": {"code": "request_timeout", "message": message}}).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


def _address(client: tuple[str, int] | None) -> str | None:
    return None if client is None else f"{client[0]}:{client[1]}"


def timed_protocol(header_timeout: float, body_timeout: float) -> type[TimedHttpToolsProtocol]:
    """The protocol class for one server's deadlines (uvicorn instantiates it)."""
    return type(
        "TimedHttpToolsProtocol",
        (TimedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
