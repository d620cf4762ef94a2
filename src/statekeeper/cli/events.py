"""``statekeeper events``: append to and read the event store; inspect subscriptions and
projections; rebuild a projection.

The verbs print the documents the HTTP routes answer (``http/event_checks.py``), times in
ISO-8601 UTC: ``--json`` prints one document, ``{"items": [...], "next": ...}`` for a
listing, where ``next`` is the value of the paging option (``--after``, or ``--start``
for a stream) that reads the next page, null on the last page. ``projections`` and
``rebuild`` need the app that registers the projections (``--app module:app``).
"""

from __future__ import annotations

import shlex
from typing import IO, Any, TypeVar

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, load_app, on_app, pass_settings, read_json, run
from statekeeper.cli.output import JSON_HELP, compact, echo_json, echo_table, iso, safe, with_iso
from statekeeper.codec import decode_json
from statekeeper.constants import MAX_LIST_LIMIT
from statekeeper.errors import (
    InvalidFilter,
    InvalidIdentifier,
    InvalidStreamName,
    SubscriptionNotFound,
    ValidationError,
)
from statekeeper.events.model import check_stream
from statekeeper.http.event_checks import (
    DEFAULT_PAGE,
    EXPECTED_RULE,
    MAX_POSITION,
    check_category,
    check_events,
    check_name_text,
    check_projection_name,
    check_subscription_text,
    event_document,
    expected_version,
    parked_document,
    subscription_document,
)
from statekeeper.identifiers import check_correlation_id

T = TypeVar("T")
EVENT_TIMES = ("recorded_at",)
SUBSCRIPTION_TIMES = ("lease_expires_at", "created_at", "updated_at")
APP_HELP = "The app that registers the projections (module:attribute; default STATEKEEPER_APP)."

limit_option = click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIST_LIMIT),
    default=DEFAULT_PAGE,
    show_default=True,
    help=f"At most this many a page (1 to {MAX_LIST_LIMIT}).",
)
json_option = click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
position_after = click.option(
    "--after",
    type=click.IntRange(0, MAX_POSITION),
    default=0,
    show_default=True,
    help="After this global position (the `next` of the previous page).",
)


@click.group("events")
def events() -> None:
    """Append to and read the event store; inspect subscriptions and projections."""


def _page(found: list[T], limit: int) -> tuple[list[T], bool]:
    """The page (``found`` was read with one more than ``limit``) and whether more follow."""
    return found[:limit], len(found) > limit


def _echo_page(
    head: dict[str, Any], items: list[dict[str, Any]], times: tuple[str, ...], following: object
) -> None:
    """A listing as one JSON document: ``head``'s fields, the items, the next page."""
    echo_json({**head, "items": [with_iso(item, *times) for item in items], "next": following})


def _next_page(option: str, value: object) -> None:
    """The text form's last line when more follow: the option that reads the next page."""
    if value is not None:
        shown = safe(shlex.quote(value)) if isinstance(value, str) else value
        click.echo(f"next page: {option} {shown}")


def _events_table(items: list[dict[str, Any]], *, stream: bool) -> None:
    headers = ["position", "stream", "version", "type", "recorded_at", "data"]
    if not stream:
        headers.remove("stream")
    rows = []
    for e in items:
        data = compact(e["data"]) if "data_base64" not in e else "(not JSON)"
        cells = [str(e["position"]), e["stream"], str(e["version"]), e["type"],
                 iso(e["recorded_at"], timespec="seconds"), data]  # fmt: skip
        rows.append(cells if stream else [c for i, c in enumerate(cells) if i != 1])
    echo_table(headers, rows)


# --- appending ----------------------------------------------------------------------------


def _expected_option(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return expected_version(value, "--expected-version", text=True)
    except ValidationError:
        raise click.BadParameter(f"{value!r} is not {EXPECTED_RULE}") from None


@events.command("append")
@click.argument("stream")
@click.option("--type", "event_type", metavar="TYPE", help="The event's type (one event).")
@click.option(
    "--data",
    "data_text",
    metavar="JSON",
    help="The event's data, JSON (- for stdin; default null).",
)
@click.option("--metadata", "metadata_text", metavar="JSON", help="Its metadata, a JSON object.")
@click.option("--id", "event_id", metavar="ID", help="Its id (default: a new UUID).")
@click.option(
    "--file",
    "events_file",
    type=click.File("rb"),
    metavar="PATH",
    help="Append the events of this file instead (- for stdin): a JSON list of objects "
    '{"type", "data", "metadata", "id"}.',
)
@click.option(
    "--expected-version",
    "expected",
    metavar="VERSION",
    default="any",
    show_default=True,
    callback=_expected_option,
    help="any, no_stream, exists or the stream's exact version; if the stream is at "
    "another, nothing is stored and the command exits 5.",
)
@click.option(
    "--correlation-id",
    metavar="ID",
    help="Kept in each event's metadata as correlation_id (unless it has one).",
)
@pass_settings
def events_append(
    settings: Settings,
    stream: str,
    event_type: str | None,
    data_text: str | None,
    metadata_text: str | None,
    event_id: str | None,
    events_file: IO[bytes] | None,
    expected: int,
    correlation_id: str | None,
) -> None:
    """Append one event (--type, --data, --metadata, --id) or the events of --file to
    STREAM, all or none; print the stream's version and the events' positions and ids."""
    name = check_stream(stream)
    one = {"--type": event_type, "--data": data_text, "--metadata": metadata_text,
           "--id": event_id}  # fmt: skip
    if events_file is not None:
        given = [option for option, value in one.items() if value is not None]
        if given:
            raise click.UsageError(f"--file appends the events of the file; {given[0]} is for one")
        listed = check_events(decode_json(events_file.read(), "--file"), name)
    else:
        if event_type is None:
            raise click.UsageError("give the event's --type (or --file with events)")
        event: dict[str, Any] = {"type": event_type}
        if data_text is not None:
            event["data"] = read_json(data_text, "--data")
        if metadata_text is not None:
            event["metadata"] = read_json(metadata_text, "--metadata")
        if event_id is not None:
            event["id"] = event_id
        listed = [event]
    if correlation_id is not None:
        check_correlation_id(correlation_id)

    async def work(app: App) -> dict[str, Any]:
        done = await app.events.append(
            name, listed, expected_version=expected, correlation_id=correlation_id
        )
        return {
            "stream": done.stream, "version": done.version, "ids": done.ids,
            "first_position": done.first_position, "last_position": done.last_position,
        }  # fmt: skip

    echo_json(on_app(settings, work))


# --- reading ------------------------------------------------------------------------------


@events.command("read")
@click.argument("stream")
@click.option(
    "--start",
    type=click.IntRange(0, MAX_POSITION),
    help="The stream version to start at (default: the first; with --backwards, the last).",
)
@click.option("--backwards", is_flag=True, help="Newest first.")
@limit_option
@json_option
@pass_settings
def events_read(
    settings: Settings,
    stream: str,
    start: int | None,
    backwards: bool,
    limit: int,
    as_json: bool,
) -> None:
    """A page of STREAM's events, oldest first (or newest first); exits 6 if the stream
    has no event."""

    async def work(app: App) -> list[dict[str, Any]]:
        found = await app.events.read_stream(
            stream, start=start, backwards=backwards, limit=limit + 1
        )
        return [event_document(e) for e in found]

    page, more = _page(on_app(settings, work), limit)
    following = page[-1]["version"] + (-1 if backwards else 1) if more else None
    if as_json:
        direction = "backwards" if backwards else "forwards"
        _echo_page({"stream": stream, "direction": direction}, page, EVENT_TIMES, following)
        return
    _events_table(page, stream=False)
    _next_page("--start", following)


@events.command("log")
@position_after
@click.option("--backwards", is_flag=True, help="Newest first, before --after (0: the last).")
@limit_option
@json_option
@pass_settings
def events_log(settings: Settings, after: int, backwards: bool, limit: int, as_json: bool) -> None:
    """A page of the namespace's global log, oldest first (or newest first)."""

    async def work(app: App) -> tuple[int, list[dict[str, Any]]]:
        head = await app.events.head()
        found = await app.events.read_all(after=after, limit=limit + 1, backwards=backwards)
        return head, [event_document(e) for e in found]

    head, found = on_app(settings, work)
    page, more = _page(found, limit)
    following = page[-1]["position"] if more else None
    if as_json:
        direction = "backwards" if backwards else "forwards"
        _echo_page({"direction": direction, "head": head}, page, EVENT_TIMES, following)
        return
    _events_table(page, stream=True)
    _next_page("--after", following)


@events.command("category")
@click.argument("name")
@position_after
@limit_option
@json_option
@pass_settings
def events_category(settings: Settings, name: str, after: int, limit: int, as_json: bool) -> None:
    """A page of the events of the streams of category NAME (streams named NAME-...),
    in global order."""
    category = check_category(name)

    async def work(app: App) -> list[dict[str, Any]]:
        found = await app.events.read_category(category, after=after, limit=limit + 1)
        return [event_document(e) for e in found]

    page, more = _page(on_app(settings, work), limit)
    following = page[-1]["position"] if more else None
    if as_json:
        _echo_page({"category": category}, page, EVENT_TIMES, following)
        return
    _events_table(page, stream=True)
    _next_page("--after", following)


@events.command("streams")
@click.option("--prefix", default="", metavar="PREFIX", help="Only streams whose names start so.")
@click.option("--after", default="", metavar="NAME", help="Streams after this name.")
@limit_option
@json_option
@pass_settings
def events_streams(settings: Settings, prefix: str, after: str, limit: int, as_json: bool) -> None:
    """Streams and their versions, in name order."""
    check_name_text("prefix", prefix, InvalidFilter)
    check_name_text("after", after, InvalidStreamName)

    async def work(app: App) -> list[dict[str, Any]]:
        found = await app.events.streams(prefix, after=after, limit=limit + 1)
        return [row._asdict() for row in found]

    page, more = _page(on_app(settings, work), limit)
    following = page[-1]["stream"] if more else None
    if as_json:
        _echo_page({}, page, ("updated_at",), following)
        return
    echo_table(
        ["stream", "version", "updated_at"],
        [[s["stream"], str(s["version"]), iso(s["updated_at"], timespec="seconds")] for s in page],
    )
    _next_page("--after", following)


# --- subscriptions and projections --------------------------------------------------------


@events.command("subscriptions")
@click.option("--after", default="", metavar="NAME", help="Subscriptions after this name.")
@limit_option
@json_option
@pass_settings
def events_subscriptions(settings: Settings, after: str, limit: int, as_json: bool) -> None:
    """Subscriptions (projections' generations included) with their checkpoint, lag
    behind the log, holder, failures and parked events."""
    check_name_text("after", after, InvalidIdentifier)

    async def work(app: App) -> tuple[int, list[dict[str, Any]]]:
        head = await app.events.head()
        found = await app.backend.subscriptions.page(app.namespace, after=after, limit=limit + 1)
        return head, [subscription_document(row, head) for row in found]

    head, found = on_app(settings, work)
    page, more = _page(found, limit)
    following = page[-1]["name"] if more else None
    if as_json:
        _echo_page({"head": head}, page, SUBSCRIPTION_TIMES, following)
        return
    echo_table(
        ["name", "position", "lag", "holder", "failures", "parked", "last_error"],
        [
            [
                s["name"],
                str(s["position"]),
                str(s["lag"]),
                s["holder"],
                str(s["failures"]),
                str(s["parked"]),
                compact(s["last_error"] or ""),
            ]
            for s in page
        ],
    )
    _next_page("--after", following)


@events.command("parked")
@click.argument("name")
@position_after
@limit_option
@json_option
@pass_settings
def events_parked(settings: Settings, name: str, after: int, limit: int, as_json: bool) -> None:
    """The events subscription NAME parked after their last retry, with their error;
    exits 6 if there is no such subscription."""
    subscription = check_subscription_text(name)

    async def work(app: App) -> list[dict[str, Any]]:
        storage = app.backend.subscriptions
        if await storage.get(app.namespace, subscription) is None:
            raise SubscriptionNotFound(
                f"there is no subscription {subscription!r}", subscription=subscription
            )
        found = await storage.parked(app.namespace, subscription, after=after, limit=limit + 1)
        return [parked_document(row) for row in found]

    page, more = _page(on_app(settings, work), limit)
    following = page[-1]["position"] if more else None
    if as_json:
        _echo_page({"subscription": subscription}, page, ("parked_at",), following)
        return
    echo_table(
        ["position", "attempts", "parked_at", "error"],
        [
            [
                str(p["position"]),
                str(p["attempts"]),
                iso(p["parked_at"], timespec="seconds"),
                compact(p["error"]),
            ]
            for p in page
        ],
    )
    _next_page("--after", following)


@events.command("projections")
@click.option("--app", "target", metavar="MODULE:APP", help=APP_HELP)
@json_option
@pass_settings
def events_projections(settings: Settings, target: str | None, as_json: bool) -> None:
    """The status of every projection the app registers: the generation readers use, one
    being rebuilt, and the checkpoint, lag, failures and parked events of each."""
    app = load_app(target, settings)

    async def go() -> list[dict[str, Any]]:
        async with app:
            return [await app.projections.status(n) for n in sorted(app.projections.registered)]

    items = run(go())
    if as_json:
        echo_json({"items": items})
        return
    rows = []
    for status in items:
        for label in ("current", "rebuild"):
            progress = status.get(label)
            if progress is None:
                continue
            generation = status["generation"] if label == "current" else status["building"]
            rows.append(
                [status["name"], f"{generation} ({label})", str(progress["position"]),
                 str(progress["lag"]), str(progress["failures"]), str(progress["parked"]),
                 compact(progress["last_error"] or "")]
            )  # fmt: skip
    echo_table(["name", "generation", "position", "lag", "failures", "parked", "last_error"], rows)


@events.command("rebuild")
@click.argument("name")
@click.option("--app", "target", metavar="MODULE:APP", help=APP_HELP)
@click.option(
    "--catch-up",
    is_flag=True,
    help="Replay the log here until the new generation has caught up, and switch readers "
    "to it (without it, a running worker or serve of the app does).",
)
@pass_settings
def events_rebuild(settings: Settings, name: str, target: str | None, catch_up: bool) -> None:
    """Start rebuilding projection NAME into a new generation while readers keep the
    current one; they switch once it has caught up. Exits 5 if a rebuild is running."""
    projection = check_projection_name(name)
    app = load_app(target, settings)

    async def go() -> dict[str, Any]:
        async with app:
            building = await app.projections.rebuild(projection)
            done: dict[str, Any] = {"name": projection, "building": building}
            if catch_up:
                await app.projections.catch_up(projection)
                done["generation"] = (await app.projections.status(projection))["generation"]
            return done

    echo_json(run(go()))
