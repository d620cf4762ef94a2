"""``configure_from_env``: the SDK set up from OpenTelemetry's own variables, or not at
all. Each case runs in a process of its own (a tracer provider is set once a process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PROBE = (
    "from statekeeper.observability import tracing\n"
    "print(tracing.enabled(), tracing.configure_from_env(), tracing.enabled())\n"
    "with tracing.span('probe'):\n"
    "    print(tracing.traceparent() is not None)\n"
)


@pytest.mark.parametrize(
    ("exporter", "expected"),
    [
        ("console", "False True True\nTrue"),
        ("otlp", "False True True\nTrue"),
        ("none", "False False False\nFalse"),
        ("", "False False False\nFalse"),
        ("zipkin-please", "False False False\nFalse"),
    ],
)
def test_the_exporter_variable_decides(exporter: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PYTHONPATH": str(ROOT / "src"), "OTEL_TRACES_EXPORTER": exporter,
                # a closed loopback port: the OTLP exporter never reaches anything
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == expected.splitlines()


SPANS = (
    "from opentelemetry import trace\n"
    "from opentelemetry.sdk.trace import TracerProvider\n"
    "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
    "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
    "from statekeeper.observability import tracing\n"
    "memory = InMemorySpanExporter()\n"
    "provider = TracerProvider()\n"
    "provider.add_span_processor(SimpleSpanProcessor(memory))\n"
    "trace.set_tracer_provider(provider)\n"
    "parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'\n"
    "with tracing.span('outer', parent=parent, kind='consumer') as outer:\n"
    "    with tracing.span('state get', only_within=True):\n"
    "        pass\n"
    "    try:\n"
    "        with tracing.span('step', attributes={'statekeeper.position': 1}):\n"
    "            raise ValueError('no <good>')\n"
    "    except ValueError:\n"
    "        pass\n"
    "with tracing.span('alone', only_within=True) as alone:\n"
    "    print('alone', alone)\n"
    "print(tracing.traceparent())\n"
    "for s in memory.get_finished_spans():\n"
    "    up = s.parent.span_id if s.parent else 0\n"
    "    print(s.name, f'{s.context.trace_id:032x}', f'{up:016x}' if up else '-',\n"
    "          s.status.status_code.name, [e.name for e in s.events])\n"
)


def test_spans_nest_take_their_parent_and_record_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run([sys.executable, "-c", SPANS], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["alone None", "None"]  # no span outside traced work; no context
    spans = {line.split()[0] + (" get" if line.startswith("state") else ""): line.split()
             for line in lines[2:]}  # fmt: skip
    trace = "0af7651916cd43dd8448eb211c80319c"
    outer = spans["outer"]
    assert outer[1:3] == [trace, "b7ad6b7169203331"] and outer[3] == "UNSET"
    state = spans["state get"]
    step = spans["step"]
    assert state[2] == trace and step[1] == trace
    assert step[3] == "ERROR" and "'exception']" in " ".join(step)
