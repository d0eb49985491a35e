"""The command reference (docs/cli.md), generated from the click commands themselves so it cannot
drift from ``--help``: ``python -m rocoft_llm.cli.reference > docs/cli.md`` (a test checks it)."""

from __future__ import annotations

import click

from . import main

WIDTH = 100


def _help(command: click.Command, name: str, parent: click.Context | None = None) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def render_reference() -> str:
    """Markdown: the group's help, then every command's, in alphabetical order."""
    root = click.Context(main, info_name="rocoft-llm", terminal_width=WIDTH, max_content_width=WIDTH)
    parts = [
        "# Command reference\n",
        "Generated from the commands' own help (`python -m rocoft_llm.cli.reference > docs/cli.md`);",
        "`rocoft-llm COMMAND --help` prints the same.\n",
        "```text",
        _help(main, "rocoft-llm"),
        "```",
    ]
    for name in sorted(main.commands):
        parts += [f"\n## {name}\n", "```text", _help(main.commands[name], name, root), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    click.echo(render_reference(), nl=False)
