"""What metrics and traces cost: workflow throughput with both on vs off, in one run.

    python bench/observability_bench.py --quick
    python bench/observability_bench.py --backend postgres --seconds 60

Each side starts workflows of three steps, 32 at a time, and runs them with a workflow
runner for a slice; the sides take turns (on, off, off, on...) on the same database, so
drift on a shared machine falls on both. "on" counts and times as a process does by
default (statekeeper.observability.metrics: every step, run, commit and statement) and
records traces through the OpenTelemetry SDK (a span per run, step and state operation,
the trace context stored with each workflow; a batch processor whose exporter drops
the spans, so no collector's cost is counted); "off" is ``STATEKEEPER_METRICS=off`` and
no tracer provider. The ratio is runs per second on over off (target >= 0.85x); the
last line printed is the headline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import benchlib
from benchlib import NAMES, Plan
from statekeeper import App
from statekeeper.observability import metrics, tracing
from statekeeper.workflows import WorkflowContext, WorkflowRunner

IN_FLIGHT = 32


def trace_with_the_sdk() -> None:
    """A tracer provider as a deployment has one, its spans exported nowhere."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


@dataclass
class Row:
    backend: str
    on: float
    off: float

    @property
    def ratio(self) -> float:
        return self.on / self.off if self.off else 0.0


async def add(a: int, b: int) -> int:
    return a + b


def declare(app: App) -> None:
    @app.workflow(name="three")
    async def three(ctx: WorkflowContext, n: int) -> int:
        total = await ctx.step(add, n, 1)
        total = await ctx.step(add, total, 1)
        return await ctx.step(add, total, 1)


async def runs_per_second(app: App, seconds: float) -> float:
    """Runs finished per second over ``seconds``, IN_FLIGHT started at a time."""
    runner = WorkflowRunner(app.workflows)
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for n in range(IN_FLIGHT):
            await app.workflows.start("three", n)
        finished = 0
        while finished < IN_FLIGHT:
            finished += await runner.run_due(IN_FLIGHT)
        done += IN_FLIGHT
    return done / (time.perf_counter() - started)


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, Plan(1.0, 4, 2.0), Plan(3.0, 6, 10.0))
    benchlib.announce(
        "workflow runs/s (3 steps each) with metrics and traces on vs off, ", plan,
        f"{'backend':<10} {'on runs/s':>10} {'off runs/s':>11} {'ratio':>7}",
    )  # fmt: skip

    async def measure(url_for: Any, backend: str) -> tuple[list[Row], dict[str, Any]]:
        totals = {"on": 0.0, "off": 0.0}
        async with url_for("observability") as url, benchlib.statekeeper_app(url, "obs") as app:
            declare(app)
            metrics.ENABLED = tracing.RECORDING = True
            await runs_per_second(app, plan.warmup)
            for side in benchlib.turns(("on", "off"), plan.slices):
                metrics.ENABLED = tracing.RECORDING = side == "on"
                totals[side] += await runs_per_second(app, plan.slice_seconds) / plan.slices
        metrics.ENABLED = tracing.RECORDING = True
        row = Row(NAMES[backend], totals["on"], totals["off"])
        print(f"{row.backend:<10} {row.on:>10,.1f} {row.off:>11,.1f} {row.ratio:>6.2f}x",
              flush=True)  # fmt: skip
        return [row], {}

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        return await measure(lambda name: benchlib.sqlite_scratch(f"{name}.db"), "sqlite")

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        return await measure(
            lambda name: benchlib.postgres_scratch(args.pg_url, f"sk_{name}"), "postgres"
        )

    trace_with_the_sdk()
    collected = await benchlib.each_backend(args, sqlite, postgres)
    if collected is None:
        return 2
    headline = "workflow throughput with metrics and traces on vs off: " + ", ".join(
        f"{r.backend} {r.ratio:.2f}x" for r in collected.results
    )
    return benchlib.finish(args, plan, headline, collected, "rows")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
