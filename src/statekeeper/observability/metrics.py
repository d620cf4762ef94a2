"""What this process counts and times, for Prometheus (``/metrics``).

The building blocks call the functions below where work happens (a message handled, a
workflow finished, a step run, a state operation, a database round trip, an HTTP
request); each adds to a metric of this process's registry, labelled by namespace and
by the queue, workflow or route. Prometheus scrapes every process (``serve`` and each
``worker``) and sums them: counters here are this process's own. What the database
knows for all processes at once (queue depths, active workflows, due timers) is read
when ``/metrics`` is scraped (``observability/scrape.py``).

``STATEKEEPER_METRICS=off`` turns the counting off (the functions then return at once);
``/metrics`` still answers the database's figures.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram

from statekeeper.constants import ENV_METRICS

REGISTRY = CollectorRegistry(auto_describe=True)
# Seconds: from a fraction of a millisecond (a step's checkpoint) to minutes (a handler).
LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
           30, 60, 300)  # fmt: skip
ENABLED = os.environ.get(ENV_METRICS, "on").strip().lower() not in ("off", "0", "false", "no")

MESSAGES = Counter(
    "statekeeper_messages_handled", "Messages a consumer of this process finished, by outcome "
    "(acked, retried, dead_lettered, given_back, lease_lost, unsettled: the database "
    "failed to record the outcome, so the message comes again)",
    ["namespace", "queue", "outcome"], registry=REGISTRY,
)  # fmt: skip
HANDLER = Histogram(
    "statekeeper_message_handler_seconds", "Seconds a consumer's handler took",
    ["namespace", "queue"], buckets=LATENCY, registry=REGISTRY,
)  # fmt: skip
ATTEMPTS = Histogram(
    "statekeeper_message_delivery_attempts", "Delivery attempts of the messages handled",
    ["namespace", "queue"], buckets=(1, 2, 3, 5, 10, 20, 50), registry=REGISTRY,
)  # fmt: skip
STARTED = Counter(
    "statekeeper_workflows_started", "Workflows this process started, by name",
    ["namespace", "workflow"], registry=REGISTRY,
)  # fmt: skip
FINISHED = Counter(
    "statekeeper_workflows_finished", "Workflow runs this process finished, by name and "
    "status (succeeded, failed, cancelled, compensated, timed_out)",
    ["namespace", "workflow", "status"], registry=REGISTRY,
)  # fmt: skip
STEPS = Histogram(
    "statekeeper_workflow_step_seconds", "Seconds a workflow step took (run and checkpoint)",
    ["namespace", "workflow", "outcome"], buckets=LATENCY, registry=REGISTRY,
)  # fmt: skip
RETRIES = Counter(
    "statekeeper_workflow_step_retries", "Step attempts that failed and were tried again",
    ["namespace", "workflow"], registry=REGISTRY,
)  # fmt: skip
LEASES_LOST = Counter(
    "statekeeper_leases_lost", "Leases this process lost while it held work (a workflow "
    "run, a message): another process took it over",
    ["namespace", "kind"], registry=REGISTRY,
)  # fmt: skip
STATE_OPS = Histogram(
    "statekeeper_state_operation_seconds", "Seconds a state store operation took",
    ["namespace", "operation"], buckets=LATENCY, registry=REGISTRY,
)  # fmt: skip
STATE_CONFLICTS = Counter(
    "statekeeper_state_conflicts", "State writes refused by their condition (ETag, absent)",
    ["namespace"], registry=REGISTRY,
)  # fmt: skip
ROUND_TRIPS = Histogram(
    "statekeeper_database_seconds", "Seconds a database statement or transaction took",
    ["backend", "kind"], buckets=LATENCY, registry=REGISTRY,
)  # fmt: skip
WRITER_BATCH = Histogram(
    "statekeeper_sqlite_writer_batch", "Jobs the SQLite writer committed together",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=REGISTRY,
)  # fmt: skip
REQUESTS = Counter(
    "statekeeper_http_requests", "HTTP requests answered, by route, method and status",
    ["route", "method", "status"], registry=REGISTRY,
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "statekeeper_http_request_seconds", "Seconds an HTTP request took to answer",
    ["route", "method"], buckets=LATENCY, registry=REGISTRY,
)  # fmt: skip


def message_handled(
    namespace: str, queue: str, outcome: str, seconds: float | None, attempts: int
) -> None:
    if ENABLED:
        MESSAGES.labels(namespace, queue, outcome).inc()
        if seconds is not None:
            HANDLER.labels(namespace, queue).observe(seconds)
        ATTEMPTS.labels(namespace, queue).observe(attempts)


def workflow_started(namespace: str, workflow: str, count: int = 1) -> None:
    if ENABLED:
        STARTED.labels(namespace, workflow).inc(count)


def workflow_finished(namespace: str, workflow: str, status: str) -> None:
    if ENABLED:
        FINISHED.labels(namespace, workflow, status).inc()


def step_done(namespace: str, workflow: str, outcome: str, seconds: float) -> None:
    if ENABLED:
        STEPS.labels(namespace, workflow, outcome).observe(seconds)


def step_retried(namespace: str, workflow: str) -> None:
    if ENABLED:
        RETRIES.labels(namespace, workflow).inc()


def lease_lost(namespace: str, kind: str) -> None:
    if ENABLED:
        LEASES_LOST.labels(namespace, kind).inc()


def state_operation(namespace: str, operation: str, seconds: float) -> None:
    if ENABLED:
        STATE_OPS.labels(namespace, operation).observe(seconds)


def state_conflict(namespace: str) -> None:
    if ENABLED:
        STATE_CONFLICTS.labels(namespace).inc()


def round_trip(backend: str, kind: str, seconds: float) -> None:
    if ENABLED:
        ROUND_TRIPS.labels(backend, kind).observe(seconds)


def writer_batch(size: int) -> None:
    if ENABLED:
        WRITER_BATCH.observe(size)


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    if ENABLED:
        REQUESTS.labels(route, method, str(status)).inc()
        REQUEST_SECONDS.labels(route, method).observe(seconds)
