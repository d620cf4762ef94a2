"""JSONPath evaluation as AWS Step Functions does it (the semantics of the Jayway library).

``compile(text)`` turns a path (syntax as ``paths.problem`` checks it) into a ``Path``
whose ``select(data)`` evaluates it from its root value (``$``: the state's data, ``$$``:
the context object, ``$name``: a variable's value). A *definite* path (names, single
indexes, a last ``['a','b']``) gives the value, or raises ``PathNotFound`` with the text
AWS shows (``No results for path: $['x']``). An *indefinite* path (``*``, ``..``, slices,
unions, filters) gives the list of matches in document order, possibly empty: whatever
does not match is skipped. ``assign(reference_path, data, value)`` writes a ResultPath.

Jayway's ways kept: an index below zero counts from the end; ``[a:b]`` does not wrap a
negative ``b`` and ``[1:-1]`` is empty; a slice's step is ignored; a filter applied to an
object tests the object itself; ``..name`` visits containers depth first, parents before
children; a quoted name is taken as written (a backslash only stops a quote ending it).
Filter expressions are ``filters``' business. Decision record 0008 says why this is
written here rather than taken from a library.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statekeeper.asl import filters, paths

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SLICE = re.compile(r"\s*(-?[0-9]*)\s*:\s*(-?[0-9]*)\s*(?::\s*-?[0-9]*\s*)?")
_INDEX = re.compile(r"-?[0-9]+")
_ABSENT: Any = object()  # no such field (ResultPath creates it)
_KINDS = {type(None): "null", str: "string", bool: "boolean", int: "number", float: "number"}

Segment = tuple[str, Any]  # (kind, argument): name, index, slice, all, scan, filter


class PathNotFound(Exception):
    """``path`` (as written) selects nothing in the data; ``normalized`` is the path as AWS
    shows it (``$['NoSuchInputPath']`` for ``$.NoSuchInputPath``) and ``reason`` the
    library's words after ``Invalid path '...' : `` (``No results for path: $['x']``,
    ``Missing property in path $['a']``, ...); ``str()`` is AWS's whole sentence."""

    def __init__(self, path: str, normalized: str, reason: str | None = None) -> None:
        self.path = path
        self.normalized = normalized
        self.reason = reason or f"No results for path: {normalized}"
        super().__init__(f"Invalid path '{path}' : {self.reason}")


@dataclass(frozen=True)
class Path:
    """A compiled path: ``root`` is ``$``, ``$$`` or a variable's name (without ``$``)."""

    text: str
    root: str
    definite: bool
    segments: tuple[Segment, ...] = field(repr=False, compare=False)
    # A definite path's keys and indexes (None with merged names); plain: keys only.
    steps: tuple[str | int, ...] | None = field(repr=False, compare=False)
    plain: bool = field(repr=False, compare=False)

    @property
    def normalized(self) -> str:
        return "$" + "".join(_fragment(segment) for segment in self.segments)

    def select(self, data: Any) -> Any:
        """The value at this path (definite) or the list of matches (indefinite)."""
        steps = self.steps
        if steps is not None:  # the hot path: keys and indexes
            node = data
            try:
                if self.plain:
                    for step in steps:
                        node = node[step]
                else:
                    for step in steps:
                        if type(step) is int and type(node) is not list:
                            raise TypeError
                        node = node[step]
            except (KeyError, IndexError, TypeError):
                raise self._not_found(data) from None
            return node
        found: list[Any] = []
        _run(data, self.segments, 0, data, found)
        if self.definite:
            if not found:
                raise self._not_found(data)
            return found[0]
        return found

    def _not_found(self, data: Any) -> PathNotFound:
        """Where the walk stopped, in the library's words."""
        node, where, last = data, "$", len(self.segments) - 1
        for at, (kind, argument) in enumerate(self.segments):
            if kind == "name" and len(argument) == 1:
                if not isinstance(node, dict):
                    found = _KINDS.get(type(node), "array")
                    reason = (
                        f"Expected to find an object with property {_fragment((kind, argument))}"
                        f" in path {where} but found '{found}'."
                    )
                    return PathNotFound(self.text, self.normalized, reason)
                if argument[0] not in node:
                    if at == last:
                        break
                    reason = f"Missing property in path {where}['{argument[0]}']"
                    return PathNotFound(self.text, self.normalized, reason)
                node = node[argument[0]]
            elif kind == "index":
                if node is None:
                    return PathNotFound(self.text, self.normalized, f"The path {where} is null")
                if not isinstance(node, list):
                    rest = "".join(map(_fragment, self.segments[at:]))
                    reason = (
                        f"Filter: {rest} can only be applied to arrays."
                        f" Current context is: {json.dumps(node, separators=(',', ':'))}"
                    )
                    return PathNotFound(self.text, self.normalized, reason)
                if not -len(node) <= argument[0] < len(node):
                    break
                node = node[argument[0]]
            where += _fragment((kind, argument))
        return PathNotFound(self.text, self.normalized)


def compile(text: str) -> Path:
    """``text`` compiled (cached); ValueError saying what is wrong with its syntax."""
    return _compile(text)


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Path:
    if (wrong := paths.problem(text)) is not None:
        raise ValueError(wrong)
    if text.startswith("$$"):
        root, at = "$$", 2
    elif (variable := _VARIABLE.match(text)) is not None:
        root, at = variable.group(1), variable.end()
    else:
        root, at = "$", 1
    segments = tuple(_Parser(text, at).segments())
    last = len(segments) - 1
    definite = all(
        (kind == "name" and (len(argument) == 1 or i == last))
        or (kind == "index" and len(argument) == 1)
        for i, (kind, argument) in enumerate(segments)
    )
    steps = None
    if definite and all(len(argument) == 1 for _, argument in segments):
        steps = tuple(argument[0] for _, argument in segments)
    plain = all(kind == "name" for kind, _ in segments)
    return Path(text, root, definite, segments, steps, plain)


def assign(reference_path: str, data: Any, value: Any) -> Any:
    """ResultPath: a copy of ``data`` with ``value`` written at ``reference_path`` (``$``,
    ``$.a.b``, ``$['a']``, ``$.a[0]``); missing objects on the way are created, ``$``
    replaces the whole. ValueError when it cannot write: into a value that is not an
    object (a name) or not an array (an index), or past an array's end. ``data`` is left
    as it was; what is off the path is shared, not copied."""
    if (wrong := paths.problem(reference_path, reference=True)) is not None:
        raise ValueError(wrong)
    segments = compile(reference_path).segments
    return _put(reference_path, data, [argument[0] for _, argument in segments], value)


def _put(path: str, node: Any, steps: list[str | int], value: Any) -> Any:
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if isinstance(step, str):
        if node is _ABSENT:
            node = {}
        if not isinstance(node, dict):
            raise ValueError(
                f"Unable to apply ResultPath {path!r}: {_json(node)} is not an object"
                f" (it has no field {step!r})"
            )
        copy = dict(node)
        copy[step] = _put(path, node.get(step, _ABSENT), rest, value)
        return copy
    if not isinstance(node, list) or not -len(node) <= step < len(node):
        what = "missing" if node is _ABSENT else _json(node)
        raise ValueError(f"Unable to apply ResultPath {path!r}: {what} has no index {step}")
    items = list(node)
    items[step] = _put(path, node[step], rest, value)
    return items


def _json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def _fragment(segment: Segment) -> str:
    kind, argument = segment
    if kind == "name":
        names = (name.replace("\\", "\\\\").replace("'", "\\'") for name in argument)
        return "[" + ",".join(f"'{name}'" for name in names) + "]"
    if kind == "index":
        return "[" + ",".join(map(str, argument)) + "]"
    if kind == "slice":
        start, stop = argument
        return f"[{'' if start is None else start}:{'' if stop is None else stop}]"
    return {"all": "[*]", "scan": "..", "filter": "[?]"}[kind]


# --- evaluation -----------------------------------------------------------------------------


def _run(node: Any, segments: tuple[Segment, ...], at: int, root: Any, out: list[Any]) -> None:
    """Append to ``out`` what ``segments[at:]`` selects from ``node``; no match, no value."""
    if at == len(segments):
        out.append(node)
        return
    kind, argument = segments[at]
    nxt = at + 1
    if kind == "name":
        if isinstance(node, dict):
            if len(argument) > 1 and nxt == len(segments):  # ['a','b'] last: one object
                out.append({name: node[name] for name in argument if name in node})
                return
            for name in argument:
                if name in node:
                    _run(node[name], segments, nxt, root, out)
    elif kind in ("index", "slice"):
        if isinstance(node, list):
            indexes = argument if kind == "index" else _slice(argument, len(node))
            for index in indexes:
                if -len(node) <= index < len(node):
                    _run(node[index], segments, nxt, root, out)
    elif kind == "all":
        if isinstance(node, (dict, list)):
            for child in node.values() if isinstance(node, dict) else node:
                _run(child, segments, nxt, root, out)
    elif kind == "filter":
        if isinstance(node, dict):
            if argument.test(node, root):
                _run(node, segments, nxt, root, out)
        elif isinstance(node, list):
            for child in node:
                if argument.test(child, root):
                    _run(child, segments, nxt, root, out)
    else:  # scan: every container, parents first, that the next segment can apply to
        _scan(node, segments, nxt, root, out)


def _scan(node: Any, segments: tuple[Segment, ...], at: int, root: Any, out: list[Any]) -> None:
    if not isinstance(node, (dict, list)):
        return
    kind, argument = segments[at]
    if kind == "name":
        applies = isinstance(node, dict) and all(name in node for name in argument)
    elif kind in ("index", "slice"):
        applies = isinstance(node, list)
    else:
        applies = kind == "all" or argument.test(node, root)
    if applies:
        _run(node, segments, at, root, out)
    for child in node.values() if isinstance(node, dict) else node:
        _scan(child, segments, at, root, out)


def _slice(bounds: tuple[int | None, int | None], length: int) -> range:
    start, stop = bounds
    if start is None:  # [:b]; [:] all
        stop = length if stop is None else stop
        return range(min(length, length + stop if stop < 0 else stop))
    if stop is None:  # [a:]
        return range(max(0, length + start if start < 0 else start), length)
    return range(start, min(length, stop))  # [a:b]: a negative a counts from the end


# --- parsing --------------------------------------------------------------------------------


class _Parser(filters.Cursor):
    """The segments after a path's root (its syntax already checked by ``paths``)."""

    def segments(self) -> list[Segment]:
        text, found = self.text, list[Segment]()
        while self.at < len(text):
            if text.startswith("..", self.at):
                found.append(("scan", None))
                self.at += 2
            elif text[self.at] == ".":
                self.at += 1
            else:
                self.at += 1  # "["
                found.append(self.bracket())
                continue
            if text.startswith("*", self.at):
                self.at += 1
                found.append(("all", None))
            elif match := _NAME.match(text, self.at):
                self.at = match.end()
                found.append(("name", (match.group(),)))
            else:
                raise self.fail("expected a field name")
        return found

    def bracket(self) -> Segment:
        text, end = self.text, self.text.find("]", self.at)
        if text.startswith("?(", self.at):
            expression, self.at = filters.parse(text, self.at + 2, _filter_path)
            self.expect("]")
            return ("filter", expression)
        if end >= 0 and text[self.at : end].strip() == "*":
            self.at = end + 1
            return ("all", None)
        if end >= 0 and (sliced := _SLICE.fullmatch(text, self.at, end)) is not None:
            self.at = end + 1
            start, stop = (int(bound) if bound else None for bound in sliced.groups())
            return ("slice", (start, stop))
        names, indexes = [], []
        while True:
            self.skip()
            if text.startswith(("'", '"'), self.at):
                names.append(self.quoted())
            elif match := _INDEX.match(text, self.at):
                indexes.append(int(match.group()))
                self.at = match.end()
            else:
                raise self.fail("expected an index, a slice, * or a quoted name")
            self.skip()
            if not text.startswith(",", self.at):
                break
            self.at += 1
        self.expect("]")
        if names and indexes:
            raise self.fail("names and indexes in one bracket")
        return ("name", tuple(names)) if names else ("index", tuple(indexes))


def _filter_path(text: str) -> tuple[Callable[[Any], Any], bool]:
    """A path inside a filter, for ``filters``: its getter (MISSING when it selects
    nothing) and whether it is definite."""
    path = _compile(text)

    def get(data: Any) -> Any:
        try:
            return path.select(data)
        except PathNotFound:
            return filters.MISSING

    return get, path.definite
