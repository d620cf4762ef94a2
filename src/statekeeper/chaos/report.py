"""What one chaos run reports (``Report``, as a table and as JSON), made from what its
clients saw (``summarize``): the fault's window, calls acknowledged and failed by kind,
p99 of acknowledged calls before, during and after the fault, the recovery time, how
long calls failed, tries repeated, and the invariants, which must all be zero."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from statekeeper.chaos.clients import Calls


@dataclass
class Report:
    scenario: str
    what: str
    fault_start: float  # seconds from the workload's start
    fault_end: float
    acknowledged: dict[str, int]
    errors: dict[str, int]
    p99_ms: dict[str, float | None]
    effects_per_second: dict[str, float]  # the workers' pace, by the effects' times
    recovery_seconds: float
    unavailable_seconds: float  # from the first failure in the fault to available again
    tries_repeated: int
    invariants: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)  # the harness's cache counters

    @property
    def passed(self) -> bool:
        return not any(self.invariants.values())

    def table(self) -> str:
        p99 = " / ".join("-" if v is None else f"{v:.1f}" for v in self.p99_ms.values())
        rows = [
            ("scenario", f"{self.scenario}: {self.what}"),
            ("fault", f"{self.fault_start:.1f} s to {self.fault_end:.1f} s"),
            ("acknowledged", ", ".join(f"{n} {k}" for k, n in self.acknowledged.items())),
            ("errors", ", ".join(f"{n} {k}" for k, n in self.errors.items()) or "none"),
            ("p99 ms before / during / after", p99),
            (
                "effects/s before / during / after",
                " / ".join(f"{v:.0f}" for v in self.effects_per_second.values()),
            ),
            ("recovery", f"{self.recovery_seconds:.1f} s after the fault ended"),
            ("calls failing", f"for {self.unavailable_seconds:.1f} s"),
            ("tries repeated", str(self.tries_repeated)),
            ("cache (harness)", ", ".join(f"{n} {k}" for k, n in self.cache.items()) or "none"),
            *((f"invariant: {k}", str(v)) for k, v in self.invariants.items()),
            ("verdict", "pass" if self.passed else "FAIL"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@dataclass(frozen=True)
class Marks:
    """The moments of a run, by the monotonic clock: its start, the start of the
    window "before" (the warm-up's second half: start-up left out), the fault's."""

    begun: float
    warm: float
    fault_start: float
    fault_end: float


def p99(spans: list[float]) -> float | None:
    """The 99th percentile of ``spans`` (seconds), in milliseconds; None when empty."""
    if not spans:
        return None
    ordered = sorted(spans)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1)


def summarize(
    name: str, what: str, calls: Calls, marks: Marks, *, pace: dict[str, float],
    repeated: int, invariants: dict[str, int], cache: dict[str, int],
) -> Report:  # fmt: skip
    """The report of a run whose clients made ``calls``: recovery runs from the fault's
    end to the first call started after the last failure that was acknowledged."""
    start, end = marks.fault_start, marks.fault_end
    back = calls.available_again(start)
    until = back if back is not None else time.monotonic()
    first_failure = min((t for t in calls.failed if t >= start), default=until)
    done = calls.done
    return Report(
        scenario=name,
        what=what,
        fault_start=round(start - marks.begun, 2),
        fault_end=round(end - marks.begun, 2),
        acknowledged={k: len(v) for k, v in calls.acked.items()},
        errors=dict(calls.errors),
        p99_ms={
            "before": p99([e - s for s, e in done if marks.warm <= s and e < start]),
            "during": p99([e - s for s, e in done if start <= s < end]),
            "after": p99([e - s for s, e in done if s >= end]),
        },
        effects_per_second=pace,
        recovery_seconds=round(max(0.0, until - end), 2),
        unavailable_seconds=round(max(0.0, until - first_failure), 2),
        tries_repeated=repeated,
        invariants=invariants,
        cache=cache,
    )
