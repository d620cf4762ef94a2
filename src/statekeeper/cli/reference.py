"""The command reference of docs/cli.md, written from the commands themselves.

``python -m statekeeper.cli.reference --write docs/cli.md`` replaces the part of the
document after MARKER with the reference of every command and option, as click
knows them (usage, help, each option's default and environment variable); without
``--write`` it prints the reference. A test checks that the document and the
commands agree.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from statekeeper.cli.main import main

MARKER = "<!-- Generated from the commands by `python -m statekeeper.cli.reference --write docs/cli.md`; edit above this line. -->"  # noqa: E501


def _commands(
    command: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[click.Command, click.Context]]:
    """Every command under ``command``, itself first, subcommands in name order."""
    ctx = click.Context(command, info_name=path[-1], parent=parent)
    yield command, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _commands(command.commands[name], [*path, name], ctx)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _metavar(param: click.Option) -> str:
    if param.is_flag or param.count:
        return ""
    return " " + (param.metavar or param.type.name.upper())


def _default(param: click.Option) -> str:
    if not param.show_default or param.default in (None, False, ()):
        return ""
    return f"`{param.default}`"


def _envvar(param: click.Option) -> str:
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    return ", ".join(f"`{name}`" for name in names)


def _section(command: click.Command, ctx: click.Context) -> list[str]:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [f"### `{ctx.command_path}`", "", f"`{usage}`", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help), ""]
    options = [p for p in command.params if isinstance(p, click.Option) and "--help" not in p.opts]
    if options:
        lines += ["| option | default | environment | what |", "|---|---|---|---|"]
        for option in options:
            names = ", ".join(option.opts + option.secondary_opts)
            lines.append(
                f"| `{names}{_metavar(option)}` | {_default(option)} | {_envvar(option)} "
                f"| {_cell(option.help or '')} |"
            )
        lines.append("")
    if isinstance(command, click.Group):
        lines += [f"Commands: {', '.join(f'`{name}`' for name in sorted(command.commands))}.", ""]
    return lines


def render() -> str:
    """The reference: one section a command, in the order of the command tree."""
    lines = ["## Reference", ""]
    for command, ctx in _commands(main, ["statekeeper"], None):
        lines += _section(command, ctx)
    return "\n".join(lines).rstrip() + "\n"


def document(current: str) -> str:
    """``current`` (docs/cli.md) with everything after MARKER rewritten."""
    head, found, _ = current.partition(MARKER)
    if not found:
        raise SystemExit(f"the document has no line {MARKER!r}")
    return f"{head}{MARKER}\n\n{render()}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        target = Path(sys.argv[2])
        target.write_text(document(target.read_text()))
    else:
        sys.stdout.write(render())
