"""A consumer: a user function bound to a queue, with its concurrency and error rules."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from statekeeper.errors import ConfigurationError
from statekeeper.queues import Message

Handler = Callable[[Message], Any]


def consumer_limits(queue: str, per_group: object, whole: object) -> tuple[int | None, int | None]:
    """A consumer's flow control, checked: (per_group_concurrency, global_concurrency),
    None for one it does not declare."""
    for option, value in (("per_group_concurrency", per_group), ("global_concurrency", whole)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigurationError(
                f"queue {queue!r}: {option} must be a positive integer, got {value!r}"
            )
    return cast("int | None", per_group), cast("int | None", whole)


@dataclass(frozen=True)
class Consumer:
    """``handler(message)`` (``def`` or ``async def``) processes messages of ``queue``.

    At most ``concurrency`` run at once in one worker. Its return value is the
    message's result. An exception fails the attempt (retried per the queue's policy);
    one of ``non_retryable`` dead-letters the message at once; one of ``expected`` is
    logged without its traceback.
    """

    queue: str
    handler: Handler
    concurrency: int = 8
    non_retryable: tuple[type[BaseException], ...] = field(default=())
    # Failures that are outcomes, not faults (the handler says why): logged without
    # their traceback.
    expected: tuple[type[BaseException], ...] = field(default=())
    # (per group, whole queue) messages in hand across every worker, stored in the
    # database when the app opens (None: not declared; consumer_limits).
    limits: tuple[int | None, int | None] = (None, None)

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise ConfigurationError(f"concurrency must be an integer, got {self.concurrency!r}")
        if not 1 <= self.concurrency <= 1000:
            raise ConfigurationError(f"concurrency must be 1 to 1000, got {self.concurrency}")
        if not callable(self.handler):
            raise ConfigurationError(f"the consumer of {self.queue!r} is not callable")

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))

    async def call(self, message: Message) -> Any:
        """Run the handler: coroutines on the loop, plain functions in a thread."""
        if inspect.iscoroutinefunction(self.handler):
            return await self.handler(message)
        result = await asyncio.to_thread(self.handler, message)
        if inspect.isawaitable(result):
            return await result
        return result
