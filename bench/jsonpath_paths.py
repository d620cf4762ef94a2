"""Whether statekeeper's own JSONPath evaluator (asl/jsonpath.py) or a library should
select ASL paths: speed on the hot path and agreement with AWS, in one run:

    python bench/jsonpath_paths.py --quick     # a few seconds after the one-time install

* The library is jsonpath-ng with its extended parser (filters), the well-kept Python
  JSONPath package, 1.16.0 or the release ``--jsonpath-ng VERSION`` names; it is installed
  once into ``~/.cache/statekeeper-bench/jsonpath-ng-VERSION`` (never into the project's
  environment) and this script re-runs itself there.
* Speed: the paths every state evaluates (InputPath, ``x.$`` fields, ResultPath's reads,
  OutputPath: names and indexes) over a typical state input, in rounds, the sides taking
  turns: statekeeper (``compile(text)``, cached, then ``select``), jsonpath-ng with the
  path parsed once (``find``), and jsonpath-ng parsing each time. Then indefinite paths
  (wildcard, descent, slice, filter), statekeeper against jsonpath-ng parsed once.
* Agreement: behaviours of AWS Step Functions, each recorded from AWS (the conformance
  cases) or that of the Jayway library AWS evaluates paths with; a definite path gives its
  value or "not found", an indefinite one a list. jsonpath-ng's matches are read the same
  way (a definite path: the first match, or "not found").

The last line is the headline: the ratios and the agreement counts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
from statekeeper.asl import jsonpath

LIBRARY = "1.16.0"  # the latest release when measured
NOT_FOUND = "<not found>"

STATE: dict[str, Any] = {
    "orderId": "o-123",
    "detail": {"shipped_output": {"carrier": "x", "eta": 3}, "status": "ok"},
    "items": [{"sku": f"s{i}", "qty": i, "price": 1.5 * i} for i in range(8)],
    "customer": {"name": "Ada", "address": {"city": "Paris", "zip": "75001"}},
    "a b": {"c": 1},
}
DEFINITE = ["$", "$.orderId", "$.detail.shipped_output", "$.items[0].sku",
            "$.customer.address.city", "$['a b'].c"]  # fmt: skip
INDEFINITE = ["$.items[*].sku", "$..city", "$.items[1:3]", "$.items[?(@.qty > 5)].sku"]

BOOKS = [{"t": "A", "p": 8, "isbn": "1"}, {"t": "B", "p": 12}, {"t": "C", "p": 9, "isbn": "2"}]
USERS = {"users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1}]}
ITEMS = {"items": [{"item_key": i} for i in range(11)]}
# (what, path, data, AWS's answer); "AWS": recorded in the conformance cases.
BEHAVIOURS: list[tuple[str, str, Any, Any]] = [
    ("AWS", "$.users[?(@.status == 0)]", USERS, [{"year": 1997, "status": 0}]),
    ("AWS", "$.items[10]", ITEMS, {"item_key": 10}),
    ("AWS", "$.NoSuchInputPath", {"int-literal": 0}, NOT_FOUND),
    ("AWS", "$[*]", {}, []),
    ("AWS", "$.items[*]", {}, []),
    ("AWS", "$.item.items[1:5].itemValue", {}, []),
    ("AWS", '$[\'Test\\""Name"\']', {'Test\\""Name"': 'Value"\\'}, 'Value"\\'),
    ("Jayway", "$.b[?(@.p < 10 && @.isbn)].t", {"b": BOOKS}, ["A", "C"]),
    ("Jayway", "$.b[?(@.p > 10 || @.t == 'A')].t", {"b": BOOKS}, ["A", "B"]),
    ("Jayway", "$.b[?(@.t in ['A', 'B'])].t", {"b": BOOKS}, ["A", "B"]),
    ("Jayway", "$.b[?(@.t nin ['A', 'B'])].t", {"b": BOOKS}, ["C"]),
    ("Jayway", "$.b[?(@.t =~ /[ab]/i)].t", {"b": BOOKS}, ["A", "B"]),
    ("Jayway", "$.b[?(!@.isbn)].t", {"b": BOOKS}, ["B"]),
    ("Jayway", "$.b[?(@.isbn != '1')].t", {"b": BOOKS}, ["B", "C"]),
    ("Jayway", "$.b[?(@.p == '8')].t", {"b": BOOKS}, ["A"]),
    ("Jayway", "$.o[?(@.x)]", {"o": {"x": 1}}, [{"x": 1}]),
    ("Jayway", "$.b[-1].t", {"b": BOOKS}, "C"),
    ("Jayway", "$.n[-2:]", {"n": [1, 2, 3]}, [2, 3]),
    ("Jayway", "$.n[1:-1]", {"n": [1, 2, 3]}, []),
    ("Jayway", "$..a", {"a": {"a": 1}, "b": [{"a": 2}]}, [{"a": 1}, 1, 2]),
    ("Jayway", "$['a','b']", {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}),
    ("Jayway", "$.n[0,2]", {"n": [1, 2, 3]}, [1, 3]),
    ("Jayway", "$.a.b", {"a": None}, NOT_FOUND),
    ("Jayway", "$.s[0]", {"s": "text"}, NOT_FOUND),
]


def statekeeper_select(path: str, data: Any) -> Any:
    try:
        return jsonpath.compile(path).select(data)
    except jsonpath.PathNotFound:
        return NOT_FOUND


def library_select(parse: Callable[[str], Any], path: str, data: Any) -> Any:
    try:
        matches = [match.value for match in parse(path).find(data)]
    except Exception as exc:  # the library's parse errors, and any failure in find
        return f"<error: {type(exc).__name__}>"
    if jsonpath.compile(path).definite:
        return matches[0] if matches else NOT_FOUND
    return matches


def rate(work: Callable[[], None], seconds: float) -> float:
    """Calls of ``work`` per second over about ``seconds``."""
    calls, started = 0, time.perf_counter()
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline:
        for _ in range(50):
            work()
        calls += 50
    return calls / (now - started)


def race(sides: dict[str, Callable[[], None]], seconds: float, slices: int) -> dict[str, float]:
    """Each side's calls per second, the sides taking turns (a drift is shared alike)."""
    done: dict[str, list[float]] = {name: [] for name in sides}
    for name in benchlib.turns(list(sides), slices):
        done[name].append(rate(sides[name], seconds / slices))
    return {name: sorted(rates)[len(rates) // 2] for name, rates in done.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, a few seconds")
    parser.add_argument("--seconds", type=float, help="timed seconds per side")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--jsonpath-ng", default=LIBRARY, metavar="VERSION",
                        help=f"the jsonpath-ng release to measure (default {LIBRARY})")  # fmt: skip
    args = parser.parse_args()
    try:
        version = importlib.metadata.version("jsonpath-ng")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != args.jsonpath_ng:  # measure the release asked for, in its own environment
        venv = benchlib.PEER_HOME / f"jsonpath-ng-{args.jsonpath_ng}"
        package = f"jsonpath-ng=={args.jsonpath_ng}"
        problem = benchlib.run_with_peer(package, venv, Path(__file__), sys.argv[1:])
        print(f"jsonpath-ng {args.jsonpath_ng} is unavailable: {problem}", file=sys.stderr)
        return 2
    ext = importlib.import_module("jsonpath_ng.ext")
    seconds = args.seconds or (0.6 if args.quick else 3.0)
    parse: Callable[[str], Any] = ext.parse

    parsed = [parse(path) for path in DEFINITE]
    loose = [parse(path) for path in INDEFINITE]

    def ours(paths: list[str]) -> Callable[[], None]:
        def run() -> None:
            for path in paths:
                jsonpath.compile(path).select(STATE)

        return run

    def theirs(compiled: list[Any]) -> Callable[[], None]:
        def run() -> None:
            for one in compiled:
                [match.value for match in one.find(STATE)]

        return run

    def theirs_parsing() -> None:
        for path in DEFINITE:
            [match.value for match in parse(path).find(STATE)]

    definite = race(
        {"statekeeper": ours(DEFINITE), "parsed once": theirs(parsed),
         "parse + find": theirs_parsing},
        seconds * 3,
        6,
    )  # fmt: skip
    indefinite = race(
        {"statekeeper": ours(INDEFINITE), "parsed once": theirs(loose)}, seconds * 2, 4
    )
    base = definite["statekeeper"]
    print(f"jsonpath-ng {version} against statekeeper, Python {sys.version.split()[0]}\n")
    print(f"definite paths ({len(DEFINITE)} a round: {', '.join(DEFINITE)})")
    for name, per_second in definite.items():
        print(f"  {name:<14} {per_second * len(DEFINITE):>12,.0f} paths/s"
              f"  {base / per_second:>7.1f}x statekeeper's time")  # fmt: skip
    print(f"indefinite paths ({', '.join(INDEFINITE)})")
    for name, per_second in indefinite.items():
        print(f"  {name:<14} {per_second * len(INDEFINITE):>12,.0f} paths/s"
              f"  {indefinite['statekeeper'] / per_second:>7.1f}x statekeeper's time")  # fmt: skip

    rows, agree = [], {"statekeeper": 0, "jsonpath-ng": 0}
    for source, path, data, expected in BEHAVIOURS:
        got = {
            "statekeeper": statekeeper_select(path, data),
            "jsonpath-ng": library_select(parse, path, data),
        }
        for name, value in got.items():
            agree[name] += json.dumps(value) == json.dumps(expected)
        rows.append({"source": source, "path": path, "expected": expected, **got})
    print(f"\nagreement with AWS ({len(BEHAVIOURS)} behaviours); where a side differs:")
    for row in rows:
        for name in ("statekeeper", "jsonpath-ng"):
            if json.dumps(row[name]) != json.dumps(row["expected"]):
                shown = json.dumps(row["expected"])[:40], json.dumps(row[name])[:40]
                print(f"  {name:<12} {row['source']:<6} {row['path']:<36} "
                      f"AWS {shown[0]}, got {shown[1]}")  # fmt: skip
    if args.json:
        document = {"jsonpath-ng": version, "definite": definite, "indefinite": indefinite,
                    "behaviours": rows, "agree": agree}  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=2), encoding="utf-8")
    total = len(BEHAVIOURS)
    print(
        f"\nheadline: a definite path costs jsonpath-ng {base / definite['parsed once']:.1f}x "
        f"statekeeper's time parsed once, {base / definite['parse + find']:.0f}x parsing each "
        f"time (indefinite: {indefinite['statekeeper'] / indefinite['parsed once']:.1f}x); "
        f"agreement with AWS: statekeeper {agree['statekeeper']}/{total}, "
        f"jsonpath-ng {agree['jsonpath-ng']}/{total}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
