"""The overview page (``/ui``): the namespace's queues, its workflow runs by status and
the runs due (``observability/overview.py``, shared with ``statekeeper top``), and
charts of the last hour: runs started per minute, and the share of them that failed.
The charts are SVG drawn here (no script)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.constants import WORKFLOW_STATUSES
from statekeeper.http.ui.shell import Shell
from statekeeper.observability.overview import last_hour, overview


class OverviewPages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        return [self.shell.route("/ui", self.overview)]

    async def overview(self, request: Request, session: str) -> Response:
        view = await overview(self.shell.app)
        shown = {**view["workflows"]["active"], **view["workflows"]["last_hour"]}
        statuses = [status for status in WORKFLOW_STATUSES if status in shown]
        hour = await last_hour(self.shell.app)
        return self.shell.page("overview.html", session, title="Overview", current="/ui",
                               view=view, statuses=statuses, hour=hour,
                               peak=max([1, *hour["started"]]))  # fmt: skip
