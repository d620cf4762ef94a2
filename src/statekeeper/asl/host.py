"""What an execution needs from where it runs: a clock, durable transitions, timers
and task invocations.

The interpreter is written once; a host decides what "durable" means. ``MemoryHost``
runs everything in memory (tests, ``TestState``, synchronous express executions)
with an injectable clock whose timers can fire at once. The workflow host
(``asl.workflow``) records every transition in a workflow's journal, so a killed
worker's execution resumes at the state where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from statekeeper.asl.failure import HEARTBEAT_TIMEOUT, RUNTIME, TIMEOUT, StatesError, fault
from statekeeper.asl.tasks import TaskCall


class Host(Protocol):
    """Where an execution runs."""

    # Whether Map iterations and Parallel branches may run at the same time here.
    concurrent: bool

    def now(self) -> float:
        """Unix seconds."""
        ...

    async def transition(self, label: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work`` once: a durable host records its value, the history events it
        added and the StatesError it raised, and gives them back on a replay."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Until Unix time ``when``."""
        ...

    async def invoke(self, call: TaskCall) -> Any:
        """Run a Task's resource; its result, or StatesError."""
        ...

    async def issue_token(self, timeout: float | None) -> str:
        """A task token for a ``.waitForTaskToken`` task (valid for ``timeout`` s)."""
        ...

    async def token_result(self, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        """The output sent for ``token`` (SendTaskSuccess); StatesError for a failure
        sent (SendTaskFailure), ``States.Timeout`` when none came in ``timeout`` s, or
        ``States.HeartbeatTimeout`` when no heartbeat came for ``heartbeat`` s."""
        ...


YIELD_AFTER = 0.01  # seconds an in-memory execution runs before it lets others run
log = logging.getLogger("statekeeper.asl")


class ManualClock:
    """A clock for tests: it stands still, and a timer moves it to its time at once."""

    def __init__(self, start: float | None = None) -> None:
        self.time = time.time() if start is None else start

    def __call__(self) -> float:
        return self.time

    async def sleep_until(self, when: float) -> None:
        self.time = max(self.time, when)
        await asyncio.sleep(0)


class MemoryHost:
    """Runs an execution in memory: nothing survives the process."""

    concurrent = True

    def __init__(
        self,
        invoke: Callable[[TaskCall], Awaitable[Any]] | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        self._invoke = invoke
        self._clock = clock
        self._tokens: dict[str, asyncio.Future[Any]] = {}
        self._held_since = time.monotonic()
        self._turn_asked = False
        self._beats: dict[str, float] = {}  # when each token last beat (event-loop time)

    def _turn_given(self) -> None:
        self._held_since = time.monotonic()
        self._turn_asked = False

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    async def transition(self, label: str, work: Callable[[], Awaitable[Any]]) -> Any:
        # A machine looping through Pass states awaits nothing else: once it (its Map
        # iterations together) has held the event loop for YIELD_AFTER seconds, every
        # transition lets the loop run a turn, until a callback queued behind them marks
        # that the rest of the process has had it.
        if time.monotonic() - self._held_since > YIELD_AFTER:
            if not self._turn_asked:
                self._turn_asked = True
                asyncio.get_running_loop().call_soon(self._turn_given)
            await asyncio.sleep(0)
        try:
            return await work()
        except StatesError:
            raise
        except Exception as error:  # a fault of the interpreter fails the execution
            if not isinstance(error, RecursionError):
                log.exception("a state machine transition failed", extra={"state": label})
            raise fault(error) from None

    async def sleep_until(self, when: float) -> None:
        if self._clock is not None:
            await self._clock.sleep_until(when)
            return
        delay = when - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def invoke(self, call: TaskCall) -> Any:
        if self._invoke is None:
            raise StatesError(RUNTIME, f"no task resource is available here: {call.resource}")
        return await self._invoke(call)

    async def issue_token(self, timeout: float | None) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = asyncio.get_running_loop().create_future()
        return token

    async def token_result(self, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        waiting = self._tokens[token]
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        self._beats[token] = loop.time()
        try:
            while True:
                limits = [] if end is None else [end - loop.time()]
                if heartbeat is not None:
                    limits.append(self._beats[token] + heartbeat - loop.time())
                wait = min(limits) if limits else None
                try:
                    return await asyncio.wait_for(asyncio.shield(waiting), wait)
                except TimeoutError:
                    if end is not None and loop.time() >= end:
                        raise StatesError(
                            TIMEOUT, "The task token was not answered in time"
                        ) from None
                    if heartbeat is not None and loop.time() >= self._beats[token] + heartbeat:
                        raise StatesError(
                            HEARTBEAT_TIMEOUT, f"No heartbeat came within {heartbeat:g} seconds"
                        ) from None
        finally:
            self._tokens.pop(token, None)
            self._beats.pop(token, None)

    def beat(self, token: str) -> bool:
        """SendTaskHeartbeat; False if no task waits for ``token``."""
        if token not in self._tokens:
            return False
        self._beats[token] = asyncio.get_running_loop().time()
        return True

    def answer(self, token: str, output: Any = None, error: StatesError | None = None) -> bool:
        """SendTaskSuccess (``output``) or SendTaskFailure (``error``); False if no task
        waits for ``token``."""
        waiting = self._tokens.get(token)
        if waiting is None or waiting.done():
            return False
        if error is not None:
            waiting.set_exception(error)
        else:
            waiting.set_result(output)
        return True
