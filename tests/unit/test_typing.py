"""The public API as a type checker sees it: mypy --strict, run as a user would run it
(statekeeper found as an installed package, through its py.typed marker), passes a
correct user module and reports each deliberate mistake of another at its line.

A mistake's line carries ``# expect-error: <code> <text>``: mypy must report an error
with that code there, one of whose messages holds ``<text>``; no other line may have
an error.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import statekeeper

CORRECT = """
from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from statekeeper import App, Retry
from statekeeper.state.transaction import Transaction
from statekeeper.workflows import WorkflowContext, WorkflowRun

app = App()
ONCE = Retry(max_attempts=1)


@dataclass
class Order:
    id: str
    total: int


@app.function
async def add(a: int, b: int) -> int:
    return a + b


@app.function(name="shout")
def shout(text: str, *, suffix: str = "!") -> str:
    return text.upper() + suffix


@app.idempotent(key=lambda order: f"charge:{order.id}")
async def charge(order: Order) -> str:
    return f"charge-{order.id}"


async def refund(charge_id: str) -> None:
    return None


def reserve(tx: Transaction) -> list[str]:
    return ["reserved"]


@app.workflow(name="lines")
async def lines(ctx: WorkflowContext, count: int) -> list[int]:
    return list(range(count))


@app.workflow
async def checkout(ctx: WorkflowContext, order: Order) -> dict[str, int]:
    total = await ctx.step(add, order.total, 1)
    assert_type(total, int)
    assert_type(await ctx.step(shout, "ok", suffix="?"), str)
    assert_type(await ctx.step(shout, "ok", retry=ONCE, timeout=5.0), str)
    async with ctx.saga() as saga:
        paid = await saga.step(charge, order, compensate=refund, retry=ONCE)
        assert_type(paid, str)
    assert_type(await ctx.transaction(reserve), list[str])
    assert_type(await ctx.child(lines, 3), list[int])
    return {"total": total, "paid": len(paid)}


async def main() -> None:
    async with app:
        run = await app.workflows.start(checkout, Order("o-1", 30), id="o-1")
        assert_type(run, WorkflowRun[dict[str, int]])
        assert_type(await app.workflows.result(run), dict[str, int])
        assert_type(await charge(Order("o-2", 5)), str)
        assert_type(await app.idempotency.run("k", add, 1, 2), int)
        by_name = await app.workflows.start("checkout", {"id": "o-3", "total": 1})
        print(run.upper(), by_name, await app.workflows.status(run))
"""

MISTAKES = """
from __future__ import annotations

from statekeeper import App, Retry
from statekeeper.workflows import WorkflowContext

app = App()


@app.function
async def add(a: int, b: int) -> int:
    return a + b


def shout(text: str) -> str:
    return text.upper()


@app.idempotent(key="charge")
async def charge(amount: int) -> str:
    return f"charge-{amount}"


async def refund(charge_id: int) -> None:
    return None


@app.workflow(name="lines")
async def lines(ctx: WorkflowContext, count: int) -> list[int]:
    return list(range(count))


@app.workflow
async def flow(ctx: WorkflowContext, n: int) -> int:
    await ctx.step(add, "one", 2)  # expect-error: arg-type "Callable[[str, int]
    await ctx.step(add, 1)  # expect-error: arg-type "Callable[[int], Awaitable[int]]"
    await ctx.step(shout, 3, retry=Retry())  # expect-error: arg-type "Callable[[int]
    total = await ctx.step(add, 1, 2)
    total.upper()  # expect-error: attr-defined "int" has no attribute "upper"
    async with ctx.saga() as saga:
        await saga.step(charge, 5, compensate=refund)  # expect-error: misc "R"
    await ctx.child(lines, "three")  # expect-error: arg-type "child"
    await add("1", 2)  # expect-error: arg-type Argument 1 to "add"
    await charge("x")  # expect-error: arg-type Argument 1 to "charge"
    return total


@app.workflow  # expect-error: type-var "AnyWorkflow"
async def no_context(n: int) -> int:
    return n


async def main() -> None:
    await app.workflows.start(flow, "seven")  # expect-error: arg-type to "start"
    await app.workflows.start(flow)  # expect-error: arg-type "Callable[[WorkflowContext, None]
    run = await app.workflows.start(flow, 7)
    output = await app.workflows.result(run)
    output.upper()  # expect-error: attr-defined "int" has no attribute "upper"
"""

REPORTED = re.compile(
    r"^(?P<file>[\w.]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[\w-]+)\]$"
)
EXPECTED = re.compile(r"# expect-error: (?P<code>[\w-]+) (?P<text>.+)$")


def run_mypy(tmp_path: Path) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """mypy --strict over both modules in ``tmp_path``; its errors by file and line."""
    (tmp_path / "shop.py").write_text(CORRECT)
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")  # not the project's configuration
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--strict",
            "--cache-dir", str(tmp_path / "cache"), "--no-pretty", "--hide-error-context",
            "--no-color-output", "--no-error-summary", "shop.py", "mistakes.py",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # errors found, no crash
    errors: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for line in done.stdout.splitlines():
        found = REPORTED.match(line)
        if found is None:
            assert ": note: " in line, line  # notes explain an error; nothing else is said
            continue
        where = (found["file"], int(found["line"]))
        errors.setdefault(where, []).append((found["code"], found["message"]))
    return errors


def test_mypy_passes_a_correct_module_and_reports_each_mistake_at_its_line(
    tmp_path: Path,
) -> None:
    errors = run_mypy(tmp_path)
    assert not [e for e in errors if e[0] == "shop.py"], errors
    expected = {
        number: EXPECTED.search(text)
        for number, text in enumerate(MISTAKES.splitlines(), start=1)
        if "# expect-error:" in text
    }
    assert len(expected) == 12
    reported = {line for file, line in errors if file == "mistakes.py"}
    assert reported == set(expected), errors
    for number, marker in expected.items():
        assert marker is not None
        said = errors["mistakes.py", number]
        assert any(
            code == marker["code"] and marker["text"] in message for code, message in said
        ), (number, marker.group(0), said)


def test_the_package_is_marked_typed() -> None:
    assert (Path(statekeeper.__file__).parent / "py.typed").is_file()
