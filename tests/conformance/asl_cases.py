"""The States Language conformance cases: 879 executions recorded against AWS Step
Functions (``../shared/conformance/asl``), run here on the interpreter.

``python -m tests.conformance.asl_cases`` prints each failing case and the pass
count; the test module asserts the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from statekeeper.asl.host import ManualClock, MemoryHost
from statekeeper.asl.interpreter import Execution, Machine, Outcome
from statekeeper.asl.tasks import TaskCall

ROOT = Path(__file__).resolve().parents[2]
PLACES = (ROOT.parent / "shared" / "conformance" / "asl", Path("/work/shared/conformance/asl"))


def folder() -> Path | None:
    return next((place for place in PLACES if (place / "cases.jsonl").exists()), None)


def cases() -> list[dict[str, Any]]:
    found = folder()
    if found is None:
        return []
    with (found / "cases.jsonl").open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def matcher() -> ModuleType:
    found = folder()
    assert found is not None
    spec = importlib.util.spec_from_file_location("asl_matcher", found / "matcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MACHINE = Machine(
    name="statemachine_conformance",
    arn="arn:aws:states:us-east-1:111111111111:stateMachine:statemachine_conformance",
    execution="b465e426-07ce-42b5-a7c9-fd0890333e24",
    execution_arn=(
        "arn:aws:states:us-east-1:111111111111:execution:statemachine_conformance:"
        "b465e426-07ce-42b5-a7c9-fd0890333e24"
    ),
    role_arn="arn:aws:iam::111111111111:role/snf_role",
)


# Replacement words the recorded snapshots use for values that differ on every run
# (the README: treat them as wildcards) beyond those the matcher knows.
WORDS = ("generated-uuid", "start-time", "entered-time")


async def echo(call: TaskCall) -> Any:
    """The Lambda functions of the recorded cases answer with their input; through
    ``lambda:invoke`` the answer is the Payload."""
    if call.target == "arn:aws:states:::lambda:invoke" and isinstance(call.payload, dict):
        return {"Payload": call.payload.get("Payload"), "StatusCode": 200}
    return call.payload


async def execute(case: dict[str, Any]) -> Outcome:
    """Run one case in memory, its Wait states on a clock that jumps. A case recorded
    with StopExecution (status ABORTED) is stopped while it waits."""
    stopping = case["expected"]["status"] == "ABORTED"
    host = MemoryHost(echo, clock=None if stopping else ManualClock())
    execution = Execution(case["definition"], json.loads(case["input"] or "{}"), host, MACHINE)
    if not stopping:
        return await asyncio.wait_for(execution.run(), 10)
    running = asyncio.ensure_future(execution.run())
    await asyncio.sleep(0.05)
    return await execution.stop(running)


def passes(case: dict[str, Any], compare: ModuleType) -> tuple[bool, Outcome | str]:
    try:
        outcome = asyncio.run(execute(case))
    except Exception as error:  # a crash of the interpreter is a failed case
        return False, f"{type(error).__name__}: {error}"
    expected = case["expected"]
    if isinstance(expected.get("output"), str):  # raw JSON text of a non-object output
        with contextlib.suppress(ValueError):
            expected = {**expected, "output": json.loads(expected["output"])}
    wild = [{"kind": "KeyValueBasedTransformer", "replacement": word} for word in WORDS]
    case = {**case, "expected": expected, "transformers": case["transformers"] + wild}
    output = json.dumps(outcome.output) if outcome.status == "SUCCEEDED" else None
    cause = outcome.cause
    for rule in case["transformers"]:  # as the snapshot did to what AWS returned
        if rule.get("kind") == "RegexTransformer" and not rule["replacement"].startswith("<"):
            output = None if output is None else re.sub(rule["regex"], rule["replacement"], output)
            cause = None if cause is None else re.sub(rule["regex"], rule["replacement"], cause)
    ok = compare.check(case, outcome.status, output, outcome.error, cause)
    return bool(ok), outcome


def main() -> None:
    compare = matcher()
    every = cases()
    passed = 0
    for case in every:
        ok, got = passes(case, compare)
        if ok:
            passed += 1
            continue
        if "-q" not in sys.argv:
            print(case["id"])
            print("  definition:", json.dumps(case["definition"])[:600])
            print("  input:     ", str(case["input"])[:200])
            print("  expected:  ", json.dumps(case["expected"])[:400])
            print(
                "  got:       ",
                (json.dumps(got.to_dict()) if isinstance(got, Outcome) else got)[:400],
            )
    print(f"{passed} of {len(every)} conformance cases pass")


if __name__ == "__main__":
    main()
