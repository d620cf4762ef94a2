"""JSONPath filter expressions (``[?( ... )]``) as AWS Step Functions reads and tests them
(the grammar and comparisons of the Jayway library):

    expression := conjunction { "||" conjunction }
    conjunction:= operand { "&&" operand }
    operand    := "!" operand | "(" expression ")" | value [ operator value ]
    value      := @path | $path | 'text' | "text" | number | true | false | null
                | a JSON array or object | /regular expression/flags

A path alone tests that it exists (``!@.x``: that it does not); ``@`` is the item tested,
``$`` the whole document. Operators: ``== != < <= > >= === !== =~ in nin contains size
empty subsetof anyof noneof`` (a word operator is followed by a space). Comparisons as
Jayway makes them: numbers by value, strings by text; a number equals a string holding
that number, a string equals a number written as that string, and a string orders against
a number's text; ``=~`` matches the whole text; a missing value equals nothing (so ``!=``
holds) and orders against nothing. ``jsonpath`` calls ``parse`` with a way to compile the
paths inside.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import regex

MISSING: Any = object()  # no value (Jayway's "undefined")
# Compiles a path ("$..." for @ and $ alike) into (get, definite); get gives MISSING when
# the path selects nothing.
PathCompiler = Callable[[str], tuple[Callable[[Any], Any], bool]]


class Cursor:
    """Reading ``text`` from ``at``; errors say what and at which character."""

    def __init__(self, text: str, at: int) -> None:
        self.text, self.at = text, at

    def fail(self, message: str) -> ValueError:
        return ValueError(f"invalid path {self.text!r}: {message} (at character {self.at + 1})")

    def skip(self) -> bool:
        """Past the spaces; True, so that it can stand in a condition."""
        while self.text.startswith(" ", self.at):
            self.at += 1
        return True

    def expect(self, token: str) -> None:
        self.skip()
        if not self.text.startswith(token, self.at):
            raise self.fail(f"expected {token!r}")
        self.at += len(token)

    def quoted(self) -> str:
        """The text between quotes as written: a backslash only keeps a quote in."""
        quote, start = self.text[self.at], self.at + 1
        self.at = start
        while self.at < len(self.text) and self.text[self.at] != quote:
            self.at += 2 if self.text[self.at] == "\\" else 1
        if self.at >= len(self.text):
            raise self.fail("unterminated string")
        self.at += 1
        return self.text[start : self.at - 1]


def parse(text: str, at: int, paths: PathCompiler) -> tuple[Expression, int]:
    """The expression starting at ``text[at]`` (just after ``[?(``), and where it ends
    (just after its ``)``); ValueError saying what is wrong."""
    reader = _Reader(text, at, paths)
    expression = reader.disjunction()
    reader.expect(")")
    return expression, reader.at


class _Reader(Cursor):
    def __init__(self, text: str, at: int, paths: PathCompiler) -> None:
        super().__init__(text, at)
        self.paths = paths

    def disjunction(self) -> Expression:
        terms = [self.conjunction()]
        while self.skip() and self.text.startswith("||", self.at):
            self.at += 2
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else Expression("||", tuple(terms))

    def conjunction(self) -> Expression:
        terms = [self.operand()]
        while self.skip() and self.text.startswith("&&", self.at):
            self.at += 2
            terms.append(self.operand())
        return terms[0] if len(terms) == 1 else Expression("&&", tuple(terms))

    def operand(self) -> Expression:
        self.skip()
        text = self.text
        negated = text.startswith("!", self.at)
        if negated:
            self.at += 1
            self.skip()
            if not text.startswith(("@", "$"), self.at):
                return Expression("!", (self.operand(),))
        elif text.startswith("(", self.at):
            self.at += 1
            inner = self.disjunction()
            self.expect(")")
            return inner
        left = self.value()
        self.skip()
        operator = _OPERATOR.match(text, self.at)
        if operator is None:  # a path alone: it exists (with "!": it does not)
            if not isinstance(left, _Path):
                raise self.fail("expected a comparison")
            return Expression("!exists" if negated else "exists", (left,))
        if operator.group() not in _OPERATORS:
            raise self.fail(f"unknown operator {operator.group()!r}")
        self.at = operator.end()  # "!" before a compared path is ignored, as Jayway does
        return Expression(operator.group(), (left, self.value()))

    def value(self) -> Any:
        self.skip()
        text, start = self.text, self.at
        char = text[start : start + 1]
        if char in ("@", "$"):
            self.at = self.path_end()
            get, definite = self.paths("$" + text[start + 1 : self.at])
            return _Path(get, definite, char == "@")
        if char in ("'", '"'):
            return _unescape(self.quoted())
        if char == "/":
            if (pattern := _PATTERN.match(text, start)) is None:
                raise self.fail("unterminated regular expression")
            self.at = pattern.end()
            try:
                flags = sum(_FLAGS.get(flag, 0) for flag in pattern.group(2))
                return regex.compile(pattern.group(1), flags)
            except regex.error as error:
                raise self.fail(f"bad regular expression: {error}") from None
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, start):
                self.at += len(word)
                return literal
        if char in ("[", "{"):
            for source in (text[start:], text[start:].replace("'", '"')):
                try:
                    parsed, used = json.JSONDecoder().raw_decode(source)
                except ValueError:
                    continue
                self.at += used
                return parsed
            raise self.fail("expected a JSON array or object")
        if (number := _NUMBER.match(text, start)) is not None:
            self.at = number.end()
            whole = number.group(1) is None and number.group(2) is None
            return int(number.group()) if whole else float(number.group())
        raise self.fail("expected a value")

    def path_end(self) -> int:
        """Where the path starting here ends: at a space, an operator or a ``)`` outside
        its brackets (which may hold quotes and filters of their own)."""
        text, at, depth, quote = self.text, self.at + 1, 0, ""
        while at < len(text):
            char = text[at]
            if quote:
                at += char == "\\"
                quote = "" if char == quote else quote
            elif depth and char in ("'", '"'):
                quote = char
            elif char in "[]":
                depth += 1 if char == "[" else -1
            elif not depth and char in " <>=~!)&|":
                break
            at += 1
        return at


_OPERATOR = re.compile(r"[<>=~!]+|[a-z]+(?= )")
_PATTERN = re.compile(r"/((?:\\.|[^/\\])*)/([a-zA-Z]*)")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}
# Seconds a =~ match may take: a pattern that backtracks without end fails instead.
REGEX_TIME_LIMIT = 0.5


class RegexTimeout(Exception):
    """A =~ filter's regular expression took longer than REGEX_TIME_LIMIT."""


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(text: str) -> str:
    """A string literal's escapes read as Java reads them."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 5 else _ESCAPED.get(code, code)

    return _ESCAPE.sub(one, text)


# --- testing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Path:
    get: Callable[[Any], Any]
    definite: bool
    on_item: bool  # @ (else $, the document)


@dataclass(frozen=True)
class Expression:
    operator: str
    operands: tuple[Any, ...]  # expressions; or values: _Path, literals, patterns

    def test(self, item: Any, root: Any) -> bool:
        """Whether ``item`` passes, ``root`` being the document (``$``)."""
        operator, operands = self.operator, self.operands
        if operator == "&&":
            return all(operand.test(item, root) for operand in operands)
        if operator == "||":
            return any(operand.test(item, root) for operand in operands)
        if operator == "!":
            return not operands[0].test(item, root)
        values = [
            (operand.get(item if operand.on_item else root) if isinstance(operand, _Path)
             else operand)
            for operand in operands
        ]  # fmt: skip
        if operator in ("exists", "!exists"):
            found = values[0] is not MISSING and (operands[0].definite or values[0] != [])
            return found == (operator == "exists")
        return _OPERATORS[operator](values[0], values[1])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal | None:
    """A number, or a string holding one, as an exact decimal (as Java's BigDecimal)."""
    if _number(value):
        return Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


def _text(value: Any) -> str:
    """A number as text (Java's way for the common ones: 3, 2.5, 2.0)."""
    return str(value) if isinstance(value, int) else repr(value)


def _equal(left: Any, right: Any) -> bool:
    if left is MISSING or right is MISSING:
        return False
    if _number(left) and (_number(right) or isinstance(right, str)):
        return _decimal(right) == _decimal(left)
    if isinstance(left, str) and _number(right):
        return left == _text(right)
    if type(left) is not type(right):
        return False
    if isinstance(left, (list, dict)):
        return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)
    return bool(left == right)


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 as ``left`` sorts before, with or after ``right``; None: no order."""
    a: Any
    b: Any
    if _number(left) and _number(right):
        a, b = _decimal(left), _decimal(right)
    elif isinstance(left, str) and (isinstance(right, str) or _number(right)):
        a, b = left, right if isinstance(right, str) else _text(right)
    elif _number(left) and isinstance(right, str):
        a, b = _text(left), right
    else:
        return None
    return int(a > b) - int(a < b)


def _compare(test: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        order = _order(left, right)
        return order is not None and test(order)

    return compare


def _member(left: Any, right: Any) -> bool | None:
    """Whether ``left`` is in the array ``right``; None when ``right`` is no array."""
    return any(_equal(left, one) for one in right) if isinstance(right, list) else None


def _matches(left: Any, right: Any) -> bool:
    if isinstance(left, regex.Pattern) == isinstance(right, regex.Pattern):
        return False
    pattern, subject = (left, right) if isinstance(left, regex.Pattern) else (right, left)
    try:
        return any(
            pattern.fullmatch(
                ("true" if one else "false") if isinstance(one, bool)
                else one if isinstance(one, str) else _text(one) if _number(one) else "",
                timeout=REGEX_TIME_LIMIT,
            )
            for one in (subject if isinstance(subject, list) else [subject])
        )  # fmt: skip
    except TimeoutError:
        raise RegexTimeout(
            f"the regular expression /{pattern.pattern}/ took more than {REGEX_TIME_LIMIT:g} s "
            "to match (it backtracks too much)"
        ) from None


def _some(left: Any, right: Any) -> list[bool] | None:
    """For two arrays: whether each item of ``left`` is in ``right``."""
    if not (isinstance(left, list) and isinstance(right, list)):
        return None
    return [bool(_member(one, right)) for one in left]


def _same(left: Any, right: Any) -> bool:
    kinds = (_number(left) and _number(right)) or type(left) is type(right)
    return kinds and _equal(left, right)


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, str):
        return isinstance(right, str) and right in left
    return isinstance(left, list) and _member(right, left) is True


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda left, right: not _equal(left, right),
    "===": _same,
    "!==": lambda left, right: not _same(left, right),
    "<": _compare(lambda order: order < 0),
    "<=": _compare(lambda order: order <= 0),
    ">": _compare(lambda order: order > 0),
    ">=": _compare(lambda order: order >= 0),
    "=~": _matches,
    "in": lambda left, right: _member(left, right) is True,
    "nin": lambda left, right: _member(left, right) is False,
    "contains": _contains,
    "size": lambda left, right: (
        isinstance(left, (str, list)) and _number(right) and len(left) == right
    ),
    "empty": lambda left, right: (
        isinstance(left, (str, list, dict)) and isinstance(right, bool) and (not left) == right
    ),
    "subsetof": lambda left, right: (found := _some(left, right)) is not None and all(found),
    "anyof": lambda left, right: (found := _some(left, right)) is not None and any(found),
    "noneof": lambda left, right: (found := _some(left, right)) is not None and not any(found),
}
