"""``statekeeper chaos`` without building hosts: the scenarios listed, and what is
wrong with a run said in one line (the runs themselves: tests/hosts/test_chaos.py)."""

from __future__ import annotations

from statekeeper.chaos.scenarios import SCENARIOS
from tests.integration.cli_support import statekeeper


def test_list_names_every_scenario_with_what_it_does() -> None:
    done = statekeeper("chaos", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIOS)
    assert {"failover", "ingress-kill", "db-partition", "disk-full"} <= set(SCENARIOS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # each says what it does


def test_an_unknown_scenario_or_bad_seconds_is_a_usage_error() -> None:
    for args in (["nosuch"], ["partition", "--seconds", "0"], ["partition", "--seconds", "x"]):
        done = statekeeper("chaos", "run", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert "Invalid value" in done.stderr, done.stderr
