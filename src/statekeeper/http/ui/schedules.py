"""The dashboard's schedule pages, on ``app.schedules`` (what ``/v1/schedules`` uses):

- ``/ui/schedules``: the schedules by id, a page at a time: spec, workflow, paused or
  not, the last run started (and the fire time it was for) and the next fire time;
- ``/ui/schedules/{id}``: one schedule's definition and state, its next fire times and
  the status of its last run, with three actions: pause, resume and trigger now
  (``POST /ui/schedules/{id}/pause|resume|trigger``: a form with the session's CSRF
  token; done, the browser is sent back to the schedule with ``?done=``).
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.errors import WorkflowNotFound
from statekeeper.http.ui.shell import Shell, text_arg, to
from statekeeper.schedules.model import Schedule, check_schedule_id
from statekeeper.schedules.policy import fire_time_of

SCHEDULES_PAGE = 50
NEXT_FIRES = 10
# What ``?done=`` may say after an action (any other value says nothing).
DONE = {
    "paused": "Paused: it fires nothing until resumed.",
    "resumed": "Resumed: it fires again from its first fire time after now.",
    "triggered": "Triggered: a run was started now.",
    "held": "Triggered, but no run started: its overlap policy skipped or buffered the fire.",
}


class SchedulePages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        shell = self.shell
        return [
            shell.route("/ui/schedules", self.list_page),
            shell.route("/ui/schedules/{id}", self.schedule_page),
            shell.route("/ui/schedules/{id}/pause", self.pause, ("POST",)),
            shell.route("/ui/schedules/{id}/resume", self.resume, ("POST",)),
            shell.route("/ui/schedules/{id}/trigger", self.trigger, ("POST",)),
        ]

    async def list_page(self, request: Request, session: str) -> Response:
        after = text_arg(request, "after", 200)
        found = await self.shell.app.schedules.list(after=after, limit=SCHEDULES_PAGE + 1)
        rows = [_row(schedule) for schedule in found[:SCHEDULES_PAGE]]
        following = found[SCHEDULES_PAGE - 1].id if len(found) > SCHEDULES_PAGE else None
        return self.shell.page(
            "schedules.html", session, title="Schedules", current="/ui/schedules", rows=rows,
            next_page=None if following is None
            else "/ui/schedules?" + urllib.parse.urlencode({"after": following}),
        )  # fmt: skip

    async def schedule_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        id = check_schedule_id(request.path_params["id"])
        schedule = await app.schedules.get(id)
        fires = await app.schedules.next_fire_times(id, NEXT_FIRES)
        last_status = None
        if schedule.last_run_id is not None:
            try:
                last_status = (await app.workflows.status(schedule.last_run_id)).status
            except WorkflowNotFound:  # purged since
                last_status = "purged"
        return self.shell.page(
            "schedules_one.html", session, title=f"Schedule {id}", current="/ui/schedules",
            schedule=_row(schedule), fires=fires, last_status=last_status,
            done=DONE.get(text_arg(request, "done")),
        )  # fmt: skip

    async def pause(self, request: Request, session: str) -> Response:
        return await self._act(request, session, "paused")

    async def resume(self, request: Request, session: str) -> Response:
        return await self._act(request, session, "resumed")

    async def trigger(self, request: Request, session: str) -> Response:
        return await self._act(request, session, "triggered")

    async def _act(self, request: Request, session: str, done: str) -> Response:
        """Check the form (CSRF), then the id, then do the action and go back."""
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        schedules = self.shell.app.schedules
        id = check_schedule_id(request.path_params["id"])
        if done == "paused":
            await schedules.pause(id)
        elif done == "resumed":
            await schedules.resume(id)
        elif await schedules.trigger(id) is None:
            done = "held"
        return to(f"/ui/schedules/{urllib.parse.quote(id, safe='')}?done={done}")


def _row(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the pages show it."""
    last = schedule.last_run_id
    return {
        **schedule.to_dict(),
        "spec_text": spec_text(schedule.spec.to_dict()),
        "last_fire_at": None if last is None else fire_time_of(last.replace("@manual-", "@")),
        "manual": last is not None and "@manual-" in last,
    }


def spec_text(spec: dict[str, Any]) -> str:
    """A spec in words: ``cron 0 9 * * 1-5 (Europe/Paris)``, ``every 90 s``, ``once at ...``."""
    if "cron" in spec:
        return f"cron {spec['cron']} ({spec.get('timezone', 'UTC')})"
    if "every" in spec:
        every = float(spec["every"])
        for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
            if every >= seconds and every % seconds == 0:
                return f"every {every / seconds:g} {unit}"
        return f"every {every:g} s"
    at = spec.get("at")
    if isinstance(at, int | float):
        return "once at " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return "-"
