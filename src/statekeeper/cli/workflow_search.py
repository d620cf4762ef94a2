"""``statekeeper workflows counts``, ``bulk`` and ``attributes``, and the filter options
they share with ``workflows list`` (docs/workflow-search.md).

    statekeeper workflows list --attr customer=c-7 --attr 'amount>=10' --since 2026-12-01
    statekeeper workflows counts --name order
    statekeeper workflows bulk retry --status failed --name order --dry-run
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings
from statekeeper.cli.output import JSON_HELP, echo_json, echo_table
from statekeeper.cli.params import time_option
from statekeeper.workflows.attributes import parse_expressions
from statekeeper.workflows.bulk import DEFAULT_BATCH, OPERATIONS, BulkResult

F = TypeVar("F", bound=Callable[..., Any])


def attr_option(fn: F) -> F:
    """``--attr NAME=VALUE`` (repeatable; also NAME>=V, NAME>V, NAME<=V, NAME<V)."""
    return click.option(
        "--attr", "attrs", multiple=True, metavar="FILTER",
        help="Only workflows whose attribute matches: NAME=VALUE, or NAME>=VALUE, NAME>VALUE, "
        "NAME<=VALUE, NAME<VALUE for a number or timestamp (repeatable: all must hold).",
    )(fn)  # fmt: skip


def time_options(fn: F) -> F:
    """``--since`` and ``--until``: the creation time range."""
    fn = click.option(
        "--until", metavar="TIME", callback=time_option,
        help="Only workflows created before this time (ISO-8601 or Unix seconds).",
    )(fn)  # fmt: skip
    return click.option(
        "--since", metavar="TIME", callback=time_option,
        help="Only workflows created at or after this time (ISO-8601 or Unix seconds).",
    )(fn)  # fmt: skip


def search_filters(
    attrs: tuple[str, ...], since: float | None, until: float | None
) -> dict[str, Any]:
    """The keyword arguments of ``app.workflows.list`` for these options."""
    found: dict[str, Any] = {}
    if attrs:
        found["attributes"] = parse_expressions(attrs, "--attr")
    if since is not None:
        found["created_after"] = since
    if until is not None:
        found["created_before"] = until
    return found


def add_search_commands(group: click.Group) -> None:
    group.add_command(workflows_counts)
    group.add_command(workflows_bulk)
    group.add_command(workflows_attributes)


@click.command("counts")
@click.option("--status", metavar="STATUS", help="Only workflows with this status.")
@click.option("--name", metavar="NAME", help="Only workflows of this name.")
@attr_option
@time_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_counts(
    settings: Settings,
    status: str | None,
    name: str | None,
    attrs: tuple[str, ...],
    since: float | None,
    until: float | None,
    as_json: bool,
) -> None:
    """How many workflows match the filters: the total, per status and per name."""
    filters = search_filters(attrs, since, until)

    async def work(app: App) -> dict[str, Any]:
        return await app.workflows.counts(status=status, name=name, **filters)

    counted = on_app(settings, work)
    if as_json:
        echo_json(counted)
        return
    echo_table(["status", "count"], [[s, str(n)] for s, n in counted["by_status"].items() if n])
    click.echo("")
    echo_table(["name", "count"], [[s, str(n)] for s, n in counted["by_name"].items()])
    click.echo(f"\ntotal: {counted['total']}")


@click.command("bulk")
@click.argument("operation", type=click.Choice(OPERATIONS))
@click.option("--status", metavar="STATUS", help="Only workflows with this status.")
@click.option("--name", metavar="NAME", help="Only workflows of this name.")
@attr_option
@time_options
@click.option("--dry-run", is_flag=True, help="Count and show a sample; change nothing.")
@click.option(
    "--all", "all_workflows", is_flag=True,
    help="Act on every workflow of the namespace (needed when no filter is given).",
)  # fmt: skip
@click.option(
    "--batch", default=DEFAULT_BATCH, show_default=True, type=int,
    help="Workflows per batch (1 to 1000): each batch is read with a cursor, and each "
    "workflow changed in its own short transaction.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def workflows_bulk(
    settings: Settings,
    operation: str,
    status: str | None,
    name: str | None,
    attrs: tuple[str, ...],
    since: float | None,
    until: float | None,
    dry_run: bool,
    all_workflows: bool,
    batch: int,
    as_json: bool,
) -> None:
    """Cancel, pause, resume or retry every workflow the filters select (at least one
    filter, or --all); --dry-run first to see how many and which."""
    filters = search_filters(attrs, since, until)

    async def work(app: App) -> BulkResult:
        return await app.workflows.bulk(
            operation, status=status, name=name, dry_run=dry_run, batch=batch,
            all_workflows=all_workflows, **filters,
        )  # fmt: skip

    result = on_app(settings, work)
    if as_json:
        echo_json(result.to_dict())
        return
    if result.dry_run:
        click.echo(f"dry run: {operation} would reach {result.matched} workflows; nothing changed")
    else:
        click.echo(
            f"{operation}: matched {result.matched}, changed {result.changed}, "
            f"skipped {result.skipped}"
        )
    if result.sample:
        click.echo(f"sample: {', '.join(result.sample)}")


@click.command("attributes")
@click.argument("workflow_id")
@pass_settings
def workflows_attributes(settings: Settings, workflow_id: str) -> None:
    """The searchable attributes a workflow set (JSON; timestamps as ISO-8601)."""

    async def work(app: App) -> dict[str, Any]:
        return await app.workflows.attributes(workflow_id)

    found = on_app(settings, work)
    echo_json({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in found.items()})
