"""Schedule routes of the HTTP API.

POST   /v1/schedules                    definition JSON -> 201 (409 if the id is taken)
GET    /v1/schedules                    ?after=&limit= -> the schedules by id
GET    /v1/schedules/{id}               a schedule and its state
PUT    /v1/schedules/{id}               definition JSON -> the schedule (its state kept)
DELETE /v1/schedules/{id}               -> deleted (its runs carry on)
POST   /v1/schedules/{id}/pause         -> the schedule, paused
POST   /v1/schedules/{id}/resume        -> the schedule, firing again from now
POST   /v1/schedules/{id}/trigger       -> 202 the run started (null: skipped or buffered)
POST   /v1/schedules/{id}/backfill      {"start", "end"} -> 202 the runs of [start, end)
GET    /v1/schedules/{id}/next          ?count= -> the next fire times

Bodies are decoded strictly (``http/body.py``) and checked as the Python API checks
them (``schedules.model``): a bad spec, policy, id, queue, key or priority is 400 naming
the field; a queue no process declares is 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, parse
from statekeeper.http.operations import Answer, Body, Operation, path_param, query_params
from statekeeper.http.responses import model_response
from statekeeper.schedules import Definition, Schedule, make_spec
from statekeeper.schedules.model import MAX_SCHEDULE_ID, SCHEDULE_ID_RULE, check_schedule_id
from statekeeper.schedules.policy import DEFAULT_CATCHUP
from statekeeper.workflows.flow import MAX_PRIORITY

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]
NOT_FOUND = "No schedule with that id"


class ScheduleDefinition(BaseModel):
    """What a schedule is: exactly one of cron, every or at, and the workflow it starts."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(description="The workflow to start, by name.")
    input: Any = Field(default=None, description="The input of every run: any JSON value.")
    cron: str | None = Field(default=None, description="A cron expression: m h dom mon dow.")
    timezone: str = Field(default="UTC", description="The IANA zone the cron expression reads.")
    every: float | None = Field(
        default=None, allow_inf_nan=False, description="Fire every this many seconds (at least 1)."
    )
    anchor: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Unix time the interval counts from (default: now).",
    )
    at: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Fire once, at this Unix time (in the future).",
    )
    overlap: Overlap = Field(
        default="skip", description="What a fire does while the last run is active."
    )
    jitter: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Delay each fire by up to this many seconds (deterministic).",
    )
    catchup: float = Field(
        default=DEFAULT_CATCHUP,
        allow_inf_nan=False,
        description="Fires missed within this many seconds run on recovery.",
    )
    queue: str | None = Field(
        default=None,
        description="A workflow queue its runs start in, admitted within its limits "
        "(null: each run is due at once).",
    )
    key: str | None = Field(
        default=None, description="The runs' key in the queue (default: the queue's key rule)."
    )
    priority: int = Field(
        default=0,
        strict=True,
        description=f"The runs' priority in the queue ({-MAX_PRIORITY} to {MAX_PRIORITY}).",
    )
    paused: bool = Field(default=False, description="Created paused (POST only).")


class NewSchedule(ScheduleDefinition):
    """A schedule to create: its id and definition."""

    id: str = Field(description=f"The schedule id: {SCHEDULE_ID_RULE}.")


class ScheduleReply(Reply):
    """A schedule: its definition and its state (times are Unix seconds)."""

    id: str
    workflow: str
    input: Any = None
    spec: dict[str, Any] = Field(description="cron and timezone, every and anchor, or at.")
    overlap: Overlap
    jitter: float
    catchup: float
    queue: str | None = Field(description="The workflow queue its runs start in (null: none).")
    key: str | None = Field(description="The runs' key in the queue.")
    priority: int = Field(description="The runs' priority in the queue.")
    paused: bool
    next_fire_at: float | None = Field(description="The next nominal fire time (null: none).")
    due_at: float | None = Field(description="When a scheduler looks at it next.")
    last_run_id: str | None = Field(description="The run it started last.")
    buffered: list[str] = Field(description="Runs waiting for the last one to end.")
    created_at: float
    updated_at: float


class ScheduleList(Reply):
    schedules: list[ScheduleReply]


class ListOptions(BaseModel):
    """Query parameters of ``GET /v1/schedules``."""

    model_config = ConfigDict(extra="forbid")
    after: str = Field(default="", max_length=200, description="List ids after this one.")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many (1-1000).")


class NextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=10, ge=1, le=1000, description="How many fire times (1-1000).")


class Backfill(BaseModel):
    """The range of past fire times to start runs for: [start, end), Unix seconds."""

    model_config = ConfigDict(extra="forbid")
    start: float = Field(allow_inf_nan=False, description="The first fire time included.")
    end: float = Field(allow_inf_nan=False, description="The end (excluded; not in the future).")


class Triggered(Reply):
    id: str = Field(description="The schedule id.")
    run_id: str | None = Field(description="The run started (null: skipped or buffered).")


class Backfilled(Reply):
    id: str = Field(description="The schedule id.")
    run_ids: list[str] = Field(description="The runs of the range's fires started now.")


class Deleted(Reply):
    id: str
    deleted: bool


class FireTimes(Reply):
    id: str
    fire_times: list[float] = Field(description="The next nominal fire times, Unix seconds.")


def _definition(id: str, body: ScheduleDefinition) -> Definition:
    spec = make_spec(body.cron, timezone=body.timezone, every=body.every, anchor=body.anchor,
                     at=body.at)  # fmt: skip
    return Definition.checked(
        id, body.workflow, spec, input=body.input, overlap=body.overlap, jitter=body.jitter,
        catchup=body.catchup, queue=body.queue, key=body.key, priority=body.priority,
    )  # fmt: skip


def _reply(schedule: Schedule) -> ScheduleReply:
    return ScheduleReply.model_validate(schedule.to_dict())


class ScheduleRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        sid = path_param("id", f"The schedule id: {SCHEDULE_ID_RULE}.", max_length=MAX_SCHEDULE_ID)
        one = Answer("The schedule", ScheduleReply)
        bad = Answer("Malformed JSON, id, spec, policy, number, queue key or priority")
        missing = Answer(NOT_FOUND)

        def op(
            method: str, path: str, endpoint: Any, summary: str, answers: dict[int, Answer],
            params: tuple[Any, ...] = (sid,), body: Body | None = None,
        ) -> Operation:  # fmt: skip
            return Operation(method, path, endpoint, summary, answers, params, body)

        return [
            op("POST", "/v1/schedules", self.create, "Create a schedule",
               {201: one, 400: bad, 404: Answer("Unknown workflow or workflow queue"),
                409: Answer("The id is taken"), 413: Answer("Body too large")},
               (), Body("The schedule", NewSchedule, required=True)),
            op("GET", "/v1/schedules", self.list, "List schedules by id",
               {200: Answer("The schedules", ScheduleList), 400: bad}, query_params(ListOptions)),
            op("GET", "/v1/schedules/{id}", self.get, "A schedule and its state",
               {200: one, 400: bad, 404: missing}),
            op("PUT", "/v1/schedules/{id}", self.update,
               "Replace a schedule's definition (paused, last run and buffer kept)",
               {200: one, 400: bad, 404: Answer("No such schedule, workflow or workflow queue"),
                413: Answer("Body too large")},
               (sid,), Body("The definition", ScheduleDefinition, required=True)),
            op("DELETE", "/v1/schedules/{id}", self.delete, "Delete a schedule",
               {200: Answer("Deleted", Deleted), 400: bad, 404: missing}),
            op("POST", "/v1/schedules/{id}/pause", self.pause, "Pause a schedule",
               {200: one, 400: bad, 404: missing}),
            op("POST", "/v1/schedules/{id}/resume", self.resume,
               "Resume a schedule from its first fire after now",
               {200: one, 400: bad, 404: missing}),
            op("POST", "/v1/schedules/{id}/trigger", self.trigger,
               "Fire a schedule now, under its overlap policy",
               {202: Answer("Fired", Triggered), 400: bad, 404: missing}),
            op("POST", "/v1/schedules/{id}/backfill", self.backfill,
               "Fire once per fire time of a past range, under the overlap policy",
               {202: Answer("Fired", Backfilled), 400: bad, 404: missing,
                413: Answer("Body too large")},
               (sid,), Body("The range", Backfill, required=True)),
            op("GET", "/v1/schedules/{id}/next", self.next, "A schedule's next fire times",
               {200: Answer("Fire times", FireTimes), 400: bad, 404: missing},
               (sid, *query_params(NextOptions))),
        ]  # fmt: skip

    async def _body(self, request: Request) -> Any:
        _, value = await read_json(request, self.config.max_body_bytes, required=True)
        return value

    def _id(self, request: Request) -> str:
        return check_schedule_id(request.path_params["id"])

    async def create(self, request: Request) -> Response:
        body = parse(NewSchedule, await self._body(request), "the body")
        made = await self.app.schedules.create(_definition(body.id, body), paused=body.paused)
        return model_response(_reply(made), 201, {"Location": f"/v1/schedules/{made.id}"})

    async def list(self, request: Request) -> Response:
        options = parse(ListOptions, dict(request.query_params), "the query")
        found = await self.app.schedules.list(after=options.after, limit=options.limit)
        return model_response(ScheduleList(schedules=[_reply(s) for s in found]))

    async def get(self, request: Request) -> Response:
        return model_response(_reply(await self.app.schedules.get(self._id(request))))

    async def update(self, request: Request) -> Response:
        id = self._id(request)
        body = parse(ScheduleDefinition, await self._body(request), "the body")
        return model_response(_reply(await self.app.schedules.update(_definition(id, body))))

    async def delete(self, request: Request) -> Response:
        id = self._id(request)
        await self.app.schedules.delete(id)
        return model_response(Deleted(id=id, deleted=True))

    async def pause(self, request: Request) -> Response:
        return model_response(_reply(await self.app.schedules.pause(self._id(request))))

    async def resume(self, request: Request) -> Response:
        return model_response(_reply(await self.app.schedules.resume(self._id(request))))

    async def trigger(self, request: Request) -> Response:
        id = self._id(request)
        run = await self.app.schedules.trigger(id)
        return model_response(Triggered(id=id, run_id=run), 202)

    async def backfill(self, request: Request) -> Response:
        id = self._id(request)
        body = parse(Backfill, await self._body(request), "the body")
        runs = await self.app.schedules.backfill(id, body.start, body.end)
        return model_response(Backfilled(id=id, run_ids=runs), 202)

    async def next(self, request: Request) -> Response:
        id = self._id(request)
        options = parse(NextOptions, dict(request.query_params), "the query")
        times = await self.app.schedules.next_fire_times(id, options.count)
        return model_response(FireTimes(id=id, fire_times=times))
