"""``statekeeper sfn``: state machines (Amazon States Language) from the command line.

``run`` runs one execution of a definition to its end on the configured database,
in this process (its Task functions given with ``--function``), and prints one JSON
line: ``{"status": "SUCCEEDED", "output": ...}`` or ``{"status": "FAILED", "error",
"cause"}``; it exits 0 when the execution succeeded, 1 when it did not, 2 when the
definition is invalid or the command is misused. ``validate`` prints every problem
of a definition with where it is; ``graph`` draws it as a Mermaid state diagram,
optionally with the path an execution took.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from statekeeper.app import App
from statekeeper.asl import graph, validation
from statekeeper.asl.workflow import KIND, execution_events, outcome_of
from statekeeper.cli.common import USAGE_EXIT, Settings, one_line, pass_settings, read_json, run
from statekeeper.cli.output import echo_json
from statekeeper.codec import decode_json
from statekeeper.errors import ConfigurationError, InvalidDefinition, MalformedJSON, ValidationError
from statekeeper.identifiers import check_workflow_id
from statekeeper.workflows.runner import WorkflowRunner

POLL = 0.05  # seconds between two looks for due work while an execution sleeps or waits


@click.group("sfn")
def sfn() -> None:
    """State machines in the Amazon States Language: run, validate, graph."""


def _read(path: str) -> Any:
    """The JSON value in file ``path`` (``-``: standard input), decoded strictly (UTF-8,
    nesting within the codec's limit); a problem is one line on stderr and exit 2."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        _usage(f"cannot read {path}: {error.strerror or error}")
    try:
        return decode_json(data, "standard input" if path == "-" else path)
    except MalformedJSON as error:
        _usage(one_line(error.message))


def _definition(path: str) -> dict[str, Any]:
    """The definition in file ``path`` (``-``: standard input), checked; a problem is
    one line on stderr and exit 2."""
    definition = _read(path)
    try:
        validation.check(definition)
    except InvalidDefinition as invalid:
        click.echo(f"error: {invalid.code}: {one_line(invalid.message)}", err=True)
        sys.exit(USAGE_EXIT)
    assert isinstance(definition, dict)
    return definition


def _usage(message: str) -> Any:
    click.echo(f"error: usage: {message}", err=True)
    sys.exit(USAGE_EXIT)


def _function(spec: str) -> tuple[str, Any]:
    """``NAME=module:callable`` -> (NAME, the callable)."""
    name, equals, target = spec.partition("=")
    module_name, colon, attribute = target.partition(":")
    if not (equals and colon and name and module_name and attribute):
        _usage(f"--function takes NAME=module:callable, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(f"--function {name}: cannot load {target}: {error}") from None
    if not callable(found):
        raise ConfigurationError(f"--function {name}: {target} is not callable")
    return name, found


@sfn.command("run")
@click.argument("definition_path", metavar="DEFINITION.json")
@click.option(
    "--input",
    "input_text",
    metavar="JSON",
    default="{}",
    help="The execution's input (- for stdin).",
)
@click.option(
    "--function",
    "functions",
    metavar="NAME=module:callable",
    multiple=True,
    help="Run this callable for Task states whose Resource is NAME (a function name or a "
    "Lambda function ARN); repeatable.",
)
@click.option("--name", "execution", metavar="NAME", help="The execution's name (its id).")
@pass_settings
def sfn_run(
    settings: Settings,
    definition_path: str,
    input_text: str,
    functions: tuple[str, ...],
    execution: str | None,
) -> None:
    """Run one execution of the state machine in DEFINITION.json to its end, durably on
    the configured database, and print its outcome as one JSON line."""
    definition = _definition(definition_path)
    try:
        input = read_json(input_text, "--input")
    except ValidationError as error:
        _usage(one_line(error.message))
    if execution is not None:
        check_workflow_id(execution)
    app = settings.app()
    for spec in functions:
        name, fn = _function(spec)
        try:
            app.task_functions.function(name, fn)
        except ValueError as error:
            _usage(str(error))
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    machine = f"sfn.{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    outcome = run(_execute(app, machine, definition, input, execution))
    click.echo(json.dumps(outcome, separators=(",", ":"), ensure_ascii=False))
    sys.exit(0 if outcome["status"] == "SUCCEEDED" else 1)


async def _execute(
    app: App, machine: str, definition: dict[str, Any], input: Any, execution: str | None
) -> dict[str, Any]:
    async with app:
        await app.workflows.define(machine, KIND, definition)
        run_id = await app.workflows.start(machine, input, id=execution)
        runner = WorkflowRunner(app.workflows)
        while True:
            status = await app.workflows.status(run_id)
            if status.done:
                return outcome_of(status)
            if not await runner.run_due():
                await asyncio.sleep(POLL)


@sfn.command("validate")
@click.argument("definition_path", metavar="DEFINITION.json")
def sfn_validate(definition_path: str) -> None:
    """Check the definition in DEFINITION.json: print {"valid": true}, or every problem
    with where it is (a JSON Pointer) and exit 2."""
    definition = _read(definition_path)
    found = validation.problems(definition)
    if not found:
        echo_json({"valid": True})
        return
    echo_json(
        {"valid": False, "problems": [{"where": p.where, "message": p.message} for p in found]}
    )
    sys.exit(USAGE_EXIT)


@sfn.command("graph")
@click.argument("definition_path", metavar="DEFINITION.json")
@click.option(
    "--execution", metavar="ID", help="Mark the states this execution (a workflow id) entered."
)
@pass_settings
def sfn_graph(settings: Settings, definition_path: str, execution: str | None) -> None:
    """Print the state machine in DEFINITION.json as a Mermaid stateDiagram-v2."""
    definition = _definition(definition_path)
    visited: set[str] = set()
    failed: str | None = None
    if execution is not None:
        check_workflow_id(execution)

        async def events() -> list[dict[str, Any]]:
            async with settings.app() as app:
                return await execution_events(app.workflows, execution)

        for event in run(events()):
            details = event.get("stateEnteredEventDetails")
            if details:
                visited.add(details["name"])
                last = details["name"]
            if event["type"] in ("ExecutionFailed", "ExecutionTimedOut") and visited:
                failed = last
    click.echo(graph.mermaid(definition, visited, failed), nl=False)
