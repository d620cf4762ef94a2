"""Atomic multi-key writes: ``async with app.state.transaction() as tx``.

Operations are checked and encoded as they are added (bad input fails at once,
inside the block, so nothing is applied) and sent to the backend together when
the block exits cleanly. Either every operation's condition holds and all apply,
or a TransactionConflict names the first that failed and none apply.

``tx.send(queue, body)`` is the transactional outbox: the message becomes visible
to consumers if and only if the transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from statekeeper.errors import ConfigurationError, ValidationError
from statekeeper.storage.rows import NewMessage, PutOp, StepRecord, UnitResult, WriteOp

if TYPE_CHECKING:
    from statekeeper.state.store import StateStore


class Outbox(Protocol):
    """What builds a queue's messages (a Queue), seen from the state layer."""

    name: str

    def new_message(
        self,
        body: Any,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
    ) -> NewMessage: ...


class Transaction:
    """Puts, deletes and outgoing messages of one namespace, applied all or nothing."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._ops: list[WriteOp] = []
        self._messages: list[NewMessage] = []
        self.sent: list[str] = []  # ids of the messages sent, once committed
        self._done = False
        self.etags: dict[str, str] = {}  # key -> new ETag, once committed
        self.deleted: dict[str, bool] = {}  # key -> whether it existed, once committed

    def put(
        self,
        key: str,
        value: Any,
        *,
        if_match: str | None = None,
        only_if_absent: bool = False,
        ttl: float | None = None,
    ) -> None:
        self._check_open()
        self._ops.append(
            self._store.put_op(
                key, value, if_match=if_match, only_if_absent=only_if_absent, ttl=ttl
            )
        )

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._check_open()
        self._ops.append(self._store.delete_op(key, if_match=if_match))

    def send(
        self,
        queue: str | Outbox,
        body: Any,
        *,
        delay: float | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
    ) -> None:
        """Enqueue ``body`` on ``queue`` if, and only if, this transaction commits."""
        self._check_open()
        if isinstance(queue, str):
            if self._store.outbox is None:
                raise ConfigurationError("this state store has no queues to send to")
            queue = self._store.outbox(queue)
        self._messages.append(
            queue.new_message(
                body, delay=delay, group=group, attributes=attributes, correlation=correlation
            )
        )

    async def commit(self) -> None:
        await self.commit_with(None)

    async def commit_with(self, step: StepRecord | None) -> UnitResult:
        """Commit, with a workflow's ``step`` recorded in the same transaction (its fence
        lost: nothing applied, ``applied`` False)."""
        self._check_open()
        self._done = True
        done = await self._store.apply(self._ops, self._messages, step=step)
        if done.applied:
            self.sent = [m.id for m in self._messages]
            for op, result in zip(self._ops, done.writes, strict=True):
                if isinstance(op, PutOp):
                    self.etags[op.key] = op.etag
                else:
                    self.deleted[op.key] = result
        return done

    def _check_open(self) -> None:
        if self._done:
            raise ValidationError("this transaction has already been committed or discarded")

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._done = True  # the block failed: nothing is applied
            return
        if not self._done:
            await self.commit()
