"""A statekeeper workflow as Dapr describes a workflow instance: its runtime status,
its times as RFC 3339 UTC timestamps, and its input, output and failure as the
``dapr.workflow.*`` properties (JSON text, as Dapr keeps them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statekeeper.workflows import WorkflowStatus

# statekeeper's statuses as Dapr's runtime statuses. A workflow given back by a stopping
# worker is pending again (it shows PENDING until a worker leases it); a cancelled one
# was terminated; every other unsuccessful end is a failure. A paused workflow that has
# not finished is SUSPENDED, whatever it was doing when paused.
RUNTIME_STATUS = {
    "pending": "PENDING",
    "running": "RUNNING",
    "sleeping": "RUNNING",
    "waiting": "RUNNING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "compensated": "FAILED",
    "timed_out": "FAILED",
    "cancelled": "TERMINATED",
}

INPUT = "dapr.workflow.input"
OUTPUT = "dapr.workflow.output"
ERROR_TYPE = "dapr.workflow.failure.error_type"
ERROR_MESSAGE = "dapr.workflow.failure.error_message"


SUSPENDED = "SUSPENDED"


def runtime_status(status: str, *, paused: bool = False) -> str:
    if paused and status in ("pending", "running", "sleeping", "waiting"):
        return SUSPENDED
    return RUNTIME_STATUS.get(status, "UNKNOWN")


def timestamp(unix: float) -> str:
    """``unix`` as protobuf's JSON form of a Timestamp: RFC 3339 in UTC with 0, 3 or 6
    fractional digits (what a float of seconds holds) and ``Z``."""
    moment = datetime.fromtimestamp(unix, UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def instance_document(status: WorkflowStatus, input: Any, *, has_input: bool) -> dict[str, Any]:
    """``GET /v1.0/workflows/dapr/{instanceID}``'s answer for ``status``. The failure
    is its error's type and message; its traceback stays in statekeeper (``statekeeper
    workflows describe``), as with statekeeper's own HTTP API."""
    properties: dict[str, str] = {}
    if has_input and input is not None:
        properties[INPUT] = _text(input)
    if status.status == "succeeded" and status.read_error is None:
        properties[OUTPUT] = _text(status.output)
    if status.error is not None:
        properties[ERROR_TYPE] = status.error.type
        properties[ERROR_MESSAGE] = status.error.message
    elif status.read_error is not None and status.done:  # an end this process cannot open
        properties[ERROR_TYPE] = "DecryptionError"
        properties[ERROR_MESSAGE] = status.read_error
    return {
        "instanceID": status.id,
        "workflowName": status.name,
        "createdAt": timestamp(status.created_at),
        "lastUpdatedAt": timestamp(status.updated_at),
        "runtimeStatus": runtime_status(status.status, paused=status.paused),
        "properties": properties,
    }
