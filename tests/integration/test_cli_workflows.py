"""The workflow verbs as real processes, on SQLite and PostgreSQL: start, send-event and
result against a running worker, its start and stop lines, the failed workflow's log
line, listing newest first with a cursor, and the errors of each verb."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from statekeeper import App
from statekeeper.storage import parse
from tests.conftest import FakeClock
from tests.integration.cli_support import (
    Running,
    document,
    one_line_error,
    statekeeper,
)

FLOWS = """
from statekeeper import App, Retry

app = App(namespace="flows", purge_interval=None)


async def lookup(key):
    return {}[key]


@app.workflow
async def greet(ctx, who):
    answer = await ctx.wait_for_event("go", timeout=60)
    return {"hello": who, "answer": answer}


@app.workflow
async def broken(ctx, _):
    return await ctx.step(lookup, "missing", retry=Retry(max_attempts=1))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


@pytest.fixture
def url(own_database_url: str) -> str:
    """The test's database; a PostgreSQL URL carries a password (the server trusts
    loopback, so it is not checked) that must never be shown."""
    return own_database_url.replace("postgres@", "postgres:hunter2secret@")


def iso_utc(text: str) -> datetime:
    """``text`` read as an ISO-8601 time, which must be in UTC."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    return when


def test_start_send_event_and_result_through_a_worker(
    project: Path, url: str, workers: list[Running]
) -> None:
    db = ["--database", url, "--namespace", "flows"]
    worker = Running(*db, "worker", "--app", "flows:app", cwd=project)
    workers.append(worker)
    banner = worker.wait_for("statekeeper worker running")
    assert banner.startswith(
        "statekeeper worker running; consumers: none; workflows: broken, greet; "
        "projections: none; namespace: flows"
    )
    assert banner.endswith(f"; database: {parse(url).described()}")
    assert "hunter2secret" not in banner
    assert "postgres:***@" in banner or url.startswith("sqlite")

    started = document(statekeeper(*db, "workflows", "start", "greet", "--input", '"ada"',
                                   "--id", "g1", cwd=project))  # fmt: skip
    # The status is read just after the start: the worker may have leased the run, or
    # even finished it, in between (it hears of the start at once on PostgreSQL).
    assert (started["id"], started["name"]) == ("g1", "greet")
    assert started["status"] in ("pending", "running", "succeeded")
    iso_utc(started["created_at"])
    again = document(statekeeper(*db, "workflows", "start", "greet", "--input", '"ada"',
                                 "--id", "g1", cwd=project))  # fmt: skip
    assert again["id"] == "g1"  # the id is idempotent (with the same input)
    sent = statekeeper(*db, "workflows", "send-event", "g1", "go", "--data", '{"yes": 1}')
    assert document(sent) == {"id": "g1", "event": "go", "delivered": True}
    result = statekeeper(*db, "workflows", "result", "g1", "--wait", "--timeout", "30")
    assert document(result) == {"hello": "ada", "answer": {"yes": 1}}
    full = document(statekeeper(*db, "workflows", "result", "g1", "--json"))
    assert full == {"id": "g1", "name": "greet", "status": "succeeded",
                    "output": {"hello": "ada", "answer": {"yes": 1}}}  # fmt: skip

    # Checked against the app: the worker's database and namespace, through --app.
    broken = statekeeper(*db, "workflows", "start", "broken", "--id", "b1", "--app", "flows:app",
                         cwd=project)  # fmt: skip
    assert document(broken)["status"] in ("pending", "running", "failed")
    failed = statekeeper(*db, "workflows", "result", "b1", "--wait", "--timeout", "30")
    line = one_line_error(failed, "workflow_failed", 10)
    assert "'b1' ended failed: KeyError: step 'lookup' failed: 'missing'" in line

    # --timeout: the worker ends it timed_out while it waits for its event.
    timed = statekeeper(*db, "workflows", "start", "greet", "--id", "t1", "--timeout", "0.5",
                        cwd=project)  # fmt: skip
    assert document(timed)["status"] in ("pending", "running")
    late = statekeeper(*db, "workflows", "result", "t1", "--wait", "--timeout", "30")
    assert "'t1' ended timed_out: WorkflowTimedOut: " in one_line_error(late, "workflow_failed", 10)
    listed = document(statekeeper(*db, "workflows", "list", "--status", "timed_out", "--json"))
    assert [w["id"] for w in listed["items"]] == ["t1"]
    refused = statekeeper(*db, "workflows", "send-event", "t1", "go")
    assert "has finished (timed_out)" in one_line_error(refused, "workflow_finished", 5)

    lines = worker.stop()
    assert lines[-1] == (
        "statekeeper worker stopped; messages processed: 0; failed: 0; workflows finished: 3"
    )
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    [failure] = [entry for entry in logged if entry["message"] == "workflow failed"]
    assert failure["level"] == "warning" and failure["workflow_id"] == "b1"
    assert "KeyError: 'missing'" in failure["exception"]
    assert 'flows.py", line' in failure["exception"]  # the user's own frame
    assert all("hunter2secret" not in line for line in lines)


def test_result_start_and_send_event_errors(project: Path, tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/errors.db"]
    unknown = statekeeper(*db, "workflows", "start", "nobody_runs_me", "--id", "p1")
    assert "no workflow named 'nobody_runs_me'" in one_line_error(unknown, "unknown_workflow", 6)
    defined = statekeeper(*db, "workflows", "define", "nobody_runs_me", "python", '"flows:greet"')
    assert document(defined) == {"name": "nobody_runs_me", "kind": "python", "revision": 1}
    bad = statekeeper(*db, "workflows", "define", "x", "python", '"not a path"')
    assert "import path 'module:function'" in one_line_error(bad, "invalid_input", 4)
    bad = statekeeper(*db, "workflows", "define", "x", "cobol", "{}")
    assert "unknown workflow kind 'cobol'" in one_line_error(bad, "invalid_input", 4)
    started = document(statekeeper(*db, "workflows", "start", "nobody_runs_me", "--id", "p1"))
    assert started["status"] == "pending"
    line = one_line_error(
        statekeeper(*db, "workflows", "result", "p1"), "workflow_not_finished", 11
    )
    assert "--wait" in line
    waited = statekeeper(*db, "workflows", "result", "p1", "--timeout", "0.2")  # waits
    assert "pending after 0.2 s" in one_line_error(waited, "workflow_not_finished", 11)
    one_line_error(statekeeper(*db, "workflows", "result", "nobody"), "workflow_not_found", 6)
    for timeout in ("0", "-1", "nan", "inf", "soon"):
        bad = statekeeper(*db, "workflows", "result", "p1", "--wait", "--timeout", timeout)
        assert "--timeout" in one_line_error(bad, "usage", 2)
        bad = statekeeper(*db, "workflows", "start", "x", "--timeout", timeout)
        assert "--timeout" in one_line_error(bad, "usage", 2)
    one_line_error(statekeeper(*db, "workflows", "start", "a b"), "invalid_workflow_name", 4)
    one_line_error(
        statekeeper(*db, "workflows", "start", "x", "--id", "a\nb"), "invalid_workflow_id", 4
    )
    one_line_error(
        statekeeper(*db, "workflows", "start", "x", "--input", "{bad"), "malformed_json", 4
    )
    unknown = statekeeper(*db, "workflows", "start", "nope", "--app", "flows:app", cwd=project)
    one_line_error(unknown, "unknown_workflow", 6)
    statekeeper(*db, "workflows", "define", "other_name", "python", '"flows:greet"')
    taken = statekeeper(*db, "workflows", "start", "other_name", "--id", "p1")
    assert "named 'nobody_runs_me', not 'other_name'" in one_line_error(
        taken, "workflow_conflict", 5
    )
    secret = statekeeper(*db, "workflows", "start", "nobody_runs_me", "--id", "p1",
                         "--input", '{"card": "4111-secret"}')  # fmt: skip
    line = one_line_error(secret, "workflow_conflict", 5)
    assert "different input" in line and "4111" not in line
    same = document(statekeeper(*db, "workflows", "start", "nobody_runs_me", "--id", "p1"))
    assert same["id"] == "p1" and same["status"] == "pending"
    one_line_error(
        statekeeper(*db, "workflows", "send-event", "nobody", "go"), "workflow_not_found", 6
    )
    assert statekeeper(*db, "workflows", "send-event", "p1", "go", "--data", "-",
                       stdin="[1, 2]").returncode == 0  # fmt: skip
    one_line_error(statekeeper(*db, "workflows", "send-event", "p1", "go"), "duplicate_event", 5)
    one_line_error(
        statekeeper(*db, "workflows", "send-event", "p1", "child:x"), "invalid_event_name", 4
    )
    # Nothing of the refused starts was stored.
    listed = document(statekeeper(*db, "workflows", "list", "--json"))
    assert [w["id"] for w in listed["items"]] == ["p1"]


def test_pause_and_resume(project: Path, tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/pause.db"]
    statekeeper(*db, "workflows", "define", "held", "python", '"flows:greet"')
    statekeeper(*db, "workflows", "start", "held", "--id", "h1")
    paused = statekeeper(*db, "workflows", "pause", "h1")
    assert document(paused) == {"id": "h1", "paused": True}
    described = document(statekeeper(*db, "workflows", "describe", "h1", "--json"))
    assert (described["status"], described["paused"]) == ("pending", True)
    resumed = statekeeper(*db, "workflows", "resume", "h1")
    assert document(resumed) == {"id": "h1", "paused": False}
    described = document(statekeeper(*db, "workflows", "describe", "h1", "--json"))
    assert described["paused"] is False
    assert statekeeper(*db, "workflows", "cancel", "h1").returncode == 0
    refused = statekeeper(*db, "workflows", "pause", "h1")  # being cancelled
    assert "cannot be paused" in one_line_error(refused, "workflow_finished", 5)
    missing = statekeeper(*db, "workflows", "pause", "ghost")
    assert "'ghost'" in one_line_error(missing, "workflow_not_found", 6)


def test_an_app_on_another_database_than_the_command_line_is_refused(
    project: Path, tmp_path: Path
) -> None:
    (project / "pinned.py").write_text(
        f"from statekeeper import App\napp = App('sqlite:///{tmp_path}/pinned.db')\n"
    )
    other = ["--database", f"sqlite:///{tmp_path}/other.db"]
    refused = statekeeper(*other, "worker", "--app", "pinned:app", cwd=project)
    line = one_line_error(refused, "configuration_error", 3)
    assert "pinned.db, not --database" in line
    refused = statekeeper("--namespace", "elsewhere", "worker", "--app", "flows:app", cwd=project)
    assert "namespace 'flows', not --namespace 'elsewhere'" in one_line_error(
        refused, "configuration_error", 3
    )


async def test_list_is_newest_first_a_page_at_a_time(own_database_url: str) -> None:
    clock = FakeClock()
    async with App(own_database_url, namespace="paged", clock=clock, purge_interval=None) as app:

        @app.workflow
        async def job(ctx: object, n: int) -> int:
            return n

        for n in range(5):
            await app.workflows.start("job", n, id=f"job-{n}")
            clock.advance(1.5)
    db = ["--database", own_database_url, "--namespace", "paged"]
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(3):
        page = document(statekeeper(*db, "workflows", "list", "--limit", "2", "--json", *cursor))
        seen += [w["id"] for w in page["items"]]
        for w in page["items"]:
            assert iso_utc(w["created_at"]).timestamp() == pytest.approx(
                FakeClock().now + 1.5 * int(w["id"][-1])
            )
        if page["cursor"] is None:
            break
        cursor = ["--cursor", page["cursor"]]
    assert seen == [f"job-{n}" for n in (4, 3, 2, 1, 0)]
    assert page["cursor"] is None
    text = statekeeper(*db, "workflows", "list", "--limit", "3", "--status", "pending")
    assert text.returncode == 0, text.stderr
    rows = text.stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "STATUS", "CREATED_AT", "UPDATED_AT", "VERSION"]
    assert [row.split()[0] for row in rows[1:4]] == ["job-4", "job-3", "job-2"]
    assert rows[1].split()[3] == "2027-01-15T08:00:06+00:00"  # FakeClock's start + 6 s
    next_page = rows[4].removeprefix("next page: --cursor ")
    rest = statekeeper(*db, "workflows", "list", "--cursor", next_page, "--json")
    assert [w["id"] for w in document(rest)["items"]] == ["job-1", "job-0"]
    for bogus in ("bogus", base64.urlsafe_b64encode(b"[" * 20_000).decode(), "W10", "WzEsMl0"):
        listed = statekeeper(*db, "workflows", "list", "--cursor", bogus)
        one_line_error(listed, "invalid_cursor", 4)
    one_line_error(statekeeper(*db, "workflows", "list", "--limit", "0"), "invalid_input", 4)
    one_line_error(statekeeper(*db, "workflows", "list", "--status", "nope"), "invalid_filter", 4)
