"""Plugins that go wrong: ``broken`` raises half-way through, ``later`` claims taken names."""

from __future__ import annotations

from typing import Any


def _never_used(**params: Any) -> None:
    raise AssertionError("a refused or dropped registration was used")


def register(registrar: Any) -> None:
    """Registers a store kind, then fails: the store kind must not be kept."""
    registrar.add_store("broken-store", _never_used)
    raise ValueError("the plugin's settings file is missing")


class FailingExtractor:
    """Claims ``*.station`` files and fails on every one."""

    name = "later-failing"

    def matches(self, path: Any) -> bool:
        return str(path).endswith(".station")

    def extract(self, path: Any, into: Any) -> None:
        raise RuntimeError("cannot parse the station file")


def register_clashing(registrar: Any) -> None:
    """Claims the built-in ``search`` command and the example plugin's store kind; its
    extractor fails on every file, and its hook names a point that does not exist."""
    import typer

    registrar.add_cli("search", typer.Typer())
    registrar.add_store("example", _never_used)
    registrar.add_store("later-store", lambda **params: params)
    registrar.add_extractor(FailingExtractor())
    registrar.add_hook("no_such_point", _never_used, name="later.nowhere")
