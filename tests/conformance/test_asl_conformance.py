"""Every recorded AWS Step Functions execution of the conformance set runs on the
interpreter with the result AWS gave (status, output, or error and cause)."""

from __future__ import annotations

import pytest

from statekeeper.asl.interpreter import Outcome
from tests.conformance.asl_cases import cases, matcher, passes

CASES = cases()


def test_every_conformance_case_matches_aws() -> None:
    if not CASES:
        pytest.skip("the conformance cases are not on this machine")
    compare = matcher()
    failed = []
    for case in CASES:
        ok, got = passes(case, compare)
        if not ok:
            shown = got.to_dict() if isinstance(got, Outcome) else got
            failed.append(f"{case['id']}: {shown}"[:300])
    print(f"{len(CASES) - len(failed)} of {len(CASES)} conformance cases pass")
    assert not failed, "\n".join(failed[:20])
