"""DefinitionStorage on both backends: revisions, announcements, listing, deletion."""

from __future__ import annotations

from statekeeper import App


async def test_definitions_keep_revisions_and_announcements_apart(
    database_url: str, namespace: str
) -> None:
    async with App(database_url, namespace=namespace, purge_interval=None) as app:
        store = app.backend.definitions
        assert await store.define(namespace, "b", "python", '"m:f"', 1.0) == 1
        assert await store.define(namespace, "b", "python", '"m:f"', 2.0) == 1  # unchanged
        assert await store.define(namespace, "b", "python", '"m:g"', 3.0) == 2
        assert await store.define(namespace, "b", "other", '"m:g"', 4.0) == 3
        await store.announce_code(namespace, ["a", "b"], 5.0)  # b stays as defined
        rows = await store.list(namespace)
        assert [(r.name, r.kind, r.definition, r.revision) for r in rows] == [
            ("a", "code", None, 1),
            ("b", "other", '"m:g"', 3),
        ]
        got = await store.get(namespace, "b")
        assert got is not None and got.updated_at == 4.0
        assert await store.list(f"{namespace}-other") == []
        assert await store.delete(namespace, "b") is True
        assert await store.delete(namespace, "b") is False
        assert await store.get(namespace, "b") is None
