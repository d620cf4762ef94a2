"""What every verb shares: the root options' settings, the one place where errors
become one line and an exit code, opening the app, loading a user's app, reading JSON.

Every error is one line on stderr, ``error: <code>: <message>``, and exits with the
code of its kind (``StatekeeperError.exit_code``, see ``errors.py``); a usage error
(an unknown option, a missing argument) is ``error: usage: ...``, exit 2; an
interrupted command (Ctrl-C) exits 130.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from statekeeper.app import App
from statekeeper.codec import decode_json
from statekeeper.constants import ENV_APP, ENV_DATABASE_URL, ENV_NAMESPACE
from statekeeper.errors import ConfigurationError, StatekeeperError
from statekeeper.storage import parse, resolve

T = TypeVar("T")
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class Settings:
    """The root options: where the database is, which namespace; and which of them
    were given on the command line (rather than by the environment or the default)."""

    database: str | None = None
    namespace: str | None = None
    given: frozenset[str] = frozenset()

    def app(self) -> App:
        """An App on these settings, running no background purge (a command is short)."""
        return App(self.database, namespace=self.namespace, purge_interval=None)


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def fail(error: StatekeeperError) -> NoReturn:
    """Print ``error`` as one line on stderr and exit with the code of its kind."""
    click.echo(f"error: {error.code}: {one_line(error.message)}", err=True)
    sys.exit(error.exit_code)


class CommandGroup(click.Group):
    """The ``statekeeper`` group: turns every error of every verb into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StatekeeperError as error:
            fail(error)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as error:
            said = one_line(error.format_message()).rstrip(".")
            where = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            click.echo(f"error: usage: {said}{where}", err=True)
            sys.exit(USAGE_EXIT)
        except click.ClickException as error:
            click.echo(f"error: usage: {one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort as error:
            if isinstance(error.__cause__, KeyboardInterrupt):
                click.echo("error: interrupted: stopped by Ctrl-C", err=True)
                sys.exit(INTERRUPTED_EXIT)
            click.echo("error: aborted: nothing was changed", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a verb's coroutine (its errors reach CommandGroup.invoke), on uvloop where
    it is installed (servers answer about twice the requests per second with it)."""
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def on_app(settings: Settings, work: Callable[[App], Awaitable[T]]) -> T:
    """Open the configured app, await ``work(app)``, close the app."""

    async def go() -> T:
        async with settings.app() as app:
            return await work(app)

    return run(go())


def read_json(text: str, subject: str) -> Any:
    """A JSON argument (``-``: standard input), decoded as strictly as an HTTP body."""
    # Arguments the locale could not decode keep their bytes (surrogateescape).
    data = sys.stdin.buffer.read() if text == "-" else text.encode("utf-8", "surrogateescape")
    return decode_json(data, subject)


def load_app(target: str | None, settings: Settings) -> App:
    """The App at ``module:attribute`` (attribute defaults to ``app``; ``target``
    defaults to STATEKEEPER_APP). ``--database`` and ``--namespace`` given on the
    command line reach an app built without them (``App()``) through the environment;
    an app built with another database or namespace is a configuration error, rather
    than the command line being ignored."""
    spec = target or os.environ.get(ENV_APP)
    if not spec:
        raise ConfigurationError(f"name the app to run: --app module:app (or {ENV_APP})")
    if "database" in settings.given and settings.database is not None:
        os.environ[ENV_DATABASE_URL] = settings.database
    if "namespace" in settings.given and settings.namespace is not None:
        os.environ[ENV_NAMESPACE] = settings.namespace
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(f"{spec!r} is not a statekeeper App")
    _check_agrees(spec, app, settings)
    return app


def _check_agrees(spec: str, app: App, settings: Settings) -> None:
    if "database" in settings.given and parse(resolve(settings.database)) != app.url:
        raise ConfigurationError(
            f"{spec} uses the database {app.url.redacted()}, not --database "
            f"{parse(resolve(settings.database)).redacted()}; give the app no database "
            "(App()) to take it from the command line"
        )
    if "namespace" in settings.given and settings.namespace != app.namespace:
        raise ConfigurationError(
            f"{spec} uses the namespace {app.namespace!r}, not --namespace "
            f"{settings.namespace!r}; give the app no namespace to take it from the "
            "command line"
        )
