"""``statekeeper sfn`` as a real process: ``run`` prints one JSON line and exits 0 / 1
/ 2 (succeeded / did not / invalid definition or misuse), its Task functions given
by ``--function`` as names or Lambda ARNs; ``validate`` lists every problem;
``graph`` draws Mermaid, with an execution's path marked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli_support import document, one_line_error, statekeeper

MACHINE = {
    "StartAt": "Price",
    "States": {
        "Price": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:price",
            "ResultPath": "$.total",
            "Next": "Big?",
        },
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.total", "NumericGreaterThan": 100, "Next": "TooBig"}],
            "Default": "Done",
        },
        "TooBig": {"Type": "Fail", "Error": "TooBig", "Cause": "over budget"},
        "Done": {"Type": "Succeed"},
    },
}
FUNCTIONS = """
def price(order):
    return sum(item["cost"] for item in order["items"])

def broken(order):
    raise KeyError("cost")
"""


def setup(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "machine.json").write_text(json.dumps(MACHINE))
    (tmp_path / "shop.py").write_text(FUNCTIONS)
    return {"STATEKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}


def sfn(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = statekeeper("sfn", *args, cwd=tmp_path, env=env)
    return done.returncode, done.stdout, done.stderr


def test_run_prints_the_output_as_json_and_exits_0(tmp_path: Path) -> None:
    env = setup(tmp_path)
    code, out, err = sfn(
        tmp_path,
        env,
        "run",
        "machine.json",
        "--input",
        '{"items": [{"cost": 30}, {"cost": 40}]}',
        "--function",
        "price=shop:price",
    )
    assert code == 0, err
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "status": "SUCCEEDED",
        "output": {"items": [{"cost": 30}, {"cost": 40}], "total": 70},
    }


def test_run_of_a_failing_execution_prints_error_and_cause_and_exits_1(tmp_path: Path) -> None:
    env = setup(tmp_path)
    code, out, _ = sfn(
        tmp_path, env, "run", "machine.json", "--input", '{"items": [{"cost": 300}]}',
        "--function", "price=shop:price",
    )  # fmt: skip
    assert code == 1
    assert json.loads(out) == {"status": "FAILED", "error": "TooBig", "cause": "over budget"}
    code, out, _ = sfn(
        tmp_path, env, "run", "machine.json", "--function",
        "arn:aws:lambda:eu-west-1:123456789012:function:price=shop:broken",
    )  # fmt: skip
    assert code == 1
    failed = json.loads(out)
    assert failed["error"] == "KeyError"
    cause = json.loads(failed["cause"])
    assert cause["errorType"] == "KeyError" and "shop.py" in cause["stackTrace"][0]
    assert all("statekeeper" not in line for line in cause["stackTrace"])


def test_an_invalid_definition_or_a_misuse_exits_2_with_one_line(tmp_path: Path) -> None:
    env = setup(tmp_path)
    (tmp_path / "bad.json").write_text('{"StartAt": "Nowhere", "States": {"A": {"Type": "Pass"}}}')
    done = statekeeper("sfn", "run", "bad.json", cwd=tmp_path, env=env)
    line = one_line_error(done, "invalid_definition", 2)
    assert "/StartAt" in line and "/States/A" in line
    (tmp_path / "text.json").write_text("not json")
    one_line_error(statekeeper("sfn", "run", "text.json", cwd=tmp_path, env=env), "usage", 2)
    one_line_error(statekeeper("sfn", "run", "missing.json", cwd=tmp_path, env=env), "usage", 2)
    for bad in (["--input", "{nope"], ["--function", "no-equals"], ["--function", "x=shop"]):
        done = statekeeper("sfn", "run", "machine.json", *bad, cwd=tmp_path, env=env)
        one_line_error(done, "usage", 2)
    done = statekeeper("sfn", "run", cwd=tmp_path, env=env)
    one_line_error(done, "usage", 2)


def test_validate_lists_every_problem_with_where_it_is(tmp_path: Path) -> None:
    env = setup(tmp_path)
    assert document(statekeeper("sfn", "validate", "machine.json", cwd=tmp_path, env=env)) == {
        "valid": True
    }
    bad = {"StartAt": "A", "States": {"A": {"Type": "Wait", "Next": "B"}, "C": {"Type": "Pass"}}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    done = statekeeper("sfn", "validate", "bad.json", cwd=tmp_path, env=env)
    assert done.returncode == 2
    found = json.loads(done.stdout)
    assert found["valid"] is False
    wheres = {problem["where"] for problem in found["problems"]}
    assert {"/States/A", "/States/A/Next", "/States/C"} <= wheres


def test_graph_draws_mermaid_and_marks_an_executions_path(tmp_path: Path) -> None:
    env = setup(tmp_path)
    code, out, err = sfn(tmp_path, env, "graph", "machine.json")
    assert code == 0, err
    assert out.startswith("stateDiagram-v2\n")
    assert "[*] --> s0" in out and "s1 --> s2 : $.total NumericGreaterThan 100" in out
    assert "class " not in out
    code, _, err = sfn(
        tmp_path, env, "run", "machine.json", "--name", "big-order", "--input",
        '{"items": [{"cost": 300}]}', "--function", "price=shop:price",
    )  # fmt: skip
    assert code == 1, err
    code, out, err = sfn(tmp_path, env, "graph", "machine.json", "--execution", "big-order")
    assert code == 0, err
    assert "class s0,s1,s2 visited" in out
    assert "class s2 failed" in out
