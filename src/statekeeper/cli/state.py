"""``statekeeper state``: read and write the key/value state store."""

from __future__ import annotations

import json

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings, read_json
from statekeeper.cli.output import JSON_HELP, compact, echo_fields, echo_json, echo_table, iso
from statekeeper.errors import InvalidTTL, NotFound
from statekeeper.state import Item, Page
from statekeeper.state.store import ReencryptReport


@click.group("state")
def state() -> None:
    """Read and write the key/value state store."""


def _ttl(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidTTL(f"ttl must be a number of seconds, got {text!r}") from None


@state.command("get")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def state_get(settings: Settings, key: str, as_json: bool) -> None:
    """Print KEY's item: key, value, etag, expires_at. Exits 6 if there is none."""

    async def work(app: App) -> Item | None:
        return await app.state.get(key)

    item = on_app(settings, work)
    if item is None:
        raise NotFound(f"key {key!r} does not exist")
    if as_json:
        echo_json(item.to_dict())
        return
    echo_fields(
        [
            ("key", item.key),
            ("value", json.dumps(item.value, ensure_ascii=False)),
            ("etag", item.etag),
            ("expires_at", iso(item.expires_at) or "never"),
        ]
    )


@state.command("put")
@click.argument("key")
@click.argument("value")
@click.option("--if-match", metavar="ETAG", help="Write only if the current ETag is this one.")
@click.option("--only-if-absent", is_flag=True, help="Write only if KEY does not exist.")
@click.option("--ttl", metavar="SECONDS", help="Expire after this many seconds.")
@pass_settings
def state_put(
    settings: Settings,
    key: str,
    value: str,
    if_match: str | None,
    only_if_absent: bool,
    ttl: str | None,
) -> None:
    """Store VALUE (JSON text, or - for stdin) under KEY; print the new item as JSON.
    Exits 5 if a condition fails."""
    parsed = read_json(value, "VALUE")
    seconds = _ttl(ttl)

    async def work(app: App) -> Item:
        return await app.state.put(
            key, parsed, if_match=if_match, only_if_absent=only_if_absent, ttl=seconds
        )

    echo_json(on_app(settings, work).to_dict())


@state.command("delete")
@click.argument("key")
@click.option("--if-match", metavar="ETAG", help="Delete only if the current ETag is this one.")
@pass_settings
def state_delete(settings: Settings, key: str, if_match: str | None) -> None:
    """Delete KEY; exits 6 if it did not exist, 5 if --if-match does not match."""

    async def work(app: App) -> bool:
        return await app.state.delete(key, if_match=if_match)

    if not on_app(settings, work):
        raise NotFound(f"key {key!r} does not exist")
    echo_json({"key": key, "deleted": True})


@state.command("list")
@click.option("--prefix", default="", metavar="PREFIX", help="Only keys starting with this.")
@click.option("--limit", default=100, show_default=True, type=int, help="Items per page.")
@click.option(
    "--cursor", metavar="CURSOR", help="Continue after the cursor a previous page printed."
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def state_list(
    settings: Settings, prefix: str, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List items in key order, a page at a time; the next page's cursor is printed
    last (in JSON: "cursor", null on the last page)."""

    async def work(app: App) -> Page:
        return await app.state.list(prefix, limit=limit, cursor=cursor)

    page = on_app(settings, work)
    if as_json:
        echo_json({"items": [item.to_dict() for item in page.items], "cursor": page.cursor})
        return
    echo_table(
        ["key", "value", "etag", "expires_at"],
        [
            [
                item.key,
                compact(json.dumps(item.value, ensure_ascii=False)),
                item.etag,
                iso(item.expires_at, timespec="seconds"),
            ]
            for item in page.items
        ],
    )
    if page.cursor:
        click.echo(f"next page: --cursor {page.cursor}")


@state.command("reencrypt")
@pass_settings
def state_reencrypt(settings: Settings) -> None:
    """Re-seal this namespace's state values under the primary encryption key (the
    state part of `statekeeper reencrypt`, which re-seals everything)."""

    async def work(app: App) -> ReencryptReport:
        return await app.state.reencrypt()

    report = on_app(settings, work)
    echo_json(
        {
            "examined": report.examined,
            "rewritten": report.rewritten,
            "changed_meanwhile": report.changed_meanwhile,
        }
    )
