"""``statekeeper workflows send / update / get-value / values`` as real processes,
against a worker process that runs the workflow (the update's answer crosses processes
through the database), and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import Running, document, one_line_error, statekeeper

FLOWS = """
from statekeeper import App

app = App(namespace="talk", purge_interval=None)


@app.workflow
async def tally(ctx, _):
    total = 0

    def add(n):
        nonlocal total
        if not isinstance(n, int):
            raise TypeError(f"add takes an integer, got {n!r}")
        total += n
        return total

    ctx.on_update("add", add)
    await ctx.publish("total", total)
    while (word := await ctx.receive("words")) != "stop":
        await ctx.publish("last", word)
    return total
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def test_send_update_and_read_values_across_processes(project: Path, own_database_url: str) -> None:
    db = ["--database", own_database_url, "--namespace", "talk"]
    worker = Running(*db, "worker", "--app", "flows:app", cwd=project)
    try:
        worker.wait_for("statekeeper worker running")
        started = statekeeper(*db, "workflows", "start", "tally", "--id", "t1", cwd=project)
        assert document(started)["id"] == "t1"
        added = statekeeper(*db, "workflows", "update", "t1", "add", "--data", "4",
                            "--timeout", "30")  # fmt: skip
        assert document(added) == {"id": "t1", "update": "add", "result": 4}
        rejected = statekeeper(*db, "workflows", "update", "t1", "add", "--data", '"x"')
        assert "TypeError: add takes an integer" in one_line_error(rejected, "update_rejected", 5)
        unknown = statekeeper(*db, "workflows", "update", "t1", "reset")
        assert "no handler for update 'reset'" in one_line_error(unknown, "unknown_update", 6)
        sent = statekeeper(*db, "workflows", "send", "t1", "words", "--data", '"hello"')
        assert document(sent) == {"id": "t1", "topic": "words", "seq": 1}
        value: object = None
        for _ in range(100):
            read = statekeeper(*db, "workflows", "get-value", "t1", "last")
            if read.returncode == 0:
                value = document(read)["value"]
                break
        assert value == "hello"
        listed = document(statekeeper(*db, "workflows", "values", "t1"))
        assert listed["values"] == {"last": "hello", "total": 0}
        missing = statekeeper(*db, "workflows", "get-value", "t1", "nothing")
        one_line_error(missing, "value_not_published", 6)
        statekeeper(*db, "workflows", "send", "t1", "words", "--data", '"stop"')
        result = statekeeper(*db, "workflows", "result", "t1", "--wait", "--timeout", "30")
        assert document(result) == 4
        late = statekeeper(*db, "workflows", "send", "t1", "words", "--data", "1")
        one_line_error(late, "workflow_finished", 5)
    finally:
        worker.stop()


def test_verb_errors_are_one_line(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/errors.db"]
    nobody = statekeeper(*db, "workflows", "send", "nobody", "t")
    one_line_error(nobody, "workflow_not_found", 6)
    bad = statekeeper(*db, "workflows", "send", "nobody", "bad topic")
    assert "invalid topic" in one_line_error(bad, "invalid_identifier", 4)
    bad_json = statekeeper(*db, "workflows", "update", "nobody", "add", "--data", "{")
    assert bad_json.returncode != 0 and "Traceback" not in bad_json.stderr
    bad_wait = statekeeper(*db, "workflows", "update", "nobody", "add", "--timeout", "0")
    assert bad_wait.returncode == 2 and "Traceback" not in bad_wait.stderr
    key = statekeeper(*db, "workflows", "get-value", "nobody", "k")
    one_line_error(key, "workflow_not_found", 6)
