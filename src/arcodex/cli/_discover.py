"""``arcodex serve``, ``arcodex find`` and ``arcodex open``: the server and the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="A STAC API URL, a static catalog.json or directory; default: this catalog.",
    ),
]


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``serve``, ``find`` and ``open`` (``command`` supplies the CLI's error handling)."""

    @command("serve", api=(), engine=True)
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        forwarded_allow_ips: Annotated[
            str | None,
            typer.Option(
                "--forwarded-allow-ips",
                help="Proxies whose Forwarded/X-Forwarded-* headers are trusted: comma-separated "
                "IPs or networks, or '*'; default: server.forwarded_allow_ips (none).",
            ),
        ] = None,
    ) -> None:
        """Serve the catalog over HTTP: the STAC API at /stac (OpenAPI at /api)."""
        from arcodex.server import serve as run

        root = state_of(ctx).catalog().root
        trusted = None
        if forwarded_allow_ips is not None:
            trusted = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
        typer.echo(f"serving {root} at http://{host}:{port}/stac/ (Ctrl-C stops)", err=True)
        run(root, host=host, port=port, forwarded_allow_ips=trusted)

    @command("find", api=(), engine=True)
    def find(
        ctx: typer.Context,
        source: SourceOpt = None,
        collections: Annotated[str | None, typer.Option("--collections")] = None,
        bbox: Annotated[str | None, typer.Option("--bbox", help="west,south,east,north")] = None,
        datetime: Annotated[
            str | None, typer.Option("--datetime", help="an instant or start/end")
        ] = None,
        variables: Annotated[str | None, typer.Option("--variables")] = None,
        filter: Annotated[
            str | None, typer.Option("--filter", help="CQL2 text (STAC APIs)")
        ] = None,
        limit: Annotated[int, typer.Option("--limit")] = 100,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Search datasets in this catalog, a STAC API or a static STAC catalog."""
        from arcodex.cli._render import console, print_json

        client = _client(ctx, state_of, source)
        results = client.search(
            collections=_split(collections),
            bbox=_bbox(bbox),
            datetime=datetime,
            variables=_split(variables),
            filter=filter,
            max_items=limit,
        )
        if as_json:
            print_json(results.to_dict())
            return
        out = console()
        for item in results:
            props = item.properties
            start = props.get("start_datetime") or props.get("datetime") or ""
            end = props.get("end_datetime") or ""
            kinds = ",".join(sorted({str(a.media_type) for a in item.assets.values()}))
            out.print(f"{item.id}  {props.get('title', '')}  {start}/{end}  {kinds}")
        out.print(f"{len(results)} found")

    @command("open", api=(), engine=True)
    def open_(
        ctx: typer.Context,
        item_id: Annotated[str, typer.Argument(help="The item (dataset) id.")],
        source: SourceOpt = None,
        variables: Annotated[str | None, typer.Option("--variables")] = None,
        bbox: Annotated[str | None, typer.Option("--bbox", help="west,south,east,north")] = None,
        time: Annotated[str | None, typer.Option("--time", help="start/end")] = None,
        profile: Annotated[
            str | None,
            typer.Option(
                "--profile",
                help="Read S3 with this catalog storage profile's credentials "
                "(default: the AWS_* variables).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Open a dataset lazily (with subsetting) and describe what it holds."""
        from arcodex.cli._render import console, print_json

        client = _client(ctx, state_of, source, profile)
        window = tuple(time.split("/", 1)) if time and "/" in time else time
        ds = client.open_dataset(
            item_id, variables=_split(variables), bbox=_bbox(bbox), time=window
        )
        with ds:
            if as_json:
                print_json(
                    {
                        "id": item_id,
                        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
                        "variables": sorted(str(v) for v in ds.data_vars),
                        "coords": sorted(str(c) for c in ds.coords),
                    }
                )
            else:
                console().print(str(ds))

    ENGINE_COMMANDS.update({"serve", "find", "open"})


def _client(
    ctx: typer.Context, state_of: Callable[..., Any], source: str | None, profile: str | None = None
) -> Any:
    from arcodex.client import Client

    if source:
        # A profile is defined by the catalog the CLI found (--catalog, ARCODEX_CATALOG, cwd).
        catalog = state_of(ctx).catalog() if profile else None
        return Client(source, profile=profile, catalog=catalog)
    return Client(str(state_of(ctx).catalog().root), profile=profile)


def _split(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    from arcodex.errors import ValidationError

    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationError(f"bad --bbox {text!r}; write west,south,east,north") from None
    return west, south, east, north
