"""Read deadlines and a head size limit for HTTP requests (slow and greedy clients).

uvicorn's HTTP protocol times out idle kept-alive connections only: a client that
sends its headers a byte at a time, or stops in the middle of a body, holds a
connection (and a request task) forever; and its parser keeps whatever head a
client sends, however large. The protocol here adds:

- a head deadline: from the connection, or from the first byte of a later request
  on it, the whole head must arrive within ``header_timeout``; else the connection
  is closed;
- a body deadline: from the end of the head, the whole body must arrive within
  ``body_timeout``; else the server answers 408 (unless a response has begun) and
  closes the connection, and the application sees the client as disconnected;
- head size limits: a URL of more than ``max_url_bytes`` gets 414, a request line
  and headers of more than ``max_head_bytes`` get 431; the connection is closed.
  The parser keeps a header it has not finished in memory (uvicorn the URL), so
  whole reads inside an unfinished head count as well: memory stays within the
  limit and one read.

A deadline runs only while the server waits on the client for the request it is
reading and every earlier request on the connection has been answered: a pipelined
request waits behind the one in flight (uvicorn stops reading meanwhile), and time
spent with reading paused for back-pressure is not the client's. When the earlier
response completes, the pipelined request's deadline starts afresh.

The protocol is uvicorn's httptools one (a C parser): about twice the requests per
second of its h11 one on this machine (docs/decisions/0012-http-parser-and-loop.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("statekeeper.http")

Waiting = Literal["headers", "body"]


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the limit."""


class WatchedFlow(FlowControl):
    """uvicorn's flow control, telling the protocol when reading pauses or resumes."""

    def __init__(self, transport: asyncio.Transport, changed: Callable[[], None]) -> None:
        super().__init__(transport)
        self._changed = changed

    def pause_reading(self) -> None:
        super().pause_reading()
        self._changed()

    def resume_reading(self) -> None:
        super().resume_reading()
        self._changed()


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines and a head size limit."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_head_bytes: int = 64 * 1024
    max_url_bytes: int = 32 * 1024  # less than the head: a long URL is refused as such

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the parser waits for from the client: a head, a body, or nothing
        # (idle between requests: uvicorn's keep-alive timeout applies).
        self._waiting: Waiting | None = None
        self._seconds_left = 0.0  # of the current wait, while its clock is stopped
        self._deadline: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        # The head being read: its size, as counted from the parser's callbacks (the
        # URL and every completed header) and from whole reads that fell inside it.
        self._in_message = False
        self._head_open = False
        self._heads_begun = 0
        self._head_counted = 0
        self._head_read = 0
        self._refusal: bytes | None = None  # an answer waiting for earlier responses

    # uvicorn's protocol, with the bookkeeping added

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = WatchedFlow(transport, self._sync)
        self._start("headers")

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # the connection closes once earlier requests are answered
        head_was_open, idle, begun = self._head_open, not self._in_message, self._heads_begun
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, HeadTooLarge):
                self._refuse_head()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # A head still open that began before this read, or with it, holds all of it.
        same_head = head_was_open and self._heads_begun == begun
        new_head = idle and self._heads_begun == begun + 1
        if self._head_open and (same_head or new_head):
            self._head_read += len(data)
            if self._head_read > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._head_open = True
        self._heads_begun += 1
        self._head_counted = self._head_read = 0
        # A new connection's head deadline runs from the connection, not the first byte.
        if self._waiting != "headers":
            self._start("headers")

    def on_url(self, url: bytes) -> None:
        # The parser passes every piece of the URL as it comes: its length is exact.
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            raise HeadTooLarge
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()
        self._start("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_message = False
        self._start(None)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if any
        if self._refusal is not None and self._all_answered():
            self._answer_and_close(self._refusal)
        else:
            self._sync()

    def connection_lost(self, exc: Exception | None) -> None:
        self._start(None)
        super().connection_lost(exc)

    # The deadlines

    def _start(self, waiting: Waiting | None) -> None:
        """Begin waiting for ``waiting`` with its whole time (its clock maybe stopped)."""
        self._stop_clock()
        self._waiting = waiting
        if waiting is not None:
            self._seconds_left = self.header_timeout if waiting == "headers" else self.body_timeout
        self._sync()

    def _sync(self) -> None:
        """Run the current wait's clock if the server is waiting on the client."""
        waiting_on_client = (
            self._waiting is not None
            and not self.transport.is_closing()
            and not self.flow.read_paused
            and self._reading_current_request()
        )
        if not waiting_on_client:
            self._stop_clock()
        elif self._deadline is None:
            self._armed_at = self.loop.time()
            self._deadline = self.loop.call_later(self._seconds_left, self._expired)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._seconds_left -= self.loop.time() - self._armed_at

    def _reading_current_request(self) -> bool:
        """Whether the request being read is the one to answer next."""
        if self._waiting == "headers":  # self.cycle is the request before it
            return self._all_answered()
        return not self.pipeline  # its cycle is self.cycle; queued if the pipeline holds it

    def _all_answered(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _expired(self) -> None:
        self._deadline = None
        waiting, self._waiting = self._waiting, None
        if self.transport.is_closing():
            return
        seconds = self.header_timeout if waiting == "headers" else self.body_timeout
        log.info(
            "closing a slow connection",
            extra={"client": _address(self.client), "waiting_for": waiting, "timeout": seconds},
        )
        cycle = self.cycle  # when reading a body: its request, the one being answered
        if waiting == "body" and cycle is not None:
            if not cycle.response_started:
                message = f"the request body did not arrive within {seconds:g} seconds"
                self.transport.write(_raw_error(408, "request_timeout", message))
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.transport.close()

    # The head size limit

    def _count(self, size: int) -> None:
        self._head_counted += size
        if self._head_counted > self.max_head_bytes:
            raise HeadTooLarge

    def _refuse_head(self) -> None:
        url_bytes = len(self.url)
        if url_bytes > self.max_url_bytes:
            message = f"the URL is longer than {self.max_url_bytes} bytes"
            answer = _raw_error(414, "uri_too_long", message)
        else:
            message = f"the request line and headers exceed {self.max_head_bytes} bytes"
            answer = _raw_error(431, "headers_too_large", message)
        log.info(
            "refusing a request head too large",
            extra={"client": _address(self.client), "url_bytes": url_bytes,
                   "head_bytes": max(self._head_counted, self._head_read),
                   "limit": self.max_head_bytes, "url_limit": self.max_url_bytes},
        )  # fmt: skip
        self._head_open = False
        self._start(None)
        if self._all_answered():
            self._answer_and_close(answer)
        else:  # answered after the requests before it, in order
            self._refusal = answer
            self.flow.pause_reading()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (a malformed request line,
        header or length), in the API's error shape: JSON, like every other answer."""
        self._answer_and_close(
            _raw_error(400, "invalid_http_request", f"the request is not valid HTTP: {msg}")
        )

    def _answer_and_close(self, answer: bytes) -> None:
        self._refusal = None
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


def _raw_error(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, _REASONS[status], len(body))
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
