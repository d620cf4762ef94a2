"""``statekeeper workflows version / move-version / fork``: which code runs a workflow.

``version --app module:app`` prints the version that app stamps on the runs of each of
its workflows; ``move-version`` moves unfinished runs to another version (so that the
workers of that version run them); ``fork`` starts a new run from a journal position of
an existing one (docs/workflow-code-changes.md).
"""

from __future__ import annotations

from typing import Any

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, load_app, on_app, pass_settings, run
from statekeeper.cli.output import echo_json, with_iso
from statekeeper.identifiers import check_workflow_id

APP_HELP = "The app (module:attribute) whose version to use (default: STATEKEEPER_APP)."


@click.command("version")
@click.option("--app", "target", metavar="MODULE:APP", help=APP_HELP)
@pass_settings
def workflows_version(settings: Settings, target: str | None) -> None:
    """Print the app's version, its version policy, and the version it stamps on the
    runs of each workflow it registers, as JSON."""
    app = load_app(target, settings)
    flows = app.workflows
    echo_json(
        {
            "version": app.version,
            "policy": flows.versions.policy,
            "workflows": {name: flows.versions.of(name) for name in sorted(flows.registry)},
        }
    )


@click.command("move-version")
@click.option("--from", "from_version", metavar="VERSION", help="Move the runs of this version.")
@click.option("--to", "to_version", metavar="VERSION", required=True, help="The version to take.")
@click.option("--name", metavar="NAME", help="Only runs of this workflow.")
@click.option("--id", "workflow_id", metavar="ID", help="Only this run (from any version).")
@pass_settings
def workflows_move_version(
    settings: Settings,
    from_version: str | None,
    to_version: str,
    name: str | None,
    workflow_id: str | None,
) -> None:
    """Move the unfinished runs of version --from (of workflow --name only), or run
    --id, to version --to: workers pinned to --to run them from then on. Prints how
    many moved, as JSON."""

    async def work(app: App) -> int:
        return await app.workflows.move_version(from_version, to_version, name=name, id=workflow_id)

    echo_json({"moved": on_app(settings, work), "to_version": to_version})


@click.command("fork")
@click.argument("workflow_id")
@click.option(
    "--from-position",
    "position",
    type=click.IntRange(min=1),
    required=True,
    help="The journal position (from 1) the new run executes from; the entries before "
    "it are copied and replayed (see `workflows history`).",
)
@click.option("--new-id", metavar="ID", help="The new run's id (default: a new one).")
@click.option(
    "--app", "target", metavar="MODULE:APP", help="Stamp the new run with this app's version."
)
@pass_settings
def workflows_fork(
    settings: Settings,
    workflow_id: str,
    position: int,
    new_id: str | None,
    target: str | None,
) -> None:
    """Start a new run of WORKFLOW_ID's workflow and input that replays its journal
    before --from-position and executes from there; print the new run as JSON."""
    check_workflow_id(workflow_id)
    app = load_app(target, settings) if target is not None else settings.app()

    async def go() -> dict[str, Any]:
        async with app:
            forked = await app.workflows.fork(workflow_id, position, new_id)
            return (await app.workflows.status(forked)).to_dict()

    echo_json(with_iso(run(go()), "created_at", "updated_at"))


COMMANDS = (workflows_version, workflows_move_version, workflows_fork)
