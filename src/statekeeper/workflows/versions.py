"""Application versions: which code a workflow run was started on, and which workers run it.

Every run is stamped with the version of the code that runs it: ``App(version="...")``
(or ``STATEKEEPER_APP_VERSION``) for every workflow of the app, stamped as the run starts;
else a hash of the workflow's own function (``code-`` and 12 hex digits, of its syntax
tree without decorators, docstring, comments or layout), stamped by the
worker that first leases the run (the code that records its journal), so that a process
that starts runs without their code, or with a stand-in, pins nothing, and two processes
that register different sets of workflows agree on the version of the ones they share.
A workflow defined at runtime (``app.workflows.define``) has no code in
the process: its runs carry the explicit version, or none.

The version policy says which runs a worker leases: ``pinned`` (the default) only runs
of its own versions, and runs with none (started before versions existed, or by a
process that does not have the workflow's code); ``any`` every run. Runs move to
another version with ``app.workflows.move_version`` (docs/workflow-code-changes.md).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import marshal
import os
import re
import textwrap
from collections.abc import Callable
from typing import Any

from statekeeper.constants import ENV_APP_VERSION, ENV_VERSION_POLICY
from statekeeper.errors import ConfigurationError, ValidationError
from statekeeper.identifiers import shown

POLICIES = ("pinned", "any")
VERSION_RULE = "1 to 100 letters, digits and . _ : + - (starting with a letter or digit)"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,99}")


def check_version(version: object, subject: str = "version") -> str:
    """A version as given (ValidationError naming what is wrong otherwise)."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValidationError(f"invalid {subject} {shown(version)}: a version is {VERSION_RULE}")
    return version


def code_version(name: str, fn: Callable[..., Any]) -> str:
    """The default version of workflow ``name`` run by ``fn``: a hash of its name and its
    source (of its compiled code when the source cannot be read)."""
    target = inspect.unwrap(fn)
    digest = hashlib.sha256(name.encode())
    try:
        digest.update(_code_shape(inspect.getsource(target)).encode())
    except (OSError, TypeError, SyntaxError):
        code = getattr(target, "__code__", None)
        digest.update(marshal.dumps(code) if code is not None else repr(target).encode())
    return "code-" + digest.hexdigest()[:12]


def _code_shape(source: str) -> str:
    """What of a function's source decides what its runs do: its syntax tree without
    its decorators (``@app.workflow(retention=...)``, ``@app.schedule(...)``), its
    docstring, comments, layout and line numbers, so that none of those moves its runs to
    another version."""
    tree = ast.parse(textwrap.dedent(source))
    node = tree.body[0] if tree.body else tree
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        node.decorator_list = []
        first = node.body[0] if node.body else None
        docstring = (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        )
        if docstring and len(node.body) > 1:
            node.body = node.body[1:]
    return ast.dump(node, include_attributes=False)


class Versions:
    """A namespace's versions: the one stamped on a run of each workflow, and the ones
    its runners lease."""

    def __init__(self, registry: dict[str, Any]) -> None:
        self._registry = registry
        self.explicit: str | None = None
        self.policy = "pinned"
        self._hashes: dict[str, tuple[Any, str]] = {}

    def configure(self, version: str | None, policy: str | None) -> None:
        """Set the explicit version and the policy (None: from the environment, else a
        hash of each workflow's code, and ``pinned``)."""
        chosen = version if version is not None else os.environ.get(ENV_APP_VERSION) or None
        if chosen is not None:
            try:
                check_version(chosen)
            except ValidationError as error:
                raise ConfigurationError(error.message) from None
        picked = policy if policy is not None else os.environ.get(ENV_VERSION_POLICY) or "pinned"
        if picked not in POLICIES:
            raise ConfigurationError(
                f"version_policy must be one of {', '.join(POLICIES)}, got {picked!r}"
            )
        self.explicit = chosen
        self.policy = picked

    def of(self, name: str) -> str | None:
        """The version a new run of workflow ``name`` is stamped with: the explicit one,
        else the hash of its registered function; None when neither is known here."""
        if self.explicit is not None:
            return self.explicit
        fn = self._registry.get(name)
        if fn is None:
            return None
        known = self._hashes.get(name)
        if known is None or known[0] is not fn:  # hashed once per registration
            known = (fn, code_version(name, fn))
            self._hashes[name] = known
        return known[1]

    def at_start(self, name: str) -> str | None:
        """The version a run started here carries from its start: the explicit one only.
        Without one, a run is stamped by the worker that first leases it (``stamps``): the
        process that starts a run need not have its code, or may hold a stand-in."""
        return self.explicit

    def stamps(self, names: list[str]) -> dict[str, str]:
        """The version a runner here gives the runs of ``names`` that have none yet,
        as it first leases them: the code that records their journal."""
        found = {name: self.of(name) for name in names}
        return {name: version for name, version in found.items() if version is not None}

    def leased(self) -> list[str] | None:
        """The versions a runner here leases (and runs of none); None: any version. A
        workflow registered after the first lease is leased from the next one on."""
        if self.policy == "any":
            return None
        if self.explicit is not None:
            return [self.explicit]
        return sorted({v for v in map(self.of, list(self._registry)) if v is not None})

    @property
    def app_version(self) -> str:
        """The application's version: the explicit one, else a hash of every registered
        workflow's version (sorted by name)."""
        if self.explicit is not None:
            return self.explicit
        digest = hashlib.sha256()
        for name in sorted(self._registry):
            digest.update(f"{name}={self.of(name)}\n".encode())
        return "code-" + digest.hexdigest()[:12]
