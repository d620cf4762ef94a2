"""``statekeeper chaos``: faults injected into a workload across test hosts, with a
report (chaos/run.py). It builds network namespaces on this machine, so it runs as
root, with PostgreSQL's server binaries installed."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from statekeeper.chaos.hosts import HostError
from statekeeper.chaos.scenarios import SCENARIOS


@click.group()
def chaos() -> None:
    """Faults injected into a workload across test hosts, with a report."""


@chaos.command("list")
def list_scenarios() -> None:
    """The scenarios and what each one does."""
    width = max(len(name) for name in SCENARIOS)
    for name, scenario in SCENARIOS.items():
        click.echo(f"{name:<{width}}  {scenario.what}")


@chaos.command("run")
@click.argument("scenario", type=click.Choice(sorted(SCENARIOS)))
@click.option("--seconds", type=click.FloatRange(1, 600), default=10.0, show_default=True,
              help="How long the fault lasts.")  # fmt: skip
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write SCENARIO.json, SCENARIO.txt and the hosts' logs there.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run(scenario: str, seconds: float, report_dir: Path | None, as_json: bool) -> None:
    """Run SCENARIO: two worker hosts, an ingress host and a database host (for
    failover: pg_auto_failover's monitor, primary and secondary; for disk-full: one
    process on SQLite), a mixed workload, the fault in its middle; exit status 1 when
    an invariant does not hold."""
    chosen = SCENARIOS[scenario]
    reason = chosen.missing()
    if reason is not None:
        raise click.ClickException(f"cannot run {scenario}: {reason}")
    from statekeeper.chaos.run import run_scenario  # imports the driver

    where = {
        "postgres": "on 2 worker hosts, 1 ingress host and 1 database host",
        "failover": "on 2 worker hosts, 1 ingress host and a failover formation (3 hosts)",
        "sqlite": "in one process on SQLite, its disk a small tmpfs",
    }[chosen.database]
    click.echo(f"chaos: {scenario} ({chosen.what}) for {seconds:g} s, in a workload {where}",
               err=True)  # fmt: skip
    try:
        report = run_scenario(scenario, seconds=seconds, report_dir=report_dir)
    except HostError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(asdict(report), indent=2) if as_json else report.table())
    if not report.passed:
        raise SystemExit(1)
