"""Intrinsic functions of the Amazon States Language: the parser.

In a JSONPath state, a payload template field whose name ends in ``.$`` may hold a
call such as ``States.Format('Hello {}', $.name)``. Its grammar:

    call     := NAME "(" [ argument { "," argument } ] ")"
    argument := call | string | number | "true" | "false" | "null" | path
    string   := "'" { any character, with \\' \\{ \\} \\\\ escaped } "'"
    path     := "$" ... up to the "," or ")" that ends the argument (brackets and
                quotes inside it kept), e.g. $.a.b, $$.Execution.Id, $var.x, $.a[0]

``parse(text)`` returns the call as a tree; an ``IntrinsicSyntaxError`` says what is
wrong and at which character. What the functions do is the interpreter's business;
``FUNCTIONS`` gives each one's number of arguments, checked here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

# Each function's arguments: (fewest, most); None: any number.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "States.Format": (1, None),
    "States.StringToJson": (1, 1),
    "States.JsonToString": (1, 1),
    "States.Array": (0, None),
    "States.ArrayPartition": (2, 2),
    "States.ArrayContains": (2, 2),
    "States.ArrayRange": (3, 3),
    "States.ArrayGetItem": (2, 2),
    "States.ArrayLength": (1, 1),
    "States.ArrayUnique": (1, 1),
    "States.Base64Encode": (1, 1),
    "States.Base64Decode": (1, 1),
    "States.Hash": (2, 2),
    "States.JsonMerge": (3, 3),
    "States.MathRandom": (2, 3),
    "States.MathAdd": (2, 2),
    "States.StringSplit": (2, 2),
    "States.UUID": (0, 0),
}
MAX_NESTING = 10  # calls within calls, as Step Functions allows
_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPABLE = "'{}\\"


class IntrinsicSyntaxError(ValueError):
    """``message``, about the character at ``position`` (0-based) of the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: tuple[Argument, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # a string, a number, a boolean or None


@dataclass(frozen=True, slots=True)
class Path:
    text: str  # as written: $.a.b, $$.Execution.Id, $var


Argument = Call | Literal | Path


def is_call(text: str) -> bool:
    """Whether a ``.$`` field's value is an intrinsic call (else it is a path)."""
    return text.lstrip().startswith("States.")


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Call:
    """The call ``text`` writes; IntrinsicSyntaxError if it is not one. Parsed once per
    text (the tree is immutable)."""
    parser = _Parser(text)
    parser.space()
    call = parser.call()
    parser.space()
    if parser.at < len(text):
        parser.fail("unexpected text after the call")
    return call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.depth = 0  # calls open around the current position

    def fail(self, message: str) -> None:
        raise IntrinsicSyntaxError(message, self.at)

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def space(self) -> None:
        while self.peek() in (" ", "\t", "\n", "\r") and self.peek():
            self.at += 1

    def call(self) -> Call:
        start = self.at
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"intrinsic calls are nested at most {MAX_NESTING} deep")
        name = _NAME.match(self.text, self.at)
        if name is None:
            self.fail("expected an intrinsic function such as States.Format")
        assert name is not None
        self.at = name.end()
        if name.group() not in FUNCTIONS:
            self.at = start
            self.fail(f"unknown intrinsic function {name.group()!r}")
        self.space()
        if self.peek() != "(":
            self.fail(f"expected '(' after {name.group()}")
        self.at += 1
        arguments: list[Argument] = []
        self.space()
        if self.peek() == ")":
            self.at += 1
        else:
            while True:
                self.space()
                arguments.append(self.argument())
                self.space()
                if self.peek() == ",":
                    self.at += 1
                elif self.peek() == ")":
                    self.at += 1
                    break
                else:
                    self.fail("expected ',' or ')'")
        fewest, most = FUNCTIONS[name.group()]
        if len(arguments) < fewest or (most is not None and len(arguments) > most):
            wanted = str(fewest) if fewest == most else f"{fewest} or more" if most is None \
                else f"{fewest} to {most}"  # fmt: skip
            self.at = start
            self.fail(f"{name.group()} takes {wanted} arguments, not {len(arguments)}")
        self.depth -= 1
        return Call(name.group(), tuple(arguments))

    def argument(self) -> Argument:
        char = self.peek()
        if char == "'":
            return Literal(self.string())
        if char == "$":
            return Path(self.path())
        if self.text.startswith("States.", self.at):
            return self.call()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.at):
                self.at += len(word)
                return Literal(value)
        number = _NUMBER.match(self.text, self.at)
        if number is not None:
            self.at = number.end()
            text = number.group()
            return Literal(float(text) if any(c in text for c in ".eE") else int(text))
        self.fail("expected an argument: a string, number, true, false, null, path or call")
        raise AssertionError  # fail raised

    def string(self) -> str:
        self.at += 1  # the opening quote
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                self.fail("unterminated string")
            if char == "\\":
                following = self.text[self.at + 1 : self.at + 2]
                if following in _ESCAPABLE and following:
                    out.append(
                        following if following != "{" and following != "}" else char + following
                    )
                    self.at += 2
                    continue
                out.append(char)  # a backslash that escapes nothing stands for itself
                self.at += 1
                continue
            self.at += 1
            if char == "'":
                return "".join(out)
            out.append(char)

    def path(self) -> str:
        start, depth, quote = self.at, 0, ""
        while self.at < len(self.text):
            char = self.peek()
            if quote:
                if char == quote:
                    quote = ""
            elif char in ("'", '"'):
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif char in (",", ")") and depth == 0:
                break
            self.at += 1
        text = self.text[start : self.at].rstrip()
        if quote or depth != 0:
            self.fail("unbalanced brackets or quotes in a path")
        return text
