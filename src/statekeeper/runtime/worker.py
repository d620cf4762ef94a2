"""The worker: leases messages for every consumer and runs them, until told to stop.

Per consumer, one loop keeps up to ``concurrency`` messages in hand: it leases as
many as there are free slots (waiting for messages when there are none), runs
each in a task with a heartbeat that extends its lease, and settles it: ack with
the handler's result, or fail with its error. On stop it leases no more, lets the
messages in hand finish within a grace period, and gives back (releases) those
that do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from statekeeper.errors import ErrorRecord, LeaseLost, StatekeeperError, ValidationError
from statekeeper.logs import correlation
from statekeeper.observability import metrics, tracing
from statekeeper.observability.tracing import TRACEPARENT
from statekeeper.queues import Message, Queue
from statekeeper.runtime.consumer import Consumer
from statekeeper.workflows.engine import Workflows
from statekeeper.workflows.runner import WorkflowRunner

log = logging.getLogger("statekeeper.worker")

_BATCH = 10  # most messages leased in one round trip
_ERROR_PAUSE = 1.0  # after a storage error, before leasing again


class Worker:
    """Runs ``consumers`` (each on the queue ``queue_of`` its name gives) and the
    workflows of ``workflows``; a supervised service (``name``, ``run(stopping)``)."""

    name = "worker"

    def __init__(
        self,
        consumers: list[Consumer],
        queue_of: Callable[[str], Queue],
        workflows: Workflows | None = None,
        *,
        grace: float = 30.0,
        poll: float = 1.0,
    ) -> None:
        self.consumers = consumers
        self._queue_of = queue_of
        self.workflows = workflows
        self.grace = grace
        self.poll = poll
        self._stopping = asyncio.Event()
        self.processed = 0
        self.failed = 0
        self.workflow_runner: WorkflowRunner | None = None

    def stop(self) -> None:
        """Lease nothing more; finish (or give back) what is in hand, then return from run."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """Work until ``stop()`` (or ``stopping`` is set); then lease nothing more, and
        finish or give back what is in hand within the grace."""
        watcher = None
        if stopping is not None:
            watcher = asyncio.create_task(stopping.wait())
            watcher.add_done_callback(lambda _: self.stop())
        flows = self.workflows
        if not self.consumers and flows is None:
            log.warning("worker has no consumers or workflows to run")
        loops = [asyncio.create_task(self._consume(c)) for c in self.consumers]
        if flows is not None:  # also with none registered: some may be defined later
            self.workflow_runner = WorkflowRunner(flows, poll=self.poll, grace=self.grace)
            loops.append(asyncio.create_task(self.workflow_runner.run(self._stopping)))
        log.info("worker started", extra={"queues": [c.queue for c in self.consumers]})
        try:
            await asyncio.gather(*loops)
        finally:
            if watcher is not None:
                watcher.cancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        log.info("worker stopped", extra={"processed": self.processed, "failed": self.failed})

    async def _consume(self, consumer: Consumer) -> None:
        queue = self._queue_of(consumer.queue)
        in_hand: set[asyncio.Task[None]] = set()
        stop = asyncio.create_task(self._stopping.wait())
        try:
            while not self.stopping:
                free = consumer.concurrency - len(in_hand)
                if free <= 0:
                    await asyncio.wait([*in_hand, stop], return_when=asyncio.FIRST_COMPLETED)
                    continue
                messages = await self._lease(queue, min(free, _BATCH), stop)
                for message in messages:
                    task = asyncio.create_task(self._handle(consumer, queue, message))
                    in_hand.add(task)
                    task.add_done_callback(in_hand.discard)
        finally:
            stop.cancel()
            await self._drain(consumer, in_hand)

    async def _lease(self, queue: Queue, count: int, stop: asyncio.Task[bool]) -> list[Message]:
        receive = asyncio.create_task(queue.receive(count, wait=self.poll))
        await asyncio.wait([receive, stop], return_when=asyncio.FIRST_COMPLETED)
        if not receive.done():
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receive
            # A receive cancelled in flight may still have leased messages; they come
            # back when their lease ends, as after any crash.
            return []
        try:
            return receive.result()
        except StatekeeperError as error:
            log.warning(
                "leasing failed; retrying",
                exc_info=error,
                extra={"queue": queue.name, "error": error.message},
            )
            await asyncio.sleep(_ERROR_PAUSE)
            return []

    async def _drain(self, consumer: Consumer, in_hand: set[asyncio.Task[None]]) -> None:
        if not in_hand:
            return
        log.info(
            "waiting for messages in hand",
            extra={"queue": consumer.queue, "count": len(in_hand), "grace": self.grace},
        )
        _, late = await asyncio.wait(set(in_hand), timeout=self.grace)
        for task in late:
            task.cancel()  # the handler is interrupted; _handle gives the message back
        if late:
            await asyncio.wait(late, timeout=5.0)

    async def _handle(self, consumer: Consumer, queue: Queue, message: Message) -> None:
        parent = (message.attributes or {}).get(TRACEPARENT)
        with (
            correlation(message.correlation_id or message.id),
            tracing.span(
                f"process {queue.name}", parent=parent if isinstance(parent, str) else None,
                kind="consumer", attributes={"statekeeper.message_id": message.id,
                                             "statekeeper.attempt": message.attempt},
            ),
        ):  # fmt: skip
            started = time.perf_counter()
            heartbeat = asyncio.create_task(self._heartbeat(queue, message))
            try:
                result = await consumer.call(message)
            except asyncio.CancelledError:
                heartbeat.cancel()
                with contextlib.suppress(StatekeeperError):
                    await asyncio.shield(message.release())
                log.info("message given back", extra=self._fields(message))
                metrics.message_handled(
                    queue.namespace, queue.name, "given_back", None, message.attempt
                )
                raise
            except Exception as error:
                heartbeat.cancel()
                retryable = not isinstance(error, consumer.non_retryable)
                await self._failed(
                    consumer, queue, message, error, retryable=retryable, began=started
                )
                return
            heartbeat.cancel()
            ran = time.perf_counter() - started
            try:
                await message.ack(result)
            except ValidationError as error:
                # The handler ran but its result cannot be stored: running it again would
                # not change that, so the message fails once, for good, with the reason.
                reason = ErrorRecord.made(
                    "ResultNotStored", f"the handler's result cannot be stored: {error.message}"
                )
                await self._failed(consumer, queue, message, reason, retryable=False, began=started)
                return
            except LeaseLost:
                log.warning(
                    "message finished after its lease was lost", extra=self._fields(message)
                )
                metrics.lease_lost(queue.namespace, "message")
                metrics.message_handled(
                    queue.namespace, queue.name, "lease_lost", ran, message.attempt
                )
                return
            except StatekeeperError as error:
                metrics.message_handled(
                    queue.namespace, queue.name, "unsettled", ran, message.attempt
                )
                log.error(
                    "message processed but not acknowledged; it will be redelivered",
                    exc_info=error,
                    extra={**self._fields(message), "error": error.message},
                )
                return
            self.processed += 1
            metrics.message_handled(queue.namespace, queue.name, "acked", ran, message.attempt)
            log.info(
                "message processed",
                extra={
                    **self._fields(message),
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

    async def _failed(
        self,
        consumer: Consumer,
        queue: Queue,
        message: Message,
        error: Exception | ErrorRecord,
        *,
        retryable: bool,
        began: float,
    ) -> None:
        self.failed += 1
        ran = time.perf_counter() - began
        try:
            state = await message.fail(error, retryable=retryable)
        except StatekeeperError as settle_error:
            lost = isinstance(settle_error, LeaseLost)
            if lost:
                metrics.lease_lost(queue.namespace, "message")
            outcome = "lease_lost" if lost else "unsettled"
            metrics.message_handled(queue.namespace, queue.name, outcome, ran, message.attempt)
            log.error(
                "message failed and its failure was not recorded; it will be redelivered",
                exc_info=settle_error,
                extra={**self._fields(message), "error": settle_error.message},
            )
            return
        outcome = "dead_lettered" if state == "dead" else "retried"
        metrics.message_handled(queue.namespace, queue.name, outcome, ran, message.attempt)
        log.log(
            logging.ERROR if state == "dead" else logging.WARNING,
            "message dead-lettered" if state == "dead" else "message failed; will retry",
            exc_info=error
            if isinstance(error, BaseException) and not isinstance(error, consumer.expected)
            else None,
            extra={**self._fields(message), "error": _describe(error)},
        )

    async def _heartbeat(self, queue: Queue, message: Message) -> None:
        interval = max(0.05, queue.config.visibility_timeout / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await message.extend()
            except LeaseLost:
                log.warning("lease lost while processing", extra=self._fields(message))
                return
            except StatekeeperError as error:
                log.warning(
                    "heartbeat failed",
                    exc_info=error,
                    extra={**self._fields(message), "error": error.message},
                )

    @staticmethod
    def _fields(message: Message) -> dict[str, object]:
        return {"queue": message.queue, "message_id": message.id, "attempt": message.attempt}


def _describe(error: Exception | ErrorRecord) -> str:
    return str(error if isinstance(error, ErrorRecord) else ErrorRecord.of(error))
