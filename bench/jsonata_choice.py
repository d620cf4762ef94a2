"""Which JSONata library the ASL engine should evaluate ``{% %}`` expressions with: every
candidate measured against the reference implementation, jsonata 2.0.6 (JavaScript, the
version AWS Step Functions runs), in one run:

    python bench/jsonata_choice.py --quick      # under a minute after the one-time installs
    python bench/jsonata_choice.py --json results.json

* Installs: each candidate goes into a virtual environment of its own under
  ``~/.cache/statekeeper-bench/jsonata-<name>`` (once; never into the project's), and the
  reference into ``~/.cache/statekeeper-bench/jsonata-node`` with npm. This script then runs
  bench/jsonata_worker.py there, which imports nothing but the standard library and the
  candidate.
* Conformance: every string of the conformance definitions that is exactly ``{% ... %}``.
  Each distinct expression is parsed; each distinct (expression, execution input) pair is
  evaluated with ``$states`` bound to ``{"input": <input>, "context": <a sample context>}``
  (variables from ``Assign`` are left unbound, alike for all), except those calling a
  function only AWS defines, which no library has.
* Representative: expressions written here (string, array, object, higher-order, regex,
  number formatting, dates, errors) against one sample document.
* A result agrees when the reference gives the same JSON value (an integral float equals the
  integer: Python has both types, JSON one), or an error where the reference errs (any
  code), or no value where the reference gives none (a library that cannot tell "no value"
  from ``null`` is let off there; the column ``undef≠null`` says which can). ``$now()``-like
  results agree on their form, not their value.
* Capabilities: a Python function registered as ``$name`` (what AWS's ``$partition``,
  ``$range``, ``$hash``, ``$random``, ``$uuid``, ``$parse`` need) and ``$eval`` turned off
  by registering a replacement that fails.
* Speed: ten ASL-like expressions, compiled once, evaluated in turn for a fixed time;
  evaluations per second and the ratio of the fastest to each.

The last line is the headline: the chosen library and its agreement with the reference.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Only the standard library: this file also runs as the worker inside each candidate's own
# environment, where statekeeper is not installed.

HOME = Path.home() / ".cache" / "statekeeper-bench"
REPO = Path(__file__).resolve().parent.parent
CASES = REPO.parent / "shared" / "conformance" / "asl" / "cases.jsonl"
REFERENCE_VERSION = "2.0.6"
AWS_ONLY = ("partition", "range", "hash", "random", "uuid", "parse")
EXPRESSION = re.compile(r"^\{%(.*)%\}$", re.S)


@dataclass(frozen=True)
class Candidate:
    name: str  # the package name, and the folder's suffix
    summary: str


CANDIDATES = (
    Candidate("jsonata-python", "pure Python port of jsonata-js (via the Java port)"),
    Candidate("jsonatapy", "Rust engine (jsonata-core), PyO3 bindings"),
    Candidate("jsonata2py", "translates JSONata to Python source, compiles it"),
    Candidate("jsonata-rs", "Rust port of jsonata-java, PyO3 bindings"),
    Candidate("zopyx-pyjsonata", "PyO3 bindings of the jsonata-rs crate"),
    Candidate("jlens", "Rust engine with evaluation audits"),
    Candidate("jsonata", "wrapper of jsonata-js in an embedded JavaScript engine"),
    Candidate("jsonatago", "bindings of a Go implementation (jsonata-go)"),
    Candidate("pyjsonata", "bindings of jsonata-go through a C library (2020)"),
)


# --- the expressions ----------------------------------------------------------------------

SAMPLE: dict[str, Any] = {
    "order": {
        "id": "A-1",
        "items": [
            {"sku": "x", "price": 12.5, "qty": 2, "tags": ["a", "b"], "category": "tool"},
            {"sku": "y", "price": 3, "qty": 10, "tags": [], "category": "food"},
            {"sku": "z", "price": 40, "qty": 1, "tags": ["b"], "category": "tool"},
        ],
        "customer": {"name": "Ada Lovelace", "email": "ADA@Example.com"},
        "created": "2024-03-05T10:20:30.123Z",
    },
    "values": [3, 1, 2, 3],
    "one": [7],
    "text": "Hello, World",
    "nothing_here": None,
    "flag": False,
    "big": 9007199254740993,
    "unicode": "żółw 😀",
}
CONTEXT: dict[str, Any] = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:machine:run-1",
        "Input": {},
        "Name": "run-1",
        "RoleArn": "arn:aws:iam::123456789012:role/role",
        "StartTime": "2024-03-05T10:20:30.123Z",
    },
    "State": {"EnteredTime": "2024-03-05T10:20:30.456Z", "Name": "Step", "RetryCount": 0},
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:machine"},
}

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"

# (expression, check): check "" compares values; a regex compares the form of the result.
REPRESENTATIVE: tuple[tuple[str, str], ...] = (
    # paths, sequences and no value
    ("order.items.sku", ""),
    ("order.items[price > 10].sku", ""),
    ("order.items[0].tags", ""),
    ("order.items[-1].sku", ""),
    ("one", ""),
    ("one[0]", ""),
    ("order.items.tags", ""),
    ("order.missing.deeper", ""),
    ("nothing_here", ""),
    ("[order.missing]", ""),
    ('{"a": order.missing, "b": 1}', ""),
    ("**.sku", ""),
    ("order.items^(>price).sku", ""),
    ("order.items{category: $sum(price)}", ""),
    ("order.items#$i[$i > 0].sku", ""),
    ("[1..5]", ""),
    ("big", ""),
    # strings
    ('$substring("Hello World", 3, 5)', ""),
    ('$substringBefore(text, ",") & "|" & $substringAfter(text, ", ")', ""),
    ("$uppercase(order.customer.name) & $lowercase(order.customer.email)", ""),
    ("$length(unicode)", ""),
    ("$substring(unicode, 5)", ""),
    ('$trim("  a   b  ")', ""),
    ('$pad("7", 3, "0") & $pad("7", -3)', ""),
    ('$split("a,b,,c", ",")', ""),
    ('$join(["a", "b"], "-")', ""),
    ('$contains(text, "World")', ""),
    ("$base64encode(unicode)", ""),
    ('$base64decode("aGVsbG8=")', ""),
    ('$encodeUrlComponent("a b&c/d")', ""),
    ('"n=" & 1.5 & null & true', ""),
    # regular expressions
    ('$match("ab12cd345", /[0-9]+/)', ""),
    ('$replace("John Smith", /(\\w+)\\s(\\w+)/, "$2, $1")', ""),
    ('$split("a1b22c", /[0-9]+/)', ""),
    ('$contains("HELLO", /ell/i)', ""),
    ("$contains('hello$world', /^hello\\$/)", ""),
    ('$replace("aaa", "a", "b", 2)', ""),
    ('$match("abcb", /(?<=a)b/)', ""),
    ('$replace("aabb", /(a)\\1/, "x")', ""),
    ('$match("2024-03-05", /(\\d+)-(\\d+)/).groups', ""),
    ('$replace("a.b.c", ".", "-")', ""),
    ('$split("a b  c", " ", 2)', ""),
    # numbers and $string / $number
    ("1 / 3", ""),
    ("0.1 + 0.2", ""),
    ("-7 % 3", ""),
    ("$string(1e21)", ""),
    ("$string(1e-7)", ""),
    ("$string(0.1 + 0.2)", ""),
    ("$string(100.0)", ""),
    ("$string(-0)", ""),
    ('$string({"a": [1, "x", null, true]})', ""),
    ('$string({"a": 1}, true)', ""),
    ('$number("0x1F")', ""),
    ('$number("1e3")', ""),
    ('$number(" 12 ")', ""),
    ("$number(true)", ""),
    ('$round(2.5) & "," & $round(3.5) & "," & $round(-2.5) & "," & $round(1.2345, 2)', ""),
    ("$floor(-1.5) + $ceil(1.2) + $abs(-3)", ""),
    ("$power(2, 0.5)", ""),
    ("$sqrt(16)", ""),
    ('$formatNumber(1234567.891, "#,##0.00")', ""),
    ("$formatBase(255, 16)", ""),
    ('$formatInteger(1999, "I")', ""),
    ('$formatInteger(42, "w")', ""),
    ('$parseInteger("twelve", "w")', ""),
    ("$sum(order.items.(price * qty))", ""),
    ("$max(values) - $min(values) + $average(values)", ""),
    # arrays and objects
    ("$count(values)", ""),
    ("$append(values, [9])", ""),
    ("$sort(values)", ""),
    ("$sort(order.items, function($a, $b) { $a.price < $b.price }).sku", ""),
    ("$reverse(values)", ""),
    ("$distinct(values)", ""),
    ("$zip([1, 2], [3, 4])", ""),
    ("$keys(order.customer)", ""),
    ('$lookup(order.customer, "name")', ""),
    ("$spread(order.customer)", ""),
    ('$merge([{"a": 1}, {"a": 2, "b": 3}])', ""),
    ('$each(order.customer, function($v, $k) { $k & "=" & $v })', ""),
    ('$sift(order.customer, function($v) { $contains($v, "@") })', ""),
    ('[$type(null), $type(1), $type("a"), $type([]), $type({}), $type(true)]', ""),
    ("$exists(order.missing) or $exists(order.id)", ""),
    ('order ~> | items | {"total": price * qty} |', ""),
    ('$boolean([]) & $boolean("") & $boolean(0) & $boolean([0]) & $boolean({})', ""),
    ('"1" = 1', ""),
    ("null = null", ""),
    ('"b" in ["a", "b"]', ""),
    ('flag ? "yes" : "no"', ""),
    # higher-order functions
    ("$map(values, function($v, $i) { $v * $i })", ""),
    ("$filter(order.items, function($v) { $v.qty > 1 }).sku", ""),
    ("$reduce(values, function($a, $b) { $a + $b }, 100)", ""),
    ('$single(order.items, function($v) { $v.sku = "y" }).price', ""),
    ("($f := function($n) { $n <= 1 ? 1 : $n * $f($n - 1) }; $f(10))", ""),
    ("($add := function($a, $b) { $a + $b }; $inc := $add(?, 1); $inc(41))", ""),
    ("values ~> $map(function($v) { $v * 2 }) ~> $sum()", ""),
    ("($x := 5; $g := function() { $x * 2 }; $g())", ""),
    # dates
    ("$now()", ISO),
    ("$millis()", r"^1[6-9]\d{11}$"),
    ('$toMillis("2024-01-02T03:04:05.678Z")', ""),
    ("$toMillis(order.created)", ""),
    ("$fromMillis(1700000000000)", ""),
    ('$fromMillis(0, "[Y0001]-[M01]-[D01] [H01]:[m01]")', ""),
    ('$fromMillis(1700000000000, "[H01]:[m01] [Z]", "+0530")', ""),
    ('$toMillis("2024-01-02", "[Y0001]-[M01]-[D01]")', ""),
    ('$fromMillis(1700000000000, "[FNn], [D1o] [MNn] [Y]")', ""),
    # errors
    ('"a" + 1', ""),
    ('$sum("a")', ""),
    ("$nosuchfunction(1)", ""),
    ('$number("abc")', ""),
    ('1 < "a"', ""),
    ('$error("boom")', ""),
    ("$string(1/0)", ""),
    ("$substring(123, 1)", ""),
    ("1 +", ""),
    ("$map(", ""),
    ('{"a": 1', ""),
    ("order.items[", ""),
    ("$undefinedVariable.field", ""),
    ("$count(nothing_here)", ""),
    ('$lookup([{"a": 1}, {"a": 2}], "a")', ""),
    ('$merge([{"b": 1}, {"a": 2}]) ~> $keys()', ""),
    ("$sort([3, 1, 2], function($a, $b) { $a > $b })", ""),
    ("$string(function($x) { $x })", ""),
    ('$formatNumber(0.5, "0%")', ""),
    ('$fromMillis(1700000000123, "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f001]Z")', ""),
    ('$toMillis("not a date")', ""),
    ('$assert(1 = 2, "no")', ""),
    ("[1, 2, 3][$ > 1]", ""),
    ('{"a": [1, 2], "b": 3}.*', ""),
    ("$average([])", ""),
    ("$sum([])", ""),
    ("$round(0.125, 2)", ""),
    ('$formatNumber(-1.5, "#0")', ""),
)

# ASL-like expressions over $states for the timing: compiled once, evaluated in turn.
TIMED: tuple[str, ...] = (
    "$states.input.order.id",
    "$sum($states.input.order.items.(price * qty))",
    "$states.input.order.items[price > 10].sku",
    '{"id": $states.input.order.id, "total": $sum($states.input.order.items.(price * qty)),'
    ' "skus": $map($states.input.order.items, function($v) { $uppercase($v.sku) })}',
    '$states.input.order.customer.name & " <" & $lowercase($states.input.order.customer.email)'
    ' & ">"',
    "$count($states.input.values) > 3 and $states.input.flag = false",
    "$reduce($states.input.values, function($a, $b) { $a + $b }, 0)",
    "$states.input.order.items^(>price).sku",
    '$merge([$states.input.order.customer, {"id": $states.input.order.id}])',
    "$string($states.input.order.items)",
)


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


def calls_aws_only(expr: str) -> bool:
    return any(re.search(rf"\${name}\s*\(", expr) for name in AWS_ONLY)


def conformance_jobs(path: Path) -> tuple[list[str], list[dict[str, Any]], int]:
    """The distinct expressions, the (expression, input) evaluations, and how many
    evaluations were left out for calling a function only AWS has."""
    expressions: list[str] = []
    evaluations: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    aws_only = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            case = json.loads(line)
            text = case["input"] if isinstance(case["input"], str) else json.dumps(case["input"])
            for string in walk_strings(case["definition"]):
                match = EXPRESSION.match(string)
                if not match:
                    continue
                expr = match.group(1).strip()
                if expr not in expressions:
                    expressions.append(expr)
                if (expr, text) in seen:
                    continue
                seen.add((expr, text))
                if calls_aws_only(expr):
                    aws_only += 1
                    continue
                states = {"input": json.loads(text), "context": CONTEXT}
                evaluations.append({"expr": expr, "bindings": {"states": states}})
    return expressions, evaluations, aws_only


def representative_jobs() -> list[dict[str, Any]]:
    return [{"expr": expr, "check": check, "input": SAMPLE} for expr, check in REPRESENTATIVE]


# --- the reference: jsonata 2.0.6 through node ----------------------------------------------

NODE_SCRIPT = r"""
const jsonata = require("jsonata");
const fs = require("fs");
const job = JSON.parse(fs.readFileSync(0, "utf8"));
function code(e) { return (e && e.code) || String(e); }
async function outcome(one) {
  let compiled;
  try { compiled = jsonata(one.expr); }
  catch (e) { return {kind: "error", code: code(e), parse: false}; }
  let result;
  try { result = await compiled.evaluate(one.input, one.bindings); }
  catch (e) { return {kind: "error", code: code(e)}; }
  if (result === undefined) return {kind: "undefined"};
  let text;
  try { text = JSON.stringify(result); } catch (e) { return {kind: "odd", repr: String(result)}; }
  if (text === undefined) return {kind: "odd", repr: String(result)};
  return {kind: "value", value: JSON.parse(text)};
}
(async () => {
  const report = {parse: [], evaluations: [], representative: []};
  for (const e of job.expressions) {
    try { jsonata(e); report.parse.push(true); } catch (err) { report.parse.push(false); }
  }
  for (const one of job.evaluations) report.evaluations.push(await outcome(one));
  for (const one of job.representative) report.representative.push(await outcome(one));
  const bindings = {states: {input: job.sample, context: job.context}};
  const compiled = job.timed.map((e) => jsonata(e));
  let count = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(job.seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    for (const c of compiled) await c.evaluate(null, bindings);
    count += compiled.length;
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  report.timing = {timed: compiled.length, per_second: count / elapsed};
  report.version = require("jsonata/package.json").version;
  process.stdout.write(JSON.stringify(report));
})();
"""


def install_reference() -> tuple[Path | None, str]:
    """The folder holding jsonata 2.0.6 for node, or None and why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "node and npm are not on PATH"
    home = HOME / "jsonata-node"
    package = home / "node_modules" / "jsonata" / "package.json"
    try:
        installed = json.loads(package.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        installed = None
    if installed != REFERENCE_VERSION:
        print(f"installing jsonata@{REFERENCE_VERSION} (npm) into {home} (once)", flush=True)
        home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(home), "--no-save", "--no-audit", "--no-fund",
             f"jsonata@{REFERENCE_VERSION}"],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            return None, f"npm install failed: {done.stderr.strip()[-300:]}"
    (home / "reference.js").write_text(NODE_SCRIPT, encoding="utf-8")
    return home, ""


def install_candidate(candidate: Candidate) -> tuple[Path | None, str]:
    """The Python of the candidate's own environment, or None and why not (as
    benchlib.run_with_peer does for the peers of the other benchmarks)."""
    venv = HOME / f"jsonata-{candidate.name}"
    python = venv / "bin" / "python"
    marker = venv / "statekeeper-bench.json"
    log_path = HOME / f"jsonata-{candidate.name}-pip.log"
    if marker.exists() and python.exists():
        return python, ""
    if (HOME / f"jsonata-{candidate.name}.failed").exists():
        return None, f"did not install (see {log_path}; delete the .failed file to retry)"
    print(f"installing {candidate.name} into {venv} (once)", flush=True)
    HOME.mkdir(parents=True, exist_ok=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        with log_path.open("w", encoding="utf-8") as log:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                 candidate.name],
                stdout=log, stderr=subprocess.STDOUT, check=False, timeout=600,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"installing it failed: {type(exc).__name__}: {exc}"
    if done.returncode != 0:
        (HOME / f"jsonata-{candidate.name}.failed").write_text("", encoding="utf-8")
        return None, f"pip could not install it (see {log_path})"
    marker.write_text(json.dumps([candidate.name]), encoding="utf-8")
    return python, ""


def installed_version(python: Path, name: str) -> str:
    done = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "?"


# --- comparing ----------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """JSON values as JavaScript sees them: an integral float is the integer."""
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def agrees(reference: dict[str, Any], got: dict[str, Any], check: str = "") -> bool:
    kind, got_kind = str(reference["kind"]), str(got["kind"])
    if kind == "error":
        return got_kind == "error"
    if kind == "undefined":  # a library that cannot tell no value from null is let off
        return got_kind == "undefined" or (got_kind == "value" and got["value"] is None)
    if got["kind"] != "value" or kind != "value":
        return False
    if check:
        return re.match(check, json.dumps(got["value"]).strip('"')) is not None
    return bool(canonical(reference["value"]) == canonical(got["value"]))


@dataclass
class Row:
    candidate: Candidate
    version: str = ""
    problem: str = ""
    parsed: int = 0
    conformance: int = 0
    representative: int = 0
    capabilities: dict[str, Any] = field(default_factory=dict)
    per_second: float = 0.0
    timed: int = 0
    same_code: int = 0  # errors raised with the reference's own code
    disagreements: list[str] = field(default_factory=list)

    @property
    def agreed(self) -> int:
        return self.conformance + self.representative


def run_subprocess(argv: list[str], job: dict[str, Any], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        argv, input=json.dumps(job), capture_output=True, text=True, check=False,
        timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-400:] or f"exit status {done.returncode}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def compare(
    row: Row, reference: dict[str, Any], report: dict[str, Any], job: dict[str, Any]
) -> None:
    row.parsed = sum(report["parse"])
    conformance = zip(
        job["evaluations"], reference["evaluations"], report["evaluations"], strict=True
    )
    for one, ref, got in conformance:
        if agrees(ref, got):
            row.conformance += 1
        else:
            row.disagreements.append(f"conformance {one['expr']!r}: {brief(ref)} vs {brief(got)}")
    for one, ref, got in zip(
        job["representative"], reference["representative"], report["representative"], strict=True
    ):
        if ref["kind"] == "error" and got.get("code") == ref["code"]:
            row.same_code += 1
        if agrees(ref, got, one["check"]):
            row.representative += 1
        else:
            row.disagreements.append(f"{one['expr']!r}: {brief(ref)} vs {brief(got)}")
    row.capabilities = report["capabilities"]
    row.per_second = report["timing"]["per_second"]
    row.timed = report["timing"]["timed"]


def brief(result: dict[str, Any]) -> str:
    kind = result["kind"]
    if kind == "value":
        return json.dumps(result["value"])[:60]
    if kind in ("error", "crash"):
        return f"{kind} {result.get('code')}"
    if kind == "odd":
        return f"odd {result.get('repr', '')[:40]}"
    return str(kind)


def choose(rows: list[Row]) -> Row | None:
    """Correctness first; among those within one point of the best, one that can register
    functions and turn $eval off; then speed. (Maintenance is judged in the decision
    record, not here.)"""
    usable = [r for r in rows if not r.problem and r.capabilities.get("custom") == "yes"]
    if not usable:
        return None
    best = max(r.agreed for r in usable)
    close = [r for r in usable if r.agreed >= best - 0.01 * best]
    return max(close, key=lambda r: (r.capabilities.get("eval_off") == "yes", r.per_second))


def print_table(rows: list[Row], reference: dict[str, Any], job: dict[str, Any]) -> None:
    n_expr, n_eval, n_rep = (
        len(job["expressions"]),
        len(job["evaluations"]),
        len(job["representative"]),
    )
    fastest = max([r.per_second for r in rows] + [reference["timing"]["per_second"]])
    print(
        f"\n{n_expr} distinct conformance expressions ({n_eval} evaluations; "
        f"{job['aws_only']} call AWS-only functions and are only parsed), "
        f"{n_rep} representative expressions; reference jsonata {reference['version']} "
        f"(node {reference['node']})\n"
    )
    head = (
        "| candidate | version | parse | conformance | representative | agree % | custom fn "
        "| error codes | $eval off | undef≠null | evals/s | fastest/this |"
    )
    print(head)
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: | ---: |")
    errors = sum(1 for r in reference["representative"] if r["kind"] == "error")
    total = n_eval + n_rep
    for r in rows:
        if r.problem:
            print(f"| {r.candidate.name} | {r.version or '—'} | {r.problem} | | | | | | | | | |")
            continue
        caps = r.capabilities
        speed = (
            f"{r.per_second:,.0f} ({r.timed}/{len(TIMED)}) | {fastest / r.per_second:.1f}x"
            if r.per_second
            else "— (no bindings) | —"
        )
        print(
            f"| {r.candidate.name} | {r.version} | {r.parsed}/{n_expr} | {r.conformance}/{n_eval} "
            f"| {r.representative}/{n_rep} | {100 * r.agreed / total:.1f} | {caps['custom']} "
            f"| {r.same_code}/{errors} | {caps['eval_off']} "
            f"| {'yes' if caps['undef_vs_null'] else 'no'} | {speed} |"
        )
    ref_rate = reference["timing"]["per_second"]
    print(
        f"| (reference jsonata {reference['version']}, node) | "
        f"| {sum(reference['parse'])}/{n_expr} "
        f"| {n_eval}/{n_eval} | {n_rep}/{n_rep} | 100.0 | | {errors}/{errors} | | yes "
        f"| {ref_rate:,.0f} ({reference['timing']['timed']}/{len(TIMED)}) "
        f"| {fastest / ref_rate:.1f}x |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, under a minute")
    parser.add_argument("--seconds", type=float, help="timed seconds per candidate")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure these candidates")
    parser.add_argument("--show", metavar="NAME", help="print NAME's disagreements")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    expressions, evaluations, aws_only = conformance_jobs(CASES)
    job: dict[str, Any] = {
        "expressions": expressions,
        "evaluations": evaluations,
        "aws_only": aws_only,
        "representative": representative_jobs(),
        "sample": SAMPLE,
        "context": CONTEXT,
        "timed": list(TIMED),
        "seconds": seconds,
    }
    home, problem = install_reference()
    if home is None:
        print(f"the reference cannot run: {problem}", file=sys.stderr)
        return 2
    reference = run_subprocess(["node", str(home / "reference.js")], job, 300)
    reference["node"] = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()

    rows: list[Row] = []
    for candidate in CANDIDATES:
        if args.only and candidate.name not in args.only:
            continue
        row = Row(candidate)
        rows.append(row)
        python, problem = install_candidate(candidate)
        if python is None:
            row.problem = problem
            continue
        row.version = installed_version(python, candidate.name)
        argv = [str(python), str(Path(__file__).resolve().parent / "jsonata_worker.py")]
        argv.append(candidate.name)
        argv += ["--seconds", str(seconds)]
        try:
            report = run_subprocess(argv, job, 120 + 2 * seconds)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            row.problem = f"worker failed: {str(exc).splitlines()[-1][:120]}"
            continue
        compare(row, reference, report, job)

    print_table(rows, reference, job)
    if args.show:
        for row in rows:
            if row.candidate.name == args.show:
                print(f"\n{row.candidate.name}: {len(row.disagreements)} disagreements")
                for line in row.disagreements:
                    print(f"  {line}")
    chosen = choose(rows)
    total = len(evaluations) + len(job["representative"])
    if args.json:
        document = {
            "reference": {k: reference[k] for k in ("version", "node", "timing")},
            "rows": [
                {
                    "candidate": r.candidate.name, "version": r.version, "problem": r.problem,
                    "parsed": r.parsed, "conformance": r.conformance,
                    "representative": r.representative, "capabilities": r.capabilities,
                    "same_code": r.same_code, "per_second": r.per_second,
                    "disagreements": r.disagreements,
                }
                for r in rows
            ],
            "chosen": chosen.candidate.name if chosen else None,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=2), encoding="utf-8")
    if chosen is None:
        print("headline: no candidate agrees with the reference and registers functions")
        return 1
    print(
        f"\nheadline: {chosen.candidate.name} {chosen.version} agrees with jsonata "
        f"{reference['version']} on {chosen.agreed}/{total} "
        f"({100 * chosen.agreed / total:.1f}%) evaluations, parses "
        f"{chosen.parsed}/{len(expressions)} conformance expressions, registers functions, "
        f"$eval off: {chosen.capabilities['eval_off']}, {chosen.per_second:,.0f} evals/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
