"""The ``/metrics`` page: this process's counters (``metrics.py``) and what the database
knows for every process at once, read when Prometheus scrapes.

From the database, for each namespace this process serves (the app's and its views'):
messages by state and the oldest live message's age, for the queues that hold messages
and those the process declares or consumes (one statement per queue, reading its
partial indexes); active
workflow runs by status and name; runs due now and how late the earliest is. From the
process: the Redis cache's hits, misses and errors and whether it answers. Every
figure is a few index range reads: a scrape costs what the live work costs, not what
history holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statekeeper.errors import StatekeeperError
from statekeeper.observability.metrics import REGISTRY
from statekeeper.storage.rows import QueueCounts

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
QUEUE_STATES = ("ready", "in_flight", "delayed", "waiting", "dead")


async def queue_counts(app: App) -> list[tuple[str, QueueCounts]]:
    """Each queue of the app's namespace that holds messages or that the app declares
    or consumes, with its counts, in name order."""
    queues = app.backend.queues
    names = sorted(set(await queues.held(app.namespace)) | set(app.queue_names()))
    now = app.clock()
    return [(name, await queues.stats(app.namespace, name, now)) for name in names]


class _Read(Collector):
    """Metric families read already (a scrape's database figures)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def exposition(apps: Iterable[App]) -> bytes:
    """The text of ``/metrics`` for ``apps`` (an app and its namespace views)."""
    up = GaugeMetricFamily(
        "statekeeper_database_up", "1 when this process read the database's figures for this "
        "scrape, 0 when the database did not answer (the process's own counters still do)",
    )  # fmt: skip
    try:
        families = await database_families(list(apps))
    except StatekeeperError as error:
        log.warning("metrics: the database's figures could not be read", exc_info=error,
                    extra={"error": error.message})  # fmt: skip
        families = []
    up.add_metric([], 1.0 if families else 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read([*families, up]))
    return generate_latest(REGISTRY) + generate_latest(registry)


async def database_families(apps: Sequence[App]) -> list[Metric]:
    messages = GaugeMetricFamily(
        "statekeeper_queue_messages",
        "Messages of a queue by state (ready, in_flight, delayed, waiting, dead)",
        labels=["namespace", "queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "statekeeper_queue_oldest_age_seconds",
        "Seconds since the oldest live (ready or in flight) message was enqueued",
        labels=["namespace", "queue"],
    )
    active = GaugeMetricFamily(
        "statekeeper_workflows_active",
        "Workflow runs not finished, by status (pending, running, sleeping, waiting) and name",
        labels=["namespace", "workflow", "status"],
    )
    due = GaugeMetricFamily(
        "statekeeper_workflows_due", "Workflow runs due now (timers, retries, leases run out)",
        labels=["namespace"],
    )  # fmt: skip
    late = GaugeMetricFamily(
        "statekeeper_workflows_due_lateness_seconds",
        "Seconds the earliest due workflow run has been due (0: none due)",
        labels=["namespace"],
    )
    cache = CounterMetricFamily(
        "statekeeper_cache_requests", "State reads through the Redis cache, by result",
        labels=["namespace", "result"],
    )  # fmt: skip
    cache_up = GaugeMetricFamily(
        "statekeeper_cache_up", "1 when the Redis cache answers, 0 when it does not",
        labels=["namespace"],
    )  # fmt: skip
    pool = GaugeMetricFamily(
        "statekeeper_database_pool_connections",
        "PostgreSQL connections of this process's pool, in use and idle",
        labels=["state"],
    )
    backend = apps[0].backend if apps else None
    if backend is not None and backend.dialect == "postgres":
        connections: Any = backend.pool  # type: ignore[attr-defined]
        idle = connections.get_idle_size()
        pool.add_metric(["in_use"], connections.get_size() - idle)
        pool.add_metric(["idle"], idle)
    for app in apps:
        namespace, now = app.namespace, app.clock()
        for name, counts in await queue_counts(app):
            for state in QUEUE_STATES:
                messages.add_metric([namespace, name, state], getattr(counts, state))
            age = 0.0 if counts.oldest_enqueued_at is None else now - counts.oldest_enqueued_at
            oldest.add_metric([namespace, name], max(0.0, age))
        workflows = app.backend.workflows
        for status, workflow, count in await workflows.active_counts(namespace):
            active.add_metric([namespace, workflow, status], count)
        count, earliest = await workflows.due_summary(namespace, now)
        due.add_metric([namespace], count)
        late.add_metric([namespace], 0.0 if earliest is None else max(0.0, now - earliest))
        cached = app.state.cache_stats() if app.cache_url else None
        if cached is not None:
            for result, value in (("hit", cached.hits), ("miss", cached.misses),
                                  ("error", cached.errors)):  # fmt: skip
                cache.add_metric([namespace, result], value)
            cache_up.add_metric([namespace], 1.0 if cached.available else 0.0)
    return [messages, oldest, active, due, late, cache, cache_up, pool]
