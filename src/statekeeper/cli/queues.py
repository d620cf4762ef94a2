"""``statekeeper queue``: inspect and administer queues."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings
from statekeeper.cli.output import (
    JSON_HELP,
    compact,
    echo_fields,
    echo_json,
    echo_table,
    iso,
    with_iso,
)
from statekeeper.cli.params import time_option
from statekeeper.queues import Queue
from statekeeper.queues.message import QueueStats, StoredMessage

T = TypeVar("T")
MESSAGE_TIMES = ("available_at", "enqueued_at", "dead_at")


@click.group("queue")
def queue() -> None:
    """Inspect and administer queues."""


def on_queue(settings: Settings, name: str, work: Callable[[Queue], Awaitable[T]]) -> T:
    async def go(app: App) -> T:
        return await work(app.queue(name))

    return on_app(settings, go)


@queue.command("stats")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def queue_stats(settings: Settings, name: str, as_json: bool) -> None:
    """Ready, in flight, delayed, waiting and dead-lettered messages, and the age of
    the oldest live message in seconds."""

    async def work(q: Queue) -> QueueStats:
        return await q.stats()

    stats = on_queue(settings, name, work).to_dict()
    if as_json:
        echo_json(stats)
        return
    echo_fields(stats.items())


@queue.command("peek")
@click.argument("name")
@click.option("--dead", is_flag=True, help="Show dead-lettered messages.")
@click.option("--limit", default=10, show_default=True, type=int, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def queue_peek(settings: Settings, name: str, dead: bool, limit: int, as_json: bool) -> None:
    """Messages in delivery order, without leasing them; ids are printed whole (they
    paste into `queue redrive --id`)."""

    async def work(q: Queue) -> list[StoredMessage]:
        return await q.peek(limit, dead=dead)

    messages = on_queue(settings, name, work)
    if as_json:
        items = [with_iso(m.to_dict(), *MESSAGE_TIMES) for m in messages]
        echo_json({"queue": name, "items": items})
        return
    echo_table(
        ["id", "state", "attempts", "enqueued_at", "body", "last_error"],
        [
            [
                m.id,
                m.state,
                str(m.attempts),
                iso(m.enqueued_at, timespec="seconds"),
                compact(m.body) if m.body_error is None else f"(unreadable: {m.body_error})",
                compact(str(m.last_error or "")),
            ]
            for m in messages
        ],
    )


@queue.command("redrive")
@click.argument("name")
@click.option(
    "--id", "ids", metavar="ID", multiple=True, help="Only these message ids (repeatable)."
)
@pass_settings
def queue_redrive(settings: Settings, name: str, ids: tuple[str, ...]) -> None:
    """Move dead-lettered messages back to the queue, with fresh attempts."""

    async def work(q: Queue) -> int:
        return await q.redrive(list(ids) or None)

    echo_json({"queue": name, "redriven": on_queue(settings, name, work)})


@queue.command("purge")
@click.argument("name")
@click.option("--dead", is_flag=True, help="Purge the dead-lettered messages instead.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def queue_purge(settings: Settings, name: str, dead: bool, yes: bool) -> None:
    """Delete every ready or waiting message (not those in hand), or every
    dead-lettered one."""
    what = "dead-lettered message" if dead else "ready or waiting message (not in hand)"
    if not yes and not click.confirm(f"delete every {what} of {name}?"):
        raise click.Abort()

    async def work(q: Queue) -> int:
        return await q.purge(dead=dead)

    echo_json({"queue": name, "purged": on_queue(settings, name, work)})


@queue.command("replay")
@click.argument("name")
@click.option(
    "--since", metavar="TIME", callback=time_option, help="Completed at or after this time."
)
@click.option("--until", metavar="TIME", callback=time_option, help="Completed before this time.")
@click.option(
    "--attribute",
    "attributes",
    metavar="KEY=VALUE",
    multiple=True,
    help="KEY=VALUE to match (repeatable).",
)
@click.option("--limit", type=int, help="At most this many.")
@pass_settings
def queue_replay(
    settings: Settings,
    name: str,
    since: float | None,
    until: float | None,
    attributes: tuple[str, ...],
    limit: int | None,
) -> None:
    """Send archived messages again, as new messages. Times are ISO-8601 (UTC unless
    an offset is given) or Unix seconds."""
    matches: dict[str, str] = {}
    for pair in attributes:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--attribute")
        matches[key] = value

    async def work(q: Queue) -> int:
        return await q.replay(since=since, until=until, attributes=matches or None, limit=limit)

    echo_json({"queue": name, "replayed": on_queue(settings, name, work)})
