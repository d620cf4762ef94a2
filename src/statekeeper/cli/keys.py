"""Encryption keys: ``statekeeper keygen`` and ``statekeeper reencrypt``."""

from __future__ import annotations

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings
from statekeeper.cli.output import echo_json
from statekeeper.errors import DecryptionError
from statekeeper.reencrypt import ReencryptReport
from statekeeper.state import Keyring


@click.command("keygen")
@click.option("--id", "key_id", default="k1", show_default=True, help="The key's id.")
def keygen(key_id: str) -> None:
    """Print a new encryption key as ID:BASE64, for STATEKEEPER_ENCRYPTION_KEYS."""
    click.echo(f"{key_id}:{Keyring.generate_key()}")


@click.command("reencrypt")
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
@pass_settings
def reencrypt(
    settings: Settings, batch_size: int, max_batches: int | None, all_namespaces: bool
) -> None:
    """Re-seal every stored value of the namespace (state, queues, idempotency,
    workflows with their messages, updates and published values, schedules, the event
    store, entities and their answers) under the primary encryption key; print a JSON
    report. Exits 9 when some values do not open with the configured keys (they are
    left as they are)."""

    async def work(app: App) -> ReencryptReport:
        return await app.reencrypt(
            all_namespaces=all_namespaces, batch_size=batch_size, max_batches=max_batches
        )

    report = on_app(settings, work)
    echo_json(report.to_dict())
    unreadable = report.total("unreadable")
    if unreadable:
        raise DecryptionError(
            f"{unreadable} stored values do not open with the configured keys and were "
            "left as they are (see 'unreadable' in the report)"
        )
