"""Workflow search routes of the HTTP API (docs/workflow-search.md).

GET  /v1/workflows                     a page of workflows, newest first, filtered:
                                       ?status= &name= &attr=NAME=VALUE (repeatable;
                                       also NAME>=V, NAME>V, NAME<=V, NAME<V)
                                       &created_after= &created_before= &limit= &cursor=
GET  /v1/workflows/counts              counts by status and by name, the same filters
POST /v1/workflows/bulk/{operation}    cancel, pause, resume or retry by filter (body);
                                       "dry_run": true counts and samples, changing nothing

Every filter is checked before anything is read: a bad one is 400 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, WorkflowState, parse
from statekeeper.http.operations import Answer, Body, Operation, Param, path_param, query_params
from statekeeper.http.responses import model_response
from statekeeper.workflows.attributes import parse_expressions
from statekeeper.workflows.bulk import DEFAULT_BATCH, MAX_BATCH, OPERATIONS
from statekeeper.workflows.search import FIRST_PAGE, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

TIME = "ISO-8601 (UTC unless it names an offset) or Unix seconds"


class SearchFilters(BaseModel):
    """Query parameters of ``GET /v1/workflows`` and ``/v1/workflows/counts`` (others,
    but ``attr``, are ignored)."""

    status: str | None = Field(default=None, description="Only workflows with this status.")
    name: str | None = Field(default=None, description="Only workflows of this name.")
    created_after: str | None = Field(
        default=None, description=f"Only workflows created at or after this time: {TIME}."
    )
    created_before: str | None = Field(
        default=None, description=f"Only workflows created before this time: {TIME}."
    )


class ListOptions(SearchFilters):
    limit: int = Field(default=100, ge=1, le=1000, description="Workflows per page, 1 to 1000.")
    cursor: str | None = Field(
        default=None, description="The cursor of the previous page: the page after it."
    )


ATTR = Param(
    "attr",
    "query",
    "A searchable attribute filter, repeatable (all must hold): NAME=VALUE, or NAME>=VALUE, "
    "NAME>VALUE, NAME<=VALUE, NAME<VALUE for a number or timestamp; the value is read as "
    "the attribute's kind.",
    {"type": "array", "items": {"type": "string", "maxLength": 1200}, "maxItems": 8},
)


class WorkflowSummary(Reply):
    id: str = Field(description="The workflow id.")
    name: str = Field(description="The workflow's name.")
    status: WorkflowState = Field(description="Its status.")
    created_at: float = Field(description="Unix time it was started.")
    updated_at: float = Field(description="Unix time it last changed.")


class WorkflowPage(Reply):
    """A page of workflows, newest first."""

    items: list[WorkflowSummary] = Field(description="The workflows of this page.")
    cursor: str | None = Field(description="The next page's cursor; null on the last page.")


class WorkflowCounts(Reply):
    """How many workflows match the filters."""

    total: int = Field(description="Every matching workflow.")
    by_status: dict[str, int] = Field(description="Per status (every status, zeros too).")
    by_name: dict[str, int] = Field(description="Per workflow name that has any.")


class BulkRequest(BaseModel):
    """The body of ``POST /v1/workflows/bulk/{operation}``: its filters (at least one,
    or ``all``) and how to run it. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(default=None, description="Only workflows with this status.")
    name: str | None = Field(default=None, description="Only workflows of this name.")
    attributes: dict[str, Any] | None = Field(
        default=None,
        description="Attribute filters: a value (equality) or bounds "
        '{"gt"|"gte"|"lt"|"lte": value} per attribute name.',
    )
    created_after: str | float | None = Field(default=None, description=f"{TIME}.")
    created_before: str | float | None = Field(default=None, description=f"{TIME}.")
    dry_run: bool = Field(default=False, description="Count and sample only; change nothing.")
    batch: int = Field(
        default=DEFAULT_BATCH, ge=1, le=MAX_BATCH, description="Workflows per batch."
    )
    all: bool = Field(default=False, description="Act on every workflow (no filter given).")


class BulkOutcome(Reply):
    """What a bulk operation matched and did."""

    operation: str = Field(description="cancel, pause, resume or retry.")
    dry_run: bool = Field(description="Whether nothing was changed.")
    matched: int = Field(description="Workflows the filters selected.")
    changed: int = Field(description="Workflows the operation applied to.")
    skipped: int = Field(description="Matched workflows it did not apply to (e.g. finished).")
    sample: list[str] = Field(description="The first matched ids, newest first.")


class SearchRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        bad = Answer("A malformed filter, named")
        # Eight attribute filters of up to 1,200 characters can make a URL past the
        # server's limit (32 KiB): the server answers 414 before the route runs.
        long_url = Answer("The URL is longer than the server takes")
        operation = path_param("operation", f"One of {', '.join(OPERATIONS)}.", max_length=20)
        return [
            Operation(
                "GET", "/v1/workflows", self.list,
                "Workflows newest first, filtered by status, name, attributes and time",
                {200: Answer("A page of workflows", WorkflowPage), 400: bad, 414: long_url},
                (*query_params(ListOptions), ATTR),
            ),
            Operation(
                "GET", "/v1/workflows/counts", self.counts,
                "How many workflows match the filters, by status and by name",
                {200: Answer("The counts", WorkflowCounts), 400: bad, 414: long_url},
                (*query_params(SearchFilters), ATTR),
            ),
            Operation(
                "POST", "/v1/workflows/bulk/{operation}", self.bulk,
                "Cancel, pause, resume or retry every workflow the filters select "
                "(dry_run: count and sample only)",
                {200: Answer("What was matched and done", BulkOutcome), 400: bad},
                (operation,),
                Body("The filters and options", BulkRequest, required=True),
            ),
        ]  # fmt: skip

    def _filters(self, request: Request, model: type[SearchFilters]) -> dict[str, Any]:
        options = parse(model, dict(request.query_params), "the query")
        found = options.model_dump(exclude_none=True)
        attrs = request.query_params.getlist("attr")
        if attrs:
            found["attributes"] = parse_expressions(attrs)
        return found

    async def list(self, request: Request) -> Response:
        found = self._filters(request, ListOptions)
        limit = found.pop("limit")
        cursor = found.pop("cursor", None)
        before = FIRST_PAGE if cursor is None else decode_cursor(cursor)
        rows = await self.app.workflows.list(
            limit=limit + 1 if limit < 1000 else limit, before=before, **found
        )
        page = rows[:limit]
        more = len(rows) > limit or len(page) == 1000
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
        return model_response(WorkflowPage.model_validate({"items": page, "cursor": next_cursor}))

    async def counts(self, request: Request) -> Response:
        counted = await self.app.workflows.counts(**self._filters(request, SearchFilters))
        return model_response(WorkflowCounts.model_validate(counted))

    async def bulk(self, request: Request) -> Response:
        operation: str = request.path_params["operation"]
        _, value = await read_json(request, self.config.max_body_bytes, required=True)
        body = parse(BulkRequest, value, "the body")
        result = await self.app.workflows.bulk(
            operation, status=body.status, name=body.name, attributes=body.attributes,
            created_after=body.created_after, created_before=body.created_before,
            dry_run=body.dry_run, batch=body.batch, all_workflows=body.all,
        )  # fmt: skip
        return model_response(BulkOutcome.model_validate(result.to_dict()))
