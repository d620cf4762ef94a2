"""The side of bench/jsonata_choice.py that runs inside each candidate's own environment:
``python bench/jsonata_worker.py NAME --seconds S`` reads the job (JSON) on standard input
and writes what library NAME gave (JSON) on standard output. Only the standard library and
the candidate are imported; the candidate only inside its adapter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

# A sibling module, standard library only: ``python bench/jsonata_worker.py`` puts bench/
# on sys.path.
from jsonata_choice import CONTEXT, SAMPLE, TIMED


class Unsupported(Exception):
    """The library has no way to do this."""


UNDEF = object()  # "no value", where a library can tell it from null


class Adapter:
    """One library behind the few calls measured; each method raises ``Unsupported`` where
    the library has no such thing."""

    name = ""

    def compile(self, expr: str) -> Any:
        raise NotImplementedError

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        raise NotImplementedError

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        raise Unsupported("no way to register a function")


class JsonataPython(Adapter):
    def __init__(self) -> None:
        import jsonata  # type: ignore[import-not-found,unused-ignore]

        self.lib = jsonata

    def compile(self, expr: str) -> Any:
        compiled = self.lib.Jsonata(expr)
        compiled.set_output_convert_nulls(False)  # null comes back as a marker, so undefined
        return compiled  # is the only None

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        result = compiled.evaluate(data, bindings)
        return UNDEF if result is None else self._nulls(result)

    def _nulls(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._nulls(v) for v in value]
        if isinstance(value, dict):
            return {k: self._nulls(v) for k, v in value.items()}
        if type(value).__name__ == "NullValue":
            return None
        return value

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_lambda(name, fn)


class Jsonatapy(Adapter):
    def __init__(self) -> None:
        import jsonatapy  # type: ignore[import-not-found,unused-ignore]

        self.lib = jsonatapy

    def compile(self, expr: str) -> Any:
        return self.lib.compile(expr)

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        return compiled.evaluate(data, bindings)

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        try:
            compiled.register(name, fn)
        except ValueError:  # a built-in's name: replaced only on purpose
            compiled.register_override(name, fn)


class Jsonata2py(Adapter):
    def __init__(self) -> None:
        import jsonata2py  # type: ignore[import-not-found,unused-ignore]

        self.lib = jsonata2py
        self.factory = jsonata2py.JsonataExpressionFactory()

    def compile(self, expr: str) -> Any:
        return self.factory.compile(expr)

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        bound = self.lib.JsonataBindings()
        for name, value in (bindings or {}).items():
            bound.bind_value(name, value)
        result = compiled.evaluate(data, bound)
        return UNDEF if result is self.lib.MISSING else result

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_function(name, fn)


class JsonataRs(Adapter):
    def __init__(self) -> None:
        import jsonata  # type: ignore[import-not-found,unused-ignore]

        self.lib = jsonata

    def compile(self, expr: str) -> Any:
        compiled = self.lib.Jsonata(expr)
        compiled.set_output_convert_nulls(False)
        return compiled

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        result = compiled.evaluate(data, bindings)
        return UNDEF if result is self.lib.UNDEFINED else result

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_function(name, fn)


class ZopyxPyjsonata(Adapter):
    def __init__(self) -> None:
        from zopyx import pyjsonata  # type: ignore[import-not-found,unused-ignore]

        self.lib = pyjsonata

    def compile(self, expr: str) -> Any:
        return self.lib.Jsonata(expr)

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        result = compiled.evaluate(data, bindings)
        return UNDEF if result is self.lib.UNDEFINED else result


class Jlens(Adapter):
    def __init__(self) -> None:
        import jlens  # type: ignore[import-not-found,unused-ignore]

        self.lib = jlens

    def compile(self, expr: str) -> Any:
        return self.lib.Expression(expr)

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        # evaluate_json tells "no value" (None) from null ("null"); evaluate does not.
        text = compiled.evaluate_json(json.dumps(data), bindings)
        return UNDEF if text is None else json.loads(text)

    def register(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_function(name, fn)


class JsonataJsWrapper(Adapter):
    """jsonata 0.2.5: one call that parses and evaluates; no bindings, no functions."""

    def __init__(self) -> None:
        import jsonata  # type: ignore[import-not-found,unused-ignore]

        self.context = jsonata.Context()

    def compile(self, expr: str) -> Any:
        try:
            self.context(expr, {})
        except KeyError:
            pass
        except Exception as exc:  # its errors are JSON text with the JSONata code
            if re.search(r'"code":\s*"S0', str(exc)):
                raise
        return expr

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        if bindings:
            raise Unsupported("no bindings")
        try:
            return self.context(compiled, data)
        except KeyError:  # its "no value"
            return UNDEF


class Jsonatago(Adapter):
    def __init__(self) -> None:
        import jsonatago  # type: ignore[import-not-found,unused-ignore]

        self.lib = jsonatago

    def compile(self, expr: str) -> Any:
        return self.lib.Jsonata(expr)

    def evaluate(self, compiled: Any, data: Any, bindings: dict[str, Any] | None) -> Any:
        if bindings:
            raise Unsupported("no bindings")
        text = compiled.evaluate(data, raw=True)
        return UNDEF if text is None else json.loads(text)


ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "jsonata-python": JsonataPython,
    "jsonatapy": Jsonatapy,
    "jsonata2py": Jsonata2py,
    "jsonata-rs": JsonataRs,
    "zopyx-pyjsonata": ZopyxPyjsonata,
    "jlens": Jlens,
    "jsonata": JsonataJsWrapper,
    "jsonatago": Jsonatago,
    "pyjsonata": Adapter,  # does not install on this Python; never reached
}


def outcome(adapter: Adapter, job: dict[str, Any]) -> dict[str, Any]:
    """What one evaluation gave: a value, no value, an error, or unsupported."""
    try:
        compiled = adapter.compile(job["expr"])
    except Exception as exc:
        return {"kind": "error", "code": error_code(exc), "parse": False}
    try:
        result = adapter.evaluate(compiled, job.get("input"), job.get("bindings"))
    except Unsupported as exc:
        return {"kind": "unsupported", "why": str(exc)}
    except Exception as exc:
        return {"kind": "error", "code": error_code(exc)}
    except BaseException as exc:  # a Rust panic (pyo3's PanicException) is no Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {"kind": "crash", "code": f"{type(exc).__name__}: {str(exc)[:80]}"}
    if result is UNDEF:
        return {"kind": "undefined"}
    try:
        return {"kind": "value", "value": json.loads(json.dumps(result, allow_nan=False))}
    except (TypeError, ValueError):
        return {"kind": "odd", "repr": repr(result)[:200]}


def error_code(exc: BaseException) -> str:
    for attribute in ("code", "error_code", "error"):  # as each library names it
        code = getattr(exc, attribute, None)
        if isinstance(code, str):
            return code
    found = re.search(r"\b([STDU]\d{4})\b", str(exc))
    return found.group(1) if found else type(exc).__name__


def parses(adapter: Adapter, expr: str) -> bool:
    try:
        adapter.compile(expr)
    except Exception:
        return False
    return True


def capabilities(adapter: Adapter) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def run(expr: str, register: dict[str, Callable[..., Any]] | None = None) -> Any:
        compiled = adapter.compile(expr)
        for name, fn in (register or {}).items():
            adapter.register(compiled, name, fn)
        return adapter.evaluate(compiled, {}, None)

    def refuse(*args: Any) -> Any:
        raise RuntimeError("$eval is not supported")

    try:
        joined = run('$joinall([1, 2, 3], "-") & $double(21)', {
            "joinall": lambda items, sep: sep.join(str(i) for i in items),
            "double": lambda n: n * 2,
        })  # fmt: skip
        got["custom"] = "yes" if joined == "1-2-342" else f"wrong: {joined!r}"
    except Unsupported:
        got["custom"] = "no"
    except Exception as exc:
        got["custom"] = f"fails: {error_code(exc)}"
    try:
        plain = run('$eval("1 + 1")')
        got["eval_builtin"] = plain == 2
    except Exception:
        got["eval_builtin"] = False
    try:
        off = run('$eval("1 + 1")', {"eval": refuse})
        got["eval_off"] = "no" if off == 2 else f"wrong: {off!r}"
    except Unsupported:
        got["eval_off"] = "no"
    except Exception:
        got["eval_off"] = "yes"
    try:
        got["undef_vs_null"] = run("nothing") is UNDEF and run("null") is None
    except Exception:
        got["undef_vs_null"] = False
    return got


def timing(adapter: Adapter, seconds: float) -> dict[str, Any]:
    bindings = {"states": {"input": SAMPLE, "context": CONTEXT}}
    compiled = []
    for expr in TIMED:
        try:
            one = adapter.compile(expr)
            adapter.evaluate(one, None, bindings)
        except Exception:
            continue
        compiled.append(one)
    if not compiled:
        return {"timed": 0, "per_second": 0.0}
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for one in compiled:
            adapter.evaluate(one, None, bindings)
        count += len(compiled)
    return {"timed": len(compiled), "per_second": count / (time.perf_counter() - started)}


def worker(name: str, seconds: float) -> None:
    job = json.load(sys.stdin)
    # The report goes to the real standard output; whatever a library prints, to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    adapter = ADAPTERS[name]()
    report = {
        "parse": [parses(adapter, expr) for expr in job["expressions"]],
        "evaluations": [outcome(adapter, one) for one in job["evaluations"]],
        "representative": [outcome(adapter, one) for one in job["representative"]],
        "capabilities": capabilities(adapter),
        "timing": timing(adapter, seconds),
    }
    json.dump(report, out)
    out.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("name", choices=sorted(ADAPTERS))
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds")
    args = parser.parse_args()
    worker(args.name, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
