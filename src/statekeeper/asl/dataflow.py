"""How data moves through a state: paths, payload templates and JSONata templates.

A state sees three things: its input (``$``), the context object (``$$``, or
``$states.context``) and the variables in scope (``$name``). JSONPath states pick
values with paths and build payloads from templates whose ``x.$`` fields hold a
path or an intrinsic call; JSONata states evaluate ``{% %}`` strings wherever they
appear in a field's value. Every failure is a ``StatesError`` whose cause is the
message AWS gives (the interpreter adds which state and event).
"""

from __future__ import annotations

from typing import Any

from statekeeper.asl import expressions, filters, functions, jsonpath
from statekeeper.asl.failure import QUERY, RUNTIME, DataError, compact
from statekeeper.asl.intrinsics import IntrinsicSyntaxError, is_call, parse


class Variables:
    """Variables in scope: a Map iteration or a Parallel branch reads the variables
    around it and assigns its own."""

    def __init__(self, parent: Variables | None = None) -> None:
        self.values: dict[str, Any] = {}
        self.parent = parent

    def child(self) -> Variables:
        return Variables(self)

    def lookup(self, name: str) -> tuple[bool, Any]:
        scope: Variables | None = self
        while scope is not None:
            if name in scope.values:
                return True, scope.values[name]
            scope = scope.parent
        return False, None

    def visible(self) -> dict[str, Any]:
        """Every variable in scope, by name (inner ones hide outer ones)."""
        chain: list[dict[str, Any]] = []
        scope: Variables | None = self
        while scope is not None:
            chain.append(scope.values)
            scope = scope.parent
        merged: dict[str, Any] = {}
        for values in reversed(chain):
            merged.update(values)
        return merged

    def assign(self, values: dict[str, Any]) -> None:
        self.values.update(values)


class Scope:
    """What paths and expressions of a state see besides its input."""

    __slots__ = ("context", "variables")

    def __init__(self, context: dict[str, Any], variables: Variables) -> None:
        self.context = context
        self.variables = variables


# --- JSONPath -------------------------------------------------------------------------


def select(text: str, data: Any, scope: Scope) -> Any:
    """The value at path ``text``; jsonpath.PathNotFound if there is none."""
    path = jsonpath.compile(text)
    if path.root == "$":
        root = data
    elif path.root == "$$":
        root = scope.context
    else:
        found, root = scope.variables.lookup(path.root)
        if not found:
            raise DataError(
                RUNTIME, f"The variable reference '${path.root}' does not refer to a variable."
            )
    try:
        return path.select(root)
    except filters.RegexTimeout as slow:
        raise DataError(RUNTIME, f"The JSONPath '{text}' could not be evaluated: {slow}") from None


def input_path(text: str | None, data: Any, scope: Scope, field: str = "InputPath") -> Any:
    """InputPath and OutputPath: null gives ``{}``."""
    if text is None:
        return {}
    try:
        return select(text, data, scope)
    except jsonpath.PathNotFound as missing:
        raise DataError(RUNTIME, str(missing)) from None


def field_path(text: str, data: Any, scope: Scope, field: str) -> Any:
    """A path of a field such as ErrorPath or ``value.$``."""
    try:
        return select(text, data, scope)
    except jsonpath.PathNotFound:
        shown = scope.context if text.startswith("$$") else data
        raise DataError(
            RUNTIME,
            f"The JSONPath '{text}' specified for the field '{field}' could not be found in "
            f"the input '{compact(shown)}'",
        ) from None


def result_path(text: str | None, data: Any, result: Any) -> Any:
    """ResultPath: ``result`` written into ``data`` (null: ``data`` as it was)."""
    if text is None:
        return data
    try:
        return jsonpath.assign(text, data, result)
    except (jsonpath.PathNotFound, ValueError) as problem:
        raise DataError(RUNTIME, str(problem)) from None


def template(value: Any, data: Any, scope: Scope) -> Any:
    """A payload template (Parameters, ResultSelector, ItemSelector, Assign) filled in:
    each ``x.$`` field becomes ``x`` with the value of its path or intrinsic call."""
    if isinstance(value, dict):
        filled: dict[str, Any] = {}
        for key, inner in value.items():
            if key.endswith(".$") and isinstance(inner, str):
                filled[key[:-2]] = dynamic(inner, data, scope, key)
            else:
                filled[key] = template(inner, data, scope)
        return filled
    if isinstance(value, list):
        return [template(inner, data, scope) for inner in value]
    return value


def dynamic(text: str, data: Any, scope: Scope, field: str) -> Any:
    """The value of an ``x.$`` field: a path, or an intrinsic call."""
    if not is_call(text):
        return field_path(text, data, scope, field)
    try:
        call = parse(text)
    except IntrinsicSyntaxError as error:
        raise DataError(RUNTIME, f"The intrinsic call '{text}' is invalid: {error}") from None
    try:
        return functions.evaluate(call, lambda path: field_path(path, data, scope, field))
    except functions.IntrinsicFailure as failure:
        raise DataError(failure.error, failure.cause) from None


# --- JSONata --------------------------------------------------------------------------


def bindings(scope: Scope, states: dict[str, Any]) -> dict[str, Any]:
    """What a JSONata expression sees: the variables in scope and ``$states``."""
    seen = scope.variables.visible()
    seen["states"] = states
    return seen


def evaluate(text: str, seen: dict[str, Any], field: str) -> Any:
    """The value of the ``{% %}`` string ``text`` of ``field``; undefined is an error."""
    try:
        value = expressions.evaluate(text, seen, field=field)
    except expressions.ExpressionFailure as failure:
        raise DataError(QUERY, failure.cause) from None
    if value is expressions.UNDEFINED:
        raise DataError(QUERY, expressions.undefined_cause(text, field))
    return value


def fill(value: Any, seen: dict[str, Any], field: str) -> Any:
    """A JSONata template: every ``{% %}`` string in ``value`` evaluated. A field whose
    expression gives nothing is left out of its object (as AWS does in Arguments and
    Output below the top), unless it is the whole value."""
    if isinstance(value, str):
        if expressions.is_expression(value):
            return evaluate(value, seen, field)
        return value
    if isinstance(value, dict):
        return {key: fill(inner, seen, f"{field}/{key}") for key, inner in value.items()}
    if isinstance(value, list):
        return [fill(inner, seen, f"{field}[{i}]") for i, inner in enumerate(value)]
    return value


def expected(value: Any, field: str, text: Any, kind: str) -> Any:
    """``value`` if it is of JSON type ``kind``; else the error AWS gives."""
    if expressions.json_type(value) != kind:
        raise DataError(QUERY, expressions.type_cause(str(text), field, kind, value))
    return value
