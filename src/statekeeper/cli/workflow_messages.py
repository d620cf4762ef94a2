"""``statekeeper workflows send / update / get-value / values``: talk to a running
workflow (docs/workflow-messages.md). Added to the ``workflows`` group on import."""

from __future__ import annotations

from typing import Any

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings, read_json
from statekeeper.cli.output import echo_json
from statekeeper.cli.params import seconds_option
from statekeeper.cli.workflows import workflows

DATA_HELP = "JSON (- for stdin; default null)."


@workflows.command("send")
@click.argument("workflow_id")
@click.argument("topic")
@click.option(
    "--data", "data_text", metavar="JSON", default="null", help="The message, " + DATA_HELP
)
@pass_settings
def workflows_send(settings: Settings, workflow_id: str, topic: str, data_text: str) -> None:
    """Send a message to a workflow's mailbox on TOPIC (what its ctx.receive(TOPIC)
    takes, in the order sent, each once); prints its number on the topic. Exits 5 if
    the workflow has finished, 6 if there is none."""
    data = read_json(data_text, "--data")

    async def work(app: App) -> int:
        return await app.workflows.send_message(workflow_id, topic, data)

    seq = on_app(settings, work)
    echo_json({"id": workflow_id, "topic": topic, "seq": seq})


@workflows.command("update")
@click.argument("workflow_id")
@click.argument("name")
@click.option(
    "--data", "data_text", metavar="JSON", default="null", help="The update's data, " + DATA_HELP
)
@click.option(
    "--timeout",
    default="30",
    metavar="SECONDS",
    callback=seconds_option(zero=False, maximum=3600),
    help="How long to wait for the workflow to apply it (default 30; exits 11 past it, "
    "the update still asked).",
)
@pass_settings
def workflows_update(
    settings: Settings, workflow_id: str, name: str, data_text: str, timeout: float
) -> None:
    """Ask a workflow for update NAME (its ctx.on_update handler runs inside it,
    durably) and print the handler's result. Exits 5 if the handler rejected it or the
    workflow finished first, 6 if it has no such handler or there is no workflow."""
    data = read_json(data_text, "--data")

    async def work(app: App) -> Any:
        return await app.workflows.update(workflow_id, name, data, timeout=timeout)

    result = on_app(settings, work)
    echo_json({"id": workflow_id, "update": name, "result": result})


@workflows.command("get-value")
@click.argument("workflow_id")
@click.argument("key")
@pass_settings
def workflows_get_value(settings: Settings, workflow_id: str, key: str) -> None:
    """Print the value a workflow last published under KEY (ctx.publish), without
    waiting for it; exits 6 if it published none there."""

    async def work(app: App) -> Any:
        return await app.workflows.get(workflow_id, key)

    value = on_app(settings, work)
    echo_json({"id": workflow_id, "key": key, "value": value})


@workflows.command("values")
@click.argument("workflow_id")
@click.option("--after", default="", metavar="KEY", help="List the keys after KEY.")
@click.option("--limit", default=100, type=click.IntRange(1, 1000), help="At most this many keys.")
@pass_settings
def workflows_values(settings: Settings, workflow_id: str, after: str, limit: int) -> None:
    """Print the values a workflow published, by key."""

    async def work(app: App) -> dict[str, Any]:
        return await app.workflows.values(workflow_id, after=after, limit=limit)

    values = on_app(settings, work)
    echo_json({"id": workflow_id, "values": values})
