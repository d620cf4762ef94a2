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
