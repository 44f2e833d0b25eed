"""``arcodex schema list|add|show``: the record schemas of a catalog, and the JSON Schemas
of arcodex's own specs (``arcodex schema show convert``).

``arcodex schemas`` and ``arcodex schema-add`` still work, hidden, for one release.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from arcodex.errors import NotFoundError, ValidationError

__all__ = ["SPEC_SCHEMAS", "register", "spec_schema"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]

#: The specs arcodex publishes a JSON Schema of: name -> ``module:Model`` (a Pydantic
#: model), imported only when asked for.
SPEC_SCHEMAS: dict[str, str] = {"convert": "arcodex.convert:ConvertSpec"}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def spec_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the built-in spec ``name`` (see :data:`SPEC_SCHEMAS`)."""
    module, _, attr = SPEC_SCHEMAS[name].partition(":")
    try:
        model = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise NotFoundError(
            f"the {name} spec ({SPEC_SCHEMAS[name]}) is not in this installation: {exc}"
        ) from None
    schema: dict[str, Any] = model.model_json_schema()
    return schema


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``schema`` group (and the old ``schemas``/``schema-add`` names) to ``app``."""
    group = typer.Typer(
        help="Record schemas: list, register and show them (and arcodex's spec schemas).",
        no_args_is_help=True,
    )

    def list_schemas(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the registered record schemas."""
        from arcodex.cli import _render

        names = state_of(ctx).catalog().list_schemas()
        if as_json:
            _render.print_json(names)
        elif not names:
            typer.echo("no schemas registered; add one with `arcodex schema add NAME@VERSION FILE`")
        else:
            for name in names:
                typer.echo(name)

    def add(
        ctx: typer.Context,
        ref: Annotated[str, typer.Argument(help="NAME@VERSION, e.g. obs@1.")],
        file: Annotated[Path, typer.Argument(help="A JSON Schema file.")],
    ) -> None:
        """Register a JSON Schema with the catalog."""
        key = state_of(ctx).catalog().register_schema(ref, str(file))
        typer.echo(f"registered schema {key}")

    def show(
        ctx: typer.Context,
        name: Annotated[
            str,
            typer.Argument(
                help="A record schema (NAME or NAME@VERSION; latest version by default), "
                f"or a spec: {', '.join(sorted(SPEC_SCHEMAS))}."
            ),
        ],
        as_json: JsonOpt = False,
    ) -> None:
        """Print a JSON Schema: a record schema of the catalog, or an arcodex spec's."""
        from arcodex.cli import _render

        if name in SPEC_SCHEMAS:
            document = spec_schema(name)
        else:
            if "@" not in name and not name.strip():
                raise ValidationError("give a schema name, e.g. obs or obs@1")
            document = state_of(ctx).catalog().get_schema(name)
        # A JSON Schema is JSON either way; --json is accepted for symmetry.
        del as_json
        _render.print_json(document)

    command("list", api=("list_schemas",), on=group, group="schema")(list_schemas)
    command("add", api=("register_schema",), on=group, group="schema")(add)
    command("show", api=("get_schema",), on=group, group="schema")(show)
    app.add_typer(group, name="schema")
    # The old names, for one release.
    command("schemas", api=("list_schemas",), hidden=True)(list_schemas)
    command("schema-add", api=("register_schema",), hidden=True)(add)
