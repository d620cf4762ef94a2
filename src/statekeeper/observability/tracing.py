"""Traces with OpenTelemetry: optional, and off unless configured.

The blocks open spans where work happens (an HTTP request, a message sent and
processed, a workflow started and run, each step, a callback, state operations within
a traced piece of work) through ``span``. Work that continues elsewhere carries the W3C
trace context (``traceparent``) with it: a message in its attributes (as the
``traceparent`` attribute, the way message brokers carry it), a workflow in its row
(``sk_workflows.trace``); a consumer, or the runner that resumes the workflow on another
process or after a crash, opens its span as a child of it, so that one trace shows
request -> queue -> consumer -> workflow -> steps -> callback.

Without the ``opentelemetry-api`` package, or without an SDK tracer provider, every
span is a no-op and no context is stored (no extra statement is run). ``serve`` and
``worker`` set the SDK up from the standard variables (``configure_from_env``:
``OTEL_TRACES_EXPORTER=otlp`` or ``console``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``...) when the ``otel`` extra is installed; an app may instead set
its own provider (``opentelemetry.trace.set_tracer_provider``) before it runs.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from statekeeper.constants import ENV_OTEL_SERVICE_NAME, ENV_OTEL_TRACES_EXPORTER

log = logging.getLogger("statekeeper.tracing")

TRACEPARENT = "traceparent"

try:  # the API is optional (the ``otel`` extra)
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Status as _Status
    from opentelemetry.trace import StatusCode as _StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Any = TraceContextTextMapPropagator()
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    _trace = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]
    _PROPAGATOR = None

KINDS = ("internal", "server", "client", "producer", "consumer")
# False: record nothing even with a provider set (bench/observability_bench.py compares).
RECORDING = True


_KINDS: dict[str, Any] = {} if _trace is None else {
    kind: getattr(_trace.SpanKind, kind.upper()) for kind in KINDS
}  # fmt: skip
_tracer_of: tuple[Any, Any] = (None, None)  # (provider, its tracer): made once per provider


def _tracer() -> Any:
    """This package's tracer, when spans are recorded (a real provider is set); None
    otherwise."""
    global _tracer_of
    if _trace is None or not RECORDING:
        return None
    provider = _trace.get_tracer_provider()
    if provider is not _tracer_of[0]:
        if isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider):
            return None
        _tracer_of = (provider, provider.get_tracer("statekeeper"))
    return _tracer_of[1]


def enabled() -> bool:
    """Whether spans are recorded: the API is there and a real provider is set."""
    return _tracer() is not None


class span:  # used as a function: ``with span(...) as current:``
    """A span named ``name``, the current one in the block: a child of ``parent`` (a
    stored ``traceparent``) when given, else of the current span. ``only_within``: only
    inside a recorded span (a state read is traced as part of traced work, never as a
    trace of its own). An exception leaving the block is recorded on the span.

    A class rather than a generator, and the SDK's span started and made current
    directly: a workflow step opens one, so its cost counts (bench/observability_bench.py).
    """

    __slots__ = ("_current", "_token")

    def __init__(
        self,
        name: str,
        *,
        parent: str | None = None,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        only_within: bool = False,
    ) -> None:
        self._current: Any = None
        tracer = _tracer()
        if tracer is None or (only_within and not _trace.get_current_span().is_recording()):
            return
        context = None if not parent else _extracted(parent)
        self._current = tracer.start_span(
            name, context=context, kind=_KINDS[kind], attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        )  # fmt: skip

    def __enter__(self) -> Any:
        if self._current is not None:
            self._token = _context.attach(_trace.set_span_in_context(self._current))
        return self._current

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        current = self._current
        if current is None:
            return
        _context.detach(self._token)
        if error is not None and not isinstance(error, GeneratorExit):
            current.record_exception(error)
            current.set_status(_Status(_StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        current.end()


@functools.lru_cache(maxsize=1024)
def _extracted(parent: str) -> Any:
    """The context of a stored ``traceparent`` (contexts are immutable: one per value
    is kept for the runs and messages that resume with it)."""
    return _PROPAGATOR.extract({TRACEPARENT: parent})


def traceparent() -> str | None:
    """The W3C trace context of the current span, to store with work that goes on
    elsewhere (None when no span is recorded)."""
    if not enabled() or not _trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def ids() -> tuple[str, str] | None:
    """The current trace and span ids (hex), for log lines; None outside a span."""
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """An event on the current span (a sleep, a wait), if one is recorded."""
    if _trace is not None:
        current = _trace.get_current_span()
        if current.is_recording():
            current.add_event(name, dict(attributes or {}))


def configure_from_env(service: str = "statekeeper") -> bool:
    """Set the OpenTelemetry SDK up from the standard environment variables, unless a
    provider is set already or ``OTEL_TRACES_EXPORTER`` is unset or ``none``: a batch
    span processor with the OTLP (HTTP) or console exporter. Whether it did."""
    chosen = os.environ.get(ENV_OTEL_TRACES_EXPORTER, "").strip().lower()
    if _trace is None or enabled() or chosen in ("", "none"):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed "
                    "(pip install 'statekeeper[otel]'); no traces are recorded")  # fmt: skip
        return False
    exporter: Any
    if chosen == "console":
        exporter = ConsoleSpanExporter()
    elif chosen == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter "
                        "(pip install 'statekeeper[otel]'); no traces are recorded")  # fmt: skip
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning("unknown OTEL_TRACES_EXPORTER; use otlp, console or none",
                    extra={"exporter": chosen})  # fmt: skip
        return False
    name = os.environ.get(ENV_OTEL_SERVICE_NAME) or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _trace.set_tracer_provider(provider)
    log.info("traces exported", extra={"exporter": chosen, "service": name})
    return True
