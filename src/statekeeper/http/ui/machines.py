"""The dashboard's state machine pages, on the objects of the Step Functions API
(``asl/machines.py``, ``asl/executions.py``):

- ``/ui/machines``: the machines, a page at a time (ListStateMachines), with how many
  executions each started in the last hour and how many of those failed (two counts
  of the last hour's workflows, by name: a machine's own executions, as ListExecutions
  of its ARN lists them, not those of its published versions);
- ``/ui/machines/{name}``: its definition drawn (``machine_graph.py``) and as JSON,
  its executions of the last hour by status (one count) and its latest executions
  (ListExecutions, a page at a time);
- ``/ui/machines/{name}/executions/{execution}``: an execution (DescribeExecution):
  status, input, output, error and cause, the definition it runs (pinned by its
  journal's first entry) with its path marked, and its history events, a page at a
  time. The path needs the whole history: it is read once (as GetExecutionHistory
  reads it), and an execution's history holds at most ``history.MAX_EVENTS`` events.
  Machine and execution names are 1-80 letters, digits, '-' or '_', so both travel in
  the path as they are.

The API's own errors (``SfnError``, named as AWS names them) become the dashboard's:
a machine or execution that does not exist is a 404 page, anything else malformed a
400 page.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.asl.arns import NAME, SfnError, execution_id
from statekeeper.asl.executions import STATUSES, Executions
from statekeeper.asl.machines import StateMachines
from statekeeper.asl.workflow import execution_events, status_of
from statekeeper.errors import NotFound, ValidationError, WorkflowNotFound
from statekeeper.http.ui.machine_graph import ExecutionPath, machine_chart
from statekeeper.http.ui.shell import Shell, text_arg

MACHINES_PAGE = 50
EXECUTIONS_PAGE = 25
EVENTS_PAGE = 100
HOUR = 3600.0
_MISSING = ("StateMachineDoesNotExist", "ExecutionDoesNotExist", "ResourceNotFound")


Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def answer(call: Action, request: dict[str, Any]) -> dict[str, Any]:
    """The answer of a Step Functions action; its error as the dashboard's."""
    try:
        return await call(request)
    except SfnError as error:
        if error.code in _MISSING:
            raise NotFound(error.message) from None
        raise ValidationError(error.message) from None


def checked_name(value: str, what: str) -> str:
    if not NAME.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValidationError(f"{shown!r} is not {what} name: 1-80 letters, digits, '-' or '_'")
    return value


class MachinePages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.machines = StateMachines(shell.app)
        self.executions = Executions(self.machines)

    def routes(self) -> list[Route]:
        shell = self.shell
        return [
            shell.route("/ui/machines", self.list_page),
            shell.route("/ui/machines/{name}", self.machine_page),
            shell.route("/ui/machines/{name}/executions/{execution}", self.execution_page),
        ]

    async def list_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        after = text_arg(request, "after") or None
        found = await answer(self.machines.list, {"maxResults": MACHINES_PAGE, "nextToken": after})
        since = app.clock() - HOUR
        started = (await app.workflows.counts(created_after=since))["by_name"]
        failed = (await app.workflows.counts(created_after=since, status="failed"))["by_name"]
        rows = [
            {**machine, "started": started.get(machine["name"], 0),
             "failed": failed.get(machine["name"], 0)}
            for machine in found["stateMachines"]
        ]  # fmt: skip
        following = found.get("nextToken")
        return self.shell.page(
            "machines.html", session, title="State machines", current="/ui/machines",
            rows=rows, next_page=_link("/ui/machines", after=following),
        )  # fmt: skip

    async def machine_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        name = checked_name(request.path_params["name"], "a state machine")
        arn = self.machines.arns.machine(name)
        described = await answer(self.machines.describe, {"stateMachineArn": arn})
        after = text_arg(request, "after", 1100) or None
        listed = await answer(
            self.executions.list,
            {"stateMachineArn": arn, "maxResults": EXECUTIONS_PAGE, "nextToken": after},
        )
        counted = await app.workflows.counts(name=name, created_after=app.clock() - HOUR)
        by_status = dict.fromkeys(STATUSES, 0)
        for status, count in counted["by_status"].items():
            shown = status_of(status)
            by_status[shown] = by_status.get(shown, 0) + count
        definition = json.loads(described["definition"])
        path = f"/ui/machines/{name}"
        return self.shell.page(
            "machines_one.html", session, diagrams=True, title=f"State machine {name}",
            current="/ui/machines", machine=described, definition=definition,
            chart=machine_chart(definition), by_status=by_status,
            executions=listed["executions"],
            next_page=_link(path, after=listed.get("nextToken")),
        )  # fmt: skip

    async def execution_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        machine = checked_name(request.path_params["name"], "a state machine")
        name = checked_name(request.path_params["execution"], "an execution")
        start = _offset(text_arg(request, "from", 20))
        arn = self.executions.arns.execution(machine, name)
        described = await answer(self.executions.describe, {"executionArn": arn})
        id = execution_id(machine, name)
        try:
            events = await execution_events(app.workflows, id)
            definition = await self._definition_run(id)
        except WorkflowNotFound:  # purged in between
            raise NotFound(f"Execution Does Not Exist: '{arn}'") from None
        if definition is None:  # no worker has run it yet: it will run the current one
            current = self.machines.arns.machine(machine)
            machine_doc = await answer(self.machines.describe, {"stateMachineArn": current})
            definition = json.loads(machine_doc["definition"])
        if described["status"] == "ABORTED":  # StopExecution: its reason, as the API shows
            reason = {k: described[k] for k in ("error", "cause") if described.get(k)}
            aborted = {"timestamp": described.get("stopDate"), "type": "ExecutionAborted",
                       "id": len(events) + 1, "executionAbortedEventDetails": reason}  # fmt: skip
            events.append(aborted)
        path = ExecutionPath.of(events, described["status"])
        page = events[start : start + EVENTS_PAGE]
        here = f"/ui/machines/{machine}/executions/{name}"
        following = start + EVENTS_PAGE if start + EVENTS_PAGE < len(events) else None
        earlier = max(0, start - EVENTS_PAGE) if start else None
        return self.shell.page(
            "machines_execution.html", session, diagrams=True, title=f"Execution {name}",
            current="/ui/machines", machine=machine, execution=described,
            input=_decoded(described.get("input")), output=_decoded(described.get("output")),
            chart=machine_chart(definition, path), events=[_row(e) for e in page],
            total=len(events), start=start,
            next_page=None if following is None else _link(here, **{"from": str(following)}),
            previous_page=None if earlier is None else _link(here, **{"from": str(earlier)}),
        )  # fmt: skip

    async def _definition_run(self, id: str) -> Any:
        """The definition execution ``id`` runs: pinned by its first journal entry when
        a worker first ran it (None: not run yet)."""
        first = await self.shell.app.workflows.history(id, limit=1, expand=True)
        output = first[0].get("output") if first else None
        if first and first[0].get("name") == "asl:definition" and isinstance(output, dict):
            return json.loads(output["definition"])
        return None


def _link(path: str, **query: str | None) -> str | None:
    """``path`` with the query ``query`` (None when a value is None: no such page)."""
    if any(value is None for value in query.values()):
        return None
    return f"{path}?{urllib.parse.urlencode(query)}"


def _offset(text: str) -> int:
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ValidationError(f"from is an event number from 0 to 999999, got {text!r}")
    return int(text)


def _decoded(text: Any) -> Any:
    """An execution's input or output (JSON text) as a value; None if there is none."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _row(event: dict[str, Any]) -> dict[str, Any]:
    """A history event as a row: its id, type, time, and its details with a summary
    (the state's name, or the error)."""
    details: dict[str, Any] = {}
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            details = value
    summary = details.get("name") or details.get("error") or details.get("resource") or ""
    return {"id": event.get("id"), "type": event.get("type", ""),
            "timestamp": event.get("timestamp"), "summary": str(summary),
            "details": details}  # fmt: skip
