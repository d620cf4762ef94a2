"""Every chaos scenario (statekeeper/chaos/scenarios.py) as a test: the fault in the
middle of a mixed workload on two worker hosts and a database host, then the
invariants, which must all be zero. The reports (table and JSON, with the hosts' logs)
are written to tests/output/hosts/chaos/; those of a run are kept in docs/chaos/."""

from __future__ import annotations

import pytest

from statekeeper.chaos.hosts import missing
from statekeeper.chaos.run import run_scenario
from statekeeper.chaos.scenarios import SCENARIOS
from tests.hosts.conftest import ROOT

REPORTS = ROOT / "tests" / "output" / "hosts" / "chaos"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_keeps_every_invariant(name: str) -> None:
    reason = missing()
    if reason is not None:
        pytest.fail(f"cannot build test hosts: {reason}")
    report = run_scenario(name, seconds=10, report_dir=REPORTS)
    print(f"\n{report.table()}")
    assert set(report.invariants.values()) == {0}, report.invariants
    assert sum(report.acknowledged.values()) > 0
    if name.startswith("db-"):  # the database itself went away: clients saw it
        assert set(report.errors) == {"DatabaseUnavailable"}
    else:  # the fault was between the workers and the database: clients never saw it
        assert report.errors == {}
