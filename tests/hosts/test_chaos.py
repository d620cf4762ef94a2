"""Every chaos scenario (statekeeper/chaos/scenarios.py) as a test: the fault in the
middle of a mixed workload on two worker hosts, an ingress host and a database host
(or pg_auto_failover's formation, for failover), then the
invariants, which must all be zero. The reports (table and JSON, with the hosts' logs)
are written to tests/output/hosts/chaos/; those of a run are kept in docs/chaos/."""

from __future__ import annotations

import pytest

from statekeeper.chaos.clients import API_KINDS, KINDS
from statekeeper.chaos.run import run_scenario
from statekeeper.chaos.scenarios import SCENARIOS
from tests.hosts.conftest import ROOT

REPORTS = ROOT / "tests" / "output" / "hosts" / "chaos"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_keeps_every_invariant(name: str) -> None:
    reason = SCENARIOS[name].missing()
    if reason is not None:
        pytest.fail(f"cannot run {name}: {reason}")
    report = run_scenario(name, seconds=10, report_dir=REPORTS)
    print(f"\n{report.table()}")
    assert set(report.invariants.values()) == {0}, report.invariants
    assert sum(report.acknowledged.values()) > 0
    kinds = API_KINDS if SCENARIOS[name].database == "sqlite" else KINDS  # no ingress there
    assert set(report.acknowledged) == set(kinds), report.acknowledged
    assert all(report.acknowledged[kind] > 0 for kind in kinds), report.acknowledged
    assert set(report.errors) <= EXPECTED_ERRORS.get(name, set()), report.errors
    if name in MUST_SEE:  # the fault was on the clients' way: they saw it
        assert report.errors


# What clients may see, by scenario; the other faults are between the workers and the
# database, and clients never see them.
UNAVAILABLE = {"DatabaseUnavailable", "HTTP 503 database_unavailable", "HTTP timeout"}
EXPECTED_ERRORS = {
    "db-restart": UNAVAILABLE,
    "db-kill": UNAVAILABLE,
    "failover": UNAVAILABLE,
    # The harness's own calls go by the database's Unix socket: only the ingress's may
    # fail (or wait until the link is back).
    "db-partition": {"HTTP 503 database_unavailable", "HTTP timeout"},
    "ingress-kill": {"HTTP connection lost"},
    "disk-full": {"StorageFull"},
}
MUST_SEE = {"db-restart", "db-kill", "failover", "ingress-kill", "disk-full"}
