"""Times of states: when a Wait wakes (Seconds, Timestamp and their path or JSONata
forms), a Task's TimeoutSeconds and HeartbeatSeconds, and how long a Retry waits
before the next attempt (IntervalSeconds, BackoffRate, MaxDelaySeconds, full jitter).
Each failure is the DataError AWS gives, with its cause."""

from __future__ import annotations

import random
from typing import Any

from statekeeper.asl import choice, dataflow
from statekeeper.asl.dataflow import Scope
from statekeeper.asl.expressions import is_expression, type_cause
from statekeeper.asl.failure import QUERY, RUNTIME, DataError, StatesError, compact, matches


def retry_delay(
    retriers: list[dict[str, Any]], attempts: list[int], error: StatesError
) -> float | None:
    """Seconds until the next attempt, or None if no retrier takes ``error`` again."""
    for index, retrier in enumerate(retriers):
        if not matches(retrier["ErrorEquals"], error):
            continue
        if attempts[index] >= retrier.get("MaxAttempts", 3):
            return None
        delay = backoff(retrier, attempts[index])
        if retrier.get("JitterStrategy") == "FULL":
            delay = random.uniform(0, delay)
        attempts[index] += 1
        return delay
    return None


def backoff(retrier: dict[str, Any], retries: int) -> float:
    """Seconds before retry ``retries + 1`` by ``retrier`` (IntervalSeconds, BackoffRate,
    MaxDelaySeconds; without jitter)."""
    interval = float(retrier.get("IntervalSeconds", 1))
    delay = interval * float(retrier.get("BackoffRate", 2.0)) ** retries
    if "MaxDelaySeconds" in retrier:
        delay = min(delay, float(retrier["MaxDelaySeconds"]))
    return delay


def wake_jsonpath(state: dict[str, Any], data: Any, scope: Scope, now: float) -> float:
    if "Seconds" in state:
        return now + float(state["Seconds"])
    if "Timestamp" in state:
        return _instant(state["Timestamp"], "Timestamp", None)
    if "SecondsPath" in state:
        path = state["SecondsPath"]
        value = dataflow.field_path(path, data, scope, "SecondsPath")
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(
                RUNTIME,
                f"The SecondsPath parameter cannot be parsed as a long value: {path} == "
                f"{_shown(value)}",
            )
        if value < 0:
            raise DataError(
                RUNTIME,
                f"The SecondsPath parameter references a negative value: {path} == {value}",
            )
        return now + value
    path = state["TimestampPath"]
    value = dataflow.field_path(path, data, scope, "TimestampPath")
    return _instant(value, "TimestampPath", path)


def _instant(value: Any, field_name: str, path: str | None) -> float:
    moment = choice.timestamp(value)
    if moment is None:
        where = f": {path} == {_shown(value)}" if path else f": {_shown(value)}"
        raise DataError(
            RUNTIME,
            f"The {field_name} parameter does not reference a valid ISO-8601 extended offset "
            f"date-time format string{where}",
        )
    return moment.timestamp()


def wake_jsonata(state: dict[str, Any], seen: dict[str, Any], now: float) -> float:
    if "Seconds" in state:
        value = state["Seconds"]
        if isinstance(value, str):
            value = dataflow.evaluate(value, seen, "Seconds")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            text = state["Seconds"]
            if not is_expression(text):
                raise DataError(
                    QUERY, f"Seconds must be a non-negative integer, got {_shown(text)}"
                )
            raise DataError(QUERY, type_cause(text, "Seconds", "integer", value))
        return now + float(value)
    value = state["Timestamp"]
    if is_expression(value):
        value = dataflow.evaluate(value, seen, "Timestamp")
    moment = choice.timestamp(value)
    if moment is None:
        raise DataError(
            QUERY,
            "The Timestamp field does not reference a valid ISO-8601 extended offset "
            f"date-time format string: {_shown(value)}",
        )
    return moment.timestamp()


def seconds(state: dict[str, Any], field_name: str, seen: dict[str, Any]) -> float | None:
    value = state.get(field_name)
    if value is None:
        return None
    if isinstance(value, str):
        value = dataflow.evaluate(value, seen, field_name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataError(QUERY, f"{field_name} must be a positive integer, got {_shown(value)}")
    return float(value)


def fixed_seconds(state: dict[str, Any], field_name: str) -> float | None:
    value = state.get(field_name)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else None


def seconds_path(state: dict[str, Any], field_name: str, data: Any, scope: Scope) -> float | None:
    if field_name in state:
        return float(state[field_name])
    path = state.get(field_name + "Path")
    if path is None:
        return None
    value = dataflow.field_path(path, data, scope, field_name + "Path")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataError(
            RUNTIME,
            f"The {field_name}Path field refers to a value that is not a positive integer: "
            f"{path} == {_shown(value)}",
        )
    return float(value)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else compact(value)
