"""``statekeeper top``: a live view of a namespace in the terminal, for a server without
a browser: its queues (messages by state, the oldest one's age), its workflow runs by
status (active now, and those created in the last hour), and the runs due now. The
figures are the ones ``/metrics`` reads from the database (observability/scrape.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from statekeeper.cli.common import Settings, pass_settings, run
from statekeeper.cli.output import JSON_HELP, echo_json, safe
from statekeeper.observability.overview import overview


def render(view: dict[str, Any]) -> Group:
    """The view as Rich tables."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view["at"]))
    head = Text.assemble(("statekeeper top", "bold"), f"  namespace {safe(view['namespace'])}",
                         f"  {stamp}")  # fmt: skip
    queues = Table(title="queues", title_justify="left", expand=False)
    for column in ("queue", "ready", "in flight", "delayed", "waiting", "dead", "oldest"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for q in view["queues"]:
        age = "-" if q["oldest_age"] is None else f"{q['oldest_age']:.0f} s"
        dead = Text(str(q["dead"]), style="bold red" if q["dead"] else "")
        queues.add_row(safe(q["queue"]), str(q["ready"]), str(q["in_flight"]), str(q["delayed"]),
                       str(q["waiting"]), dead, age)  # fmt: skip
    if not view["queues"]:
        queues.add_row("(no queue holds messages)", "", "", "", "", "", "")
    flows = view["workflows"]
    runs = Table(title="workflow runs", title_justify="left", expand=False)
    runs.add_column("status")
    runs.add_column("active now", justify="right")
    runs.add_column("created in the last hour", justify="right")
    for status in sorted(set(flows["active"]) | set(flows["last_hour"])):
        style = "bold red" if status in ("failed", "timed_out") else ""
        runs.add_row(Text(status, style=style), str(flows["active"].get(status, "")),
                     str(flows["last_hour"].get(status, "")))  # fmt: skip
    due = Text(f"due now: {flows['due']}  (the earliest for {flows['due_lateness']:.1f} s)")
    return Group(head, queues, runs, due)


@click.command("top")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between refreshes.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print the view once and exit.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " (implies --once)")
@pass_settings
def top(settings: Settings, interval: float, once: bool, as_json: bool) -> None:
    """A live view of the namespace's queues and workflow runs (Ctrl-C to stop)."""

    async def go() -> None:
        async with settings.app() as app:
            if as_json:
                echo_json(await overview(app))
                return
            console = Console()
            if once:
                console.print(render(await overview(app)))
                return
            with Live(render(await overview(app)), console=console, auto_refresh=False) as live:
                while True:
                    await asyncio.sleep(interval)
                    live.update(render(await overview(app)), refresh=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the live view
        run(go())
