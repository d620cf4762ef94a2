"""Trace links, on SQLite and PostgreSQL, in one process with the SDK's in-memory
exporter: a schedule's fire is a root span and the run it starts (each resume) joins its
trace; a start through a workflow queue keeps its trace in the start itself, whether it
is admitted at once or when a run before it ends (on PostgreSQL, taken by that run's
runner through sk_flow_pass); a message sent and a workflow started by an entity's
handler are in the trace of the call. Each such start counts as started once. With no
tracer provider nothing is stored: the runs' trace column is NULL, messages carry none.

A tracer provider is set once a process through the API, so each test that records
swaps the global the API reads (``opentelemetry.trace._TRACER_PROVIDER``) for one of its
own and puts the previous one back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from statekeeper import App
from statekeeper.entities import EntityContext
from statekeeper.observability import metrics, tracing
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.schedules.policy import run_id
from statekeeper.storage.queries import load
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.contract.raw_sql import query
from tests.support import drive


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded by an SDK provider of this test's own, exported as they end."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    before = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = provider
    try:
        assert tracing.enabled()
        yield exporter
    finally:
        trace._TRACER_PROVIDER = before
        provider.shutdown()


@pytest.fixture
def start(clock: FakeClock) -> float:
    """A round minute of the fake clock."""
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 60
    return clock.now


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def runs_of(spans: InMemorySpanExporter, workflow: str, id: str) -> list[ReadableSpan]:
    """The ``run workflow`` spans of run ``id``, one per time it ran."""
    return [s for s in named(spans, f"run workflow {workflow}")
            if (s.attributes or {}).get("statekeeper.workflow_id") == id]  # fmt: skip


def started(app: App, workflow: str) -> float:
    """This process's count of runs of ``workflow`` started in the app's namespace."""
    found = metrics.REGISTRY.get_sample_value(
        "statekeeper_workflows_started_total", {"namespace": app.namespace, "workflow": workflow}
    )
    return found or 0.0


async def traces(app: App, url: str) -> dict[str, str | None]:
    """Every run of the namespace: id -> its stored trace context, read behind
    statekeeper's back."""
    rows = await query(url, "SELECT id, trace FROM sk_workflows WHERE namespace = $1",
                       app.namespace)  # fmt: skip
    return {str(r[0]): r[1] for r in rows}


def trace_id(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)


def declare(app: App) -> None:
    """``nap`` sleeps a minute (its run ends and resumes); ``quick`` returns; a counter
    entity whose handler sends a message and starts a run of ``quick``."""

    @app.workflow
    async def nap(ctx: WorkflowContext, value: Any) -> Any:
        await ctx.sleep(60)
        return value

    @app.workflow
    async def quick(ctx: WorkflowContext, value: Any) -> Any:
        return value

    counter = app.entity("counter", initial=0)

    @counter.handler
    def add_and_tell(ctx: EntityContext, by: int) -> int:
        ctx.state += by
        ctx.send("audit", {"added": by})
        return int(ctx.state)

    @counter.handler
    async def spawn(ctx: EntityContext, id: str) -> str:
        return ctx.start_workflow("quick", ctx.key, id=id)


def every(id: str, start: float, *, overlap: str, queue: str | None = None) -> Definition:
    return Definition.checked(id, "nap", make_spec(every=60, anchor=start), input=id,
                              overlap=overlap, queue=queue)  # fmt: skip


async def fire_all(app: App, clock: FakeClock, start: float, ids: list[str]) -> None:
    """The first fire of each schedule, their runs to their sleep, and on to their end."""
    clock.now = start + 60
    assert await Scheduler(app.schedules).run_due() == len(ids)
    await drive(app)
    clock.advance(61)
    await drive(app)
    for id in ids:
        assert (await app.workflows.status(run_id(id, start + 60))).status == "succeeded"


@pytest.mark.parametrize("overlap", ["allow_all", "skip"])  # decided ahead, or at the fire
async def test_a_fire_is_a_root_span_whose_runs_join_its_trace(
    app: App, clock: FakeClock, start: float, spans: InMemorySpanExporter, overlap: str,
    database_url: str,
) -> None:  # fmt: skip
    declare(app)
    app.workflow_queue("reports", concurrency=5)
    # Three schedules written in one batch (one into a workflow queue), and one alone.
    for id in ("a", "b"):
        await app.schedules.create(every(id, start, overlap=overlap))
    await app.schedules.create(every("q", start, overlap=overlap, queue="reports"))
    await fire_all(app, clock, start, ["a", "b", "q"])
    for id in ("a", "b", "q"):  # (their runs stay)
        await app.schedules.delete(id)
    await app.schedules.create(every("alone", clock.now, overlap=overlap))
    later = clock.now
    clock.now = later + 60
    assert await Scheduler(app.schedules).run_due() == 1
    await drive(app)
    clock.advance(61)
    await drive(app)
    stored = await traces(app, database_url)
    for id, fired in [("a", start + 60), ("b", start + 60), ("q", start + 60),
                      ("alone", later + 60)]:  # fmt: skip
        [fire] = named(spans, f"fire schedule {id}")
        assert fire.parent is None and fire.kind == SpanKind.PRODUCER  # started by time
        run = run_id(id, fired)
        ran = runs_of(spans, "nap", run)
        assert len(ran) == 2  # to its sleep, and on after it: one trace
        assert all(parent_of(r) == fire.context.span_id for r in ran)
        assert {r.context.trace_id for r in ran} == {fire.context.trace_id}
        assert trace_id(stored[run] or "") == fire.context.trace_id
    fires = [named(spans, f"fire schedule {id}")[0] for id in ("a", "b", "q")]
    assert len({f.context.trace_id for f in fires}) == 3  # a trace per fire, none nested


async def test_an_operators_trigger_is_a_fire_in_the_operators_trace(
    app: App, clock: FakeClock, start: float, spans: InMemorySpanExporter
) -> None:
    declare(app)
    await app.schedules.create(every("manual", start, overlap="allow_all"))
    with tracing.span("operator") as operator:
        run = await app.schedules.trigger("manual")
    assert run is not None
    await drive(app)
    [fire] = named(spans, "fire schedule manual")
    assert parent_of(fire) == operator.get_span_context().span_id
    [ran] = runs_of(spans, "nap", run)
    assert parent_of(ran) == fire.context.span_id


async def test_a_start_through_a_workflow_queue_joins_its_starters_trace(
    app: App, spans: InMemorySpanExporter, database_url: str
) -> None:
    declare(app)
    jobs = app.workflow_queue("jobs", concurrency=1)
    starters: dict[str, Any] = {}
    for n in (1, 2):  # the first is admitted at its start, the second waits for it
        with tracing.span(f"starter {n}") as starter:
            starters[await jobs.start("quick", n, id=f"job-{n}")] = starter
    assert [(await app.workflows.flow.run_state(id) or {})["state"] for id in starters] == [
        "admitted", "waiting",
    ]  # fmt: skip
    runner = WorkflowRunner(app.workflows)
    runner.take_next = True  # PostgreSQL: the first's end takes the second (sk_flow_pass)
    [first] = await runner.lease()
    await runner.execute(first)
    assert runner.taken == (1 if app.backend.dialect == "postgres" else 0)
    await drive(app)
    stored = await traces(app, database_url)
    begun = named(spans, "start workflow quick")
    for id, starter in starters.items():
        assert (await app.workflows.status(id)).status == "succeeded"
        [start] = [s for s in begun if parent_of(s) == starter.get_span_context().span_id]
        [ran] = runs_of(spans, "quick", id)
        assert parent_of(ran) == start.context.span_id
        assert ran.context.trace_id == starter.get_span_context().trace_id
        assert trace_id(stored[id] or "") == starter.get_span_context().trace_id
    assert "wf_set_trace" not in load(app.backend.dialect)  # kept by the start's own statement


async def test_what_an_entity_handler_sends_and_starts_is_in_the_calls_trace(
    app: App, spans: InMemorySpanExporter, database_url: str
) -> None:
    declare(app)

    async def traced_call(name: str, by: int) -> Any:
        with tracing.span(name) as caller:
            await app.entities.call("counter", "c", "add_and_tell", by)
            return caller

    # One batch of the key's writer: two traced callers and one outside any trace.
    one, _, two = await asyncio.gather(
        traced_call("caller one", 1),
        app.entities.call("counter", "c", "add_and_tell", 2),
        traced_call("caller two", 3),
    )
    sent = {m.body["added"]: m.attributes.get("traceparent") for m
            in await app.queue("audit").peek(10)}  # fmt: skip
    assert sent[2] is None  # an untraced call's message joins no other caller's trace
    for by, caller in ((1, one), (3, two)):
        assert trace_id(sent[by] or "") == caller.get_span_context().trace_id
    handled = named(spans, "handle counter.add_and_tell")
    calls = named(spans, "call counter.add_and_tell")
    assert len(handled) == len(calls) == 2
    for handle in handled:
        [call] = [c for c in calls if c.context.span_id == parent_of(handle)]
        assert handle.context.trace_id == call.context.trace_id
        assert handle.kind == SpanKind.SERVER and call.kind == SpanKind.CLIENT
    # A workflow a handler starts runs in the call's trace.
    with tracing.span("spawner") as spawner:
        await app.entities.call("counter", "c", "spawn", "spawned")
    await drive(app)
    [handle] = named(spans, "handle counter.spawn")
    [call] = named(spans, "call counter.spawn")
    assert parent_of(call) == spawner.get_span_context().span_id
    assert parent_of(handle) == call.context.span_id
    [ran] = runs_of(spans, "quick", "spawned")
    assert parent_of(ran) == handle.context.span_id
    assert ran.context.trace_id == spawner.get_span_context().trace_id
    stored = await traces(app, database_url)
    assert trace_id(stored["spawned"] or "") == spawner.get_span_context().trace_id


async def test_each_start_counts_once_where_it_is_created(
    app: App, clock: FakeClock, start: float
) -> None:
    declare(app)
    app.workflow_queue("reports", concurrency=5)
    jobs = app.workflow_queue("jobs", concurrency=1)
    lazy = app.workflow_queue("lazy", debounce=30.0, key="k")
    # Schedule fires: a batch of two into no queue and one into a queue, then one alone.
    for id in ("a", "b"):
        await app.schedules.create(every(id, start, overlap="allow_all"))
    await app.schedules.create(every("q", start, overlap="allow_all", queue="reports"))
    await fire_all(app, clock, start, ["a", "b", "q"])
    assert started(app, "nap") == 3
    # A backfill over those fire times decides them again: it creates nothing.
    assert len(await app.schedules.backfill("a", start + 1, start + 61)) == 1
    assert started(app, "nap") == 3
    assert await app.schedules.trigger("a") is not None  # an operator's fire creates one
    assert started(app, "nap") == 4
    # Starts through a workflow queue: admitted at once, admitted later, repeated (the
    # same id and input), and joined by a debounced start of the same key.
    for n in (1, 2, 2):
        await jobs.start("quick", n, id=f"job-{n}")
    assert started(app, "quick") == 2
    assert await lazy.start("quick", {"k": "x"}) == await lazy.start("quick", {"k": "x"})
    assert started(app, "quick") == 3
    await drive(app)  # admissions (the second's, when the first ends) start nothing more
    assert started(app, "quick") == 3
    # Started by an entity's handler, twice with one id: created once.
    for _ in range(2):
        await app.entities.call("counter", "c", "spawn", "spawned")
    assert started(app, "quick") == 4
    await drive(app)
    assert started(app, "quick") == 4 and started(app, "nap") == 4


async def test_without_traces_nothing_is_stored(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    assert not tracing.enabled()
    declare(app)
    app.workflow_queue("reports", concurrency=5)
    jobs = app.workflow_queue("jobs", concurrency=1)
    for id in ("a", "b"):
        await app.schedules.create(every(id, start, overlap="allow_all"))
    await app.schedules.create(every("q", start, overlap="skip", queue="reports"))
    await fire_all(app, clock, start, ["a", "b", "q"])
    assert await app.schedules.trigger("a") is not None
    for n in (1, 2):
        await jobs.start("quick", n, id=f"job-{n}")
    await app.entities.call("counter", "c", "add_and_tell", 1)
    await app.entities.call("counter", "c", "spawn", "spawned")
    await drive(app)
    stored = await traces(app, database_url)
    assert len(stored) == 3 + 1 + 2 + 1 and set(stored.values()) == {None}
    [message] = await app.queue("audit").peek(10)
    assert "traceparent" not in message.attributes
