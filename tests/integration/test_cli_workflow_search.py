"""``statekeeper workflows list --attr/--since/--until``, ``counts``, ``bulk`` (with
--dry-run) and ``attributes`` as real processes, and their one-line errors."""

from __future__ import annotations

import pytest

from statekeeper import App
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.integration.cli_support import document, one_line_error, statekeeper
from tests.support import drive

START = FakeClock().now


@pytest.fixture
async def db(own_database_url: str) -> list[str]:
    clock = FakeClock()
    async with App(own_database_url, namespace="found", clock=clock, purge_interval=None) as app:

        @app.workflow
        async def order(ctx: WorkflowContext, n: int) -> int:
            await ctx.set_attributes({"customer": f"c-{n % 2}", "amount": n * 10})
            await ctx.wait_for_event("go")
            return n

        for n in range(5):
            await app.workflows.start("order", n, id=f"o-{n}")
            clock.advance(1)
        await drive(app)
    return ["--database", own_database_url, "--namespace", "found"]


def test_list_counts_attributes(db: list[str]) -> None:
    page = document(
        statekeeper(*db, "workflows", "list", "--attr", "customer=c-0", "--attr", "amount>0",
                    "--since", str(START + 1), "--json")
    )  # fmt: skip
    assert [w["id"] for w in page["items"]] == ["o-4", "o-2"]
    counts = document(statekeeper(*db, "workflows", "counts", "--attr", "customer=c-1", "--json"))
    assert counts["total"] == 2 and counts["by_status"]["waiting"] == 2
    table = statekeeper(*db, "workflows", "counts", "--until", str(START + 2))
    assert table.returncode == 0 and "total: 2" in table.stdout
    assert document(statekeeper(*db, "workflows", "attributes", "o-3")) == {
        "amount": 30, "customer": "c-1",
    }  # fmt: skip


def test_bulk_dry_run_then_pause(db: list[str]) -> None:
    dry = statekeeper(*db, "workflows", "bulk", "pause", "--attr", "amount>=30", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would reach 2 workflows" in dry.stdout and "o-4, o-3" in dry.stdout
    done = document(
        statekeeper(*db, "workflows", "bulk", "pause", "--attr", "amount>=30", "--json")
    )
    assert (done["matched"], done["changed"], done["dry_run"]) == (2, 2, False)
    described = document(statekeeper(*db, "workflows", "describe", "o-4", "--json"))
    assert described["paused"] is True


@pytest.mark.parametrize(
    ("args", "code", "exit_code", "named"),
    [
        (["list", "--attr", "=3"], "invalid_filter", 4, "--attr"),
        (["list", "--attr", "amount=>3"], "invalid_filter", 4, "'amount'"),
        (["counts", "--status", "lost"], "invalid_filter", 4, "status"),
        (["bulk", "cancel"], "invalid_filter", 4, "--all"),
        (["bulk", "retry", "--attr", "customer>c"], "invalid_filter", 4, "customer"),
        (["bulk", "cancel", "--status", "waiting", "--batch", "0"], "invalid_filter", 4, "batch"),
        (["list", "--since", "later"], "usage", 2, "--since"),
        (["bulk", "delete", "--status", "waiting"], "usage", 2, "delete"),
    ],
    ids=[
        "attr",
        "attr-value",
        "status",
        "no-filter",
        "keyword-range",
        "batch",
        "since",
        "operation",
    ],
)
def test_bad_filters_are_one_line_errors(
    db: list[str], args: list[str], code: str, exit_code: int, named: str
) -> None:
    line = one_line_error(statekeeper(*db, "workflows", *args), code, exit_code)
    assert named in line
