"""The queue statements that the adapters run their own way, with their arguments.

Each function returns ``(sql, args)`` for the dialect's compiled queries; the
adapters only decide how to run them (writer thread or pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statekeeper.storage.base import NewMessage, QueuedMessage
from statekeeper.storage.queries import Query
from statekeeper.storage.runner import Statement

Queries = dict[str, Query]


def _bind(queries: Queries, name: str, **values: Any) -> Statement:
    query = queries[name]
    return query.sql, query.args(**values)


def send(
    q: Queries, namespace: str, m: NewMessage, now: float, *, dedup: bool = False
) -> Statement:
    values: dict[str, Any] = {
        "id": m.id,
        "namespace": namespace,
        "queue": m.queue,
        "body": m.body,
        "attributes": m.attributes,
        "correlation_id": m.correlation_id,
        "group_id": m.group_id,
        "available_at": m.available_at,
        "now": now,
        "reply_to": m.reply_to,
    }
    if dedup:  # PostgreSQL's claim-and-send in one statement
        values.update(
            dedup_id=m.dedup_id, dedup_expires_at=m.dedup_expires_at, fingerprint=m.fingerprint
        )
        return _bind(q, "queue_send_dedup", **values)
    return _bind(q, "queue_send", **values)


def dedup_claim(q: Queries, namespace: str, m: NewMessage, now: float) -> Statement:
    return _bind(
        q,
        "queue_dedup_claim",
        namespace=namespace,
        queue=m.queue,
        dedup_id=m.dedup_id,
        message_id=m.id,
        expires_at=m.dedup_expires_at,
        fingerprint=m.fingerprint,
        now=now,
    )


def dedup_holder(q: Queries, namespace: str, queue: str, dedup_id: str | None) -> Statement:
    return _bind(q, "queue_dedup_holder", namespace=namespace, queue=queue, dedup_id=dedup_id)


def receive(
    q: Queries,
    namespace: str,
    queue: str,
    *,
    limit: int,
    lease_token: str,
    lease_end: float,
    max_attempts: int,
    now: float,
) -> Statement:
    return _bind(
        q,
        "queue_receive",
        lease_token=lease_token,
        lease_end=lease_end,
        namespace=namespace,
        queue=queue,
        now=now,
        max_attempts=max_attempts,
        limit=limit,
    )


def leased(rows: Sequence[Sequence[Any]]) -> list[QueuedMessage]:
    """What a receive leased, in enqueue order (a row with ``dead_at`` set is a lease
    that ran out on its last attempt, for the caller to dead-letter)."""
    return sorted((QueuedMessage(*row) for row in rows), key=lambda m: m.seq)


def settle(
    q: Queries, name: str, namespace: str, queue: str, id: str, lease_token: str, **values: Any
) -> Statement:
    """ack, fail, extend, release: statements on one leased message."""
    return _bind(
        q, name, namespace=namespace, queue=queue, id=id, lease_token=lease_token, **values
    )


def outbox_arrays(messages: Sequence[NewMessage]) -> dict[str, list[Any]]:
    """Messages as the parallel arrays PostgreSQL's unnest() inserts in one statement
    (a statement takes the arrays it names)."""
    return {
        "m_ids": [m.id for m in messages],
        "m_queues": [m.queue for m in messages],
        "m_bodies": [m.body for m in messages],
        "m_attributes": [m.attributes for m in messages],
        "m_correlation_ids": [m.correlation_id for m in messages],
        "m_groups": [m.group_id for m in messages],
        "m_available": [m.available_at for m in messages],
        "m_reply_to": [m.reply_to for m in messages],
    }
