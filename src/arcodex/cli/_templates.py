"""``arcodex templates`` and ``arcodex extents``: what the catalog can ingest, and where.

Both list what :func:`arcodex.ingest.load_templates` and
:func:`~arcodex.ingest.load_extents` load (the view ``GET /templates`` and
``GET /extents`` answer with, no paths and no secrets); a file that does not
load is one ``error: FILE:LINE: FIELD: …`` line per problem, and exit 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")]


@contextmanager
def _problems_as_lines() -> Iterator[None]:
    """A :class:`~arcodex.ingest.LoadError` as one ``error:`` line per problem, exit 1."""
    from arcodex.ingest import LoadError

    try:
        yield
    except LoadError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None


def _print_templates(items: list[dict[str, Any]], as_json: bool) -> None:
    from arcodex.cli import _render

    if as_json:
        _render.print_json(items)
        return
    out = _render.console()
    if not items:
        out.print(
            "no templates; add YAML files to templates/ (or ingest.templates in arcodex.yaml)"
        )
        return
    columns = [
        _render.Column("id", [t["id"] for t in items], fixed=True),
        _render.Column("name", [t["name"] for t in items], weight=2),
        _render.Column("period", [t["period"] for t in items], fixed=True),
        _render.Column("provider", [t["provider"]["name"] for t in items], fixed=True),
        _render.Column("sync", [t["sync"] for t in items], optional=True, keep=2),
        _render.Column(
            "variables", [", ".join(t["variables"]) for t in items], optional=True, keep=1
        ),
    ]
    _render.print_table(out, columns)


def _print_extents(items: list[dict[str, Any]], as_json: bool) -> None:
    from arcodex.cli import _render

    if as_json:
        _render.print_json(items)
        return
    out = _render.console()
    if not items:
        out.print("no extents; add YAML files to extents/ (or ingest.extents in arcodex.yaml)")
        return
    columns = [
        _render.Column("id", [e["id"] for e in items], fixed=True),
        _render.Column("name", [e["name"] for e in items], weight=2),
        _render.Column("bbox", [", ".join(f"{v:g}" for v in e["bbox"]) for e in items], fixed=True),
        _render.Column(
            "geometry",
            [(e["geometry"] or {}).get("type", "") for e in items],
            optional=True,
        ),
    ]
    _render.print_table(out, columns)


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``templates`` and ``extents`` to ``app``."""
    ENGINE_COMMANDS.update({"templates", "extents"})

    @command("templates", api=(), engine=True)
    def templates(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the dataset templates: the catalog's template files' and plugins'."""
        from arcodex.ingest import load_templates
        from arcodex.ingest._public import public_template

        catalog = state_of(ctx).catalog()
        with _problems_as_lines():
            found = load_templates(catalog)
        _print_templates([public_template(t) for t in found.values()], as_json)

    @command("extents", api=(), engine=True)
    def extents(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the extents: the named areas templates are ingested over."""
        from arcodex.ingest import load_extents
        from arcodex.ingest._public import public_extent

        catalog = state_of(ctx).catalog()
        with _problems_as_lines():
            found = load_extents(catalog)
        _print_extents([public_extent(e) for e in found.values()], as_json)
