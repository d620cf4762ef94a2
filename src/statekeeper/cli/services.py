"""The long-running verbs: ``statekeeper serve`` and ``statekeeper worker``.

Each prints one line on stderr when it starts, saying what it runs (``serve``: its
addresses and auth; both: the queues it consumes, the workflows it runs, the
namespace, and the database with any password masked); ``worker`` prints one more
when it stops, with what it did.
"""

from __future__ import annotations

import asyncio
import signal

import click

from statekeeper.app import App
from statekeeper.cli.common import Settings, load_app, pass_settings, run
from statekeeper.cli.params import seconds_option
from statekeeper.constants import ENV_BODY_TIMEOUT, ENV_HEADER_TIMEOUT, ENV_TLS_CERT, ENV_TLS_KEY
from statekeeper.http.config import HttpConfig
from statekeeper.observability.tracing import configure_from_env
from statekeeper.runtime.memory import keep_large_blocks_mapped
from statekeeper.runtime.worker import Worker

GRACE_HELP = "Seconds to finish the work in hand on SIGTERM or SIGINT."
grace_option = click.option(
    "--grace",
    metavar="SECONDS",
    default=30.0,
    show_default=True,
    callback=seconds_option(),
    help=GRACE_HELP,
)


def worker_banner(app: App, queues: list[str], workflows: list[str]) -> str:
    """The line ``worker`` prints when it starts (alike ``serve``'s)."""
    return "; ".join(
        [
            "statekeeper worker running",
            "consumers: " + (", ".join(queues) or "none"),
            "workflows: " + (", ".join(workflows) or "none"),
            "projections: " + (", ".join(sorted(app.projections.registered)) or "none"),
            f"namespace: {app.namespace}",
            f"database: {app.url.described()}",
        ]
    )


def worker_summary(worker: Worker) -> str:
    """The line ``worker`` prints when it stops."""
    runner = worker.workflow_runner
    finished = runner.completed if runner is not None else 0
    return (
        f"statekeeper worker stopped; messages processed: {worker.processed}; "
        f"failed: {worker.failed}; workflows finished: {finished}"
    )


async def run_worker(
    app: App,
    queues: list[str] | None,
    grace: float,
    health_host: str = "127.0.0.1",
    health_port: int | None = None,
) -> Worker:
    """Run ``app``'s consumers (those of ``queues``, or all) and workflows until SIGTERM
    or SIGINT, serving /healthz and /readyz on ``health_port`` if given; the worker,
    for its counts."""
    from statekeeper.http.health import worker_health  # the HTTP stack only when run

    worker = app.worker(queues or None, grace=grace)
    async with app:
        runtime = app.runtime
        assert runtime is not None
        runtime.grace = grace
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.stop)
        # Known by name before the banner says so: any process may start them now.
        await app.workflows.definitions.announce(list(app.workflows.registry))
        workflows = sorted(app.workflows.runnable())
        # The health port is bound first: a port in use fails before anything runs.
        async with worker_health(
            app,
            health_host,
            health_port,
            stopping=lambda: runtime.stopping,
            announce=lambda line: click.echo(line, err=True),
        ):
            click.echo(worker_banner(app, [c.queue for c in worker.consumers], workflows), err=True)
            runtime.start(worker)
            app.start_projections()
            app.start_schedules()
            try:
                await runtime.wait()
            finally:
                click.echo(worker_summary(worker), err=True)
        if runtime.failure is not None:
            raise runtime.failure
        return worker


def enable_callbacks(app: App) -> None:
    """Deliver completion callbacks, and workflow callback answers sent by queue, when
    a callback secret is configured."""
    app.enable_callbacks()
    if app.workflows.registry and app.workflows.secret:
        app.enable_workflow_callback_queue()


@click.command("serve")
@click.option(
    "--app", "target", metavar="MODULE:APP", help="The app to serve, as module:attribute."
)
@click.option(
    "--host", metavar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option("--port", default=8000, show_default=True, type=int, help="1 to 65535.")
@click.option("--dev", is_flag=True, help="Serve without a bearer token (development only).")
@click.option("--no-workers", is_flag=True, help="Serve HTTP only; run no consumers.")
@grace_option
@click.option(
    "--tls-cert", metavar="FILE", envvar=ENV_TLS_CERT, help="PEM certificate (chain): serve HTTPS."
)
@click.option(
    "--tls-key", metavar="FILE", envvar=ENV_TLS_KEY, help="PEM private key of --tls-cert."
)
@click.option(
    "--header-timeout",
    envvar=ENV_HEADER_TIMEOUT,
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds a request's headers may take to arrive.",
)
@click.option(
    "--body-timeout",
    envvar=ENV_BODY_TIMEOUT,
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds a request's body may take after its headers.",
)
@pass_settings
def serve(
    settings: Settings,
    target: str | None,
    host: str,
    port: int,
    dev: bool,
    no_workers: bool,
    grace: float,
    tls_cert: str | None,
    tls_key: str | None,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Serve the HTTP API and run the app's consumers and workflows until SIGTERM."""
    from statekeeper.http.edge import Edge
    from statekeeper.http.server import serve as serve_http

    async def go() -> None:
        edge = Edge(
            host=host,
            port=port,
            tls_cert=tls_cert or None,
            tls_key=tls_key or None,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
        )
        app = load_app(target, settings)
        configure_from_env("statekeeper-serve")  # traces, when OTEL_TRACES_EXPORTER says so
        config = HttpConfig.from_env(dev=dev or None)
        enable_callbacks(app)
        await serve_http(
            app,
            config,
            edge,
            workers=not no_workers,
            grace=grace,
            announce=lambda line: click.echo(line, err=True),
        )

    keep_large_blocks_mapped()  # large payloads' memory goes back (runtime/memory.py)
    run(go())


@click.command("worker")
@click.option(
    "--app",
    "target",
    metavar="MODULE:APP",
    help="The app whose consumers to run, as module:attribute.",
)
@click.option(
    "--queue", "queues", metavar="QUEUE", multiple=True, help="Only these queues (repeatable)."
)
@grace_option
@click.option(
    "--health-port",
    metavar="PORT",
    type=click.IntRange(1, 65535),
    help="Serve /healthz, /readyz and /metrics on this port (none by default).",
)
@click.option(
    "--health-host",
    metavar="HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address of --health-port.",
)
@pass_settings
def worker(
    settings: Settings,
    target: str | None,
    queues: tuple[str, ...],
    grace: float,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run the app's consumers and workflows until SIGTERM, then finish or give back
    what is in hand."""

    async def go() -> Worker:
        app = load_app(target, settings)
        configure_from_env("statekeeper-worker")  # traces, when OTEL_TRACES_EXPORTER says so
        enable_callbacks(app)
        return await run_worker(app, list(queues) or None, grace, health_host, health_port)

    keep_large_blocks_mapped()  # large payloads' memory goes back (runtime/memory.py)
    run(go())
