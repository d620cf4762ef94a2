"""Sagas: compensations collected as steps succeed, run in reverse when the saga fails
(``async with ctx.saga() as saga``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from statekeeper.errors import ErrorRecord, NonDeterminismError
from statekeeper.queues.policy import Retry
from statekeeper.workflows.signals import (
    OUTAGES,
    Cancelled,
    CheckpointFailed,
    Compensated,
    CompensationFailed,
    GiveBack,
    StepFailed,
    Superseded,
    Suspend,
    TimedOut,
    Unreadable,
)
from statekeeper.workflows.signatures import Errors, SagaStepCall

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext

COMPENSATION_RETRY = Retry(max_attempts=10, initial_interval=1.0, backoff_rate=2.0, max_delay=60.0)


class Saga:
    """Compensations collected as saga steps succeed, run in reverse on failure.

    Each compensation is a journaled, retried step given the forward step's result.
    The workflow then ends ``compensated`` with the original error kept; a
    compensation that fails for good ends it ``failed``, naming both errors.
    """

    def __init__(self, ctx: WorkflowContext) -> None:
        self._ctx = ctx
        self._undo: list[tuple[Callable[..., Any], Any]] = []

    @property
    def step(self) -> SagaStepCall:
        """``await saga.step(fn, *args, compensate=undo, retry=, timeout=, ...)``: a
        ``ctx.step`` whose ``undo(result)`` runs if the saga fails (typed by
        ``SagaStepCall``)."""
        return cast(SagaStepCall, self._run_step)  # as in WorkflowContext.step

    async def _run_step(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        compensate: Callable[..., Any] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
        **kwargs: Any,
    ) -> Any:
        result = await self._ctx.step(
            fn, *args, retry=retry, timeout=timeout, non_retryable=non_retryable, **kwargs
        )
        if compensate is not None:
            self._undo.append((compensate, result))
        return result

    async def __aenter__(self) -> Saga:
        self._ctx.sagas_open += 1
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ctx.sagas_open -= 1
        if error is None or isinstance(
            error,
            Suspend
            | Superseded
            | Unreadable
            | GiveBack
            | TimedOut
            | asyncio.CancelledError
            | CheckpointFailed,
        ):
            return  # done, or this run merely ends: nothing to undo
        if isinstance(error, OUTAGES):
            return  # the database failed, not a step: the run ends and is tried again
        if isinstance(error, NonDeterminismError):
            return  # the code changed under a recorded run: a bug to fix, not to undo
        ctx = self._ctx
        ctx.compensating = True
        failures: list[str] = []
        for undo, result in reversed(self._undo):
            try:
                await ctx.step(undo, result, retry=COMPENSATION_RETRY)
            except StepFailed as failed:
                failures.append(str(failed))
        ctx.compensating = False
        if isinstance(error, Cancelled):
            if failures:
                raise CompensationFailed(f"cancelled; compensation failed: {'; '.join(failures)}")
            raise error
        original = error.error if isinstance(error, StepFailed) else ErrorRecord.of(error)
        if failures:
            raise CompensationFailed(f"{original}; compensation failed: {'; '.join(failures)}")
        raise Compensated(original) from error
