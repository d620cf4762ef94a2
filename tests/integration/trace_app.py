"""The app of the trace test (TRACE_DB_URL, TRACE_DIR): a consumer of "orders" that
starts workflow "fulfil"; its steps, the second of which waits for TRACE_DIR/go (the
test kills the worker running it), then a callback whose token a step writes to
TRACE_DIR/token. Spans go to TRACE_DIR/spans-<pid>.jsonl as each ends (the SDK's
simple processor: a killed process loses only the spans still open)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from statekeeper import App, Message

HERE = Path(os.environ["TRACE_DIR"])


class FileExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a") as out:
            for s in spans:
                context, parent = s.get_span_context(), s.parent
                assert context is not None
                out.write(json.dumps({
                    "name": s.name, "trace": f"{context.trace_id:032x}",
                    "span": f"{context.span_id:016x}",
                    "parent": None if parent is None else f"{parent.span_id:016x}",
                    "pid": os.getpid(), "events": [e.name for e in s.events],
                }) + "\n")  # fmt: skip
        return SpanExportResult.SUCCESS


provider = TracerProvider(resource=Resource.create({"service.name": "trace-test"}))
provider.add_span_processor(SimpleSpanProcessor(FileExporter(HERE / f"spans-{os.getpid()}.jsonl")))
trace.set_tracer_provider(provider)

app = App(os.environ["TRACE_DB_URL"], namespace="traced", purge_interval=None)
app.workflows.lease = 2.0  # a killed runner's workflow comes back quickly


@app.consumer("orders")
async def orders(message: Message) -> str:
    run = await app.workflows.start("fulfil", message.body, id=f"order-{message.body['n']}")
    return str(run)


async def reserve(order: dict[str, Any]) -> str:
    return f"reserved {order['n']}"


def pack(order: dict[str, Any]) -> str:
    """Waits for the test's go (it kills this process meanwhile, the first time)."""
    (HERE / f"packing-{os.getpid()}").touch()
    while not (HERE / "go").exists():
        time.sleep(0.05)
    return f"packed {order['n']}"


async def tell(token: str) -> None:
    (HERE / "token").write_text(token)


stock = app.entity("stock", initial=10)


@stock.handler
def take(ctx: Any, count: int) -> int:
    ctx.state -= count
    return int(ctx.state)


@app.workflow(name="fulfil")
async def fulfil(ctx: Any, order: dict[str, Any]) -> list[str]:
    done = [await ctx.step(reserve, order)]
    await ctx.call("stock", "s1", "take", 1)  # an entity call, in the run's trace
    await ctx.sleep(0.1)  # an event of the run's span
    done.append(await ctx.step(pack, order))
    callback = await ctx.callback()
    await ctx.step(tell, callback.token)
    done.append(str(await callback.result()))
    return done
