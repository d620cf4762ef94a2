"""Errors of a running state machine: a name (``States.Timeout``, or a Task's own)
and a cause, as the States Language has them, and how Retry and Catch match them.

A ``StatesError`` travels up through the states until a Retry or a Catch of a
Task, Parallel or Map takes it, or the execution fails with it. Matching: a
handler's ``ErrorEquals`` names errors; ``States.ALL`` matches any error except
``States.DataLimitExceeded`` and ``States.Runtime`` (which nothing catches), and
``States.TaskFailed`` any error a task raised except ``States.Timeout``.
"""

from __future__ import annotations

import json
from typing import Any

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
DATA_LIMIT = "States.DataLimitExceeded"
NO_CHOICE = "States.NoChoiceMatched"
INTRINSIC = "States.IntrinsicFailure"
QUERY = "States.QueryEvaluationError"
TOLERATED = "States.ExceedToleratedFailureThreshold"
BRANCH_FAILED = "States.BranchFailed"
RESULT_WRITER = "States.ResultWriterFailed"
PERMISSIONS = "States.Permissions"
# Errors that no handler takes: the execution fails with them.
UNCATCHABLE = frozenset({RUNTIME, DATA_LIMIT})
# Errors that a task raises about itself rather than its code.
_NOT_TASK_FAILED = frozenset({TIMEOUT, HEARTBEAT_TIMEOUT, RUNTIME, DATA_LIMIT, QUERY})

MAX_PAYLOAD = 256 * 1024  # bytes of a state's input, output or result (UTF-8 JSON)


class StatesError(Exception):
    """A state machine's error: ``error`` (its name) and ``cause`` (a text or None)."""

    def __init__(self, error: str | None, cause: str | None = None) -> None:
        super().__init__(error, cause)
        self.error = error
        self.cause = cause

    @property
    def output(self) -> dict[str, Any]:
        """The error output a Catch passes on: ``{"Error": ..., "Cause": ...}``."""
        shown: dict[str, Any] = {"Error": self.error}
        if self.cause is not None:
            shown["Cause"] = self.cause
        return shown

    def __str__(self) -> str:
        return f"{self.error}: {self.cause}" if self.cause else str(self.error)


class DataError(StatesError):
    """An error of a state's own processing (a path, a template, an expression): the
    interpreter prefixes its cause with the state and the event that entered it."""

    def located(self, name: str, entered: int) -> StatesError:
        return StatesError(
            self.error,
            f"An error occurred while executing the state '{name}' (entered at the event id "
            f"#{entered}). {self.cause}",
        )


def matches(error_equals: list[str], error: StatesError) -> bool:
    """Whether a handler's ``ErrorEquals`` takes ``error``."""
    name = error.error or ""
    if name in UNCATCHABLE:
        return False
    for wanted in error_equals:
        if wanted in (name, ALL):
            return True
        if wanted == TASK_FAILED and name not in _NOT_TASK_FAILED:
            return True
    return False


def compact(value: Any) -> str:
    """JSON text as AWS writes it into messages: no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def size(value: Any) -> int:
    """The size in bytes of ``value`` as UTF-8 JSON."""
    return len(compact(value).encode())


def fault(error: Exception) -> StatesError:
    """A fault of the interpreter's own while running a state (not a States error), as
    the execution fails with it: States.Runtime naming what happened."""
    if isinstance(error, RecursionError):
        return StatesError(RUNTIME, "a value is nested too deeply to process")
    return StatesError(RUNTIME, f"{type(error).__name__}: {error}")
