"""Structured logging: JSON lines carrying a correlation id from a context variable.

The correlation id follows a request across awaits and tasks (a ContextVar is
copied into every task). ``configure_logging`` installs the JSON formatter on the
``statekeeper`` logger; libraries embedding statekeeper may use their own handlers.
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
from typing import IO, Any

from statekeeper.constants import ENV_LOG_LEVEL
from statekeeper.errors import ConfigurationError

correlation_id: ContextVar[str | None] = ContextVar("statekeeper_correlation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


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


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, correlation id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name != "correlation_id":
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | int | None = None, stream: IO[str] | None = None) -> None:
    """Send statekeeper's logs to ``stream`` (stderr) as JSON lines."""
    logger = logging.getLogger("statekeeper")
    chosen = level or os.environ.get(ENV_LOG_LEVEL, "INFO")
    if isinstance(chosen, str):
        chosen = chosen.upper()
        if chosen not in logging.getLevelNamesMapping():
            raise ConfigurationError(
                f"unknown log level {chosen.lower()!r}; use debug, info, warning or error"
            )
    logger.setLevel(chosen)
    for handler in list(logger.handlers):
        if getattr(handler, "_statekeeper", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._statekeeper = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
