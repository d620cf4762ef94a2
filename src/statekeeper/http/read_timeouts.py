"""Read deadlines for HTTP requests: slow clients are disconnected (slowloris).

uvicorn's h11 protocol times out idle kept-alive connections only: a client that
sends its headers a byte at a time, or stops in the middle of a body, holds a
connection (and a request task) forever. This protocol adds two deadlines:

- headers: from the connection, or from the first byte of a later request on it,
  the whole head must arrive within ``header_timeout``; else the connection is
  closed;
- body: from the end of the headers, the whole body must arrive within
  ``body_timeout``; else the server answers 408 (unless a response has begun) and
  closes the connection, and the application sees the client as disconnected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("statekeeper.http")

Waiting = Literal["headers", "body"]


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body read deadlines (see the module)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: Waiting | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have started

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm the deadline that matches what the connection is waiting for."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body")
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("headers")  # part of a request's head has arrived
        elif state is not h11.IDLE or self._waiting != "headers":
            self._disarm()

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
            self._answer_408(f"the request body did not arrive within {seconds:g} seconds")
        if cycle is not None and not cycle.response_complete:
            # The application's receive() now says http.disconnect, and what it sends
            # is dropped, as for a client that went away.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _answer_408(self, message: str) -> None:
        body = json.dumps({"error": {"code": "request_timeout", "message": message}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            data = self.conn.send(
                h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
            )
            data = (data or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            data += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        self.transport.write(data)


def _address(client: tuple[str, int] | None) -> str | None:
    return None if client is None else f"{client[0]}:{client[1]}"


def timed_protocol(header_timeout: float, body_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class for one server's deadlines (uvicorn instantiates it)."""
    return type(
        "TimedH11Protocol",
        (TimedH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
