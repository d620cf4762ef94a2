"""What keeping runaway JSONata off the event loop costs the ordinary expression.

    python bench/jsonata_loop.py --quick     # under a minute
    python bench/jsonata_loop.py

A JSONata machine runs in memory (``Execution(definition, 0, MemoryHost())``): a Pass
state adding one (``Output``) and a Choice state (``Condition``), ``--loops`` times, so
two evaluations a transition. Three ways to evaluate a state's fields, in the same run,
slices alternating (a, b, c, c, b, a, ...):

* inline: on the event loop, always (what a runaway expression would hold for 5 s);
* thread: on a thread of the expressions' pool, always (a hop for every state);
* shipped: ``expressions.bounded``, on the loop for the first 50 ms, then on a thread.

Printed: microseconds per transition of each, and last, the headline, shipped's
transitions per second over inline's (1.00x: the bound costs nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from statekeeper.asl import expressions
from statekeeper.asl.host import MemoryHost
from statekeeper.asl.interpreter import JSONATA, Execution


def machine(loops: int) -> dict[str, Any]:
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Count",
        "States": {
            "Count": {"Type": "Pass", "Output": "{% $states.input + 1 %}", "Next": "More"},
            "More": {"Type": "Choice", "Choices": [
                {"Condition": f"{{% $states.input < {loops} %}}", "Next": "Count"}],
                "Default": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }  # fmt: skip


async def inline(self: Execution, language: str, work: Callable[[], Any]) -> Any:
    return work()


async def thread(self: Execution, language: str, work: Callable[[], Any]) -> Any:
    if language != JSONATA:
        return work()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(expressions._POOL, work)


async def one_slice(definition: dict[str, Any], loops: int, seconds: float) -> tuple[int, float]:
    """Transitions run and seconds taken, executions one after another for ``seconds``."""
    began = time.perf_counter()
    transitions = 0
    while time.perf_counter() - began < seconds:
        outcome = await Execution(definition, 0, MemoryHost()).run()
        assert outcome.output == loops, outcome
        transitions += 2 * loops + 1
    return transitions, time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short slices (under a minute)")
    parser.add_argument("--loops", type=int, default=100, help="Pass/Choice rounds a run")
    parser.add_argument("--seconds", type=float, help="seconds a slice (default 2, quick 1)")
    parser.add_argument("--rounds", type=int, help="slices of each (default 6, quick 4)")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    rounds = args.rounds or (4 if args.quick else 6)
    definition = machine(args.loops)
    shipped = Execution.computed
    ways: dict[str, Any] = {"inline": inline, "thread": thread, "shipped": shipped}
    done = {name: [0, 0.0] for name in ways}
    for round_ in range(rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for name in order:
            Execution.computed = ways[name]  # type: ignore[method-assign]
            if round_ == 0:
                await one_slice(definition, args.loops, 0.2)  # warm-up
            count, took = await one_slice(definition, args.loops, seconds)
            done[name][0] += count
            done[name][1] += took
    Execution.computed = shipped  # type: ignore[method-assign]
    rate = {name: count / took for name, (count, took) in done.items()}
    print(f"{'evaluated':<8}  {'us/transition':>13}  {'transitions/s':>13}")
    for name in ways:
        print(f"{name:<8}  {1e6 / rate[name]:>13.1f}  {rate[name]:>13,.0f}")
    print(f"thread / inline: {rate['thread'] / rate['inline']:.2f}x")
    print(f"shipped / inline (the bound's cost): {rate['shipped'] / rate['inline']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
