"""HTTP routes that run workflows on other code: forking a run from a journal position,
and moving runs to another application version (docs/workflow-code-changes.md).

POST /v1/workflows/{name}/{id}/fork   {"from_position": N, "new_id": ...} -> 202, Location
POST /v1/workflow-versions/move       {"from_version", "to_version", "name", "id"}
                                      -> 200 {"moved": count}

Bodies are decoded strictly (unknown fields refused) and every name, id and version is
checked before anything is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import WorkflowNotFound
from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, Workflow, parse
from statekeeper.http.operations import Answer, Body, Operation, path_param
from statekeeper.http.responses import model_response
from statekeeper.http.workflows import workflow_location
from statekeeper.identifiers import MAX_WORKFLOW_ID, WORKFLOW_ID_RULE, check_workflow_name
from statekeeper.workflows.versions import VERSION_RULE

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig


class ForkRequest(BaseModel):
    """The body of ``POST /v1/workflows/{name}/{id}/fork``."""

    model_config = ConfigDict(extra="forbid")

    from_position: int = Field(
        strict=True,
        ge=1,
        description="The journal position (from 1) the new run executes from: the "
        "entries before it are copied and replayed.",
    )
    new_id: str | None = Field(
        default=None, description=f"The new run's id ({WORKFLOW_ID_RULE}); default: a new one."
    )


class MoveVersionRequest(BaseModel):
    """The body of ``POST /v1/workflow-versions/move``."""

    model_config = ConfigDict(extra="forbid")

    from_version: str | None = Field(
        default=None,
        description=f"Move the unfinished runs of this version ({VERSION_RULE}); may be "
        "left out with an id (that run, from any version).",
    )
    to_version: str = Field(description="The version they move to.")
    name: str | None = Field(default=None, description="Only runs of this workflow.")
    id: str | None = Field(default=None, description="Only this run.")


class VersionsMoved(Reply):
    """How many runs moved to another version."""

    moved: int = Field(description="The unfinished runs that moved.")
    to_version: str = Field(description="The version they run on now.")


class WorkflowVersionRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        name = path_param(
            "name", f"A workflow of the app: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID
        )
        run = path_param("id", f"The workflow id: {WORKFLOW_ID_RULE}.", max_length=MAX_WORKFLOW_ID)
        return [
            Operation(
                "POST",
                "/v1/workflows/{name}/{id}/fork",
                self.fork,
                "Start a new run of a workflow's name and input that replays its journal "
                "before a position and executes from there",
                {
                    202: Answer("Forked: the new run", Workflow, ("Location",)),
                    400: Answer("Malformed body, name, id or position"),
                    404: Answer("No workflow of that name and id"),
                    409: Answer("The new id is taken"),
                    413: Answer("Body too large"),
                },
                (name, run),
                Body("Where to fork from", ForkRequest, required=True),
            ),
            Operation(
                "POST",
                "/v1/workflow-versions/move",
                self.move,
                "Move unfinished runs to another application version",
                {
                    200: Answer("Moved", VersionsMoved),
                    400: Answer("Malformed body, version, name or id"),
                    404: Answer("No workflow with that id"),
                    413: Answer("Body too large"),
                },
                (),
                Body("Which runs move, and where", MoveVersionRequest, required=True),
            ),
        ]

    async def fork(self, request: Request) -> Response:
        name = check_workflow_name(request.path_params["name"])
        run: str = request.path_params["id"]
        _, body = await read_json(request, self.config.max_body_bytes, required=True)
        asked = parse(ForkRequest, body, "the body")
        flows = self.app.workflows
        if (await flows.status(run)).name != name:
            raise WorkflowNotFound(f"there is no workflow {name!r} with id {run!r}", id=run)
        forked = await flows.fork(run, asked.from_position, asked.new_id)
        status = await flows.status(forked)
        location = workflow_location(name, forked)
        reply = Workflow.model_validate({**status.to_dict(traceback=False), "status_url": location})
        return model_response(reply, 202, {"Location": location})

    async def move(self, request: Request) -> Response:
        _, body = await read_json(request, self.config.max_body_bytes, required=True)
        asked = parse(MoveVersionRequest, body, "the body")
        moved = await self.app.workflows.move_version(
            asked.from_version, asked.to_version, name=asked.name, id=asked.id
        )
        return model_response(VersionsMoved(moved=moved, to_version=asked.to_version))
