"""``statekeeper schedules``: create, inspect and steer schedules.

A schedule starts runs of a workflow at cron times, every N seconds, or once; the
scheduler inside every ``statekeeper worker`` (and ``serve``) fires it, each fire once
(docs/schedules.md). Times print as ISO-8601 UTC; ``--json`` prints Unix seconds too.
"""

from __future__ import annotations

from typing import Any

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings, read_json
from statekeeper.cli.output import JSON_HELP, compact, echo_fields, echo_json, echo_table, iso
from statekeeper.cli.params import seconds_option, time_option
from statekeeper.schedules import OVERLAP_POLICIES, Definition, Schedule, make_spec
from statekeeper.schedules.policy import DEFAULT_CATCHUP, MAX_CATCHUP, MAX_JITTER

TIMES = ("next_fire_at", "due_at", "created_at", "updated_at")


@click.group("schedules")
def schedules() -> None:
    """Create, inspect and steer schedules (cron, interval, one-off)."""


def _shown(schedule: Schedule) -> dict[str, Any]:
    shown = schedule.to_dict()
    for name in TIMES:
        shown[f"{name}_iso"] = iso(shown[name])
    return shown


def _print(schedule: Schedule, as_json: bool) -> None:
    if as_json:
        echo_json(_shown(schedule))
        return
    fields = schedule.to_dict()
    echo_fields((k, iso(v, timespec="seconds") if k in TIMES else v) for k, v in fields.items())


def definition_options(fn: Any) -> Any:
    options = [
        click.option("--cron", metavar="EXPR", help="A cron expression, e.g. '*/5 * * * *'."),
        click.option("--timezone", default="UTC", show_default=True, metavar="ZONE",
                     help="The IANA time zone the cron expression reads."),
        click.option("--every", metavar="SECONDS", callback=seconds_option(zero=False),
                     help="Fire every this many seconds (at least 1)."),
        click.option("--anchor", metavar="TIME", callback=time_option,
                     help="When the interval counts from (ISO-8601 or Unix; default now)."),
        click.option("--at", metavar="TIME", callback=time_option,
                     help="Fire once, at this time (ISO-8601 or Unix seconds)."),
        click.option("--input", "input_text", metavar="JSON", default="null",
                     help="Every run's input, JSON (- for stdin; default null)."),
        click.option("--overlap", type=click.Choice(OVERLAP_POLICIES), default="skip",
                     show_default=True, help="What a fire does while the last run is active."),
        click.option("--jitter", default=0.0, metavar="SECONDS",
                     callback=seconds_option(maximum=MAX_JITTER),
                     help="Delay each fire by up to this many seconds (deterministic)."),
        click.option("--catchup", default=DEFAULT_CATCHUP, metavar="SECONDS", show_default=True,
                     callback=seconds_option(maximum=MAX_CATCHUP),
                     help="Fires missed within this many seconds run on recovery."),
        click.option("--queue", metavar="QUEUE",
                     help="A workflow queue the runs start in, admitted within its limits."),
        click.option("--key", metavar="KEY",
                     help="The runs' key in the queue (default: the queue's key rule)."),
        click.option("--priority", default=0, show_default=True, type=int, metavar="N",
                     help="The runs' priority in the queue (higher first)."),
        click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _definition(id: str, workflow: str, given: dict[str, Any]) -> Definition:
    spec = make_spec(
        given["cron"], timezone=given["timezone"], every=given["every"],
        anchor=given["anchor"], at=given["at"],
    )  # fmt: skip
    return Definition.checked(
        id, workflow, spec, input=read_json(given["input_text"], "--input"),
        overlap=given["overlap"], jitter=given["jitter"], catchup=given["catchup"],
        queue=given["queue"], key=given["key"], priority=given["priority"],
    )  # fmt: skip


@schedules.command("create")
@click.argument("schedule_id")
@click.argument("workflow")
@definition_options
@click.option("--paused", is_flag=True, help="Create it paused.")
@pass_settings
def schedules_create(
    settings: Settings, /, schedule_id: str, workflow: str, as_json: bool, paused: bool,
    **given: Any,
) -> None:  # fmt: skip
    """Create schedule SCHEDULE_ID starting WORKFLOW (give one of --cron, --every, --at)."""
    definition = _definition(schedule_id, workflow, given)

    async def work(app: App) -> Schedule:
        return await app.schedules.create(definition, paused=paused)

    _print(on_app(settings, work), as_json)


@schedules.command("update")
@click.argument("schedule_id")
@click.argument("workflow")
@definition_options
@pass_settings
def schedules_update(
    settings: Settings, /, schedule_id: str, workflow: str, as_json: bool, **given: Any
) -> None:
    """Replace a schedule's definition (its pause, last run and buffer are kept)."""
    definition = _definition(schedule_id, workflow, given)

    async def work(app: App) -> Schedule:
        return await app.schedules.update(definition)

    _print(on_app(settings, work), as_json)


@schedules.command("list")
@click.option("--after", default="", metavar="ID", help="Start after this schedule id.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000),
              help="Schedules to list (1 to 1000).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def schedules_list(settings: Settings, after: str, limit: int, as_json: bool) -> None:
    """Schedules by id."""

    async def work(app: App) -> list[Schedule]:
        return await app.schedules.list(after=after, limit=limit)

    found = on_app(settings, work)
    if as_json:
        echo_json({"items": [_shown(s) for s in found]})
        return
    echo_table(
        ["id", "workflow", "spec", "overlap", "paused", "next_fire_at", "last_run_id"],
        [[s.id, s.workflow, compact(s.spec.to_dict()), s.overlap, "yes" if s.paused else "no",
          iso(s.next_fire_at, timespec="seconds"), s.last_run_id] for s in found],
    )  # fmt: skip


def _one(name: str, help: str, act: str) -> None:
    @schedules.command(name, help=help)
    @click.argument("schedule_id")
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    @pass_settings
    def command(settings: Settings, schedule_id: str, as_json: bool) -> None:
        async def work(app: App) -> Schedule:
            method = getattr(app.schedules, act)
            found: Schedule = await method(schedule_id)
            return found

        _print(on_app(settings, work), as_json)


_one("get", "A schedule: its definition and state.", "get")
_one("pause", "Pause a schedule: it fires nothing until resumed.", "pause")
_one("resume", "Resume a schedule from its first fire after now.", "resume")


@schedules.command("delete")
@click.argument("schedule_id")
@pass_settings
def schedules_delete(settings: Settings, schedule_id: str) -> None:
    """Delete a schedule (the runs it started carry on)."""

    async def work(app: App) -> None:
        await app.schedules.delete(schedule_id)

    on_app(settings, work)
    echo_json({"id": schedule_id, "deleted": True})


@schedules.command("trigger")
@click.argument("schedule_id")
@pass_settings
def schedules_trigger(settings: Settings, schedule_id: str) -> None:
    """Fire a schedule now, under its overlap policy; print the run started (null:
    skipped, or waiting in the buffer)."""

    async def work(app: App) -> str | None:
        return await app.schedules.trigger(schedule_id)

    echo_json({"id": schedule_id, "run_id": on_app(settings, work)})


@schedules.command("backfill")
@click.argument("schedule_id")
@click.option("--start", required=True, metavar="TIME", callback=time_option,
              help="The first fire time included (ISO-8601 or Unix seconds).")  # fmt: skip
@click.option("--end", required=True, metavar="TIME", callback=time_option,
              help="The end of the range, excluded (not in the future).")  # fmt: skip
@pass_settings
def schedules_backfill(settings: Settings, schedule_id: str, start: float, end: float) -> None:
    """Fire once per fire time in [--start, --end), under the overlap policy; print the
    runs started."""

    async def work(app: App) -> list[str]:
        return await app.schedules.backfill(schedule_id, start, end)

    echo_json({"id": schedule_id, "run_ids": on_app(settings, work)})


@schedules.command("next")
@click.argument("schedule_id")
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many fire times (1 to 1000).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def schedules_next(settings: Settings, schedule_id: str, count: int, as_json: bool) -> None:
    """A schedule's next fire times."""

    async def work(app: App) -> list[float]:
        return await app.schedules.next_fire_times(schedule_id, count)

    times = on_app(settings, work)
    if as_json:
        echo_json({"id": schedule_id, "fire_times": times,
                   "fire_times_iso": [iso(t) for t in times]})  # fmt: skip
        return
    for moment in times:
        click.echo(iso(moment, timespec="seconds"))
