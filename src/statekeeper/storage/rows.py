"""What storage stores and hands back: the rows of every building block, the
operations' parameters, and the intents a unit of work commits together.

Values arrive here already encoded (JSON bytes, or sealed envelopes); times are Unix
seconds from the app's clock. Named tuples where a row is built for every read (cheap),
frozen dataclasses for what callers build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from statekeeper.constants import WORKFLOW_CANCEL_REQUESTED, WORKFLOW_PAUSED

# --- state -----------------------------------------------------------------------------


class StoredItem(NamedTuple):
    """One state row as stored (a named tuple: built for every row read, so cheap)."""

    key: str
    value: bytes
    etag: str
    expires_at: float | None
    key_id: str | None


@dataclass(frozen=True, slots=True)
class PutOp:
    """Write ``value`` under ``key`` with the new ``etag``, if its condition holds.

    ``if_match``: the current ETag must equal it. ``only_if_absent``: the key must
    not exist (an expired item counts as absent). Neither: last write wins.
    """

    key: str
    value: bytes
    etag: str
    expires_at: float | None = None
    key_id: str | None = None
    if_match: str | None = None
    only_if_absent: bool = False
    kind: Literal["put"] = "put"
    # A value out of line: ``value`` is the reference, this its blob, inserted first in
    # the same transaction.
    blob: PreparedBlob | None = None


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete ``key``; with ``if_match``, only while its ETag equals it."""

    key: str
    if_match: str | None = None
    kind: Literal["delete"] = "delete"


WriteOp = PutOp | DeleteOp


# --- queues ----------------------------------------------------------------------------


class PreparedBlob(NamedTuple):
    """A blob written in the transaction that writes the row referring to it (a large
    message body): its id, namespace, size and chunks (sealed already), held in the
    database."""

    id: bytes
    namespace: str
    size: int
    chunks: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to enqueue; ``body`` is JSON bytes, ``attributes`` a JSON object text.

    With ``dedup_id``, a second message with the same id before ``dedup_expires_at``
    is dropped and reported as a duplicate of the first.
    """

    id: str
    queue: str
    body: bytes
    available_at: float
    attributes: str | None = None
    correlation_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    dedup_expires_at: float = 0.0
    fingerprint: str | None = None  # of the content, to tell a repeat from a reused dedup id
    reply_to: str | None = None  # JSON: where the outcome goes (callback URL, queue)
    # A body stored out of line: ``body`` is its reference, this its blob, inserted with
    # the message (storage ``blob_rows``).
    blob: PreparedBlob | None = None


class Duplicate(NamedTuple):
    """A message dropped by deduplication: the message that holds the dedup id."""

    id: str
    fingerprint: str | None


class QueuedMessage(NamedTuple):
    """A live message as stored (ready, leased or dead)."""

    seq: int
    id: str
    body: bytes
    attributes: str | None
    correlation_id: str | None
    group_id: str | None
    attempts: int
    available_at: float
    enqueued_at: float
    last_error: str | None
    state: str
    dead_at: float | None
    reply_to: str | None


class FoundMessage(NamedTuple):
    """Where a message is now: live (ready, leased, dead) or done (in the archive)."""

    queue: str
    state: str  # ready, leased, dead or done
    attempts: int
    enqueued_at: float
    available_at: float | None
    last_error: str | None
    dead_at: float | None
    completed_at: float | None
    result: bytes | None


class ArchivedMessage(NamedTuple):
    id: str
    body: bytes
    attributes: str | None
    correlation_id: str | None
    group_id: str | None
    attempts: int
    enqueued_at: float
    completed_at: float


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What a round of table maintenance did: tables vacuumed, tables analyzed."""

    vacuumed: list[str]
    analyzed: list[str]


class QueueCounts(NamedTuple):
    ready: int  # deliverable now (including messages whose lease ran out)
    in_flight: int  # leased, lease running
    delayed: int  # ready later (delay or backoff)
    dead: int
    waiting: int  # behind the message in hand of their group
    oldest_enqueued_at: float | None


# --- idempotency ---------------------------------------------------------------------


class IdempotencyRecord(NamedTuple):
    fingerprint: str
    state: str  # running or done
    owner: str | None
    lease_expires_at: float | None
    result: bytes | None
    expires_at: float


# --- workflows -------------------------------------------------------------------------


class WorkflowRow(NamedTuple):
    id: str
    name: str
    status: str
    input: bytes
    output: bytes | None
    error: str | None
    fence: int
    lease_expires_at: float | None
    wake_at: float | None
    waiting_for: str | None
    parent_id: str | None
    cancel_requested: int
    created_at: float
    updated_at: float
    deadline: float | None = None  # Unix time it times out (started with a timeout)
    version: str | None = None  # the application version it runs on (None: any)


class DefinitionRow(NamedTuple):
    """A workflow known by name: ``kind`` 'code' (a worker's registered function) or
    the kind of interpreter that runs ``definition``."""

    name: str
    kind: str
    definition: str | None
    revision: int
    updated_at: float


class LeasedWorkflow(NamedTuple):
    id: str
    name: str
    input: bytes
    fence: int
    cancel_requested: int
    parent_id: str | None
    created_at: float
    deadline: float | None = None  # Unix time it times out (started with a timeout)
    trace: str | None = None  # the trace context it was started in (observability/tracing)


class Finished(NamedTuple):
    """A finish's outcome: whether it ended the run (not if its lease was lost), and the
    run its end took to run next (its queue's next run, leased to the same runner)."""

    done: bool
    taken: LeasedWorkflow | None = None


class JournalEntry(NamedTuple):
    position: int
    kind: str
    name: str
    output: bytes | None
    error: str | None
    attempts: int = 1


class EventRow(NamedTuple):
    """An event as stored: global position, stream, stream version, id, type, data,
    metadata (JSON text or None), when it was recorded."""

    position: int
    stream: str
    version: int
    id: str
    type: str
    data: bytes
    metadata: str | None
    recorded_at: float


class HistoryEntry(NamedTuple):
    position: int
    kind: str
    name: str
    input: bytes | None
    output: bytes | None
    error: str | None
    attempts: int
    started_at: float | None
    finished_at: float


# --- re-sealing --------------------------------------------------------------------------


class ResealRow(NamedTuple):
    key: tuple[Any, ...]  # the row's primary key: what its updates find it by
    values: dict[str, Any]  # every column of the scan by name, the key's too
    cursor: tuple[Any, ...]  # its place in the scan's order: where the next batch starts


class ResealChange(NamedTuple):
    """Write ``new`` over ``old`` in ``field`` of the row ``key`` (for state, also its
    ``key_id``)."""

    field: str
    key: tuple[Any, ...]
    old: bytes | str
    new: bytes | str
    key_id: str | None = None


# --- the unit of work --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settlement:
    """A leased message settled under its lease token: ``ack`` (removed, archived with
    ``result`` when ``archive``), ``retry`` (ready again at ``retry_at`` with ``error``) or
    ``dead`` (dead-lettered with ``error``)."""

    outcome: Literal["ack", "retry", "dead"]
    queue: str
    id: str
    lease_token: str
    archive: bool = False
    result: bytes | None = None
    error: str | None = None
    retry_at: float = 0.0


class EntityAnswer(NamedTuple):
    """The answer to an entity call made with a call id: its result (encoded, sealed) or
    its error (an ErrorRecord's JSON, sealed), kept so a repeat gets it again."""

    call_id: str
    handler: str
    result: bytes | None
    error: str | None


class EntityLease(NamedTuple):
    """An entity leased to its writer: the lease's token (what its commits are fenced
    by), the stored state (None: never written) and its version. A writer that opened
    the state keeps the row's form in ``stored`` (sealed, or a reference to a blob), to
    write it back unchanged without sealing or storing it again."""

    token: int
    state: bytes | None
    version: int
    stored: bytes | None = None


class EntityRow(NamedTuple):
    key: str
    state: bytes | None
    version: int
    updated_at: float
    holder: str | None
    lease_until: float | None
    token: int  # the last lease's token


@dataclass(frozen=True, slots=True)
class EntityCommit:
    """A batch of calls to one entity, committed if the entity is as the batch found it
    (the lease ``token`` and the ``expected`` version; without the lease, ``leased``
    False, also no live lease on it): the state they left, how many changed it, the
    answers to record (calls with an id), and the lease kept until ``lease_until`` or
    given up (``release``)."""

    type: str
    key: str
    token: int
    expected: int
    leased: bool
    state: bytes | None
    changes: int
    answers: Sequence[EntityAnswer] = ()
    answers_expire_at: float = 0.0
    release: bool = True
    lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class WorkflowStart:
    """A workflow to create with a unit of work (pending, as ``workflows.create`` makes
    it): its id, name, sealed input, deadline, application version and the trace
    context it is started in. An id that exists already is left as it is."""

    id: str
    name: str
    input: bytes
    deadline: float | None = None
    version: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A workflow's journal entry at ``position``, written under the runner's ``fence``,
    which renews its lease to ``lease_end``."""

    workflow_id: str
    fence: int
    position: int
    kind: str
    name: str
    lease_end: float
    input: bytes | None = None
    output: bytes | None = None
    error: str | None = None
    attempts: int = 1
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its id, type, data (JSON, sealed when keys are configured)
    and metadata (JSON text, or None)."""

    id: str
    type: str
    data: bytes
    metadata: str | None = None
    # Data out of line: ``data`` is the reference, this its blob, inserted first in the
    # same transaction.
    blob: PreparedBlob | None = None


# Expected versions of an append besides an exact version (0: the stream has no event).
ANY_VERSION = -1
STREAM_EXISTS = -2


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events appended to one stream if its version is ``expected`` (an exact version,
    0 for no stream, ANY_VERSION or STREAM_EXISTS). ``versions``: the events' own stream
    versions, for recorders that choose them (``expected`` is then not checked; a taken
    version is a conflict)."""

    stream: str
    category: str
    expected: int
    events: Sequence[NewEvent]
    versions: Sequence[int] | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A subscription's checkpoint advanced to ``position`` under its lease; ``park``:
    the event at ``position`` is parked with this error after ``attempts`` attempts.
    Without a lease token, a tracking position: the row is created, or moved strictly
    up (AlreadyTracked if it holds this position or a later one)."""

    subscription: str
    lease_token: str | None
    position: int
    park: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    """Intents committed together, all or nothing, in one SQLite writer job or one
    PostgreSQL round trip: state writes (each with its condition), messages sent (the
    outbox; no deduplication ids), a message settled under its lease, a workflow step
    recorded under its fence, a subscription's checkpoint under its lease, events
    appended to streams (last: on PostgreSQL the log stays locked from then to the
    commit), and an entity's new state under its lease. A lease or fence no longer held
    applies nothing; a state condition that
    fails raises TransactionConflict, and an expected version that fails
    WrongExpectedVersion, and nothing is applied."""

    namespace: str
    now: float
    writes: Sequence[WriteOp] = ()
    messages: Sequence[NewMessage] = ()
    settle: Settlement | None = None
    step: StepRecord | None = None
    checkpoint: Checkpoint | None = None
    appends: Sequence[StreamAppend] = ()
    entity: EntityCommit | None = None
    starts: Sequence[WorkflowStart] = ()


@dataclass(frozen=True, slots=True)
class UnitResult:
    """``applied``: False when the settled message's lease or the step's fence was lost
    (then nothing was applied). ``writes``: per state write, True (applied, or a delete
    removed a visible item) or False. ``cancel_requested`` and ``paused``: what was
    asked of the workflow, read under its fence. ``first_position``: the global position
    of the first appended event (the others follow it in order); ``versions``: each
    append's stream version after it."""

    applied: bool
    writes: list[bool] = field(default_factory=list)
    cancel_requested: bool = False
    first_position: int | None = None
    versions: list[int] = field(default_factory=list)
    paused: bool = False
    entity_version: int | None = None  # the entity's version after a unit with an entity
    entity_token: int | None = None  # and its token (raised by every commit)
    # Per workflow start of the unit, whether it created its workflow (not: the id existed).
    started: list[bool] = field(default_factory=list)

    @classmethod
    def of_step(cls, request: int, writes: list[bool] | None = None) -> UnitResult:
        """An applied unit with a step, given the workflow's request read under its fence
        (sk_workflows.cancel_requested: 0, 1 a cancel, 2 a pause)."""
        return cls(
            True, writes or [], request == WORKFLOW_CANCEL_REQUESTED,
            paused=request == WORKFLOW_PAUSED,
        )  # fmt: skip
