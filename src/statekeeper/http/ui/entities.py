"""The dashboard's entity pages, on ``app.entities`` (what ``/v1/entities`` uses):

- ``/ui/entities``: the entity types the app registers, with their handlers, and the
  entities of one of them (``?type=``, the first by default) in key order, a page at a
  time (``?after=``): key, version, last change, lease holder and the start of the
  state;
- ``/ui/entities/{type}/{key}``: one entity's committed state as JSON, its version
  (how many calls changed it), its last change and the process holding its lease.

An entity key may hold any character but control ones (slashes too), so the entity's
page takes the rest of the path, percent-decoded, as its key; ``/ui/entities/{type}``
alone is the list of that type.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.entities.definitions import EntityType
from statekeeper.errors import EntityNotFound
from statekeeper.http.ui.shell import Shell, text_arg, to
from statekeeper.identifiers import MAX_ENTITY_KEY, check_entity_key

ENTITIES_PAGE = 50
PREVIEW = 80  # characters of a state shown in the list


class EntityPages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        shell = self.shell
        return [
            shell.route("/ui/entities", self.list_page),
            shell.route("/ui/entities/{type}", self.type_page),
            shell.route("/ui/entities/{type}/{key:path}", self.entity_page),
        ]

    async def list_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        types = app.entity_types.names()
        wanted = text_arg(request, "type", 200)
        chosen = app.entity_types.find(wanted) if wanted else next(iter(types.values()), None)
        after = text_arg(request, "after", MAX_ENTITY_KEY)
        if after:
            check_entity_key(after)
        rows: list[dict[str, Any]] = []
        following = None
        if chosen is not None:
            found = await app.entities.list(chosen.name, after=after, limit=ENTITIES_PAGE + 1)
            rows = [{**e.to_dict(), "preview": _preview(e.state)} for e in found[:ENTITIES_PAGE]]
            if len(found) > ENTITIES_PAGE:
                query = {"type": chosen.name, "after": found[ENTITIES_PAGE - 1].key}
                following = "/ui/entities?" + urllib.parse.urlencode(query)
        return self.shell.page(
            "entities.html", session, title="Entities", current="/ui/entities",
            types=[_type(t) for t in types.values()],
            chosen=None if chosen is None else chosen.name, rows=rows, next_page=following,
        )  # fmt: skip

    async def type_page(self, request: Request, session: str) -> Response:
        entity = self.shell.app.entity_types.find(request.path_params["type"])
        return to("/ui/entities?" + urllib.parse.urlencode({"type": entity.name}))

    async def entity_page(self, request: Request, session: str) -> Response:
        app = self.shell.app
        entity = app.entity_types.find(request.path_params["type"])
        key = check_entity_key(request.path_params["key"])
        found = await app.entities.get(entity.name, key)
        if found is None:
            raise EntityNotFound(
                f"entity {entity.name}/{key} was never called", entity=entity.name, key=key
            )
        return self.shell.page(
            "entities_one.html", session, title=f"Entity {entity.name}/{key}",
            current="/ui/entities", type=_type(entity), entity=found.to_dict(),
        )  # fmt: skip


def _type(entity: EntityType) -> dict[str, Any]:
    handlers = [
        f"{name} (read-only)" if handler.readonly else name
        for name, handler in sorted(entity.handlers.items())
    ]
    return {"name": entity.name, "handlers": handlers}


def _preview(state: Any) -> str:
    """The start of a state as one line of JSON."""
    text = json.dumps(state, ensure_ascii=False, default=repr, sort_keys=True)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"
