"""The dashboard's workflow pages: runs with filters and search (``/ui/workflows``),
and a run's page (``/ui/workflows/{id}``): its status, input and output, error with
traceback, the timeline of its journal, its events and callbacks, and a diagram of its
path (``run_path.py``). While the run is active, its live part is fetched again every
second (htmx) and swapped in place; it stops once the run has ended. Actions: cancel,
retry (a failed or timed-out run), pause and resume.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from statekeeper.constants import WORKFLOW_ACTIVE, WORKFLOW_STATUSES
from statekeeper.errors import InvalidFilter
from statekeeper.http.ui.run_path import EVENT_KINDS, path_chart, timeline
from statekeeper.http.ui.shell import HEADERS, TEMPLATES, Shell, text_arg, to
from statekeeper.workflows.search import decode_cursor, encode_cursor

PAGE_SIZE = 50
MAX_ENTRIES = 200  # journal entries a run's page shows (the later ones are cut, and said so)
ACTIONS = ("cancel", "retry", "pause", "resume")


class WorkflowPages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        route = self.shell.route
        return [
            route("/ui/workflows", self.runs),
            route("/ui/workflows/{id}", self.run),
            route("/ui/workflows/{id}/live", self.live),
            route("/ui/workflows/{id}/{action}", self.act, methods=("POST",)),
        ]

    async def runs(self, request: Request, session: str) -> Response:
        workflows = self.shell.app.workflows
        wanted = text_arg(request, "id", 200)
        if wanted:  # a search by id opens the run (or says there is none)
            await workflows.run_name(wanted)
            return to(f"/ui/workflows/{urllib.parse.quote(wanted, safe='')}")
        status = text_arg(request, "status") or None
        name = text_arg(request, "name", 200) or None
        attribute = text_arg(request, "attribute")
        cursor = text_arg(request, "before")
        before = decode_cursor(cursor) if cursor else (float("inf"), "")
        rows = await workflows.list(
            status=status, name=name, limit=PAGE_SIZE + 1, before=before,
            attributes=_attribute(attribute),
        )  # fmt: skip
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        filters = {"status": status or "", "name": name or "", "attribute": attribute}
        next_page = None
        if more:
            last = rows[-1]
            query = {k: v for k, v in filters.items() if v}
            query["before"] = encode_cursor(last["created_at"], last["id"])
            next_page = "/ui/workflows?" + urllib.parse.urlencode(query)
        return self.shell.page("workflows.html", session, title="Workflows",
                               current="/ui/workflows", rows=rows, filters=filters,
                               statuses=WORKFLOW_STATUSES, next_page=next_page)  # fmt: skip

    async def run(self, request: Request, session: str) -> Response:
        id = request.path_params["id"]
        view = await self._run_view(id)
        # The input, shown once: the live part (fetched again each second) leaves it out.
        view["input"] = await self.shell.app.workflows.input(id)
        done = request.query_params.get("done", "")  # said only when it is an action
        return self.shell.page("workflow.html", session, title=f"Workflow {view['run'].id}",
                               current="/ui/workflows", done=done if done in ACTIONS else "",
                               diagrams=True, **view)  # fmt: skip

    async def live(self, request: Request, session: str) -> Response:
        """The run's live part alone (what htmx swaps in)."""
        view = await self._run_view(request.path_params["id"])
        csrf = self.shell.sessions.csrf(session)
        html = TEMPLATES.get_template("workflow_live.html").render(csrf=csrf, **view)
        return HTMLResponse(html, 200, HEADERS)

    async def act(self, request: Request, session: str) -> Response:
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        id, action = request.path_params["id"], request.path_params["action"]
        if action not in ACTIONS:
            return self.shell.problem(session, 404, f"there is no action {action[:40]!r}")
        await getattr(self.shell.app.workflows, action)(id)
        return to(f"/ui/workflows/{urllib.parse.quote(id, safe='')}?done={action}")

    async def _run_view(self, id: str) -> dict[str, Any]:
        workflows = self.shell.app.workflows
        run = await workflows.status(id)
        entries = await workflows.history(id, limit=MAX_ENTRIES + 1)
        cut = len(entries) > MAX_ENTRIES
        entries = entries[:MAX_ENTRIES]
        active = run.status in WORKFLOW_ACTIVE
        now = self.shell.app.clock()
        bars = timeline(entries, run.created_at, now if active else run.updated_at)
        return {
            "run": run, "active": active, "bars": bars, "cut": cut,
            "events": [e for e in entries if e["kind"] in EVENT_KINDS],
            "chart": path_chart(run.status, entries),
        }  # fmt: skip


def _attribute(text: str) -> dict[str, Any] | None:
    """A search attribute filter typed as ``key=value`` (the value read as JSON when it
    is JSON, else as text); None when empty."""
    if not text:
        return None
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise InvalidFilter("an attribute filter is key=value, for example customer=acme")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return {key.strip(): parsed}
