"""``statekeeper entities``: inspect entities' committed state.

Reading needs no code: an entity's type and key are enough (the handlers are the
application's; docs/entities.md). Times print as ISO-8601 UTC; ``--json`` prints Unix
seconds too.
"""

from __future__ import annotations

from typing import Any

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, on_app, pass_settings
from statekeeper.cli.output import JSON_HELP, compact, echo_fields, echo_json, echo_table, iso
from statekeeper.entities import EntitySnapshot
from statekeeper.errors import EntityNotFound


@click.group("entities")
def entities() -> None:
    """Inspect entities: their state, version and lease."""


def _shown(entity: EntitySnapshot) -> dict[str, Any]:
    return {**entity.to_dict(), "updated_at_iso": iso(entity.updated_at)}


@entities.command("list")
@click.argument("entity_type", metavar="TYPE")
@click.option("--after", default="", metavar="KEY", help="Start after this key.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000),
              help="Entities to list (1 to 1000).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def entities_list(
    settings: Settings, entity_type: str, after: str, limit: int, as_json: bool
) -> None:
    """Entities of TYPE in key order."""

    async def work(app: App) -> list[EntitySnapshot]:
        return await app.entities.list(entity_type, after=after, limit=limit)

    found = on_app(settings, work)
    if as_json:
        echo_json({"items": [_shown(e) for e in found]})
        return
    echo_table(
        ["key", "version", "updated_at", "leased_by", "state"],
        [[e.key, str(e.version), iso(e.updated_at, timespec="seconds"), e.leased_by,
          compact(e.state)] for e in found],
    )  # fmt: skip


@entities.command("get")
@click.argument("entity_type", metavar="TYPE")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_settings
def entities_get(settings: Settings, entity_type: str, key: str, as_json: bool) -> None:
    """One entity: its state, version, last change and lease holder."""

    async def work(app: App) -> EntitySnapshot | None:
        return await app.entities.get(entity_type, key)

    found = on_app(settings, work)
    if found is None:
        raise EntityNotFound(f"no entity {entity_type}/{key} was ever called",
                             entity=entity_type, key=key)  # fmt: skip
    if as_json:
        echo_json(_shown(found))
        return
    echo_fields([("type", entity_type), ("key", found.key), ("version", found.version),
                 ("updated_at", iso(found.updated_at, timespec="seconds")),
                 ("leased_by", found.leased_by), ("state", found.state)])  # fmt: skip
