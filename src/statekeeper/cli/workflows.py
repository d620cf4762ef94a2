"""``statekeeper workflows``: start, inspect and steer workflows.

``start`` writes the workflow's row; a worker whose app registers the name runs it.
Without ``--app`` the command knows the workflow only by its name (a name no worker
registers stays pending); with ``--app module:app`` the name must be one of that
app's workflows, and the workflow starts on that app's database and namespace, as
``worker --app`` runs it.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, load_app, on_app, pass_settings, read_json, run
from statekeeper.cli.output import (
    JSON_HELP,
    compact,
    echo_fields,
    echo_json,
    echo_table,
    iso,
    with_iso,
)
from statekeeper.cli.params import seconds_option
from statekeeper.cli.workflow_search import (
    add_search_commands,
    attr_option,
    search_filters,
    time_options,
)
from statekeeper.constants import MAX_LIST_LIMIT
from statekeeper.errors import (
    DecryptionError,
    ValidationError,
    WorkflowFailed,
    WorkflowNotFinished,
)
from statekeeper.identifiers import check_workflow_id, check_workflow_name
from statekeeper.workflows import WorkflowStatus
from statekeeper.workflows.search import FIRST_PAGE, decode_cursor, encode_cursor

TIMES = ("created_at", "updated_at")
STEP_TIMES = ("started_at", "finished_at")
POLL_LIMIT = 0.5  # seconds between looks while waiting for a result, at most


@click.group("workflows")
def workflows() -> None:
    """Start, inspect and steer workflows."""


# --- inspect -----------------------------------------------------------------------------


@workflows.command("list")
@click.option("--status", metavar="STATUS", help="Only workflows with this status.")
@click.option("--name", metavar="NAME", help="Only workflows of this name.")
@click.option(
    "--limit", default=100, show_default=True, type=int, help="Workflows per page (1 to 1000)."
)
@click.option(
    "--cursor", metavar="CURSOR", help="Continue after the cursor a previous page printed."
)
@attr_option
@time_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_list(
    settings: Settings,
    status: str | None,
    name: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    attrs: tuple[str, ...] = (),
    since: float | None = None,
    until: float | None = None,
) -> None:
    """Workflows, newest first, a page at a time; the next page's cursor is printed
    last (in JSON: "cursor", null on the last page)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit}")
    before = FIRST_PAGE if cursor is None else decode_cursor(cursor)
    # One more than asked tells whether another page follows (at the largest page, the
    # cursor is printed whenever the page is full).
    fetch = min(limit + 1, MAX_LIST_LIMIT)
    filters = search_filters(attrs, since, until)  # attributes, time range

    async def work(app: App) -> list[dict[str, Any]]:
        return await app.workflows.list(
            status=status, name=name, limit=fetch, before=before, **filters
        )

    found = on_app(settings, work)
    page = found[:limit]
    more = len(found) > limit or len(page) == MAX_LIST_LIMIT
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    if as_json:
        echo_json({"items": [with_iso(w, *TIMES) for w in page], "cursor": next_cursor})
        return
    echo_table(
        ["id", "name", "status", "created_at", "updated_at", "version"],
        [
            [
                w["id"],
                w["name"],
                w["status"],
                iso(w["created_at"], timespec="seconds"),
                iso(w["updated_at"], timespec="seconds"),
                w.get("version") or "-",
            ]
            for w in page
        ],
    )
    if next_cursor:
        click.echo(f"next page: --cursor {next_cursor}")


def _described(status: WorkflowStatus) -> dict[str, Any]:
    return with_iso(status.to_dict(), *TIMES)


@workflows.command("describe")
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_describe(settings: Settings, workflow_id: str, as_json: bool) -> None:
    """Status, output and error of one workflow."""

    async def work(app: App) -> WorkflowStatus:
        return await app.workflows.status(workflow_id)

    described = _described(on_app(settings, work))
    if as_json:
        echo_json(described)
        return
    echo_fields((k, v) for k, v in described.items())


@workflows.command("history")
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_history(settings: Settings, workflow_id: str, as_json: bool) -> None:
    """Every journal entry of one workflow, in order: steps, sleeps, events, children
    (after the application version it runs on)."""

    async def work(app: App) -> tuple[str | None, list[dict[str, Any]]]:
        version = (await app.workflows.status(workflow_id)).version
        return version, await app.workflows.history(workflow_id)

    version, entries = on_app(settings, work)
    if as_json:
        items = [with_iso(e, *STEP_TIMES) for e in entries]
        echo_json({"id": workflow_id, "version": version, "items": items})
        return
    click.echo(f"version: {version or '-'}")
    echo_table(
        ["position", "kind", "name", "attempts", "started_at", "finished_at", "outcome"],
        [
            [
                str(e["position"]),
                e["kind"],
                e["name"],
                str(e["attempts"]),
                iso(e["started_at"], timespec="seconds"),
                iso(e["finished_at"], timespec="seconds"),
                _outcome(e),
            ]
            for e in entries
        ],
    )


def _outcome(entry: dict[str, Any]) -> str:
    if entry.get("read_error"):
        return f"(unreadable: {entry['read_error']})"
    if entry["error"] is not None:
        error = entry["error"]
        return compact(f"error: {error['type']}: {error['message']}")
    return compact(entry["output"])


async def _outcome_of(app: App, id: str, wait: bool, timeout: float | None) -> WorkflowStatus:
    """The workflow's status once it has finished; with ``wait``, looked at again (more
    and more slowly, up to POLL_LIMIT apart) until then or until ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    pause = 0.02
    while True:
        status = await app.workflows.status(id)
        if status.done or not wait:
            return status
        left = math.inf if deadline is None else deadline - loop.time()
        if left <= 0:
            return status
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, POLL_LIMIT)


@workflows.command("result")
@click.argument("workflow_id")
@click.option("--wait", is_flag=True, help="Wait until the workflow finishes.")
@click.option(
    "--timeout",
    metavar="SECONDS",
    callback=seconds_option(zero=False),
    help="Wait at most this many seconds (implies --wait).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_result(
    settings: Settings, workflow_id: str, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Print a succeeded workflow's output (JSON). A workflow that ended otherwise
    (failed, compensated, cancelled, timed_out) is an error carrying its error, exit 10; one not
    finished yet (without --wait, or still running after --timeout) exits 11."""

    wait = wait or timeout is not None

    async def work(app: App) -> WorkflowStatus:
        return await _outcome_of(app, workflow_id, wait, timeout)

    status = on_app(settings, work)
    if status.read_error is not None:
        raise DecryptionError(status.read_error)
    if not status.done:
        hint = f" after {timeout:g} s" if wait else "; --wait waits for it to finish"
        raise WorkflowNotFinished(f"workflow {workflow_id!r} is {status.status}{hint}")
    if status.status != "succeeded":
        raise WorkflowFailed(
            f"workflow {workflow_id!r} ended {status.status}: {status.error}",
            status=status.status,
            error=status.error,
        )
    if as_json:
        echo_json({"id": status.id, "name": status.name, "status": status.status,
                   "output": status.output})  # fmt: skip
        return
    echo_json(status.output)


# --- steer -------------------------------------------------------------------------------


@workflows.command("start")
@click.argument("name")
@click.option(
    "--input",
    "input_text",
    metavar="JSON",
    default="null",
    help="The input, JSON (- for stdin; default null).",
)
@click.option(
    "--id",
    "workflow_id",
    metavar="ID",
    help="The workflow's id (default: a new one); starting an existing id again with the "
    "same name and input returns that workflow, with another name or input exits 5.",
)
@click.option(
    "--timeout",
    metavar="SECONDS",
    callback=seconds_option(zero=False),
    help="End the workflow timed_out if it has not finished after this many seconds.",
)
@click.option(
    "--app",
    "target",
    metavar="MODULE:APP",
    help="Check NAME against this app's workflows (module:attribute) and start on its "
    "database and namespace.",
)
@click.option(
    "--queue",
    metavar="QUEUE",
    help="Start it into this workflow queue of --app's (docs/flow-control.md).",
)
@click.option("--key", metavar="KEY", help="The run's key in its queue.")
@click.option(
    "--priority",
    type=int,
    default=0,
    show_default=True,
    help="Higher starts first within its queue.",
)
@pass_settings
def workflows_start(
    settings: Settings,
    name: str,
    input_text: str,
    workflow_id: str | None,
    timeout: float | None,
    target: str | None,
    queue: str | None,
    key: str | None,
    priority: int,
) -> None:
    """Start workflow NAME; print its id and status as JSON. NAME is one a worker of
    the namespace announced (its app registers it), one defined with `workflows
    define`, or one of --app's. A worker that can run NAME runs it."""
    check_workflow_name(name)
    if workflow_id is not None:
        check_workflow_id(workflow_id)
    input = read_json(input_text, "--input")
    # Without --app, NAME must be defined or announced by a worker of the namespace.
    app = load_app(target, settings) if target is not None else settings.app()

    async def go() -> WorkflowStatus:
        async with app:
            run_id = await app.workflows.start(
                name, input, id=workflow_id, timeout=timeout, queue=queue, key=key,
                priority=priority,
            )  # fmt: skip
            return await app.workflows.status(run_id)

    status = run(go())
    echo_json(_described(status))


@workflows.command("define")
@click.argument("name")
@click.argument("kind")
@click.argument("definition", metavar="DEFINITION_JSON")
@pass_settings
def workflows_define(settings: Settings, name: str, kind: str, definition: str) -> None:
    """Define workflow NAME at runtime, run by the interpreter of KIND: for kind python,
    DEFINITION_JSON is an import path, e.g. '"billing.flows:invoice"'. Running workers
    pick it up within about a second. Prints the name, kind and revision as JSON."""
    check_workflow_name(name)
    parsed = read_json(definition, "DEFINITION_JSON")
    app = settings.app()

    async def go() -> int:
        async with app:
            return await app.workflows.define(name, kind, parsed)

    echo_json({"name": name, "kind": kind, "revision": run(go())})


@workflows.command("send-event")
@click.argument("workflow_id")
@click.argument("event")
@click.option(
    "--data",
    "data_text",
    metavar="JSON",
    default="null",
    help="The event's data, JSON (- for stdin; default null).",
)
@pass_settings
def workflows_send_event(settings: Settings, workflow_id: str, event: str, data_text: str) -> None:
    """Deliver EVENT to a workflow (what its ctx.wait_for_event receives), once: a
    second delivery of the same event, or one to a finished workflow, exits 5."""
    data = read_json(data_text, "--data")

    async def work(app: App) -> None:
        await app.workflows.send_event(workflow_id, event, data)

    on_app(settings, work)
    echo_json({"id": workflow_id, "event": event, "delivered": True})


@workflows.command("cancel")
@click.argument("workflow_id")
@pass_settings
def workflows_cancel(settings: Settings, workflow_id: str) -> None:
    """Ask a workflow to stop (compensating its saga); exits 5 if it has finished."""

    async def work(app: App) -> None:
        await app.workflows.cancel(workflow_id)

    on_app(settings, work)
    echo_json({"id": workflow_id, "cancel_requested": True})


@workflows.command("pause")
@click.argument("workflow_id")
@pass_settings
def workflows_pause(settings: Settings, workflow_id: str) -> None:
    """Pause a workflow: it stops at its next durable point (a step in flight finishes)
    until resumed; exits 5 if it has finished."""

    async def work(app: App) -> None:
        await app.workflows.pause(workflow_id)

    on_app(settings, work)
    echo_json({"id": workflow_id, "paused": True})


@workflows.command("resume")
@click.argument("workflow_id")
@pass_settings
def workflows_resume(settings: Settings, workflow_id: str) -> None:
    """Resume a paused workflow where it stopped (one not paused is left as it is)."""

    async def work(app: App) -> None:
        await app.workflows.resume(workflow_id)

    on_app(settings, work)
    echo_json({"id": workflow_id, "paused": False})


@workflows.command("retry")
@click.argument("workflow_id")
@pass_settings
def workflows_retry(settings: Settings, workflow_id: str) -> None:
    """Run a failed or timed-out workflow again from its failed step (a timed-out one
    without its timeout); exits 5 unless it failed or timed out."""

    async def work(app: App) -> None:
        await app.workflows.retry(workflow_id)

    on_app(settings, work)
    echo_json({"id": workflow_id, "retrying": True})


add_search_commands(workflows)  # counts, bulk, attributes (cli/workflow_search.py)


@workflows.command("queues")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_queues(settings: Settings, as_json: bool) -> None:
    """The workflow queues of the namespace (flow control): their limits, and their
    runs waiting, running (holding a slot) and admitted in the last minute."""

    async def work(app: App) -> list[dict[str, Any]]:
        return await app.workflows.flow.state()

    found = on_app(settings, work)
    if as_json:
        echo_json(found)
        return
    headers = ("QUEUE", "CONCURRENCY", "PER KEY", "RATE", "WAITING", "RUNNING", "LAST MIN")

    def limit(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return f"{value[0]}/{value[1]:g}s"
        return str(value)

    echo_table(
        headers,
        (
            (q["name"], limit(q["concurrency"]), limit(q["per_key_concurrency"]),
             limit(q["rate"]), str(q["waiting"]), str(q["running"]),
             str(q["admitted_recently"]))
            for q in found
        ),
    )  # fmt: skip
