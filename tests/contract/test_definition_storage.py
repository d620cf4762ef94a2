"""DefinitionStorage on both backends: revisions, announcements, listing, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from statekeeper import App
from statekeeper.workflows import WorkflowRunner


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


async def test_a_definition_that_fails_to_load_waits_and_holds_no_lease(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    await app.workflows.define("explodes", "python", "explodes_on_import:flow")
    run = await app.workflows.start("explodes", None, id="x1")
    runner = WorkflowRunner(app.workflows)
    assert await runner.run_due() == 1
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and row.status == "pending"  # given back, due later; not failed
    assert row.lease_expires_at is None
