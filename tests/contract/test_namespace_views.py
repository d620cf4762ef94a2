"""One opened database serves many namespaces: views share the pool (on SQLite, one
writer thread) and keep their data apart."""

from __future__ import annotations

import asyncio
import threading

import pytest

from statekeeper import App
from statekeeper.errors import ClosedError, ConfigurationError
from statekeeper.workflows import WorkflowContext


def writer_threads() -> int:
    return sum(t.name == "statekeeper-sqlite-writer" for t in threading.enumerate())


async def test_a_hundred_namespaces_on_one_sqlite_file_share_one_writer(tmp_path: object) -> None:
    before = writer_threads()
    async with App(f"sqlite:///{tmp_path}/many.db", namespace="root") as app:
        views = [app.in_namespace(f"tenant-{n}") for n in range(100)]
        assert app.in_namespace("tenant-7") is views[7]  # one view per namespace
        assert app.in_namespace("root") is app
        assert len(app.namespaces) == 101

        async def write(n: int, view: App) -> None:
            await view.state.put("profile", {"tenant": n})
            await view.queue("jobs").send({"for": n})

        await asyncio.gather(*(write(n, view) for n, view in enumerate(views)))
        assert writer_threads() == before + 1  # the root's, and no other

        for n, view in enumerate(views):
            item = await view.state.get("profile")
            assert item is not None and item.value == {"tenant": n}
            [message] = await view.queue("jobs").receive(10)
            assert message.body == {"for": n}
            await message.ack()
        assert await app.state.get("profile") is None  # the root saw none of it
        assert await app.queue("jobs").receive(10) == []
    assert writer_threads() == before
    with pytest.raises(ClosedError):
        views[0].state  # noqa: B018 - closed with its app


async def test_views_run_their_own_workflows(database_url: str, namespace: str) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None)
    billing = app.in_namespace(f"{namespace}-billing")

    @billing.workflow
    async def invoice(ctx: WorkflowContext, amount: int) -> dict[str, int]:
        return {"billed": amount}

    async with app:
        run = await billing.workflows.start(invoice, 30, id="inv-1")
        worker = billing.worker(poll=0.05)
        runner = asyncio.create_task(worker.run())
        try:
            assert await billing.workflows.result(run, timeout=10) == {"billed": 30}
        finally:
            worker.stop()
            await runner
        assert [w["id"] for w in await billing.workflows.list()] == ["inv-1"]
        assert await app.workflows.list() == []  # another namespace
        with pytest.raises(ConfigurationError, match="opens and closes with its app"):
            await billing.open()
