"""Workflows defined at runtime: stored in the database by name, run by an interpreter.

A workflow registered in code (``@app.workflow``) runs where that code is loaded. A
workflow *defined* at runtime is a row of the namespace's definitions: a kind and a
definition (JSON), such as ``("python", "billing.flows:invoice")`` or, later, a state
machine. Any process defines one; every worker that has an interpreter for its kind
picks it up within about a second, without a restart, and runs it like a registered
workflow (the same journal, replay, leases and outcomes). Redefining a workflow raises
its revision: a run started or resumed afterwards uses the new one (a run reads the
definition each time it starts or resumes; replaying a journal recorded under an
older revision that the new one contradicts fails with NonDeterminismError, as
changed code does).

Built in: kind ``python``, whose definition is an import path ``module:function`` of
an ``async def fn(ctx, input)``, imported on the worker when a run needs it. Definitions
are trusted configuration: they are written through the Python API and the CLI, which
need the database itself.

Workers also announce the workflows of their code (kind ``code``), so any process can
start those by name without loading the code.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statekeeper.errors import ConfigurationError, StatekeeperError, ValidationError
from statekeeper.identifiers import check_workflow_name
from statekeeper.storage.rows import DefinitionRow

if TYPE_CHECKING:
    from statekeeper.storage.contracts import Storage
    from statekeeper.workflows.context import WorkflowContext

log = logging.getLogger("statekeeper.workflows")

WorkflowFn = Callable[["WorkflowContext", Any], Coroutine[Any, Any, Any]]
CODE = "code"  # the kind of a workflow registered in a worker's code
REFRESH = 1.0  # seconds between two reads of the definitions by a runner
MAX_DEFINITION_BYTES = 1 << 20
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")


@dataclass(frozen=True, slots=True)
class Interpreter:
    """Runs the workflows of one kind: ``check`` raises ValidationError naming what is
    wrong with a definition; ``build`` turns a (checked) definition into the workflow
    function, ``async def fn(ctx, input)``."""

    check: Callable[[Any], None]
    build: Callable[[str, Any], WorkflowFn]


def _check_import_path(definition: Any) -> None:
    if not isinstance(definition, str) or not _IMPORT_PATH.match(definition):
        raise ValidationError(
            "a python workflow's definition is an import path 'module:function', "
            f"got {definition!r}"[:300]
        )


def _import_workflow(name: str, definition: Any) -> WorkflowFn:
    module_name, _, attribute = str(definition).partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as error:  # an import error, or the module failing as it loads
        raise ConfigurationError(
            f"workflow {name!r}: cannot import {definition!r} here: {type(error).__name__}: {error}"
        ) from None
    if not inspect.iscoroutinefunction(target):
        raise ConfigurationError(f"workflow {name!r}: {definition!r} is not an async function")
    fn: WorkflowFn = target
    return fn


PYTHON = Interpreter(check=_check_import_path, build=_import_workflow)


class Definitions:
    """The namespace's defined workflows as this process knows them, and the
    interpreters it has."""

    def __init__(
        self, backend: Callable[[], Storage], namespace: str, clock: Callable[[], float]
    ) -> None:
        self._backend_of = backend
        self.namespace = namespace
        self._clock = clock
        self.interpreters: dict[str, Interpreter] = {"python": PYTHON}
        self._rows: dict[str, DefinitionRow] = {}
        self._built: dict[str, tuple[tuple[int, str, str | None], WorkflowFn]] = {}
        self._read_at = float("-inf")
        self._announced: set[str] = set()

    def interpreter(self, kind: str, interpreter: Interpreter) -> None:
        """Run workflows of ``kind`` with ``interpreter`` in this process."""
        if kind == CODE or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", kind):
            raise ConfigurationError(f"invalid interpreter kind {kind!r}")
        self.interpreters[kind] = interpreter

    async def define(self, name: str, kind: str, definition: Any) -> int:
        """Store ``definition`` of ``kind`` as workflow ``name``; its revision."""
        check_workflow_name(name)
        interpreter = self.interpreters.get(kind)
        if interpreter is None:
            raise ValidationError(
                f"unknown workflow kind {kind!r}: this process knows "
                + ", ".join(sorted(self.interpreters))
            )
        interpreter.check(definition)
        try:
            text = json.dumps(definition, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise ValidationError(f"a workflow definition must be JSON: {error}") from None
        if len(text.encode()) > MAX_DEFINITION_BYTES:
            raise ValidationError(f"a workflow definition is at most {MAX_DEFINITION_BYTES} bytes")
        revision = await self._backend_of().definitions.define(
            self.namespace, name, kind, text, self._clock()
        )
        self._read_at = float("-inf")  # read again before the next lease
        return revision

    async def known(self, name: str) -> bool:
        """Whether ``name`` is defined or announced in the database."""
        return await self._backend_of().definitions.get(self.namespace, name) is not None

    async def announce(self, names: list[str]) -> None:
        """Make the workflows registered in this process's code known by name (once per
        name and process: the CLI announces before its banner, the runner as it starts)."""
        new = [name for name in names if name not in self._announced]
        if new:
            await self._backend_of().definitions.announce_code(self.namespace, new, self._clock())
            self._announced.update(new)

    async def refresh(self) -> None:
        """Read the definitions again if REFRESH seconds have passed since the last time
        (a failure is logged; the last known ones stay)."""
        if time.monotonic() - self._read_at < REFRESH:
            return
        self._read_at = time.monotonic()
        try:
            rows = await self._backend_of().definitions.list(self.namespace)
        except StatekeeperError as error:
            log.warning(
                "reading workflow definitions failed", exc_info=error,
                extra={"error": error.message},
            )  # fmt: skip
            return
        self._rows = {row.name: row for row in rows if row.kind != CODE}

    async def read(self, name: str) -> None:
        """Read the definition of ``name`` now (a run about to start or resume uses the
        latest revision, even one made within the last REFRESH seconds)."""
        row = await self._backend_of().definitions.get(self.namespace, name)
        if row is None or row.kind == CODE:
            self._rows.pop(name, None)
        else:
            self._rows[name] = row

    def runnable(self) -> list[str]:
        """The defined workflows this process has an interpreter for."""
        return [name for name, row in self._rows.items() if row.kind in self.interpreters]

    def function(self, name: str) -> WorkflowFn | None:
        """The function that runs defined workflow ``name`` (built once per revision);
        None if it is not defined here. ConfigurationError if it cannot be built."""
        row = self._rows.get(name)
        if row is None or row.kind not in self.interpreters:
            return None
        built = self._built.get(name)
        if built is not None and built[0] == (row.revision, row.kind, row.definition):
            return built[1]
        definition = json.loads(row.definition) if row.definition is not None else None
        fn = self.interpreters[row.kind].build(name, definition)
        self._built[name] = ((row.revision, row.kind, row.definition), fn)
        return fn
