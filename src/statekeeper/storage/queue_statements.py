"""The queue statements with their arguments, built once for both adapters.

Each function returns ``(sql, args)`` for the dialect's compiled queries; the
adapters only decide how to run them (writer thread or pool).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from statekeeper.storage.base import NewMessage
from statekeeper.storage.queries import Query

Statement = tuple[str, tuple[Any, ...]]
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


def dead_letter_expired(
    q: Queries, namespace: str, queue: str, max_attempts: int, now: float
) -> Statement:
    return _bind(
        q,
        "queue_dead_letter_expired",
        namespace=namespace,
        queue=queue,
        now=now,
        max_attempts=max_attempts,
    )


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


def settle(
    q: Queries, name: str, namespace: str, queue: str, id: str, lease_token: str, **values: Any
) -> Statement:
    """ack, fail, extend, release: statements on one leased message."""
    return _bind(
        q, name, namespace=namespace, queue=queue, id=id, lease_token=lease_token, **values
    )


def redrive(
    q: Queries, namespace: str, queue: str, ids: Sequence[str] | None, now: float, *, ids_as: str
) -> Statement:
    """``ids_as``: how the dialect takes a list: ``ids`` (array) or ``ids_json`` (JSON text)."""
    if ids is None:
        return _bind(q, "queue_redrive_all", now=now, namespace=namespace, queue=queue)
    listed: Any = list(ids) if ids_as == "ids" else json.dumps(list(ids))
    return _bind(
        q, "queue_redrive_ids", now=now, namespace=namespace, queue=queue, **{ids_as: listed}
    )


def archived(
    q: Queries,
    namespace: str,
    queue: str,
    *,
    since: float,
    until: float,
    after: tuple[float, str],
    limit: int,
) -> Statement:
    return _bind(
        q,
        "queue_archived",
        namespace=namespace,
        queue=queue,
        since=since,
        until=until,
        after_time=after[0],
        after_id=after[1],
        limit=limit,
    )


def by_queue(q: Queries, name: str, namespace: str, queue: str, **values: Any) -> Statement:
    """stats, peek, purge, next_due: statements on a whole queue."""
    return _bind(q, name, namespace=namespace, queue=queue, **values)


def outbox_arrays(messages: Sequence[NewMessage]) -> dict[str, list[Any]]:
    """Messages as the parallel arrays PostgreSQL's unnest() inserts in one statement."""
    return {
        "m_ids": [m.id for m in messages],
        "m_queues": [m.queue for m in messages],
        "m_bodies": [m.body for m in messages],
        "m_attributes": [m.attributes for m in messages],
        "m_correlation_ids": [m.correlation_id for m in messages],
    }


def find(q: Queries, namespace: str, id: str) -> tuple[Statement, Statement]:
    """The live lookup, then the archive lookup, of one message."""
    return (
        _bind(q, "queue_find_live", namespace=namespace, id=id),
        _bind(q, "queue_find_archived", namespace=namespace, id=id),
    )


def found(live: Any, archived: Any) -> Any:
    """A FoundMessage from the row of either lookup (live first), or None."""
    from statekeeper.storage.base import FoundMessage

    if live is not None:
        queue, state, attempts, available_at, enqueued_at, last_error, dead_at = live
        return FoundMessage(
            queue, state, attempts, enqueued_at, available_at, last_error, dead_at, None, None
        )
    if archived is not None:
        queue, attempts, enqueued_at, completed_at, result = archived
        return FoundMessage(
            queue, "done", attempts, enqueued_at, None, None, None, completed_at, result
        )
    return None
