"""``statekeeper entities list / get`` as real processes, on SQLite and PostgreSQL: the
committed state of entities called from code, without the code (a type and a key are
enough); one-line errors with their exit codes."""

from __future__ import annotations

from pathlib import Path

from statekeeper import App
from statekeeper.entities import EntityContext
from tests.integration.cli_support import document, one_line_error, statekeeper


async def test_list_and_get_show_committed_state(own_database_url: str, tmp_path: Path) -> None:
    db = ["--database", own_database_url, "--namespace", "shop"]
    async with App(own_database_url, namespace="shop", purge_interval=None) as app:
        cart = app.entity("cart", initial=dict)

        @cart.handler
        def add(ctx: EntityContext, sku: str) -> int:
            ctx.state[sku] = ctx.state.get(sku, 0) + 1
            return int(ctx.state[sku])

        for key, sku in [("u1", "apple"), ("u1", "apple"), ("u2", "pear\x1b[31m"), ("u3", "fig")]:
            await app.entities.call("cart", key, "add", sku)

    listed = document(statekeeper(*db, "entities", "list", "cart", "--json", cwd=tmp_path))
    assert [(e["key"], e["state"], e["version"]) for e in listed["items"]] == [
        ("u1", {"apple": 2}, 2), ("u2", {"pear\x1b[31m": 1}, 1), ("u3", {"fig": 1}, 1),
    ]  # fmt: skip
    assert all(e["leased_by"] is None and e["updated_at_iso"].endswith("+00:00")
               for e in listed["items"])  # fmt: skip
    page = document(statekeeper(*db, "entities", "list", "cart", "--after", "u1", "--limit",
                                "1", "--json", cwd=tmp_path))  # fmt: skip
    assert [e["key"] for e in page["items"]] == ["u2"]
    table = statekeeper(*db, "entities", "list", "cart", cwd=tmp_path)
    assert table.returncode == 0 and "u1" in table.stdout and "apple" in table.stdout
    assert "\x1b" not in table.stdout  # stored control characters are escaped

    got = document(statekeeper(*db, "entities", "get", "cart", "u1", "--json", cwd=tmp_path))
    assert (got["key"], got["state"], got["version"]) == ("u1", {"apple": 2}, 2)
    fields = statekeeper(*db, "entities", "get", "cart", "u1", cwd=tmp_path)
    assert fields.returncode == 0 and "apple" in fields.stdout and "version" in fields.stdout

    missing = statekeeper(*db, "entities", "get", "cart", "nobody", cwd=tmp_path)
    assert "cart/nobody" in one_line_error(missing, "entity_not_found", 6)
    one_line_error(statekeeper(*db, "entities", "list", "a cart", cwd=tmp_path),
                   "invalid_identifier", 4)  # fmt: skip
    one_line_error(statekeeper(*db, "entities", "get", "cart", "", cwd=tmp_path),
                   "invalid_identifier", 4)  # fmt: skip
    bad = statekeeper(*db, "entities", "list", "cart", "--limit", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert document(statekeeper(*db, "entities", "list", "other", "--json",
                                cwd=tmp_path)) == {"items": []}  # fmt: skip
