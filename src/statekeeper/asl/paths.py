"""JSONPath syntax as the States Language uses it, checked before anything runs.

A *path* starts at ``$`` (the state's input), ``$$`` (the context object) or ``$name``
(a variable) and goes on with segments: ``.name``, ``.*``, ``..name``, ``['name']``,
``[3]``, ``[-1]``, ``[*]``, ``[1:5]``, ``[0,2]``, ``['a','b']`` and filters
``[?(@.price < 10)]``. A *reference path* (ResultPath) names one place to write:
``$`` followed by ``.name``, ``['name']`` and ``[3]`` only. ``problem(text)`` says what
is wrong with a path, or None.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_VARIABLE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"-?[0-9]+")
_SLICE = re.compile(r"-?[0-9]*:-?[0-9]*(?::-?[0-9]+)?")


def problem(text: str, *, reference: bool = False) -> str | None:
    """What is wrong with path ``text`` (a reference path: one place), or None."""
    try:
        _Path(text, reference).read()
    except _Bad as bad:
        kind = "reference path" if reference else "path"
        return f"invalid {kind} {text!r}: {bad} (at character {bad.position + 1})"
    return None


class _Bad(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class _Path:
    def __init__(self, text: str, reference: bool) -> None:
        self.text = text
        self.reference = reference
        self.at = 0

    def fail(self, message: str) -> None:
        raise _Bad(message, self.at)

    def read(self) -> None:
        text = self.text
        if text.startswith("$$"):
            if self.reference:
                self.fail("a reference path cannot write to the context object ($$)")
            self.at = 2
        elif (variable := _VARIABLE.match(text)) is not None:
            if self.reference:
                self.fail("a reference path starts at $")
            self.at = variable.end()
        elif text.startswith("$"):
            self.at = 1
        else:
            self.fail("a path starts with $")
        while self.at < len(text):
            if text.startswith("..", self.at):
                self.refuse_in_reference("..")
                self.at += 2
                self.name(allow_star=True)
            elif text[self.at] == ".":
                self.at += 1
                self.name(allow_star=not self.reference)
            elif text[self.at] == "[":
                self.bracket()
            else:
                self.fail("expected '.' or '['")

    def refuse_in_reference(self, what: str) -> None:
        if self.reference:
            self.fail(f"a reference path names one place: no {what}")

    def name(self, *, allow_star: bool) -> None:
        if self.text.startswith("*", self.at):
            if not allow_star:
                self.fail("a reference path names one place: no wildcard")
            self.at += 1
            return
        match = _NAME.match(self.text, self.at)
        if match is None:
            self.fail("expected a field name")
        assert match is not None
        self.at = match.end()

    def bracket(self) -> None:
        self.at += 1  # "["
        text = self.text
        if text.startswith("?(", self.at):
            self.refuse_in_reference("filter")
            self.filter()
        elif text.startswith("*", self.at):
            self.refuse_in_reference("wildcard")
            self.at += 1
        else:
            while True:
                self.member()
                if text.startswith(",", self.at):
                    self.refuse_in_reference("union")
                    self.at += 1
                    continue
                break
        if not text.startswith("]", self.at):
            self.fail("expected ']'")
        self.at += 1

    def member(self) -> None:
        text = self.text
        if self.at < len(text) and text[self.at] in ("'", '"'):
            self.quoted(text[self.at])
            return
        sliced = _SLICE.fullmatch(text, self.at, self.closing())
        if sliced is not None and ":" in sliced.group():
            self.refuse_in_reference("slice")
            self.at = sliced.end()
            return
        index = _INDEX.match(text, self.at)
        if index is None:
            self.fail("expected an index, a slice, * or a quoted name")
        assert index is not None
        self.at = index.end()

    def closing(self) -> int:
        """Where the current member ends (the next ',' or ']')."""
        ends = [i for i in (self.text.find(",", self.at), self.text.find("]", self.at)) if i >= 0]
        return min(ends) if ends else len(self.text)

    def quoted(self, quote: str) -> None:
        self.at += 1
        while self.at < len(self.text):
            char = self.text[self.at]
            if char == "\\":
                self.at += 2
                continue
            self.at += 1
            if char == quote:
                return
        self.fail("unterminated quoted name")

    def filter(self) -> None:
        self.at += 2  # "?("
        depth, quote = 1, ""
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if quote:
                if char == "\\":
                    self.at += 1
                elif char == quote:
                    quote = ""
            elif char in ("'", '"'):
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
        self.fail("unterminated filter")
