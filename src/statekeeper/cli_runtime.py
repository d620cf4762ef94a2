"""CLI verbs that run things (``serve``, ``worker``) and inspect queues (``queue ...``)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from statekeeper.app import App
from statekeeper.constants import (
    ENV_APP,
    ENV_BODY_TIMEOUT,
    ENV_HEADER_TIMEOUT,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
)
from statekeeper.errors import ConfigurationError
from statekeeper.http.config import HttpConfig
from statekeeper.runtime.worker import Worker


def load_app(target: str | None) -> App:
    """The App at ``module:attribute`` (attribute defaults to ``app``)."""
    spec = target or os.environ.get(ENV_APP)
    if not spec:
        raise ConfigurationError(f"name the app to run: --app module:app (or {ENV_APP})")
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(f"{spec!r} is not a statekeeper App")
    return app


async def run_worker(
    app: App,
    queues: list[str] | None,
    grace: float,
    health_host: str = "127.0.0.1",
    health_port: int | None = None,
) -> int:
    from statekeeper.http.health import worker_health  # the HTTP stack only when run

    consumers = list(app.consumers.values())
    if queues:
        unknown = sorted(set(queues) - set(app.consumers))
        if unknown:
            raise ConfigurationError(f"no consumer for queue {unknown[0]!r}")
        consumers = [c for c in consumers if c.queue in queues]
    async with app:
        worker = Worker(app, consumers, grace=grace)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        async with worker_health(
            app,
            health_host,
            health_port,
            stopping=lambda: worker.stopping,
            announce=lambda line: click.echo(line, err=True),
        ):
            await worker.run()
        return worker.processed


def on_app(run: Any, settings: Any, work: Any) -> Any:
    """Open the configured app, await ``work(app)``, close it; errors become exits."""

    async def go() -> Any:
        async with settings.app() as app:
            return await work(app)

    return run(go())


def add_commands(main: click.Group, run: Any) -> None:
    """Register the verbs on the ``statekeeper`` group (``run`` maps errors to exits)."""

    @main.command("serve")
    @click.option("--app", "target", help="The app to serve, as module:attribute.")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8000, show_default=True, type=int, help="1 to 65535.")
    @click.option("--dev", is_flag=True, help="Serve without a bearer token (development only).")
    @click.option("--no-workers", is_flag=True, help="Serve HTTP only; run no consumers.")
    @click.option("--grace", default=30.0, show_default=True, help="Seconds to finish on SIGTERM.")
    @click.option("--tls-cert", envvar=ENV_TLS_CERT, help="PEM certificate (chain): serve HTTPS.")
    @click.option("--tls-key", envvar=ENV_TLS_KEY, help="PEM private key of --tls-cert.")
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
    def serve_command(
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
        """Serve the HTTP API and run the app's consumers until SIGTERM."""
        from statekeeper.http.edge import Edge
        from statekeeper.http.server import serve

        async def go() -> None:
            edge = Edge(
                host=host,
                port=port,
                tls_cert=tls_cert or None,
                tls_key=tls_key or None,
                header_timeout=header_timeout,
                body_timeout=body_timeout,
            )
            app = load_app(target)
            config = HttpConfig.from_env(dev=dev or None)
            app.enable_callbacks()
            if app.workflows.registry and app.workflows.secret:
                app.enable_workflow_callback_queue()
            await serve(
                app,
                config,
                edge,
                workers=not no_workers,
                grace=grace,
                announce=lambda line: click.echo(line, err=True),
            )

        run(go())

    @main.command("worker")
    @click.option("--app", "target", help="The app whose consumers to run, as module:attribute.")
    @click.option("--queue", "queues", multiple=True, help="Only these queues (repeatable).")
    @click.option("--grace", default=30.0, show_default=True, help="Seconds to finish on SIGTERM.")
    @click.option(
        "--health-port",
        type=click.IntRange(1, 65535),
        help="Serve /healthz and /readyz on this port (none by default).",
    )
    @click.option(
        "--health-host", default="127.0.0.1", show_default=True, help="Address of --health-port."
    )
    def worker_command(
        target: str | None,
        queues: tuple[str, ...],
        grace: float,
        health_port: int | None,
        health_host: str,
    ) -> None:
        """Run the app's consumers until SIGTERM, then finish or give back what is in hand."""

        async def go() -> int:
            app = load_app(target)
            app.enable_callbacks()
            if app.workflows.registry and app.workflows.secret:
                app.enable_workflow_callback_queue()
            queue_names = list(queues) or None
            return await run_worker(app, queue_names, grace, health_host, health_port)

        run(go())

    @main.group("queue")
    def queue_group() -> None:
        """Inspect and administer queues."""

    def with_queue(settings: Any, name: str, work: Any) -> Any:
        return on_app(run, settings, lambda app: work(app.queue(name)))

    @queue_group.command("stats")
    @click.argument("name")
    @click.pass_obj
    def queue_stats(settings: Any, name: str) -> None:
        """Depth, in flight, delayed, dead-lettered, age of the oldest message (JSON)."""
        stats = with_queue(settings, name, lambda q: q.stats())
        click.echo(json.dumps(stats.to_dict()))

    @queue_group.command("peek")
    @click.argument("name")
    @click.option("--dead", is_flag=True, help="Show dead-lettered messages.")
    @click.option("--limit", default=10, show_default=True, type=int)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
    @click.pass_obj
    def queue_peek(settings: Any, name: str, dead: bool, limit: int, as_json: bool) -> None:
        """Messages in order, without leasing them."""
        messages = with_queue(settings, name, lambda q: q.peek(limit, dead=dead))
        if as_json:
            for message in messages:
                click.echo(json.dumps(message.to_dict(), default=str))
            return
        table = Table("id", "state", "attempts", "body", "last error")
        for m in messages:
            body = json.dumps(m.body)[:60]
            table.add_row(m.id, m.state, str(m.attempts), body, str(m.last_error or "")[:60])
        Console().print(table)

    @queue_group.command("redrive")
    @click.argument("name")
    @click.option("--id", "ids", multiple=True, help="Only these message ids (repeatable).")
    @click.pass_obj
    def queue_redrive(settings: Any, name: str, ids: tuple[str, ...]) -> None:
        """Move dead-lettered messages back to the queue."""
        moved = with_queue(settings, name, lambda q: q.redrive(list(ids) or None))
        click.echo(json.dumps({"queue": name, "redriven": moved}))

    @queue_group.command("purge")
    @click.argument("name")
    @click.option("--dead", is_flag=True, help="Purge the dead-lettered messages instead.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.pass_obj
    def queue_purge(settings: Any, name: str, dead: bool, yes: bool) -> None:
        """Delete every ready or waiting message (not those in hand), or every
        dead-lettered one."""
        what = "dead-lettered message" if dead else "ready or waiting message (not in hand)"
        if not yes and not click.confirm(f"delete every {what} of {name}?"):
            raise click.Abort()
        purged = with_queue(settings, name, lambda q: q.purge(dead=dead))
        click.echo(json.dumps({"queue": name, "purged": purged}))

    @queue_group.command("replay")
    @click.argument("name")
    @click.option("--since", type=float, help="Unix time: completed at or after.")
    @click.option("--until", type=float, help="Unix time: completed before.")
    @click.option("--attribute", "attributes", multiple=True, help="KEY=VALUE to match.")
    @click.option("--limit", type=int, help="At most this many.")
    @click.pass_obj
    def queue_replay(
        settings: Any,
        name: str,
        since: float | None,
        until: float | None,
        attributes: tuple[str, ...],
        limit: int | None,
    ) -> None:
        """Send archived messages again, as new messages."""
        matches: dict[str, str] = {}
        for pair in attributes:
            key, sep, value = pair.partition("=")
            if not sep:
                raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--attribute")
            matches[key] = value
        replayed = with_queue(
            settings,
            name,
            lambda q: q.replay(since=since, until=until, attributes=matches or None, limit=limit),
        )
        click.echo(json.dumps({"queue": name, "replayed": replayed}))


def add_workflow_commands(main: click.Group, run: Any) -> None:
    """``statekeeper workflows list / describe / history / cancel / retry``."""

    @main.group("workflows")
    def workflows_group() -> None:
        """Inspect and steer workflows."""

    def with_app(settings: Any, work: Any) -> Any:
        return on_app(run, settings, work)

    @workflows_group.command("list")
    @click.option("--status", help="Only workflows with this status.")
    @click.option("--name", help="Only workflows of this name.")
    @click.option("--limit", default=100, show_default=True, type=int)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
    @click.pass_obj
    def workflows_list(
        settings: Any, status: str | None, name: str | None, limit: int, as_json: bool
    ) -> None:
        """Workflows in start order."""
        found = with_app(
            settings, lambda app: app.workflows.list(status=status, name=name, limit=limit)
        )
        if as_json:
            for workflow in found:
                click.echo(json.dumps(workflow))
            return
        table = Table("id", "name", "status", "created", "updated")
        for w in found:
            table.add_row(
                w["id"], w["name"], w["status"], str(w["created_at"]), str(w["updated_at"])
            )
        Console().print(table)

    @workflows_group.command("describe")
    @click.argument("workflow_id")
    @click.pass_obj
    def workflows_describe(settings: Any, workflow_id: str) -> None:
        """Status, output and error of one workflow (JSON)."""
        status = with_app(settings, lambda app: app.workflows.status(workflow_id))
        click.echo(json.dumps(status.to_dict(), default=str))

    @workflows_group.command("history")
    @click.argument("workflow_id")
    @click.pass_obj
    def workflows_history(settings: Any, workflow_id: str) -> None:
        """Every journal entry of one workflow, as JSON lines."""
        entries = with_app(settings, lambda app: app.workflows.history(workflow_id))
        for entry in entries:
            click.echo(json.dumps(entry, default=str))

    @workflows_group.command("cancel")
    @click.argument("workflow_id")
    @click.pass_obj
    def workflows_cancel(settings: Any, workflow_id: str) -> None:
        """Ask a workflow to stop (compensating its saga); exits 5 if it has finished."""
        with_app(settings, lambda app: app.workflows.cancel(workflow_id))
        click.echo(json.dumps({"id": workflow_id, "cancel_requested": True}))

    @workflows_group.command("retry")
    @click.argument("workflow_id")
    @click.pass_obj
    def workflows_retry(settings: Any, workflow_id: str) -> None:
        """Run a failed workflow again from its failed step."""
        with_app(settings, lambda app: app.workflows.retry(workflow_id))
        click.echo(json.dumps({"id": workflow_id, "retrying": True}))
