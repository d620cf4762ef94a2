"""The bodies and parameters of the HTTP API, as pydantic models.

Routes answer with these models (``responses.model_response``), parse the bodies and
query strings they take with them (``parse``), and the OpenAPI document is built from
their JSON Schemas, so what the document says is what is served. Bodies that may be
any JSON value (a message, a workflow input, an event's data) have no model: they are
decoded strictly by ``http/body.py`` and stored as checked.

Response models allow extra fields, so a field the domain adds is passed on rather
than dropped (a test compares each model with the domain's documents).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from statekeeper.constants import MAX_DELAY_SECONDS
from statekeeper.errors import ValidationError

M = TypeVar("M", bound=BaseModel)


class Reply(BaseModel):
    """A response body; extra fields pass through."""

    model_config = ConfigDict(extra="allow")


# --- errors -----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: what went wrong (see errors.py).")
    message: str = Field(description="For people: what went wrong and what is allowed.")


class ErrorBody(BaseModel):
    """Every error answer: a 4xx for bad input, 5xx when the server cannot serve."""

    error: ErrorDetail = Field(description="What went wrong.")


# --- the ingress and request status -----------------------------------------------------

RequestState = Literal["accepted", "processing", "failed", "dead-lettered", "succeeded"]


class MessageOptions(BaseModel):
    """Query parameters of ``POST /v1/queues/{queue}/messages``."""

    model_config = ConfigDict(extra="forbid")

    delay: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        description=f"Seconds before the first delivery, 0 to {MAX_DELAY_SECONDS} (a year).",
    )
    group: str | None = Field(
        default=None, description="Messages of one group are delivered in order, one at a time."
    )
    reply_queue: str | None = Field(
        default=None, description="A queue of this app that gets the outcome as a message."
    )
    callback_url: str | None = Field(
        default=None,
        description="An http(s) URL that gets a signed POST of the outcome "
        "(public addresses only unless allowed).",
    )


class RecordedError(BaseModel):
    """An error as recorded: the type of what was raised, and its message."""

    type: str = Field(description="The error's type: the class name of what was raised.")
    message: str = Field(description="What went wrong.")


class RequestStatus(Reply):
    """Where a request accepted by the ingress stands."""

    id: str = Field(description="The request's id (its message's).")
    queue: str = Field(description="The queue it was posted to.")
    status: RequestState = Field(
        description="accepted (waiting), processing (in hand), failed (will be retried), "
        "dead-lettered, or succeeded."
    )
    status_url: str | None = Field(default=None, description="Where to follow the request.")
    attempts: int | None = Field(default=None, description="Attempts started so far.")
    enqueued_at: float | None = Field(default=None, description="Unix time it was accepted.")
    error: RecordedError | None = Field(
        default=None, description="The last attempt's error (failed, dead-lettered)."
    )
    error_unreadable: str | None = Field(
        default=None, description="Why the stored error cannot be read (a missing key)."
    )
    next_attempt_at: float | None = Field(default=None, description="Unix time of the next try.")
    dead_at: float | None = Field(default=None, description="Unix time it was dead-lettered.")
    completed_at: float | None = Field(default=None, description="Unix time it succeeded.")
    result: Any = Field(default=None, description="What its handler returned (succeeded).")
    result_error: str | None = Field(
        default=None, description="Why the stored result cannot be read (a missing key)."
    )


# --- workflows --------------------------------------------------------------------------

WorkflowState = Literal[
    "pending",
    "running",
    "sleeping",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
    "compensated",
    "timed_out",
]


class WorkflowOptions(BaseModel):
    """Query parameters of ``POST /v1/workflows/{name}`` (others are ignored)."""

    id: str | None = Field(
        default=None,
        description="The workflow id: starting it again with the same name and input "
        "answers the existing workflow, with another name or input is 409 (an "
        "Idempotency-Key header wins over it).",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds the workflow may take: past them it ends timed_out.",
    )
    queue: str | None = Field(
        default=None,
        max_length=200,
        description="A workflow queue of the app (docs/flow-control.md): the workflow is "
        "admitted within the queue's limits.",
    )
    key: str | None = Field(
        default=None,
        max_length=200,
        description="The run's key in its queue (per-key limits, debounce, singletons).",
    )
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="Higher starts first within its queue.",
    )


class Workflow(Reply):
    """A workflow's status and, once it has finished, its output or error."""

    id: str = Field(description="The workflow id.")
    name: str = Field(description="The workflow's name.")
    status: WorkflowState = Field(
        description="pending, running, sleeping or waiting until it ends: succeeded, "
        "failed, cancelled, compensated (failed after undoing its saga), or timed_out "
        "(ran past its timeout)."
    )
    output: Any = Field(default=None, description="What the workflow returned (succeeded).")
    error: RecordedError | None = Field(
        default=None,
        description="Why it ended without a result (failed, cancelled, compensated, timed_out).",
    )
    created_at: float = Field(description="Unix time it was started.")
    updated_at: float = Field(description="Unix time its status last changed.")
    read_error: str | None = Field(
        default=None, description="Why its stored output or error cannot be read (a missing key)."
    )
    paused: bool = Field(
        default=False,
        description="Paused (.../pause): it starts nothing and does not finish until resumed.",
    )
    status_url: str | None = Field(default=None, description="Where to follow it.")
    version: str | None = Field(
        default=None,
        description="The application version it runs on (null: any worker runs it).",
    )


class EventDelivered(Reply):
    """An event stored for a workflow (it reads it when it waits for it)."""

    id: str = Field(description="The workflow id.")
    event: str = Field(description="The event's name.")
    delivered: bool = Field(description="Always true: the event is stored.")


class CancelRequested(Reply):
    """A cancellation recorded: the workflow stops (compensating) when it next runs."""

    id: str = Field(description="The workflow id.")
    cancel_requested: bool = Field(description="Always true.")


class PauseChanged(Reply):
    """A workflow paused (it stops at its next durable point) or resumed."""

    id: str = Field(description="The workflow id.")
    paused: bool = Field(description="Whether it is paused now.")


class CallbackAnswer(BaseModel):
    """An outside system's answer to a workflow's callback (other fields are kept)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["success", "failure", "heartbeat"] = Field(
        description="success (with data), failure (with error), or heartbeat (still working)."
    )
    data: Any = Field(default=None, description="The result, with status success.")
    error: Any = Field(
        default=None,
        description="What went wrong, with status failure: with cause, the error's type "
        "(as a catch matches it); alone, its message.",
    )
    cause: str | None = Field(
        default=None, description="The error's message, with status failure and an error type."
    )


class CallbackAccepted(Reply):
    """A callback answer taken (a heartbeat is recorded: ``cb.last_heartbeat()``)."""

    accepted: Literal["success", "failure", "heartbeat"] = Field(description="The answer's status.")


# --- health ------------------------------------------------------------------------------


class Health(Reply):
    """The process is up."""

    status: Literal["ok"]


class Ready(Reply):
    """The process may be sent work."""

    status: Literal["ready"]


class ApiDocument(Reply):
    """The OpenAPI 3.1 document of this API."""

    openapi: str = Field(description="The OpenAPI version: 3.1.0.")
    info: dict[str, Any] = Field(description="The API's title and version.")
    paths: dict[str, Any] = Field(description="Every route, with its parameters and answers.")


# --- parsing ----------------------------------------------------------------------------


def parse(model: type[M], value: object, subject: str) -> M:
    """``value`` as ``model``; ValidationError (400) naming the field and the reason."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise ValidationError(f"{subject}: {_first_problem(exc)}") from None


def _first_problem(exc: pydantic.ValidationError) -> str:
    problem = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else str(problem["msg"])


class WorkflowQueueState(Reply):
    """A workflow queue: its limits (null: none) and its runs."""

    name: str = Field(description="The queue's name.")
    concurrency: int | None = Field(description="Runs at once, at most.")
    per_key_concurrency: int | None = Field(description="Runs of one key at once, at most.")
    rate: list[float] | None = Field(description="[n, seconds]: admissions a period, at most.")
    per_key_rate: list[float] | None = Field(description="[n, seconds] per key.")
    waiting: int = Field(description="Runs waiting for admission.")
    running: int = Field(description="Runs admitted and not ended (holding a slot).")
    admitted_recently: int = Field(description="Runs admitted in the last minute.")
    declared_here: bool = Field(description="Whether this process declares the queue.")


class WorkflowQueues(Reply):
    """The workflow queues of the namespace (flow control)."""

    queues: list[WorkflowQueueState] = Field(description="Every queue, by name.")
