"""The records of the Step Functions API on SQLite and PostgreSQL: one per kind and
name, replaced whole, listed by prefix a page at a time forwards or backwards, and
deleted one by one or by prefix; namespaces apart."""

from __future__ import annotations

from statekeeper import App


async def test_records_are_kept_by_kind_and_name_and_listed_by_prefix(app: App) -> None:
    store = app.backend.machines
    ns = app.namespace
    assert await store.insert(ns, "machine", "orders", {"type": "STANDARD"}, 1.0)
    assert not await store.insert(ns, "machine", "orders", {"type": "EXPRESS"}, 2.0)
    assert await store.insert(ns, "alias", "orders", {"x": 1}, 1.0)  # another kind
    found = await store.get(ns, "machine", "orders")
    assert found is not None and found.doc == {"type": "STANDARD"} and found.created_at == 1.0
    assert await store.update(ns, "machine", "orders", {"type": "STANDARD", "tags": {"a": "b"}})
    assert not await store.update(ns, "machine", "nothing", {})
    assert (await store.get(ns, "machine", "orders")).doc["tags"] == {"a": "b"}  # type: ignore[union-attr]
    for n in range(1, 13):
        await store.insert(ns, "version", f"orders:{n:010d}", {"n": n}, float(n))
    await store.insert(ns, "version", "orders2:0000000001", {"n": 99}, 1.0)
    first = await store.list(ns, "version", "orders:", limit=5)
    assert [r.doc["n"] for r in first] == [1, 2, 3, 4, 5]
    second = await store.list(ns, "version", "orders:", after=first[-1].name, limit=5)
    assert [r.doc["n"] for r in second] == [6, 7, 8, 9, 10]
    newest = await store.list(ns, "version", "orders:", limit=3, newest_first=True)
    assert [r.doc["n"] for r in newest] == [12, 11, 10]
    older = await store.list(ns, "version", "orders:", after=newest[-1].name, newest_first=True)
    assert [r.doc["n"] for r in older] == list(range(9, 0, -1))
    assert await store.list(app.in_namespace("elsewhere").namespace, "version", "orders:") == []
    assert await store.delete(ns, "version", "orders:0000000001")
    assert not await store.delete(ns, "version", "orders:0000000001")
    await store.delete_prefix(ns, "version", "orders:")
    assert await store.list(ns, "version", "orders:") == []
    assert len(await store.list(ns, "version", "orders2:")) == 1
