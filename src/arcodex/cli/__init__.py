"""The ``arcodex`` command line: a thin shell over :class:`arcodex.catalog.Catalog`."""

from arcodex.cli._app import COMMAND_METHODS, EXIT_ERROR, EXIT_INTERNAL, app, main
from arcodex.cli._convert import ENGINE_COMMANDS

__all__ = ["COMMAND_METHODS", "ENGINE_COMMANDS", "EXIT_ERROR", "EXIT_INTERNAL", "app", "main"]
