"""``arcodex serve``, ``arcodex find`` and ``arcodex open``: the server and the client."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.errors import ArcodexError, ArcodexWarning, ValidationError

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="A STAC API URL, a static catalog.json or directory; default: this catalog.",
    ),
]
BBoxOpt = Annotated[
    str | None,
    typer.Option(
        "--bbox",
        metavar="W,S,E,N",
        help="Bounding box in degrees (west > east crosses the antimeridian).",
    ),
]
TimeOpt = Annotated[
    str | None,
    typer.Option(
        "--time",
        metavar="START/END",
        help="Time range as in `search`: 2020-01/2021-06, 2020/.., ../2021 or 2020.",
    ),
]
VariablesOpt = Annotated[
    str | None,
    typer.Option("--variables", metavar="A,B", help="Comma-separated variable names."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``serve``, ``find`` and ``open`` (``command`` supplies the CLI's error handling)."""

    @command("serve", api=(), engine=True)
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
        forwarded_allow_ips: Annotated[
            str | None,
            typer.Option(
                "--forwarded-allow-ips",
                help="Proxies whose Forwarded/X-Forwarded-* headers are trusted: comma-separated "
                "IPs or networks, or '*'; default: server.forwarded_allow_ips (none).",
            ),
        ] = None,
        workers: Annotated[
            int,
            typer.Option(
                "--workers",
                min=1,
                help="Server processes sharing the port (each opens the catalog itself).",
            ),
        ] = 1,
        root_path: Annotated[
            str,
            typer.Option(
                "--root-path",
                help="The path prefix a reverse proxy serves arcodex under (e.g. /arcodex), "
                "so that links carry it.",
            ),
        ] = "",
        log_level: Annotated[
            str,
            typer.Option("--log-level", help="critical, error, warning, info, debug or trace."),
        ] = "info",
        access_log: Annotated[
            str,
            typer.Option(
                "--access-log",
                help="text (one line per request), json (one JSON object per request, "
                "and the server's own lines as JSON) or off.",
            ),
        ] = "text",
        graceful_timeout: Annotated[
            float,
            typer.Option(
                "--graceful-timeout",
                min=0,
                help="On SIGTERM or Ctrl-C, seconds requests under way may take to finish.",
            ),
        ] = 30.0,
    ) -> None:
        """Serve the catalog over HTTP: the STAC API at /stac (OpenAPI at /api), /health
        and /ready for probes."""
        from arcodex.server import serve as run
        from arcodex.server._access_log import log_config

        root = state_of(ctx).catalog().root
        trusted = None
        if forwarded_allow_ips is not None:
            trusted = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValidationError(
                f"--root-path {root_path!r}: give a path like /arcodex (a leading /, no trailing /)"
            )
        log_config(access_log, log_level)  # bad values fail here, before the port is taken
        _check_port(host, port)
        processes = f", {workers} worker processes" if workers > 1 else ""
        typer.echo(
            f"serving {root} at http://{host}:{port}{root_path}/stac/{processes} (Ctrl-C stops)",
            err=True,
        )
        run(
            root,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level.lower(),
            access_log=access_log,
            graceful_timeout=graceful_timeout,
            forwarded_allow_ips=trusted,
            root_path=root_path,
        )

    @command("find", api=(), engine=True)
    def find(
        ctx: typer.Context,
        source: SourceOpt = None,
        collections: Annotated[
            str | None,
            typer.Option("--collections", metavar="A,B", help="Comma-separated collection ids."),
        ] = None,
        bbox: BBoxOpt = None,
        time: TimeOpt = None,
        datetime: Annotated[
            str | None,
            typer.Option(
                "--datetime",
                help="As STAC APIs take it: an RFC 3339 instant or START/END (.. for open).",
            ),
        ] = None,
        variables: VariablesOpt = None,
        filter: Annotated[
            str | None, typer.Option("--filter", help="A CQL2 text filter (STAC APIs only).")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, help="Most items to list.")] = 100,
        as_json: JsonOpt = False,
    ) -> None:
        """Search datasets in this catalog, a STAC API or a static STAC catalog.

        Items whose time extent overlaps --time (or --datetime) match, as in `search`.
        """
        from arcodex.cli._render import console, print_json

        if time is not None and datetime is not None:
            raise ValidationError("--time and --datetime say the same thing; give one of them")
        client = _client(ctx, state_of, source)
        results = client.search(
            collections=_split(collections),
            bbox=_bbox(bbox),
            datetime=_time_range(time) if time is not None else datetime,
            variables=_split(variables),
            filter=filter,
            max_items=limit,
        )
        if as_json:
            print_json(results.to_dict())
            return
        _print_items(results, local=_is_catalog(source))
        console().print(f"{len(results)} found")

    @command("open", api=(), engine=True)
    def open_(
        ctx: typer.Context,
        item_id: Annotated[
            str,
            typer.Argument(
                metavar="ID",
                help="The dataset's id; in an arcodex catalog also a unique prefix, or ID@TAG "
                "for a tagged version of an Icechunk product.",
            ),
        ],
        source: SourceOpt = None,
        variables: VariablesOpt = None,
        bbox: BBoxOpt = None,
        time: TimeOpt = None,
        profile: Annotated[
            str | None,
            typer.Option(
                "--profile",
                help="Read S3 with this catalog storage profile's credentials "
                "(default: the AWS_* variables).",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Open a dataset lazily (with subsetting) and describe what it holds."""
        from arcodex.cli._render import console, print_json

        client = _client(ctx, state_of, source, profile)
        window = _time_window(time) if time is not None else None
        item = client.get_item(item_id)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ArcodexWarning)
            ds = client.open_dataset(
                item, variables=_split(variables), bbox=_bbox(bbox), time=window
            )
        _show_warnings(caught)
        with ds:
            if as_json:
                print_json(
                    {
                        "id": item.id,
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


def _is_catalog(source: str | None) -> bool:
    """Whether ``source`` is an arcodex catalog (None: the CLI's own), whose ids take prefixes."""
    return source is None or (Path(source) / "arcodex.yaml").is_file()


def _print_items(results: Any, *, local: bool) -> None:
    """The items found: title, id (short in a catalog), time extent and product format."""
    from arcodex.cli._render import Column, console, print_table, short_date, short_ids
    from arcodex.client._open import asset_kind

    items = list(results)
    if not items:
        return
    shorts = short_ids([i.id for i in items]) if local else {i.id: i.id for i in items}
    spans, formats = [], []
    for item in items:
        props = item.properties
        start = short_date(str(props.get("start_datetime") or props.get("datetime") or ""))
        end = short_date(str(props.get("end_datetime") or ""))
        spans.append(start if not end or end == start else f"{start}/{end}")
        kinds = {k for k in (asset_kind(a) for a in item.assets.values()) if k}
        formats.append(",".join(sorted(kinds)) or "-")
    print_table(
        console(),
        [
            Column("title", [str(i.properties.get("title") or "") for i in items],
                   min_width=24, weight=3),
            Column("id", [shorts[i.id] for i in items], fixed=True),
            Column("time", spans, min_width=21),  # two dates
            Column("format", formats, min_width=8),
        ],
    )  # fmt: skip


def _time_range(text: str) -> tuple[Any, Any]:
    """``--time`` as `search` reads it: (start, end) datetimes, None for an open end."""
    from arcodex.model import TimeRange

    window = TimeRange.parse(text)
    return window.start, window.end


def _time_window(text: str) -> str | tuple[str | None, str | None]:
    """``--time`` checked as `search` reads it, as the ISO strings a subset takes."""
    _time_range(text)  # the same refusals as search
    if "/" not in text:
        return text.strip()
    start, end = (part.strip() for part in text.split("/", 1))
    return (None if start in ("", "..") else start, None if end in ("", "..") else end)


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """arcodex's warnings as one ``warning: …`` line each on stderr; others as Python shows them."""
    for found in caught:
        if issubclass(found.category, ArcodexWarning):
            typer.echo(f"warning: {found.message}", err=True)
        else:
            warnings.showwarning(found.message, found.category, found.filename, found.lineno)


def _check_port(host: str, port: int) -> None:
    """Refuse, before anything is printed, a port another program listens on."""
    import errno
    import socket

    if not 0 < port < 65536:
        raise ValidationError(f"--port {port} is not a port; give 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ValidationError(
            f"cannot listen on --host {host}: {exc.strerror}; give an address of this machine"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: an address in TIME_WAIT is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ArcodexError(
                    f"port {port} on {host} is already in use (another server?); "
                    f"stop it or pick another port with --port {port + 1 if port < 65535 else 8000}"
                ) from None
            if exc.errno == errno.EACCES:
                raise ArcodexError(
                    f"not allowed to listen on port {port} on {host}; "
                    "pick a port above 1023 with --port"
                ) from None
            raise ArcodexError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "pick another --host or --port"
            ) from None


def _split(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationError(f"bad --bbox {text!r}; write west,south,east,north") from None
    return west, south, east, north
