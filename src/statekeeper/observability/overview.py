"""A namespace at a glance: its queues (messages by state, the oldest one's age), its
workflow runs by status (active now, created in the last hour) and the runs due now.
What ``statekeeper top`` and the dashboard's overview show; the figures are the ones
``/metrics`` reads from the database (``scrape.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statekeeper.observability.scrape import queue_counts

if TYPE_CHECKING:
    from statekeeper.app import App

HOUR = 3600.0


async def overview(app: App) -> dict[str, Any]:
    """What the view shows, as one document (``--json``)."""
    now = app.clock()
    queues = [
        {
            "queue": name, "ready": c.ready, "in_flight": c.in_flight, "delayed": c.delayed,
            "waiting": c.waiting, "dead": c.dead,
            "oldest_age": None if c.oldest_enqueued_at is None
            else round(max(0.0, now - c.oldest_enqueued_at), 3),
        }
        for name, c in await queue_counts(app)
    ]  # fmt: skip
    workflows = app.backend.workflows
    active: dict[str, int] = {}
    for status, _, count in await workflows.active_counts(app.namespace):
        active[status] = active.get(status, 0) + count
    recent = await app.workflows.counts(created_after=now - HOUR)
    due, earliest = await workflows.due_summary(app.namespace, now)
    return {
        "namespace": app.namespace,
        "at": now,
        "queues": queues,
        "workflows": {
            "active": dict(sorted(active.items())),
            "last_hour": {k: v for k, v in sorted(recent["by_status"].items()) if v},
            "due": due,
            "due_lateness": 0.0 if earliest is None else round(max(0.0, now - earliest), 3),
        },
    }


FAILED = ("failed", "timed_out")


async def last_hour(app: App) -> dict[str, Any]:
    """The runs created in each minute of the last hour (the oldest first), and how many
    of them have failed or timed out so far: the dashboard's throughput and error-rate
    charts. One range read of the runs created in the hour."""
    since = app.clock() - HOUR
    started = [0] * 60
    failed = [0] * 60
    for minute, status, count in await app.backend.workflows.created_per_minute(
        app.namespace, since
    ):
        slot = min(59, max(0, minute))
        started[slot] += count
        if status in FAILED:
            failed[slot] += count
    return {
        "since": since,
        "started": started,
        "failed": failed,
        "error_rate": [f / s if s else 0.0 for f, s in zip(failed, started, strict=True)],
    }
