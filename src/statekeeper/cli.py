"""The ``statekeeper`` command.

Errors print one line on stderr, ``error: <code>: <message>``, and exit with the
code of their kind (see ``errors.py``): 3 configuration, 4 bad input, 5 conflict,
6 not found, 7 storage, 8 database unreachable, 9 encryption; 2 is a usage error.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from statekeeper import __version__
from statekeeper.app import App
from statekeeper.codec import decode_json
from statekeeper.constants import ENV_DATABASE_URL, ENV_LOG_LEVEL, ENV_NAMESPACE
from statekeeper.errors import (
    DecryptionError,
    InvalidTTL,
    NotFound,
    StatekeeperError,
)
from statekeeper.logs import configure_logging
from statekeeper.state import Item, Keyring

T = TypeVar("T")


class Settings:
    def __init__(self, database: str | None, namespace: str | None) -> None:
        self.database = database
        self.namespace = namespace

    def app(self) -> App:
        try:
            return App(self.database, namespace=self.namespace, purge_interval=None)
        except StatekeeperError as error:
            _fail(error)


def _fail(error: StatekeeperError) -> NoReturn:
    click.echo(f"error: {error.code}: {error.message}", err=True)
    sys.exit(error.exit_code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a statekeeper error becomes one line on stderr and its exit code."""
    try:
        return asyncio.run(coro)
    except StatekeeperError as error:
        _fail(error)


async def with_app(settings: Settings, work: Callable[[App], Awaitable[T]]) -> T:
    async with settings.app() as app:
        return await work(app)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="statekeeper")
@click.option(
    "--database",
    envvar=ENV_DATABASE_URL,
    help="Database URL (default sqlite:///.statekeeper/state.db).",
)
@click.option("--namespace", envvar=ENV_NAMESPACE, help="State namespace (default 'default').")
@click.option(
    "--log-level",
    envvar=ENV_LOG_LEVEL,
    default="WARNING",
    show_default=True,
    help="Log level of the JSON logs on stderr (debug, info, warning, error).",
)
@click.pass_context
def main(ctx: click.Context, database: str | None, namespace: str | None, log_level: str) -> None:
    """statekeeper: durable state for stateless functions."""
    try:
        configure_logging(log_level)
    except StatekeeperError as error:
        _fail(error)
    ctx.obj = Settings(database, namespace)


# --- state ---------------------------------------------------------------------------


@main.group()
def state() -> None:
    """Read and write the key/value state store."""


def _parse_json(text: str) -> Any:
    """VALUE (or stdin for ``-``) decoded as strictly as an HTTP body."""
    # Arguments the locale could not decode keep their bytes (surrogateescape).
    data = sys.stdin.buffer.read() if text == "-" else text.encode("utf-8", "surrogateescape")
    try:
        return decode_json(data, "VALUE")
    except StatekeeperError as error:
        _fail(error)


def _parse_ttl(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        _fail(InvalidTTL(f"ttl must be a number of seconds, got {text!r}"))


def _print_item(item: Item) -> None:
    click.echo(json.dumps(item.to_dict(), ensure_ascii=False))


@state.command("get")
@click.argument("key")
@click.pass_obj
def state_get(settings: Settings, key: str) -> None:
    """Print KEY's item as JSON: key, value, etag, expires_at."""

    async def work(app: App) -> Item | None:
        return await app.state.get(key)

    item = run(with_app(settings, work))
    if item is None:
        _fail(NotFound(f"key {key!r} does not exist"))
    else:
        _print_item(item)


@state.command("put")
@click.argument("key")
@click.argument("value")
@click.option("--if-match", help="Write only if the current ETag is this one.")
@click.option("--only-if-absent", is_flag=True, help="Write only if KEY does not exist.")
@click.option("--ttl", help="Expire after this many seconds.")
@click.pass_obj
def state_put(
    settings: Settings,
    key: str,
    value: str,
    if_match: str | None,
    only_if_absent: bool,
    ttl: str | None,
) -> None:
    """Store VALUE (JSON text, or - for stdin) under KEY; print the new item."""
    parsed = _parse_json(value)
    seconds = _parse_ttl(ttl)

    async def work(app: App) -> Item:
        return await app.state.put(
            key, parsed, if_match=if_match, only_if_absent=only_if_absent, ttl=seconds
        )

    _print_item(run(with_app(settings, work)))


@state.command("delete")
@click.argument("key")
@click.option("--if-match", help="Delete only if the current ETag is this one.")
@click.pass_obj
def state_delete(settings: Settings, key: str, if_match: str | None) -> None:
    """Delete KEY; exits 6 if it did not exist."""

    async def work(app: App) -> bool:
        return await app.state.delete(key, if_match=if_match)

    if not run(with_app(settings, work)):
        _fail(NotFound(f"key {key!r} does not exist"))
    click.echo(json.dumps({"key": key, "deleted": True}))


@state.command("list")
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--limit", default=100, show_default=True, type=int, help="Items per page.")
@click.option("--cursor", help="Continue after the cursor a previous page printed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def state_list(
    settings: Settings, prefix: str, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List items in key order."""

    async def work(app: App) -> Any:
        return await app.state.list(prefix, limit=limit, cursor=cursor)

    page = run(with_app(settings, work))
    if as_json:
        items = [item.to_dict() for item in page.items]
        click.echo(json.dumps({"items": items, "cursor": page.cursor}, ensure_ascii=False))
        return
    table = Table("key", "value", "etag", "expires")
    for item in page.items:
        expires = item.expires.isoformat(timespec="seconds") if item.expires else ""
        table.add_row(item.key, json.dumps(item.value, ensure_ascii=False)[:80], item.etag, expires)
    console = Console()
    console.print(table)
    if page.cursor:
        console.print(f"next page: --cursor {page.cursor}")


@state.command("reencrypt")
@click.pass_obj
def state_reencrypt(settings: Settings) -> None:
    """Re-seal this namespace's state values under the primary encryption key (the
    state part of `statekeeper reencrypt`, which re-seals everything)."""

    async def work(app: App) -> Any:
        return await app.state.reencrypt()

    report = run(with_app(settings, work))
    click.echo(
        json.dumps(
            {
                "examined": report.examined,
                "rewritten": report.rewritten,
                "changed_meanwhile": report.changed_meanwhile,
            }
        )
    )


@main.command("reencrypt")
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rows per batch; each batch is one transaction.",
)
@click.option(
    "--max-batches",
    type=click.IntRange(1),
    help="Stop after this many batches (a later run finishes the job).",
)
@click.option(
    "--all-namespaces",
    is_flag=True,
    help="Every namespace of the database, not only --namespace's (only if they all use "
    "these keys: an app without them could no longer read its values).",
)
@click.pass_obj
def reencrypt(
    settings: Settings, batch_size: int, max_batches: int | None, all_namespaces: bool
) -> None:
    """Re-seal every stored value of the namespace (state, queues, idempotency,
    workflows) under the primary encryption key; print a JSON report."""

    async def work(app: App) -> Any:
        return await app.reencrypt(
            all_namespaces=all_namespaces, batch_size=batch_size, max_batches=max_batches
        )

    report = run(with_app(settings, work))
    click.echo(json.dumps(report.to_dict()))
    unreadable = report.total("unreadable")
    if unreadable:
        _fail(
            DecryptionError(
                f"{unreadable} stored values do not open with the configured keys and were "
                "left as they are (see 'unreadable' in the report)"
            )
        )


@main.command("keygen")
@click.option("--id", "key_id", default="k1", show_default=True, help="The key's id.")
def keygen(key_id: str) -> None:
    """Print a new encryption key as ID:BASE64, for STATEKEEPER_ENCRYPTION_KEYS."""
    click.echo(f"{key_id}:{Keyring.generate_key()}")


@main.command("demo")
@click.pass_obj
def demo(settings: Settings) -> None:
    """Walk through the state store on the configured database."""
    from statekeeper.demo import run_demo

    run(run_demo(settings.database))


def _register_runtime_commands() -> None:
    from statekeeper.cli_runtime import add_commands, add_workflow_commands

    add_commands(main, run)
    add_workflow_commands(main, run)


_register_runtime_commands()
