"""Structured logging: a correlation id from a context variable, and two renderings.

The correlation id follows a request across awaits and tasks (a ContextVar is
copied into every task). ``configure_logging`` installs a handler on the
``statekeeper`` logger: JSON lines (for collectors), or, on a terminal, coloured
human-readable lines drawn by Rich (time, level, message, then the record's fields
and the correlation id; tracebacks drawn in full, without local variables, which may
hold secrets). Libraries embedding statekeeper may use their own handlers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console, ConsoleRenderable
from rich.logging import RichHandler
from rich.text import Text

from statekeeper.constants import ENV_LOG_FORMAT, ENV_LOG_LEVEL
from statekeeper.errors import ConfigurationError
from statekeeper.observability import tracing

correlation_id: ContextVar[str | None] = ContextVar("statekeeper_correlation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
LOG_FORMATS = ("auto", "json", "text")
_HANDLER_NAME = "statekeeper"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def correlation(value: str | None = None) -> Iterator[str]:
    """Run the block under correlation id ``value`` (a new one when None)."""
    cid = value or new_correlation_id()
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (from ``extra=``), then its correlation id, if any."""
    fields = {
        name: value
        for name, value in record.__dict__.items()
        if name not in _STANDARD and name != "correlation_id"
    }
    cid = getattr(record, "correlation_id", None) or correlation_id.get()
    if cid:
        fields["correlation_id"] = cid
    traced = tracing.ids()
    if traced is not None:  # the line belongs to a traced piece of work
        fields["trace_id"], fields["span_id"] = traced
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, correlation id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _utc_time(local: datetime) -> Text:
    """Rich hands the handler the record's local time; it is shown in UTC, as in JSON."""
    shown = local.astimezone(UTC)
    return Text(shown.strftime("%Y-%m-%dT%H:%M:%S.") + f"{shown.microsecond // 1000:03d}Z")


class ConsoleHandler(RichHandler):
    """Human-readable lines: the message, then ``field=value`` for each field."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(
            console=Console(file=stream, soft_wrap=False),
            show_path=False,
            log_time_format=_utc_time,
            omit_repeated_times=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,
            markup=False,
        )

    def render_message(self, record: logging.LogRecord, message: str) -> ConsoleRenderable:
        text = Text(message)
        for name, value in record_fields(record).items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            text.append(f" {name}=", style="dim")
            text.append(shown, style="cyan")
        text.append(f" [{record.name}]", style="dim")
        return text


class TextFormatter(logging.Formatter):
    """The console layout without colours or wrapping, for ``text`` logs to a file."""

    def format(self, record: logging.LogRecord) -> str:
        when = _utc_time(datetime.fromtimestamp(record.created)).plain
        fields = "".join(
            f" {name}={value if isinstance(value, str) else json.dumps(value, default=str)}"
            for name, value in record_fields(record).items()
        )
        line = f"{when} {record.levelname:<8} {record.getMessage()}{fields} [{record.name}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _format_of(chosen: str | None, stream: IO[str]) -> str:
    name = (chosen or os.environ.get(ENV_LOG_FORMAT) or "auto").lower()
    if name not in LOG_FORMATS:
        raise ConfigurationError(f"unknown log format {name!r}; use auto, json or text")
    if name == "auto":
        return "text" if _isatty(stream) else "json"
    return name


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def configure_logging(
    level: str | int | None = None, stream: IO[str] | None = None, format: str | None = None
) -> None:
    """Send statekeeper's logs to ``stream`` (stderr) at ``level`` (default
    STATEKEEPER_LOG_LEVEL, else INFO), as ``format`` (default STATEKEEPER_LOG_FORMAT,
    else auto): ``json`` lines, ``text`` (coloured on a terminal), or ``auto``: text
    on a terminal, JSON otherwise."""
    logger = logging.getLogger("statekeeper")
    chosen = level or os.environ.get(ENV_LOG_LEVEL, "INFO")
    if isinstance(chosen, str):
        chosen = chosen.upper()
        if chosen not in logging.getLevelNamesMapping():
            raise ConfigurationError(
                f"unknown log level {chosen.lower()!r}; use debug, info, warning or error"
            )
    target = stream or sys.stderr
    rendering = _format_of(format, target)
    logger.setLevel(chosen)
    for old in list(logger.handlers):
        if old.get_name() == _HANDLER_NAME:
            logger.removeHandler(old)
    handler: logging.Handler
    if rendering == "text" and _isatty(target):
        handler = ConsoleHandler(target)
    else:
        handler = logging.StreamHandler(target)
        handler.setFormatter(TextFormatter() if rendering == "text" else JsonFormatter())
    handler.set_name(_HANDLER_NAME)  # the one a later call replaces
    logger.addHandler(handler)
    logger.propagate = False
    # The database driver's own warnings (a pool reconnecting while the database is
    # away) go out the same way, as one record each, not as bare tracebacks.
    driver = logging.getLogger("asyncpg")
    for old in list(driver.handlers):
        if old.get_name() == _HANDLER_NAME:
            driver.removeHandler(old)
    driver.addHandler(handler)
    driver.setLevel(max(logging.WARNING, logger.level))
    driver.propagate = False
