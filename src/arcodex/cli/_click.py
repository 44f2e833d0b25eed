"""The Typer app as a click command, which the documentation's CLI reference is generated from.

``docs/reference/cli.md`` points mkdocs-click at :data:`command`; nothing else imports this
module, so the CLI itself does not build the command tree twice. (Typer carries its own copy
of click, so this is not a ``click.Command``; mkdocs-click reads it all the same, in its
plain style: its table style finds no options, see tests/test_docs.py.)
"""

from __future__ import annotations

import typer.main

from arcodex.cli._app import app

__all__ = ["command"]

command = typer.main.get_command(app)
