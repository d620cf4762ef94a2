"""Control flow of a workflow run. BaseExceptions, so ``except Exception`` in user
code cannot swallow them."""

from __future__ import annotations

from statekeeper.errors import (
    BlobUnavailable,
    DatabaseBusy,
    DatabaseUnavailable,
    ErrorRecord,
    StorageFull,
)

# What a run meets when the database (or the blob store) cannot take its records now:
# unreachable, locked for too long, or out of space. None of it is the workflow's fault.
OUTAGES = (DatabaseUnavailable, DatabaseBusy, StorageFull, BlobUnavailable)


class Suspend(BaseException):
    """End this run: the workflow sleeps until ``wake_at`` or waits for an event.
    ``stored``: the suspension is written already (the runner writes it otherwise)."""

    def __init__(
        self,
        status: str,
        wake_at: float | None,
        waiting_for: str | None = None,
        *,
        stored: bool = False,
    ):
        super().__init__(status)
        self.status = status
        self.wake_at = wake_at
        self.waiting_for = waiting_for
        self.stored = stored


class GiveBack(BaseException):
    """This process is stopping, or the workflow was paused: end the run before it
    starts new work, and give the workflow back (another runner goes on with it at once,
    or, paused, once it is resumed)."""


class CheckpointFailed(BaseException):
    """A checkpoint could not be written: the database or the blob store is down, busy
    or full (``OUTAGES``). The run stops and gives the workflow back; it goes on from
    its last checkpoint once the database takes writes again. Never a step's failure: a
    saga does not compensate, and the workflow does not fail, because of an outage."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TimedOut(BaseException):
    """The workflow's deadline passed while it ran: the run was stopped there."""


class Superseded(BaseException):
    """Another runner owns the workflow now (this one's fence is stale): stop quietly."""


class ContinueAsNew(BaseException):
    """End this run and start the workflow over from the top with ``input`` (already
    encoded), under the same id and with an empty journal (``ctx.continue_as_new``)."""

    def __init__(self, input: bytes) -> None:
        super().__init__("continue as new")
        self.input = input


class Unreadable(BaseException):
    """A recorded value (the input, a journal entry, an event) does not open with this
    process's keys: stop this run and try again later, when a fixed keyring can read it.
    Never a step failure: a saga must not compensate because of a configuration."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepFailed(Exception):
    """A step failed for good (after its retries). Recorded, so a replay raises it again.

    ``error`` is the recorded error: its ``type`` (the class name of what the step
    raised), ``message`` and ``traceback``."""

    def __init__(self, step: str, error: ErrorRecord) -> None:
        super().__init__(f"step {step!r} failed: {error}")
        self.step = step
        self.error = error

    @property
    def error_type(self) -> str:
        return self.error.type


class EventTimeout(Exception):
    """No event arrived before the wait's timeout."""


class Cancelled(BaseException):
    """The workflow was cancelled: it stops at its next new step (compensating if in a saga)."""


class ChildFailed(StepFailed):
    """A child workflow did not succeed."""


class Compensated(Exception):
    """A saga failed and every compensation ran; ``error`` is the original error."""

    def __init__(self, error: ErrorRecord) -> None:
        super().__init__(str(error))
        self.error = error


class CompensationFailed(Exception):
    """A saga failed and a compensation failed too: both are recorded."""


class CallbackFailed(Exception):
    """The outside system answered a callback with a failure; ``error`` is its answer."""

    def __init__(self, error: ErrorRecord) -> None:
        super().__init__(f"the callback answered failure: {error}")
        self.error = error
