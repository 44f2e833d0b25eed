"""``arcodex store kinds|list|describe|search|open``: a command group over :mod:`arcodex.stores`.

Parameters are ``-p key=value`` (the value read as JSON when it parses, else as
text; a comma list where the schema wants a list). Keys the store kind takes
make the store; the others go to the method, whose schema refuses what it does
not know, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.errors import ValidationError

__all__ = ["parse_params", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]

KindArg = Annotated[
    str, typer.Argument(metavar="KIND", help="The store kind (`arcodex store kinds`).")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A parameter of the store or of the method (repeat); values are JSON or text.",
    ),
]
DataIdArg = Annotated[str, typer.Argument(metavar="ID", help="A data id, as `store list` gives.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["k=v", …]`` as a dict; each value JSON if it parses, else the text itself."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValidationError(f"parameter {pair!r} is not key=value; write it as -p key=value")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _wants_list(schema: dict[str, Any], key: str) -> bool:
    prop = schema.get("properties", {}).get(key, {})
    types = {o.get("type") for o in prop.get("anyOf", [prop])}
    return "array" in types and "string" not in types  # text itself is a value where it may be


def _fit(values: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Text where the schema wants a list becomes a comma list (``variables=tas,pr``)."""
    return {
        k: v.split(",") if isinstance(v, str) and _wants_list(schema, k) else v
        for k, v in values.items()
    }


def _split(kind: str, pairs: Sequence[str] | None, method: str) -> tuple[Any, dict[str, Any]]:
    """The store the parameters make, and the ones left for ``method``."""
    from arcodex.stores import new_store, store_params_schema

    params = parse_params(pairs or ())
    schema = store_params_schema(kind)
    own = set(schema.get("properties", {}))
    store = new_store(kind, **_fit({k: v for k, v in params.items() if k in own}, schema))
    rest = {k: v for k, v in params.items() if k not in own}
    return store, _fit(rest, store.params_schema(method))


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``store`` group to ``app`` (``command`` supplies the CLI's error handling)."""
    group = typer.Typer(
        help="List, describe, search and open datasets of any data store (file, s3, catalog, …).",
        no_args_is_help=True,
    )

    @command("kinds", api=(), engine=True, on=group)
    def kinds(
        kind: Annotated[
            str | None, typer.Argument(metavar="[KIND]", help="Show this kind's parameters.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """The store kinds (built-in and plugins'), or one kind's parameters as JSON Schema."""
        from arcodex.cli._render import console, print_json
        from arcodex.stores import list_store_kinds, store_params_schema

        if kind is not None:
            schema = store_params_schema(kind)
            if as_json:
                print_json(schema)
                return
            out = console()
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                mark = " (required)" if name in required else ""
                out.print(f"{name}{mark}: {prop.get('description', '')}", markup=False)
            return
        rows = []
        for name in list_store_kinds():
            schema = store_params_schema(name)
            rows.append({"kind": name, "params": sorted(schema.get("properties", {}))})
        if as_json:
            print_json(rows)
            return
        out = console()
        for row in rows:
            out.print(f"{row['kind']:<10} {', '.join(row['params'])}", markup=False)

    @command("list", api=(), engine=True, on=group)
    def list_(kind: KindArg, params: ParamOpt = None, as_json: JsonOpt = False) -> None:
        """The data ids of a store (``-p include_attrs=title`` adds attributes)."""
        from arcodex.cli._render import console, print_json

        store, rest = _split(kind, params, "list_data_ids")
        with store:
            ids = store.list_data_ids(**rest)
        if as_json:
            print_json([list(i) if isinstance(i, tuple) else i for i in ids])
            return
        out = console()
        for entry in ids:
            if isinstance(entry, tuple):
                out.print(f"{entry[0]}  {json.dumps(entry[1], default=str)}", markup=False)
            else:
                out.print(entry, markup=False)

    @command("describe", api=(), engine=True, on=group)
    def describe(
        kind: KindArg, data_id: DataIdArg, params: ParamOpt = None, as_json: JsonOpt = False
    ) -> None:
        """What a dataset holds, from its metadata (no data is read)."""
        from arcodex.cli._render import print_json

        store, rest = _split(kind, params, "describe_data")
        with store:
            described = store.describe_data(data_id, **rest)
        if as_json:
            print_json(described.to_dict())
            return
        _print_descriptor(described)

    @command("search", api=(), engine=True, on=group)
    def search(kind: KindArg, params: ParamOpt = None, as_json: JsonOpt = False) -> None:
        """Datasets matching ``-p time=START/END``, ``bbox=[W,S,E,N]``, ``variables=a,b``, ``text=…``."""
        from arcodex.cli._render import console, print_json

        store, rest = _split(kind, params, "search_data")
        with store:
            found = store.search_data(**rest)
        if as_json:
            print_json([d.to_dict() for d in found])
            return
        out = console()
        for d in found:
            span = "/".join(str(t) for t in d.time_range) if d.time_range else "-"
            out.print(f"{d.data_id}  {', '.join(d.data_vars)}  {span}", markup=False)

    @command("open", api=(), engine=True, on=group)
    def open_(
        kind: KindArg, data_id: DataIdArg, params: ParamOpt = None, as_json: JsonOpt = False
    ) -> None:
        """Open a dataset lazily and show it (``-p variables=tas -p time=[…]`` subset it)."""
        from arcodex.cli._render import print_json

        store, rest = _split(kind, params, "open_data")
        with store, store.open_data(data_id, **rest) as ds:
            if as_json:
                print_json(ds.to_dict(data=False))
            else:
                typer.echo(str(ds))

    app.add_typer(group, name="store")
    ENGINE_COMMANDS.add("store")


def _print_descriptor(d: Any) -> None:
    from arcodex.cli._render import console

    out = console()
    out.print(f"{d.data_id} ({d.store} store)", markup=False)
    out.print(f"  dims: {', '.join(f'{k}={v}' for k, v in d.dims.items())}", markup=False)
    for name, var in d.data_vars.items():
        units = f" [{var.units}]" if var.units else ""
        out.print(f"  {name}({', '.join(var.dims)}) {var.dtype}{units}", markup=False)
    if d.bbox:
        out.print(f"  bbox: {', '.join(f'{v:g}' for v in d.bbox)}", markup=False)
    if d.time_range:
        period = f" every {d.time_period}" if d.time_period else ""
        out.print(f"  time: {d.time_range[0]} to {d.time_range[1]}{period}", markup=False)
    if d.spatial_res:
        out.print(f"  resolution: {d.spatial_res:g}", markup=False)
    if d.crs:
        out.print(f"  crs: {d.crs if len(d.crs) < 60 else d.crs[:57] + '...'}", markup=False)
    if d.levels:
        out.print(f"  levels: {', '.join(d.levels)}", markup=False)
