"""Application versions, on SQLite and PostgreSQL: every run is stamped with the version
of the code that starts it; a pinned worker leases only runs of its own versions (and
runs with none); ``move_version`` moves runs to another version; a run sleeping on old
code resumes on new code once moved, replaying the old path of a ``ctx.patched``
change while new runs take the new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import ConfigurationError, ValidationError, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from statekeeper.workflows.versions import code_version
from tests.conftest import FakeClock
from tests.support import drive

ran: list[str] = []


async def audit(order: str) -> str:
    ran.append("audit")
    return f"audited {order}"


async def charge(order: str) -> str:
    ran.append("charge")
    return f"paid {order}"


async def notify(order: str) -> str:
    ran.append("notify")
    return f"notified {order}"


async def old_order(ctx: WorkflowContext, order: str) -> list[str]:
    paid = await ctx.step(charge, order)
    await ctx.sleep(60)
    return [paid]


async def new_order(ctx: WorkflowContext, order: str) -> list[str]:
    done = []
    if await ctx.patched("audit-first"):  # before what old runs recorded: they skip it
        done.append(await ctx.step(audit, order))
    done.append(await ctx.step(charge, order))
    await ctx.sleep(60)
    if await ctx.patched("notify-after-sleep"):  # past what they recorded: they take it
        done.append(await ctx.step(notify, order))
    return done


async def other(ctx: WorkflowContext, order: str) -> str:
    return f"other {order}"


async def parent(ctx: WorkflowContext, order: str) -> Any:
    return await ctx.child(other, order, id=f"{order}-child")


async def defined(ctx: WorkflowContext, order: str) -> str:
    return f"defined {order}"


def make_app(url: str, namespace: str, clock: FakeClock, **options: Any) -> App:
    return App(
        url, namespace=namespace, clock=clock, purge_interval=None, encryption=None, **options
    )


async def test_runs_are_stamped_with_their_workflow_code_version(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(database_url, namespace, clock) as app:
        app.workflow(old_order, name="order")
        app.workflow(other)
        first = await app.workflows.start("order", "o-1")
        second = await app.workflows.start(other, "x")
        order_version = code_version("order", old_order)
        assert order_version.startswith("code-") and len(order_version) == 17
        # Not yet run: no code has recorded anything, so no version pins it yet.
        assert (await app.workflows.status(first)).version is None
        await drive(app)  # the first lease stamps the runner's version of each workflow
        assert (await app.workflows.status(first)).version == order_version
        assert (await app.workflows.status(second)).version == code_version("other", other)
        assert order_version != code_version("order", new_order)  # the code is hashed
        assert order_version != code_version("other", old_order)  # and the name
        listed = {row["id"]: row["version"] for row in await app.workflows.list()}
        assert listed == {first: order_version, second: code_version("other", other)}
        assert (await app.workflows.status(first)).to_dict()["version"] == order_version
        assert app.version.startswith("code-") and app.version not in listed.values()


async def test_an_explicit_version_stamps_every_run_children_too(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(database_url, namespace, clock, version="2024.06-b") as app:
        app.workflow(parent)
        app.workflow(other)
        assert app.version == "2024.06-b"
        run = await app.workflows.start(parent, "p")
        await drive(app)
        assert await app.workflows.result(run) == "other p"
        assert (await app.workflows.status(run)).version == "2024.06-b"
        assert (await app.workflows.status("p-child")).version == "2024.06-b"


async def test_a_child_takes_the_version_of_its_own_code(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(database_url, namespace, clock) as app:
        app.workflow(parent)
        app.workflow(other)
        run = await app.workflows.start(parent, "p")
        await drive(app)
        assert await app.workflows.result(run) == "other p"
        assert (await app.workflows.status("p-child")).version == code_version("other", other)


async def test_a_pinned_worker_runs_only_its_versions_until_runs_move(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(database_url, namespace, clock, version="v1") as old:
        old.workflow(other)
        pinned = await old.workflows.start(other, "a", id="pinned")
        # A run with no version (started before versions existed) runs anywhere.
        await old.backend.workflows.create(namespace, "bare", "other", b'"b"', None, clock())
    async with make_app(database_url, namespace, clock, version="v2") as new:
        new.workflow(other)
        await drive(new)
        assert (await new.workflows.status("bare")).status == "succeeded"
        assert (await new.workflows.status(pinned)).status == "pending"  # v1's, not v2's
        assert await new.workflows.move_version("v1", "v2") == 1
        assert await new.workflows.move_version("v1", "v2") == 0  # none left on v1
        await drive(new)
        assert await new.workflows.result(pinned) == "other a"
        assert (await new.workflows.status(pinned)).version == "v2"


async def test_the_any_policy_runs_every_version(
    database_url: str, namespace: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_app(database_url, namespace, clock, version="v1") as old:
        old.workflow(other)
        run = await old.workflows.start(other, "a")
    monkeypatch.setenv("STATEKEEPER_VERSION_POLICY", "any")
    async with make_app(database_url, namespace, clock, version="v2") as new:
        new.workflow(other)
        assert new.workflows.versions.policy == "any"
        await drive(new)
        assert await new.workflows.result(run) == "other a"
        assert (await new.workflows.status(run)).version == "v1"  # it keeps its version


async def test_a_run_started_by_a_stand_in_is_pinned_by_the_code_that_runs_it(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """A client process that registers a stand-in of a workflow (a function of the same
    name that only raises) starts runs the real code runs, and pins them to that code."""
    async with make_app(database_url, namespace, clock) as client:

        @client.workflow(name="other")
        async def stand_in(ctx: WorkflowContext, order: str) -> str:
            raise AssertionError("runs only where the real code is")

        run = await client.workflows.start("other", "s")
    async with make_app(database_url, namespace, clock) as worker:
        worker.workflow(other)
        await drive(worker)
        assert await worker.workflows.result(run) == "other s"
        assert (await worker.workflows.status(run)).version == code_version("other", other)


async def test_processes_with_different_workflow_sets_agree_on_versions(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """A process that starts runs and one that runs them need not register the same
    workflows: the default version is each workflow's own. One registered after the
    runner first leased is leased from then on."""
    async with make_app(database_url, namespace, clock) as starter:
        starter.workflow(other)
        first = await starter.workflows.start(other, "a")
    async with make_app(database_url, namespace, clock) as runner:
        runner.workflow(old_order, name="order")
        runner.workflow(other)
        await drive(runner)
        assert await runner.workflows.result(first) == "other a"
        runner.workflow(parent)  # registered after the first lease
        second = await runner.workflows.start(parent, "q")
        await drive(runner)
        assert await runner.workflows.result(second) == "other q"


async def test_a_defined_workflow_carries_no_version_unless_one_is_given(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    path = f"{__name__}:defined"
    async with make_app(database_url, namespace, clock) as app:
        await app.workflows.define("d", "python", path)
        run = await app.workflows.start("d", "x")
        assert (await app.workflows.status(run)).version is None
        await drive(app)
        assert await app.workflows.result(run) == "defined x"
    async with make_app(database_url, namespace, clock, version="v3") as app:
        run = await app.workflows.start("d", "y")
        assert (await app.workflows.status(run)).version == "v3"
        await drive(app)
        assert await app.workflows.result(run) == "defined y"


async def test_moving_versions_by_name_and_by_run(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(database_url, namespace, clock, version="v1") as app:
        app.workflow(old_order, name="order")
        app.workflow(other)
        orders = [await app.workflows.start("order", f"o{n}") for n in range(3)]
        others = [await app.workflows.start(other, f"x{n}") for n in range(2)]
        done = await app.workflows.start(other, "done")
        await drive(app)  # 'other' runs finish; the orders sleep
        assert (await app.workflows.status(done)).status == "succeeded"
        assert await app.workflows.move_version("v1", "v2", name="order") == 3
        assert await app.workflows.move_version("v2", "v3", id=orders[0]) == 1
        assert await app.workflows.move_version("v1", "v3", id=orders[1]) == 0  # it is v2
        assert await app.workflows.move_version(None, "v3", id=orders[1]) == 1
        versions = [(await app.workflows.status(r)).version for r in [*orders, *others]]
        assert versions == ["v3", "v3", "v2", "v1", "v1"]  # finished runs keep theirs
        with pytest.raises(ValidationError, match="has finished"):
            await app.workflows.move_version(None, "v3", id=done)
        with pytest.raises(WorkflowNotFound):
            await app.workflows.move_version(None, "v3", id="nope")
        with pytest.raises(ValidationError, match="from_version"):
            await app.workflows.move_version(None, "v3")
        with pytest.raises(ValidationError, match="invalid to_version"):
            await app.workflows.move_version("v1", "has space")
        with pytest.raises(ValidationError, match="invalid from_version"):
            await app.workflows.move_version("", "v2")


def test_version_options_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with pytest.raises(ConfigurationError, match="version_policy"):
        App(url, version_policy="newest")
    with pytest.raises(ConfigurationError, match="invalid version"):
        App(url, version="two words")
    monkeypatch.setenv("STATEKEEPER_APP_VERSION", "from-env")
    assert App(url).version == "from-env"
    assert App(url, version="given").version == "given"


async def test_a_sleeping_run_resumes_on_patched_new_code_once_moved(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """The versioning scenario: a run sleeps on the old code; the new code adds a step
    guarded by ctx.patched before what the run recorded and one after it; the run,
    pinned to the old version, waits for it until moved, then resumes on the new code
    (the old path where it recorded, the new one past that); a new run takes the new
    path throughout."""
    ran.clear()
    async with make_app(database_url, namespace, clock) as old:
        old.workflow(old_order, name="order")
        await old.workflows.start("order", "o-1", id="before")
        await drive(old)
        assert (await old.workflows.status("before")).status == "sleeping"
    assert ran == ["charge"]
    ran.clear()
    clock.advance(61)  # the sleep is over while the new code is deployed
    async with make_app(database_url, namespace, clock) as new:
        new.workflow(new_order, name="order")
        await drive(new)
        assert (await new.workflows.status("before")).status == "sleeping"  # pinned: not run
        assert ran == []
        old_version, new_version = (
            code_version("order", old_order),
            new.workflows.versions.of("order"),
        )
        assert new_version is not None and new_version != old_version
        assert await new.workflows.move_version(old_version, new_version, name="order") == 1
        await new.workflows.start("order", "o-2", id="after")
        await drive(new)
        assert (await new.workflows.status("after")).status == "sleeping"
        assert await new.workflows.result("before") == ["paid o-1", "notified o-1"]
        # 'before' charged once before the deploy and was never audited; 'after' was.
        assert sorted(ran) == ["audit", "charge", "notify"]
        clock.advance(61)
        await drive(new)
        assert await new.workflows.result("after") == [
            "audited o-2", "paid o-2", "notified o-2"
        ]  # fmt: skip
        kinds = [(e["kind"], e["name"]) for e in await new.workflows.history("before")]
        assert kinds == [
            ("step", "charge"), ("sleep", "sleep"), ("patch", "notify-after-sleep"),
            ("step", "notify"),
        ]  # fmt: skip
