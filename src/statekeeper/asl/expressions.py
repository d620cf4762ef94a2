"""JSONata expressions of the States Language (``{% ... %}`` strings): checked for
syntax before anything runs, and evaluated with AWS's rules.

The JSONata library is jlens (decision record 0007): this module is the only one
that touches it. ``problem(text)`` says what is wrong with a ``{% %}`` string, or
None; a string that opens ``{%`` without closing ``%}`` (or the other way round) is
a problem too.

``evaluate(text, bindings)`` gives the JSON value of a ``{% %}`` string, or
``UNDEFINED`` when it yields nothing (JSONata's undefined, which is not ``null``).
AWS runs JSONata 2.0.6 with these differences, each kept here:

* ``$eval`` does not exist: calling it fails as calling any unknown function does
  (T1006). jlens has no function newer than 2.0.6 (``$clone`` is in 2.0.6 too).
* Six functions of AWS's own: ``$partition(array, size)``, ``$range(start, end,
  step)``, ``$hash(string, algorithm)``, ``$random([seed])`` (replacing JSONata's),
  ``$uuid()`` and ``$parse(json)``. Their arguments are checked by JSONata
  signatures, so a wrong type fails with T0410 naming the function, as on AWS.
* A result is JSON: an integral number is an ``int`` (AWS prints 3, never 3.0), a
  sequence is a list, and a non-finite number fails the evaluation.

An evaluation that fails raises ``ExpressionFailure``, whose ``cause`` is AWS's text
(the interpreter adds the error name ``States.QueryEvaluationError`` and the prefix
naming the state). The other failures AWS reports for a field (its expression
returned nothing, or a value of the wrong type) are the interpreter's to detect;
``undefined_cause`` and ``type_cause`` spell them.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NoReturn, TypeVar

import jlens

OPEN, CLOSE = "{%", "%}"

UNDEFINED: Final = object()
"""What an expression that yields nothing (JSONata's undefined) evaluates to."""

TIME_LIMIT: Final = 5.0
"""Seconds one evaluation may run; past it, it fails (D1012), as a runaway loop does on AWS."""

RANGE_LIMIT: Final = 10_000_000
"""Items ``$range`` may make: the bound JSONata puts on its own range operator (D2014)."""

HASHES: Final = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}

_INTEGRAL_FLOATS = 1e21  # from here JavaScript (so AWS) prints numbers with an exponent
_JAVA_MULTIPLIER, _JAVA_MASK = 0x5DEECE66D, (1 << 48) - 1
_NULL = math.nan  # a host function's non-finite float reaches JSONata as null; None is undefined


class ExpressionFailure(Exception):
    """Evaluation failed: ``cause`` is AWS's message without the prefix "An error
    occurred while executing the state 'X' (entered at the event id #N). " (the
    interpreter adds it and the error name States.QueryEvaluationError).

    AWS's message names the field the expression was written in: with ``field``
    given to ``evaluate`` (such as ``"Output/total"``), ``cause`` is AWS's text as is;
    without it the sentence leaves the field out, and ``for_field(field)`` gives it.
    ``detail`` is what went wrong, such as ``T1006: Attempted to invoke a non-function``.
    """

    cause: str

    def __init__(self, expression: str, detail: str, field: str | None = None) -> None:
        self.expression = expression
        self.detail = detail
        self.field = field
        self.cause = self.for_field(field)
        super().__init__(self.cause)

    def for_field(self, field: str | None) -> str:
        """AWS's cause for this failure of an expression written in ``field``."""
        where = "" if field is None else f" specified for the field '{field}'"
        # AWS ends the sentence before a JSONata error's code; a bare message follows a colon
        joint = ". " if _is_coded(self.detail) else ": "
        return (
            f"The JSONata expression '{self.expression}'{where} threw an error during "
            f"evaluation{joint}{self.detail}"
        )


def is_expression(value: object) -> bool:
    """Whether ``value`` is written as a JSONata expression (``{% ... %}``). As on AWS, a
    string with anything before its ``{%``, even a space, is a string like any other."""
    return isinstance(value, str) and value.startswith(OPEN)


def problem(text: str) -> str | None:
    """What is wrong with the ``{% ... %}`` string ``text``, or None."""
    try:
        expression = body(text)
    except ValueError as wrong:
        return str(wrong)
    if not expression:
        return "the JSONata expression is empty"
    try:
        jlens.Expression(expression)
    except jlens.JlensError as error:
        where = "" if error.position is None else f" at character {error.position + 1}"
        return f"JSONata syntax error {error.code}{where}: {error}"
    return None


def body(text: str) -> str:
    """The expression inside a ``{% ... %}`` string, as AWS quotes it in its messages
    (ValueError if ``text`` is not written so: nothing may stand outside the braces)."""
    if not (text.startswith(OPEN) and text.endswith(CLOSE)) or len(text) < 4:
        raise ValueError(f"a JSONata expression is written {{% ... %}}, got {_shown(text)}")
    return text[len(OPEN) : -len(CLOSE)].strip()


_TIMED_OUT = "D1012"  # jlens's code: the evaluation ran past its timeout

T = TypeVar("T")
# Evaluations on the event loop (``bounded``) may take this long in all, each call of
# ``work``; past it they start again on a thread. A thread hop costs about 0.2 ms, three
# times a typical state's own work, so only the rare slow expression pays it.
LOOP_BUDGET: Final = 0.05
# The threads of slow evaluations: one expression may run up to TIME_LIMIT, and jlens
# lets go of the GIL meanwhile, so there it holds neither the event loop nor the other
# executions. Four at once: more runaway expressions wait their turn here.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="statekeeper-jsonata")
# When the evaluations of the ``work`` running on the event loop must stop (monotonic).
_LOOP_DEADLINE: ContextVar[float | None] = ContextVar("statekeeper_loop_deadline", default=None)


class _PastLoopBudget(BaseException):  # passes ``except Exception`` on its way out
    """Evaluations on the event loop took LOOP_BUDGET: start ``work`` again off it."""


async def bounded(work: Callable[[], T]) -> T:
    """``work()``, which evaluates expressions and changes nothing else (it may be run
    twice): on the event loop while its evaluations take LOOP_BUDGET in all, else again
    from the start on a thread of the expressions' pool, under the whole TIME_LIMIT per
    expression. Context variables go along."""
    token = _LOOP_DEADLINE.set(time.monotonic() + LOOP_BUDGET)
    try:
        return work()
    except _PastLoopBudget:
        pass
    finally:
        _LOOP_DEADLINE.reset(token)
    context = contextvars.copy_context()  # without the deadline: reset above
    return await asyncio.get_running_loop().run_in_executor(_POOL, context.run, work)


def evaluate(
    text: str,
    bindings: Mapping[str, Any],
    *,
    field: str | None = None,
    now: datetime | int | None = None,
    seed: int | None = None,
) -> Any:
    """The value of ``text`` (a whole "{% ... %}" string); ``bindings`` maps variable
    names (without $) to JSON values, e.g. {"states": {"input": ..., "context": ...,
    "result": ...}, "myVar": 3}. Returns UNDEFINED for undefined. Parsed expressions
    are cached.

    ``field`` names where the expression is written, for AWS's message should it fail.
    ``now`` fixes the clock of ``$now()`` and ``$millis()`` (a datetime or milliseconds
    since the epoch; the present by default, read once, so both agree within one
    evaluation) and ``seed`` the random numbers (``$random()``, ``$uuid()``,
    ``$shuffle()``), so a replayed evaluation can give the same answer twice.
    """
    expression = body(text)
    try:
        compiled = _compiled(expression)
    except jlens.JlensError as error:
        raise ExpressionFailure(expression, _detail(error), field) from error
    limit, deadline = TIME_LIMIT, _LOOP_DEADLINE.get()
    if deadline is not None:  # on the event loop (``bounded``): what is left of its time
        limit = deadline - time.monotonic()
        if limit <= 0:
            raise _PastLoopBudget()
    draws = random.Random(seed)
    token = _DRAWS.set(draws)
    try:
        result = compiled.evaluate_json(
            None,
            {"eval": None, **bindings},  # AWS has no $eval: calling it is calling null
            timeout=limit,
            now=time.time_ns() // 1_000_000 if now is None else now,
            seed=draws.getrandbits(63),
        )
    except jlens.JlensError as error:
        if deadline is not None and error.code == _TIMED_OUT:
            raise _PastLoopBudget() from None
        raise ExpressionFailure(expression, _detail(error), field) from error
    except _Refused as refused:
        raise ExpressionFailure(expression, str(refused), field) from refused
    finally:
        _DRAWS.reset(token)
    if result is None:
        return UNDEFINED
    return json.loads(result, parse_float=_number, parse_constant=_non_finite)


def undefined_cause(text: str, field: str) -> str:
    """AWS's cause when the expression ``text`` written in ``field`` yields nothing."""
    return (
        f"The JSONata expression '{body(text)}' specified for the field '{field}' returned "
        "nothing (undefined)."
    )


def type_cause(text: str, field: str, expected: str, value: Any) -> str:
    """AWS's cause when the expression ``text`` written in ``field`` yields ``value``,
    which is not of the JSON type ``expected`` ('array', 'number', 'string', ...)."""
    return (
        f"The JSONata expression '{body(text)}' specified for the field '{field}' returned an "
        f"unexpected result type. Expected '{expected}', but was '{json_type(value)}' for "
        f"value: {json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"
    )


def json_type(value: Any) -> str:
    """The JSON type of ``value`` as AWS names it: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


# --- AWS's functions --------------------------------------------------------------------
# Each gets None for an argument that is undefined, and returns None for undefined.

_DRAWS: ContextVar[random.Random] = ContextVar("statekeeper_jsonata_draws")


class _Refused(Exception):
    """An AWS function refuses its arguments; the text says why."""


def _partition(array: list[Any] | None, size: float | None) -> list[Any] | None:
    """``array`` in chunks of ``size`` items, the last one shorter if need be."""
    if array is None or size is None:
        return None
    chunk = math.trunc(size)
    if chunk < 1:
        raise _Refused(f'Argument 2 of function "partition" must be a positive integer, got {size}')
    if not array:  # AWS makes a sequence of the chunks: none at all is undefined
        return None
    return [array[at : at + chunk] for at in range(0, len(array), chunk)]


def _range(start: float | None, end: float | None, step: float | None) -> Any:
    """The numbers from ``start`` to ``end`` (included when a step lands on it), each
    argument truncated to an integer. AWS makes a sequence of them: one number is that
    number, none (a step of 0, or one going away from ``end``) is undefined."""
    if start is None or end is None or step is None:
        return None
    first, last, stride = math.trunc(start), math.trunc(end), math.trunc(step)
    if stride == 0 or (stride > 0 and first > last) or (stride < 0 and first < last):
        return None
    count = (last - first) // stride + 1
    if count > RANGE_LIMIT:
        raise _Refused(
            f'The size of the sequence made by function "range" must not exceed {RANGE_LIMIT}. '
            f"Attempted to make {count}."
        )
    numbers = range(first, last + (1 if stride > 0 else -1), stride)
    return numbers[0] if count == 1 else list(numbers)


def _hash(value: str | None, algorithm: str | None) -> str | None:
    """The hexadecimal digest of ``value`` (UTF-8) by ``algorithm``."""
    if value is None or algorithm is None:
        return None
    if algorithm not in HASHES:
        raise _Refused(
            f'Argument 2 of function "hash" must be one of {", ".join(HASHES)}, got "{algorithm}"'
        )
    return hashlib.new(HASHES[algorithm], value.encode("utf-8")).hexdigest()


def _random(seed: float | None = None) -> float:
    """A number in [0, 1): with a seed, always the same one for that seed (Java's
    ``new Random(seed).nextDouble()``, as AWS has it); else a fresh one."""
    if seed is None:
        return _DRAWS.get().random()
    state = (max(-(2**63), min(2**63 - 1, math.trunc(seed))) ^ _JAVA_MULTIPLIER) & _JAVA_MASK
    bits = []
    for width in (26, 27):
        state = (state * _JAVA_MULTIPLIER + 0xB) & _JAVA_MASK
        bits.append(state >> (48 - width))
    return ((bits[0] << 27) + bits[1]) / float(1 << 53)


def _uuid() -> str:
    """A version 4 UUID."""
    return str(uuid.UUID(int=_DRAWS.get().getrandbits(128), version=4))


def _parse(text: str | None) -> Any:
    """The JSON value written in ``text``."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_float=_number, parse_constant=_non_finite)
    except ValueError as error:
        raise _Refused(f'Argument 1 of function "parse" is not JSON: {error}') from error
    return _NULL if value is None else value


# name: (implementation, JSONata signature)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], str]] = {
    "partition": (_partition, "<an:a>"),
    "range": (_range, "<nnn:x>"),
    "hash": (_hash, "<ss:s>"),
    "random": (_random, "<n?:n>"),
    "uuid": (_uuid, "<:s>"),
    "parse": (_parse, "<s:x>"),
}


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> jlens.Expression:
    compiled = jlens.Expression(expression)
    for name, (implementation, signature) in _FUNCTIONS.items():
        compiled.register_function(name, implementation, signature)
    return compiled


def _detail(error: jlens.JlensError) -> str:
    return f"{error.code}: {error}" if error.code else str(error)


def _is_coded(detail: str) -> bool:
    code = detail.partition(":")[0]
    return len(code) == 5 and code[0].isupper() and code[1:].isdigit()


def _number(text: str) -> float | int:
    number = float(text)
    if not math.isfinite(number):
        _non_finite(text)
    return int(number) if number.is_integer() and abs(number) < _INTEGRAL_FLOATS else number


def _non_finite(text: str) -> NoReturn:
    raise ValueError(f"JSON has no number {text}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
