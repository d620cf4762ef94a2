"""The unit of work: intents committed together, all or nothing (``rows.UnitOfWork``).

A workflow step recorded under its runner's fence, a leased message settled under its
lease (acknowledged and archived, back to ready, or dead-lettered), state writes with
their conditions, and the messages sent with them (the outbox; a message's outcome; a
step's effects). On SQLite a unit is one job of the writer thread (so it shares the
group commit); on PostgreSQL one statement, ``sk_commit`` (migration 0008): one round
trip. A lease or fence no longer held applies nothing and answers ``applied=False``; a
state condition that fails raises TransactionConflict and applies nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from statekeeper.errors import AlreadyExists, AlreadyTracked, ConflictError, WrongExpectedVersion
from statekeeper.storage.event_unit import append_events, wrong_version
from statekeeper.storage.queries import Query
from statekeeper.storage.rows import (
    Checkpoint,
    DeleteOp,
    Duplicate,
    EntityCommit,
    NewMessage,
    PreparedBlob,
    PutOp,
    Settlement,
    StepRecord,
    StreamAppend,
    UnitOfWork,
    UnitResult,
    WorkflowStart,
    WriteOp,
)
from statekeeper.storage.runner import Statement
from statekeeper.storage.state_ops import (
    delete_outcome,
    delete_statement,
    etag_mismatch,
    key_exists,
    put_failed,
    put_statement,
    transaction_conflict,
)

Queries = dict[str, Query]
_ARCHIVED = ("id", "body", "attributes", "correlation_id", "group_id", "attempts",
             "enqueued_at", "reply_to")  # fmt: skip


class LeaseGone(Exception):
    """Inside a SQLite job: the lease or fence is no longer held; the job's savepoint
    rolls back everything it did."""


def _bind(queries: Queries, query_name: str, /, **values: Any) -> Statement:
    query = queries[query_name]
    return query.sql, query.args(**values)


# --- SQLite: one writer job -------------------------------------------------------------


def blob_rows(
    queries: Queries, blob: PreparedBlob, now: float
) -> tuple[Statement, tuple[str, list[tuple[Any, ...]]]]:
    """The statements that store ``blob`` in the transaction of the row that refers
    to it: its row, then its chunks (one statement over many argument tuples)."""
    row = _bind(
        queries, "blob_insert", blob_id=blob.id, namespace=blob.namespace, size=blob.size,
        chunks=len(blob.chunks), now=now,
    )  # fmt: skip
    chunk = queries["blob_chunk"]
    rows = [chunk.args(blob_id=blob.id, seq=n, data=data) for n, data in enumerate(blob.chunks)]
    return row, (chunk.sql, rows)


def insert_blob(conn: sqlite3.Connection, queries: Queries, blob: PreparedBlob, now: float) -> None:
    """``blob`` stored, in the transaction of the row about to refer to it."""
    row, (sql, chunks) = blob_rows(queries, blob, now)
    conn.execute(*row)
    conn.executemany(sql, chunks)


def unit_blobs(unit: UnitOfWork) -> list[PreparedBlob]:
    """The blobs a unit's rows refer to (message bodies, state values and event data
    out of line)."""
    found = [m.blob for m in unit.messages if m.blob is not None]
    found += [op.blob for op in unit.writes if isinstance(op, PutOp) and op.blob is not None]
    found += [e.blob for a in unit.appends for e in a.events if e.blob is not None]
    return found


def send_messages(
    conn: sqlite3.Connection,
    queries: Queries,
    namespace: str,
    messages: Sequence[NewMessage],
    now: float,
) -> list[Duplicate | None]:
    """Insert messages; one whose dedup id is claimed is dropped, reported by its twin."""
    outcomes: list[Duplicate | None] = []
    for m in messages:
        if m.dedup_id is not None:
            claim = _bind(
                queries, "queue_dedup_claim", namespace=namespace, queue=m.queue,
                dedup_id=m.dedup_id, message_id=m.id, expires_at=m.dedup_expires_at,
                fingerprint=m.fingerprint, now=now,
            )  # fmt: skip
            if not conn.execute(*claim).fetchall():
                holder = _bind(
                    queries, "queue_dedup_holder", namespace=namespace, queue=m.queue,
                    dedup_id=m.dedup_id,
                )  # fmt: skip
                found = conn.execute(*holder).fetchone()
                outcomes.append(Duplicate(found[0], found[1]))
                continue
        if m.blob is not None:  # its body out of line: the blob first, in this transaction
            insert_blob(conn, queries, m.blob, now)
        conn.execute(*_bind(
            queries, "queue_send", id=m.id, namespace=namespace, queue=m.queue, body=m.body,
            attributes=m.attributes, correlation_id=m.correlation_id, group_id=m.group_id,
            available_at=m.available_at, now=now, reply_to=m.reply_to,
        ))  # fmt: skip
        outcomes.append(None)
    return outcomes


def apply_writes(
    conn: sqlite3.Connection, queries: Queries, namespace: str, ops: Sequence[WriteOp], now: float
) -> list[bool]:
    """Every state write, in order; TransactionConflict names the first failed condition."""
    results: list[bool] = []
    for index, op in enumerate(ops):
        try:
            if isinstance(op, PutOp):
                if op.blob is not None:  # its value out of line: the blob first
                    insert_blob(conn, queries, op.blob, now)
                sql, args, conditional = put_statement(queries, namespace, op, now)
                row = conn.execute(sql, args).fetchone()
                if conditional and row is None:
                    raise put_failed(op)
                results.append(True)
            else:
                assert isinstance(op, DeleteOp)
                row = conn.execute(
                    *delete_statement(queries, namespace, op.key, op.if_match, now)
                ).fetchone()
                results.append(delete_outcome(row, op.key, op.if_match, now))
        except ConflictError as exc:
            raise transaction_conflict(index, op, exc) from exc
    return results


def advance(
    conn: sqlite3.Connection, queries: Queries, namespace: str, point: Checkpoint, now: float
) -> None:
    """A subscription's checkpoint advanced under its lease (LeaseGone if it is lost),
    or a tracking position moved strictly up (AlreadyTracked if it is not)."""
    if point.lease_token is None:
        tracked = conn.execute(*_bind(
            queries, "sub_track", namespace=namespace, name=point.subscription,
            position=point.position, now=now,
        )).fetchone()  # fmt: skip
        if tracked is None:
            raise already_tracked(point)
        return
    row = conn.execute(*_bind(
        queries, "sub_checkpoint", namespace=namespace, name=point.subscription,
        token=point.lease_token, position=point.position, now=now,
        parked=0 if point.park is None else 1,
    )).fetchone()  # fmt: skip
    if row is None:
        raise LeaseGone
    if point.park is not None:
        conn.execute(*_bind(
            queries, "sub_park", namespace=namespace, name=point.subscription,
            position=point.position, error=point.park, attempts=point.attempts, now=now,
        ))  # fmt: skip


def already_tracked(point: Checkpoint) -> AlreadyTracked:
    return AlreadyTracked(
        f"{point.subscription!r} has tracked position {point.position} or a later one already",
        subscription=point.subscription, position=point.position,
    )  # fmt: skip


def commit_entity(
    conn: sqlite3.Connection, queries: Queries, namespace: str, entity: EntityCommit, now: float
) -> tuple[int, int]:
    """An entity's new state if it is as its batch found it (LeaseGone if not) and the
    answers of its calls: the entity's version and token after it."""
    row = conn.execute(*_bind(
        queries, "entity_commit", **entity_values(namespace, entity, now)
    )).fetchone()  # fmt: skip
    if row is None:
        raise LeaseGone
    version = int(row[0])
    for answer in entity.answers:
        conn.execute(*_bind(
            queries, "entity_answer", namespace=namespace, type=entity.type, key=entity.key,
            call_id=answer.call_id, handler=answer.handler, result=answer.result,
            error=answer.error, version=version, expires_at=entity.answers_expire_at,
        ))  # fmt: skip
    return version, int(row[1])


def entity_values(namespace: str, entity: EntityCommit, now: float) -> dict[str, Any]:
    """The parameters of entity_commit (and of its PostgreSQL form with the answers)."""
    return dict(
        namespace=namespace, type=entity.type, key=entity.key, token=entity.token,
        expected=entity.expected, leased=entity.leased, state=entity.state,
        changes=entity.changes, release=entity.release, until=entity.lease_until, now=now,
    )  # fmt: skip


def commit_job(conn: sqlite3.Connection, queries: Queries, unit: UnitOfWork) -> UnitResult:
    """The unit in one writer job (its savepoint rolls back all of it on any failure)."""
    ns, now = unit.namespace, unit.now
    entity_version = entity_token = None
    if unit.entity is not None:
        entity_version, entity_token = commit_entity(conn, queries, ns, unit.entity, now)
    request = 0  # what was asked of the step's workflow: a cancel, a pause
    step = unit.step
    if step is not None:
        row = conn.execute(*_bind(
            queries, "wf_checkpoint_renew", lease_end=step.lease_end, now=now, namespace=ns,
            id=step.workflow_id, fence=step.fence,
        )).fetchone()  # fmt: skip
        if row is None:
            raise LeaseGone
        request = int(row[0])
        conn.execute(*_bind(
            queries, "wf_record_step", namespace=ns, id=step.workflow_id,
            position=step.position, kind=step.kind, step_name=step.name, input=step.input,
            output=step.output, error=step.error, attempts=step.attempts,
            started_at=step.started_at, now=now,
        ))  # fmt: skip
    settle = unit.settle
    if settle is not None:
        if settle.outcome == "ack":
            row = conn.execute(*_bind(
                queries, "queue_ack_delete", id=settle.id, lease_token=settle.lease_token
            )).fetchone()  # fmt: skip
            if row is None:
                raise LeaseGone
            if settle.archive:
                fields = dict(zip(_ARCHIVED, row, strict=True))
                conn.execute(*_bind(
                    queries, "queue_archive_insert", namespace=ns, queue=settle.queue, now=now,
                    result=settle.result, **fields,
                ))  # fmt: skip
        else:
            row = conn.execute(*_bind(
                queries, "queue_settle", state="dead" if settle.outcome == "dead" else "ready",
                now=now, retry_at=settle.retry_at, error=settle.error, id=settle.id,
                lease_token=settle.lease_token,
            )).fetchone()  # fmt: skip
            if row is None:
                raise LeaseGone
    writes = apply_writes(conn, queries, ns, unit.writes, now) if unit.writes else []
    started = [
        conn.execute(*start_statement(queries, ns, now, start)).fetchone() is not None
        for start in unit.starts
    ]
    if unit.messages:
        send_messages(conn, queries, ns, unit.messages, now)
    if unit.checkpoint is not None:
        advance(conn, queries, ns, unit.checkpoint, now)
    for blob in (e.blob for a in unit.appends for e in a.events if e.blob is not None):
        insert_blob(conn, queries, blob, now)  # data out of line: the blob first
    first, versions = append_events(conn, queries, ns, unit.appends, now)
    asked = UnitResult.of_step(request)
    return UnitResult(
        True, writes, asked.cancel_requested, first, versions, asked.paused, entity_version,
        entity_token, started,
    )  # fmt: skip


# --- PostgreSQL: one statement -----------------------------------------------------------


def entity_statement(queries: Queries, unit: UnitOfWork) -> Statement:
    """The unit's entity commit with its answers as one statement: the entity's
    version and token after it, or no row when the entity moved on."""
    entity = unit.entity
    assert entity is not None
    answers = entity.answers
    return _bind(
        queries, "entity_commit_answers", **entity_values(unit.namespace, entity, unit.now),
        call_ids=[a.call_id for a in answers], handlers=[a.handler for a in answers],
        results=[a.result for a in answers], errors=[a.error for a in answers],
        expires_at=entity.answers_expire_at,
    )  # fmt: skip


def only_an_entity(unit: UnitOfWork) -> bool:
    """Whether the unit holds an entity commit and nothing else."""
    return unit.entity is not None and not (
        unit.writes or unit.messages or unit.settle or unit.step or has_events(unit)
        or unit.starts
    )  # fmt: skip


def start_statement(
    queries: Queries, namespace: str, now: float, start: WorkflowStart
) -> Statement:
    """Create a workflow of a unit's ``starts`` (nothing if its id exists)."""
    return _bind(
        queries, "wf_create", namespace=namespace, id=start.id, name=start.name,
        input=start.input, parent_id=None, now=now, deadline=start.deadline,
        version=start.version, trace=start.trace,
    )  # fmt: skip


def is_empty(unit: UnitOfWork) -> bool:
    """Whether the unit holds nothing to commit."""
    return not (
        unit.writes or unit.messages or unit.settle or unit.step or unit.entity
        or unit.starts or has_events(unit)
    )  # fmt: skip


def has_events(unit: UnitOfWork) -> bool:
    """Whether the unit holds a checkpoint or appends (``events_statement`` commits it)."""
    return unit.checkpoint is not None or bool(unit.appends)


def only_a_step(unit: UnitOfWork) -> StepRecord | None:
    """The unit's step when it holds nothing else (committed by ``step_statement``)."""
    if unit.writes or unit.messages or unit.settle is not None or has_events(unit):
        return None
    return unit.step


def step_statement(queries: Queries, namespace: str, now: float, step: StepRecord) -> Statement:
    """A unit of only a step, as one plain statement: its cancel flag, NULL if the
    lease is lost."""
    return _bind(
        queries, "wf_commit_step", namespace=namespace, now=now, id=step.workflow_id,
        fence=step.fence, lease_end=step.lease_end, position=step.position, kind=step.kind,
        step_name=step.name, input=step.input, output=step.output, error=step.error,
        attempts=step.attempts, started_at=step.started_at,
    )  # fmt: skip


def only_an_ack(unit: UnitOfWork) -> Settlement | None:
    """The unit's acknowledgement when it holds nothing else (``ack_statement``)."""
    settle = unit.settle
    if unit.writes or unit.messages or unit.step is not None or settle is None:
        return None
    if has_events(unit):
        return None
    return settle if settle.outcome == "ack" else None


def ack_statement(queries: Queries, now: float, settle: Settlement) -> Statement:
    """A unit of only an acknowledgement, as one plain statement: 0 if the lease is lost."""
    return _bind(
        queries, "queue_commit_ack", id=settle.id, lease_token=settle.lease_token, now=now,
        archive=settle.archive, result=settle.result,
    )  # fmt: skip


def _append_arrays(appends: Sequence[StreamAppend]) -> dict[str, Any]:
    """sk_events_append's arrays for the appends."""
    events = [e for a in appends for e in a.events]
    explicit = any(a.versions is not None for a in appends)
    if explicit and not all(a.versions is not None for a in appends):
        raise ValueError("an append with its own versions cannot join one without")
    return {
        "streams": [a.stream for a in appends],
        "categories": [a.category for a in appends],
        "expected": [a.expected for a in appends],
        "counts": [len(a.events) for a in appends],
        "ids": [e.id for e in events],
        "types": [e.type for e in events],
        "data": [e.data for e in events],
        "metadata": [e.metadata for e in events],
        "versions": [v for a in appends for v in a.versions or ()] if explicit else None,
    }


def only_appends(unit: UnitOfWork) -> bool:
    """Whether the unit holds appends and nothing else (``append_statement``)."""
    return bool(unit.appends) and not (
        unit.writes or unit.messages or unit.settle or unit.step or unit.checkpoint
    )


def append_statement(queries: Queries, unit: UnitOfWork) -> Statement:
    """A unit of only appends, as one call of sk_events_append: the first position."""
    return _bind(
        queries, "ev_append", namespace=unit.namespace, now=unit.now,
        **_append_arrays(unit.appends),
    )  # fmt: skip


def events_statement(queries: Queries, unit: UnitOfWork) -> Statement:
    """``sk_commit_events``'s call for a unit with a checkpoint or appends."""
    point = unit.checkpoint
    values = _commit_values(unit)
    values.update(_append_arrays(unit.appends))
    return _bind(
        queries, "commit_events",
        subscription=None if point is None else point.subscription,
        sub_token=None if point is None else point.lease_token,
        checkpoint=None if point is None else point.position,
        park=None if point is None else point.park,
        park_attempts=None if point is None else point.attempts,
        **values,
    )  # fmt: skip


def version_conflict(unit: UnitOfWork, error: ConflictError) -> WrongExpectedVersion:
    """sk_events_append's SK411 (DETAIL: the append's index and the stream's version)
    as the WrongExpectedVersion naming that stream."""
    index, _, actual = str(error.details.get("detail") or "0 0").partition(" ")
    return wrong_version(unit.appends[int(index)], int(actual or 0))


def commit_statement(queries: Queries, unit: UnitOfWork) -> Statement:
    """``sk_commit``'s call for the unit."""
    return _bind(queries, "commit_unit", **_commit_values(unit))


def _commit_values(unit: UnitOfWork) -> dict[str, Any]:
    """``sk_commit``'s arguments for the unit."""
    step, settle = unit.step, unit.settle
    puts = [op if isinstance(op, PutOp) else None for op in unit.writes]
    messages = unit.messages
    return dict(
        namespace=unit.namespace,
        now=unit.now,
        step_id=None if step is None else step.workflow_id,
        fence=None if step is None else step.fence,
        position=None if step is None else step.position,
        step_kind=None if step is None else step.kind,
        step_name=None if step is None else step.name,
        step_input=None if step is None else step.input,
        step_output=None if step is None else step.output,
        step_error=None if step is None else step.error,
        attempts=None if step is None else step.attempts,
        started_at=None if step is None else step.started_at,
        lease_end=None if step is None else step.lease_end,
        settle=None if settle is None else settle.outcome,
        message_id=None if settle is None else settle.id,
        lease_token=None if settle is None else settle.lease_token,
        archive=False if settle is None else settle.archive,
        result=None if settle is None else settle.result,
        error=None if settle is None else settle.error,
        retry_at=None if settle is None else settle.retry_at,
        kinds=[op.kind for op in unit.writes],
        keys=[op.key for op in unit.writes],
        values=[p.value if p else None for p in puts],
        etags=[p.etag if p else None for p in puts],
        expires=[p.expires_at if p else None for p in puts],
        key_ids=[p.key_id if p else None for p in puts],
        if_match=[op.if_match for op in unit.writes],
        absent=[bool(p and p.only_if_absent) for p in puts],
        m_ids=[m.id for m in messages],
        m_queues=[m.queue for m in messages],
        m_bodies=[m.body for m in messages],
        m_attributes=[m.attributes for m in messages],
        m_correlation_ids=[m.correlation_id for m in messages],
        m_groups=[m.group_id for m in messages],
        m_available=[m.available_at for m in messages],
        m_reply_to=[m.reply_to for m in messages],
    )


def postgres_conflict(unit: UnitOfWork, error: ConflictError) -> ConflictError:
    """sk_state_apply's SK409/SK412 (the failed op's index as DETAIL) as the
    TransactionConflict naming that op."""
    index = int(str(error.details.get("detail") or 0))
    op = unit.writes[index]
    cause = (
        key_exists(op.key)
        if isinstance(error, AlreadyExists)
        else etag_mismatch(op.key, op.if_match)
    )
    return transaction_conflict(index, op, cause)


def check_outbox(unit: UnitOfWork) -> None:
    """Messages of a unit carry no deduplication id (``queues.send`` handles those)."""
    if any(m.dedup_id is not None for m in unit.messages):
        raise ValueError("messages of a unit of work cannot carry deduplication ids")
