"""State machines: statekeeper's States Language interpreter against moto's, in memory,
and durable executions on SQLite and PostgreSQL, in one run.

    python bench/asl_bench.py --quick              # under a minute
    python bench/asl_bench.py                      # longer slices, bigger batches
    python bench/asl_bench.py --backend postgres --json results.json

1. In memory, state transitions per second of a Pass/Choice/Map machine (``LOOP_MACHINE``,
   JSONPath): a Pass state counting with ``States.MathAdd`` and a Choice state, ``loops``
   times; then ``States.ArrayRange`` makes ``items`` numbers and an inline Map runs a
   Pass, a Choice and one of two Pass states for each (504 transitions an execution by
   default). Both interpreters run the same definition on the same input in this
   process, one execution after another:

   * statekeeper: ``Execution(definition, input, MemoryHost()).run()``;
   * moto (a dev dependency, ``moto[stepfunctions]``): the Step Functions backend that
     executes definitions, as ``mock_aws(config={"stepfunctions":
     {"execute_state_machine": True}})`` selects it, called directly (the state machine
     created once; ``start_execution`` per execution, no HTTP or boto3 in between), each
     execution waited for by joining its thread.

   A transition is a ``*StateEntered`` event of the execution's history, counted in each
   side's history alike; both sides' outputs are checked to be the same. Slices of
   ``--seconds`` alternate between the sides (a, b, b, a, ...), each running executions
   until its time is up.

2. Durable, executions per second of a small machine (``ORDER``: a Task running an
   ``@app.task_function``, a Choice, a Pass) as workflows of kind ``asl``: each slice
   starts a batch of executions at once and a ``WorkflowRunner`` (concurrency 16) in this
   process runs them, timed from the first start until the last has finished. Measured
   in two databases of each backend, one holding a small number and one a big number of
   finished executions (rows copied from a real one, journals included, after the
   warm-up: the database grows under an app whose connections are open, as under a
   running worker; tables never vacuumed nor analyzed), and against a baseline in the
   small one: the same work as a code workflow (``@app.workflow``, one ``ctx.step``
   running the same function, the choice in Python). Statekeeper's settings
   as in the other benchmarks (no purger, no encryption); SQLite files in a temporary
   directory, PostgreSQL in fresh schemas ``sk_aslbench_<pid>...``, dropped at the end.

The last line is the headline: statekeeper's transitions per second over moto's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import benchlib
from benchlib import NAMES, Backend, Plan, Tally
from statekeeper import App
from statekeeper.asl.host import MemoryHost
from statekeeper.asl.interpreter import Execution
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.workflows import WorkflowContext, WorkflowRunner

QUICK = Plan(warmup=1.0, slices=4, slice_seconds=1.5)
FULL = Plan(warmup=3.0, slices=8, slice_seconds=5.0)
TRANSITIONS_TARGET = 10.0  # statekeeper's transitions/s over moto's
FLAT_TARGET = 0.8  # executions/s with the big number of executions over the small one's
CONCURRENCY = 16  # the runner's
WAIT_LIMIT = 120.0  # a batch taking longer than this fails the run
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/statekeeper-bench"
NAMESPACE = "aslbench"
ASL, CODE = "asl_order", "code_order"
REVIEW_ABOVE = 100


@dataclass(frozen=True)
class Sizes:
    """The durable part: finished executions already there, and executions per batch."""

    small: int
    big: int
    batch: int
    slices: int  # batches per side
    warmup: int  # executions of each side before the slices


QUICK_SIZES = Sizes(small=1_000, big=10_000, batch=200, slices=3, warmup=20)
FULL_SIZES = Sizes(small=1_000, big=10_000, batch=500, slices=6, warmup=50)


# --- the machines ---------------------------------------------------------------------------

LOOP_MACHINE: dict[str, Any] = {
    "Comment": "A counting loop of Pass and Choice, then an inline Map of Pass and Choice",
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Parameters": {"i": 0, "loops.$": "$.loops",
                                                "items.$": "$.items"}, "Next": "Count"},
        "Count": {
            "Type": "Pass",
            "Parameters": {"i.$": "States.MathAdd($.i, 1)", "loops.$": "$.loops",
                           "items.$": "$.items"},
            "Next": "Again?",
        },
        "Again?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.loops", "Next": "Count"}],
            "Default": "Items",
        },
        "Items": {"Type": "Pass", "Parameters": {"items.$": "States.ArrayRange(1, $.items, 1)"},
                  "Next": "Each"},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Shape",
                "States": {
                    "Shape": {"Type": "Pass", "Parameters": {"n.$": "$",
                              "twice.$": "States.MathAdd($, $)"}, "Next": "Big?"},
                    "Big?": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.twice", "NumericGreaterThan": 100,
                                     "Next": "Big"}],
                        "Default": "Small",
                    },
                    "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": True},
                    "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size",
                              "End": True},
                },
            },
            "ResultPath": "$.shaped",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}  # fmt: skip

ORDER: dict[str, Any] = {
    "Comment": "Charge, then review a big order or approve a small one",
    "StartAt": "Charge",
    "States": {
        "Charge": {"Type": "Task", "Resource": "charge", "ResultPath": "$.charged",
                   "Next": "Big?"},
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.charged", "NumericGreaterThan": REVIEW_ABOVE,
                         "Next": "Review"}],
            "Default": "Approve",
        },
        "Review": {"Type": "Pass", "Result": "review", "ResultPath": "$.decision", "End": True},
        "Approve": {"Type": "Pass", "Result": "approved", "ResultPath": "$.decision",
                    "End": True},
    },
}  # fmt: skip


def order_output(amount: int) -> dict[str, Any]:
    """What both the machine and the code workflow return for ``{"amount": amount}``."""
    charged = amount + 1
    return {
        "amount": amount,
        "charged": charged,
        "decision": "review" if charged > REVIEW_ABOVE else "approved",
    }


def entered(types: list[str]) -> int:
    """The transitions of a history: its ``*StateEntered`` events."""
    return sum(1 for event_type in types if event_type.endswith("StateEntered"))


# --- 1. in memory: statekeeper and moto -----------------------------------------------------


class StatekeeperMemory:
    """statekeeper's interpreter on a ``MemoryHost``, one execution after another."""

    name = "statekeeper"

    def __init__(self, definition: dict[str, Any], input: Any) -> None:
        self.definition = definition
        self.input = input
        self.runner = asyncio.Runner()

    async def _slice(self, seconds: float) -> tuple[Tally, Any]:
        tally, output = Tally(), None
        clock = time.perf_counter
        started = clock()
        while True:
            execution = Execution(self.definition, self.input, MemoryHost())
            outcome = await execution.run()
            if outcome.status != "SUCCEEDED":
                raise RuntimeError(f"statekeeper: the execution ended {outcome.to_dict()}")
            tally.count += entered([event["type"] for event in execution.history.events])
            output = outcome.output
            if clock() - started >= seconds:
                break
        tally.seconds = clock() - started
        return tally, output

    def run(self, seconds: float) -> tuple[Tally, Any]:
        """Executions until ``seconds`` have passed: transitions, and the last output."""
        return self.runner.run(self._slice(seconds))

    def close(self) -> None:
        self.runner.close()


class MotoMemory:
    """moto's Step Functions backend that executes definitions, called directly."""

    name = "moto"

    def __init__(self, definition: dict[str, Any], input: Any) -> None:
        moto: Any = importlib.import_module("moto")
        core: Any = importlib.import_module("moto.core")
        models: Any = importlib.import_module("moto.stepfunctions.parser.models")
        utils: Any = importlib.import_module("moto.stepfunctions.parser.utils")
        self.mock = moto.mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self.mock.start()
        self.backend = models.stepfunctions_parser_backends[core.DEFAULT_ACCOUNT_ID][REGION]
        self.threads: list[Any] = utils.TMP_THREADS  # moto appends each thread it starts
        self.machine = self.backend.create_state_machine(
            name="bench", definition=json.dumps(definition), roleArn=ROLE
        )
        self.input = json.dumps(input)
        self.serial = 0

    def once(self) -> tuple[int, Any]:
        """One execution: its transitions and output."""
        self.serial += 1
        before = len(self.threads)
        execution = self.backend.start_execution(
            self.machine.arn, name=f"run-{self.serial}", execution_input=self.input
        )
        self.threads[before].join()  # the execution's own thread: the first it started
        del self.threads[before:]
        status = str(getattr(execution.exec_status, "value", execution.exec_status))
        if status != "SUCCEEDED":
            raise RuntimeError(f"moto: the execution ended {status}: {execution.cause}")
        events = execution.to_history_output()["events"]
        types = [str(getattr(event["type"], "value", event["type"])) for event in events]
        output = execution.output
        self.machine.executions.clear()  # nothing piles up from one execution to the next
        return entered(types), json.loads(output) if isinstance(output, str) else output

    def run(self, seconds: float) -> tuple[Tally, Any]:
        tally, output = Tally(), None
        clock = time.perf_counter
        started = clock()
        while True:
            count, output = self.once()
            tally.count += count
            if clock() - started >= seconds:
                break
        tally.seconds = clock() - started
        return tally, output

    def close(self) -> None:
        self.mock.stop()


def moto_version() -> str:
    try:
        return importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def moto_problem() -> str | None:
    """Why moto cannot run state machines here, or None when it can."""
    for module in ("moto", "moto.stepfunctions.parser.models"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            return f"{module} is not importable ({error}); pip install 'moto[stepfunctions]'"
    return None


@dataclass
class MemoryResult:
    transitions: dict[str, Tally] = field(default_factory=dict)  # side -> tally
    per_execution: int = 0
    same_output: bool | None = None


def measure_memory(plan: Plan, loops: int, items: int, peer_problem: str | None) -> MemoryResult:
    """Transitions per second of each side, in alternating slices."""
    input = {"loops": loops, "items": items}
    sides: dict[str, StatekeeperMemory | MotoMemory] = {
        "statekeeper": StatekeeperMemory(LOOP_MACHINE, input)
    }
    if peer_problem is None:
        sides["moto"] = MotoMemory(LOOP_MACHINE, input)
    result = MemoryResult()
    try:
        outputs: dict[str, Any] = {}
        for name, side in sides.items():  # warm-up: caches, imports, the first parse
            outputs[name] = side.run(plan.warmup)[1]
            result.transitions[name] = Tally()
        first = sides["statekeeper"].run(0.0)[0]
        result.per_execution = first.count
        for name in benchlib.turns(list(sides), plan.slices):
            gc.collect()
            tally, outputs[name] = sides[name].run(plan.slice_seconds)
            result.transitions[name].add(tally)
            print(
                f"  (in memory, {name}: {tally.count} transitions in {tally.seconds:.2f} s)",
                flush=True,
            )
        if "moto" in outputs:
            result.same_output = outputs["moto"] == outputs["statekeeper"]
    finally:
        for side in sides.values():
            side.close()
    return result


# --- 2. durable executions ------------------------------------------------------------------

WORKFLOW_COLUMNS = (
    "namespace, id, name, status, input, output, error, owner, fence, lease_expires_at, "
    "wake_at, waiting_for, parent_id, cancel_requested, created_at, updated_at, deadline"
)
STEP_COLUMNS = (
    "namespace, workflow_id, position, kind, name, input, output, error, attempts, "
    "started_at, finished_at"
)
SERIES = "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {count}) "


def copies_sql(namespace: str, template: str, count: int) -> list[str]:
    """Statements (for SQLite and PostgreSQL alike) that copy finished workflow
    ``template`` and its journal ``count`` times, as ``<template>-<n>``, each created
    ``n`` seconds before it."""
    where = f"namespace = '{namespace}' AND {{column}} = '{template}'"
    workflows = WORKFLOW_COLUMNS.replace(", id,", ", id || '-' || n,").replace(
        "created_at, updated_at", "created_at - n, updated_at - n"
    )
    steps = STEP_COLUMNS.replace("workflow_id,", "workflow_id || '-' || n,")
    return [
        f"{SERIES.format(count=count)}INSERT INTO sk_workflows ({WORKFLOW_COLUMNS}) "
        f"SELECT {workflows} FROM sk_workflows, k WHERE {where.format(column='id')}",
        f"{SERIES.format(count=count)}INSERT INTO sk_workflow_steps ({STEP_COLUMNS}) "
        f"SELECT {steps} FROM sk_workflow_steps, k WHERE {where.format(column='workflow_id')}",
    ]


async def run_sql(app: App, statements: list[str]) -> None:
    """Statements in one transaction, beside statekeeper's own writes."""
    backend: Any = app.backend
    if backend.dialect == "sqlite":

        def job(conn: Any) -> None:
            for statement in statements:
                conn.execute(statement)

        await backend.writer.run(job, "copies")
    else:
        async with backend.pool.acquire() as conn, conn.transaction():
            for statement in statements:
                await conn.execute(statement)


async def charge(event: dict[str, Any]) -> int:
    """The Task state's function (a Lambda-style handler)."""
    return int(event["amount"]) + 1


async def charge_step(amount: int) -> int:
    """The code workflow's step: the same work."""
    return amount + 1


async def code_order(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    """``ORDER`` written as a code workflow."""
    charged = await ctx.step(charge_step, int(input["amount"]))
    return {**input, "charged": charged,
            "decision": "review" if charged > REVIEW_ABOVE else "approved"}  # fmt: skip


class Database:
    """One statekeeper database holding ``existing`` finished executions of ``ORDER``."""

    def __init__(self, app: App, existing: int) -> None:
        self.app = app
        self.existing = existing
        self.serial = {ASL: 0, CODE: 0}
        app.task_function(charge, name="charge")
        app.workflow(code_order, name=CODE)

    async def prepare(self, sizes: Sizes) -> dict[str, int]:
        """Define the machine, warm both sides up, and copy a finished execution
        ``existing`` times; the journal entries of one execution of each side."""
        await self.app.workflows.define(ASL, "asl", ORDER)
        await self.batch(ASL, sizes.warmup)
        await self.batch(CODE, sizes.warmup)
        template = f"{ASL}-1"
        statements = copies_sql(self.app.namespace, template, self.existing)
        await run_sql(self.app, statements)
        # What the upkeep of a serving process does within seconds of such a change (it
        # analyzes a table once 500 rows changed; PostgreSQL then plans its statements
        # again on the new statistics). This app runs no upkeep of its own; without the
        # analyze, connections keep plans chosen while the tables were small, and the
        # 10k-vs-1k ratio falls to about 0.55 on PostgreSQL.
        if self.app.backend.dialect == "postgres":
            await run_sql(self.app, ["ANALYZE sk_workflows", "ANALYZE sk_workflow_steps"])
        return {name: len(await self.app.workflows.history(f"{name}-1")) for name in (ASL, CODE)}

    async def batch(self, name: str, count: int) -> Tally:
        """Start ``count`` executions of ``name`` at once and run them to their end."""
        flows = self.app.workflows
        first = self.serial[name] + 1
        self.serial[name] += count
        amounts = {n: n % (2 * REVIEW_ABOVE) for n in range(first, first + count)}
        stopping = asyncio.Event()
        runner = WorkflowRunner(flows, concurrency=CONCURRENCY, poll=0.05)
        running = asyncio.create_task(runner.run(stopping))
        clock = time.perf_counter
        started = clock()
        try:
            await asyncio.gather(
                *(flows.start(name, {"amount": a}, id=f"{name}-{n}") for n, a in amounts.items())
            )
            while runner.completed < count:
                if clock() - started > WAIT_LIMIT:
                    raise RuntimeError(f"{name}: {runner.completed} of {count} finished in time")
                await asyncio.sleep(0.002)
            seconds = clock() - started
        finally:
            stopping.set()
            await running
        for n in (first, first + count - 1):  # the first and last ran as they should
            status = await flows.status(f"{name}-{n}")
            if status.status != "succeeded" or status.output != order_output(amounts[n]):
                raise RuntimeError(f"{name}-{n} ended {status.status}: {status.output!r}")
        return Tally(count, seconds)


@dataclass
class DurableResult:
    rates: dict[str, Tally] = field(default_factory=dict)  # "asl small" etc. -> executions
    journal: dict[str, int] = field(default_factory=dict)  # side -> entries per execution


async def measure_durable(
    backend: Backend, urls: Callable[[str], str], sizes: Sizes
) -> DurableResult:
    """Executions per second: asl at both sizes, code at the small one, in turns."""
    result = DurableResult()
    apps = {size: benchlib.statekeeper_app(urls(f"e{size}"), NAMESPACE)
            for size in (sizes.small, sizes.big)}  # fmt: skip
    databases: dict[int, Database] = {}
    try:
        for size, app in apps.items():
            databases[size] = Database(await app.open(), size)
            journal = await databases[size].prepare(sizes)
            result.journal = {"asl": journal[ASL], "code": journal[CODE]}
        sides = {
            f"asl, {sizes.small} existing": (databases[sizes.small], ASL),
            f"asl, {sizes.big} existing": (databases[sizes.big], ASL),
            f"code, {sizes.small} existing": (databases[sizes.small], CODE),
        }
        for key in sides:
            result.rates[key] = Tally()
        for key in benchlib.turns(list(sides), sizes.slices):
            database, name = sides[key]
            gc.collect()
            tally = await database.batch(name, sizes.batch)
            result.rates[key].add(tally)
            print(
                f"  ({NAMES[backend]}, {key}: {tally.count} executions in {tally.seconds:.2f} s)",
                flush=True,
            )
    finally:
        for app in apps.values():
            await app.close()
    return result


# --- output ---------------------------------------------------------------------------------


@dataclass
class Row:
    where: str
    measure: str
    statekeeper: float | None
    baseline: float | None
    baseline_name: str
    ratio: float | None
    target: str
    met: bool | None


HEADER = (
    f"{'where':<11}{'measure':<46}{'statekeeper':>12}{'baseline':>24}{'ratio':>9}  "
    f"{'target':<8}met?"
)


def print_row(row: Row) -> None:
    ours = "-" if row.statekeeper is None else f"{row.statekeeper:,.0f}"
    theirs = "-" if row.baseline is None else f"{row.baseline:,.0f} {row.baseline_name}"
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    met = "" if row.met is None else ("yes" if row.met else "NO")
    print(
        f"{row.where:<11}{row.measure:<46}{ours:>12}{theirs:>24}{ratio:>9}  {row.target:<8}{met}",
        flush=True,
    )


def over(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def memory_rows(result: MemoryResult) -> list[Row]:
    ours = result.transitions["statekeeper"].rate
    theirs = result.transitions["moto"].rate if "moto" in result.transitions else None
    ratio = over(ours, theirs)
    return [
        Row(
            where="memory",
            measure=f"transitions/s, Pass/Choice/Map ({result.per_execution}/run)",
            statekeeper=ours,
            baseline=theirs,
            baseline_name="moto",
            ratio=ratio,
            target=f">= {TRANSITIONS_TARGET:g}x",
            met=None if ratio is None else ratio >= TRANSITIONS_TARGET,
        )
    ]


def durable_rows(backend: Backend, result: DurableResult, sizes: Sizes) -> list[Row]:
    small = result.rates[f"asl, {sizes.small} existing"].rate
    big = result.rates[f"asl, {sizes.big} existing"].rate
    code = result.rates[f"code, {sizes.small} existing"].rate
    flat = over(big, small)
    return [
        Row(
            where=NAMES[backend],
            measure=f"asl executions/s vs code workflow, {sizes.small // 1000}k",
            statekeeper=small,
            baseline=code,
            baseline_name="code",
            ratio=over(small, code),
            target="",
            met=None,
        ),
        Row(
            where=NAMES[backend],
            measure=f"asl executions/s, {sizes.big // 1000}k vs {sizes.small // 1000}k existing",
            statekeeper=big,
            baseline=small,
            baseline_name=f"at {sizes.small // 1000}k",
            ratio=flat,
            target=f">= {FLAT_TARGET:g}x",
            met=None if flat is None else flat >= FLAT_TARGET,
        ),
    ]


# --- main -----------------------------------------------------------------------------------


async def run_durable(args: argparse.Namespace, sizes: Sizes) -> benchlib.Collected[Row] | None:
    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-asl-bench-") as directory:
            result = await measure_durable(
                "sqlite", lambda name: f"sqlite:///{directory}/{name}.db", sizes
            )
            info = benchlib.sqlite_info(directory)
        rows = durable_rows("sqlite", result, sizes)
        for row in rows:
            print_row(row)
        return rows, {**info, "journal_entries": result.journal}

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        async with benchlib.scratch_schemas(
            args.pg_url, "sk_aslbench", f"_e{sizes.big}"
        ) as schemas:
            by_name = {f"e{sizes.small}": schemas[0], f"e{sizes.big}": schemas[1]}
            result = await measure_durable(
                "postgres", lambda name: benchlib.with_schema(args.pg_url, by_name[name]), sizes
            )
        rows = durable_rows("postgres", result, sizes)
        for row in rows:
            print_row(row)
        return rows, {"schemas": list(schemas), "journal_entries": result.journal}

    return await benchlib.each_backend(args, sqlite, postgres)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = benchlib.bench_parser(
        __doc__, seconds_help="measured seconds per side in memory (spread over its slices)"
    )
    parser.add_argument("--loops", type=int, default=100, help="Pass/Choice loops (100)")
    parser.add_argument("--items", type=int, default=100, help="Map items (100)")
    parser.add_argument("--batch", type=int, help="durable executions per batch (200; 500)")
    parser.add_argument("--no-peer", action="store_true", help="measure statekeeper alone")
    parser.add_argument("--memory-only", action="store_true", help="skip durable executions")
    args = parser.parse_args(argv)
    os.environ.pop(ENV_CACHE_URL, None)  # as in the other benchmarks: no Redis cache
    plan = benchlib.choose_plan(args, QUICK, FULL)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.batch:
        sizes = Sizes(sizes.small, sizes.big, args.batch, sizes.slices, sizes.warmup)
    problem = "--no-peer" if args.no_peer else moto_problem()
    peer = f"moto unavailable ({problem})" if problem else f"moto {moto_version()}"
    benchlib.announce(
        f"ASL: statekeeper's in-memory interpreter vs {peer} ({args.loops} loops, "
        f"{args.items} Map items), durable executions in batches of {sizes.batch} "
        f"({sizes.slices} per side); in memory ",
        plan,
        HEADER,
    )
    started = time.perf_counter()
    memory = measure_memory(plan, args.loops, args.items, problem)
    rows = memory_rows(memory)
    for row in rows:
        print_row(row)
    collected: benchlib.Collected[Row] = benchlib.Collected(rows)
    if not args.memory_only:
        durable = asyncio.run(run_durable(args, sizes))
        if durable is None:
            return 2
        collected.results.extend(durable.results)
        collected.info.update(durable.info)
    collected.seconds = time.perf_counter() - started
    transitions = memory.transitions
    ms = {
        name: 1000 * memory.per_execution / tally.rate
        for name, tally in transitions.items()
        if tally.rate
    }
    print(
        "note: in memory, ms per execution: "
        + ", ".join(f"{name} {value:.1f}" for name, value in ms.items())
        + ("" if memory.same_output is None else f"; same output: {memory.same_output}")
    )
    for backend, info in collected.info.items():
        journal = info.get("journal_entries", {})
        print(
            f"note: {NAMES[backend]}: journal entries per execution: asl "
            f"{journal.get('asl')}, code workflow {journal.get('code')}"
        )
    print(f"{collected.seconds:.1f} s")
    ratio = rows[0].ratio
    headline = (
        "headline: state transitions/s, statekeeper's in-memory interpreter vs moto's "
        "(Pass/Choice/Map machine) = "
        + ("n/a (moto unavailable)" if ratio is None else f"{ratio:.1f}x")
    )
    collected.info["memory"] = {
        "per_execution": memory.per_execution,
        "same_output": memory.same_output,
        "moto": problem or moto_version(),
    }
    settings = {"sizes": asdict(sizes), "loops": args.loops, "items": args.items,
                "python": platform.python_version()}  # fmt: skip
    return benchlib.finish(args, plan, headline, collected, "rows", settings)


if __name__ == "__main__":
    sys.exit(main())
