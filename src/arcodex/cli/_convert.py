"""``arcodex convert`` and ``arcodex check`` (``arcodex update PRODUCT SOURCES`` lives in _app).

These call :mod:`arcodex.convert`, not Catalog methods, so they are listed in
``ENGINE_COMMANDS`` rather than in the catalog parity map.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec

import typer

from arcodex.cli._spec import build_spec, given_options, print_spec_of
from arcodex.errors import ValidationError

__all__ = ["ENGINE_COMMANDS", "convert_progress", "register", "update_product"]

P = ParamSpec("P")
ENGINE_COMMANDS: set[str] = set()

ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="local (default), threads, tcp://HOST:PORT, slurm or pbs (see arcodex.yaml).",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="Workers of a local cluster; default: the number of cores."),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Resolve, scan and plan only: print the files, time range, layout and size, "
        "write and register nothing.",
    ),
]
NoCheckOpt = Annotated[
    bool, typer.Option("--no-check", help="Skip the check of the product against its sources.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
#: As arcodex.convert.CODECS (a test keeps them equal; importing it here would load the engine).
Codec = Literal["blosc-zstd", "zstd", "blosc-lz4", "zlib", "none"]


@contextmanager
def convert_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar fed by ``progress(stage, done, total)``."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        yield update


def register(app: typer.Typer, command: Callable[..., Any], state_of: Callable[..., Any]) -> None:
    """Add the engine commands to ``app`` (``command`` is the CLI's error-handling wrapper)."""

    def engine(name: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
        def wrap(fn: Callable[P, None]) -> Callable[P, None]:
            ENGINE_COMMANDS.add(name)
            return command(name, api=(), engine=True)(fn)  # type: ignore[no-any-return]

        return wrap

    @engine("convert")
    def convert(
        ctx: typer.Context,
        sources: Annotated[
            list[str] | None,
            typer.Argument(
                help="Files, a glob, a directory, a manifest or URLs (or the --spec file's).",
                show_default=False,
            ),
        ] = None,
        spec_file: Annotated[
            Path | None,
            typer.Option(
                "--spec",
                metavar="FILE",
                help="A YAML/JSON convert spec (see `arcodex schema show convert`); the "
                "options given here override its values.",
            ),
        ] = None,
        print_spec: Annotated[
            bool,
            typer.Option(
                "--print-spec",
                help="Print the resolved spec (YAML; JSON with --json) and do nothing else.",
            ),
        ] = False,
        dry_run: DryRunOpt = False,
        to: Annotated[
            Literal["zarr", "icechunk", "virtual"],
            typer.Option(
                "--to",
                metavar="KIND",
                help="What to make: zarr (a Zarr store), icechunk (an Icechunk repository) or "
                "virtual (references to the sources' chunks, nothing copied).",
            ),
        ] = "zarr",
        dest: Annotated[
            str | None,
            typer.Option(
                "--dest", help="Where to write (path or URL); default: the catalog's storage."
            ),
        ] = None,
        format: Annotated[
            Literal["icechunk", "kerchunk", "kerchunk-parquet"],
            typer.Option(
                "--format",
                metavar="FORMAT",
                help="With --to virtual, how the references are kept: icechunk (a virtual "
                "Icechunk repository), kerchunk (JSON) or kerchunk-parquet.",
            ),
        ] = "icechunk",
        concat_dim: Annotated[
            str | None,
            typer.Option(
                "--concat-dim",
                help="Dimension the files are joined along; default: CF time, else the "
                "unlimited one.",
            ),
        ] = None,
        variables: Annotated[
            str | None,
            typer.Option(
                "--variables",
                metavar="A,B",
                help="Comma-separated variables to keep (their coordinates come along); "
                "default: all.",
            ),
        ] = None,
        chunks: Annotated[
            str | None,
            typer.Option(
                "--chunks",
                metavar="DIM=SIZE,…",
                help="Chunk sizes, e.g. time=24,lat=180 (full: the whole dimension); the "
                "dimensions left out follow --chunking.",
            ),
        ] = None,
        chunking: Annotated[
            Literal["map", "timeseries", "balanced"],
            typer.Option(
                "--chunking",
                metavar="PATTERN",
                help="How chunks are derived for the dimensions --chunks leaves out: map (whole "
                "fields at one step), timeseries (long series at a point) or balanced.",
            ),
        ] = "balanced",
        chunk_mb: Annotated[
            float, typer.Option("--chunk-mb", help="Size of a derived chunk, in MB.")
        ] = 8.0,
        zarr_format: Annotated[
            int, typer.Option("--zarr-format", min=2, max=3, help="Zarr format: 3 or 2.")
        ] = 3,
        codec: Annotated[
            Codec,
            typer.Option(
                "--codec",
                metavar="CODEC",
                help="Compression: blosc-zstd (byte shuffle), zstd, blosc-lz4, zlib or none.",
            ),
        ] = "blosc-zstd",
        level: Annotated[
            int | None,
            typer.Option(
                "--level",
                help="The codec's level; default: 3 for zstd and blosc-zstd, 5 for blosc-lz4, "
                "4 for zlib.",
            ),
        ] = None,
        shards: Annotated[
            str | None,
            typer.Option(
                "--shards",
                metavar="DIM=SIZE,…",
                help="Shard sizes (Zarr 3), multiples of the chunks, e.g. time=96; default: none.",
            ),
        ] = None,
        set_attr: Annotated[
            list[str] | None,
            typer.Option(
                "--set-attr",
                metavar="[VAR:]NAME=VALUE",
                help="Set an attribute of the product or of VAR (repeatable).",
            ),
        ] = None,
        del_attr: Annotated[
            list[str] | None,
            typer.Option(
                "--del-attr",
                metavar="[VAR:]NAME",
                help="Delete an attribute of the product or of VAR (repeatable).",
            ),
        ] = None,
        rename_attr: Annotated[
            list[str] | None,
            typer.Option(
                "--rename-attr",
                metavar="[VAR:]OLD=NEW",
                help="Rename an attribute of the product or of VAR (repeatable).",
            ),
        ] = None,
        attrs_file: Annotated[
            Path | None, typer.Option("--attrs", help="A YAML file of attribute fixes.")
        ] = None,
        force_attrs: Annotated[
            bool,
            typer.Option(
                "--force-attrs",
                help="Delete or rename attributes no source has, rename onto existing ones.",
            ),
        ] = False,
        grid: Annotated[
            Path | None,
            typer.Option("--grid", help="A grid file holding replacement coordinates (--coords)."),
        ] = None,
        coords: Annotated[
            str | None,
            typer.Option(
                "--coords",
                metavar="VAR=GRID_VAR,…",
                help="With --grid, which coordinates to replace: nav_lon=glamt,nav_lat=gphit.",
            ),
        ] = None,
        group: Annotated[
            str | None,
            typer.Option("--group", help="Write into this group of the store; default: the root."),
        ] = None,
        branch: Annotated[
            str, typer.Option("--branch", help="The Icechunk branch to commit to.")
        ] = "main",
        tag: Annotated[
            str | None,
            typer.Option("--tag", help="Tag the new Icechunk snapshot (open it later as ID@TAG)."),
        ] = None,
        pyramid: Annotated[
            int | None,
            typer.Option(
                "--pyramid",
                metavar="N",
                help="Write N resolution levels (groups 0..N-1, each coarsened 2x along the "
                "spatial dims; the multiscales layout). Zarr and Icechunk only.",
            ),
        ] = None,
        cluster: ClusterOpt = None,
        workers: WorkersOpt = None,
        no_check: NoCheckOpt = False,
        overwrite: Annotated[
            bool,
            typer.Option(
                "--overwrite",
                help="Replace a product arcodex made at --dest (anything else is refused).",
            ),
        ] = False,
        no_catalog: Annotated[
            bool, typer.Option("--no-catalog", help="Do not register the product in a catalog.")
        ] = False,
        source_profile: Annotated[
            str | None,
            typer.Option("--source-profile", help="Read s3:// sources with this profile."),
        ] = None,
        dest_profile: Annotated[
            str | None,
            typer.Option(
                "--dest-profile",
                help="Write an s3:// --dest with this profile (default: the one whose bucket "
                "holds it, else the AWS_* variables).",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Convert NetCDF/HDF5 files into a Zarr store, an Icechunk repository or virtual references."""
        from arcodex.convert import convert as run

        given = given_options(ctx)
        values = {name: value for name, value in ctx.params.items() if name in given}
        spec = build_spec(spec_file, sources, values)
        if print_spec:
            print_spec_of(spec, as_json)
            return
        state = state_of(ctx)
        if not spec.dest and (no_catalog or not _has_catalog(state)):
            raise ValidationError(
                "say where the product goes: --dest PATH_OR_URL, or run inside a catalog "
                "(`arcodex init PATH`, --catalog PATH or ARCODEX_CATALOG)"
            )
        cat = None if no_catalog or not _has_catalog(state) else state.catalog()
        with refusals(dry_run, "convert", as_json), convert_progress(not as_json) as progress:
            result = run(spec, catalog=cat, progress=progress, dry_run=dry_run)
        print_result(result, as_json)

    @engine("check")
    def check(
        ctx: typer.Context,
        product: Annotated[str, typer.Argument(help="A product path/URL, or a record id.")],
        more_sources: Annotated[
            list[str] | None,
            typer.Argument(
                help="More files after --sources (a shell-expanded list: --sources *.nc).",
                show_default=False,
            ),
        ] = None,
        sources: Annotated[
            list[str] | None,
            typer.Option("--sources", help="Check against these files instead (globs too)."),
        ] = None,
        samples: Annotated[int, typer.Option("--samples", help="Random sources to compare.")] = 3,
        seed: Annotated[
            int | None,
            typer.Option("--seed", help="Seed of the sample (default: fresh; the report says it)."),
        ] = None,
        full: Annotated[
            bool, typer.Option("--full", help="Compare every value with the sources.")
        ] = False,
        cluster: Annotated[
            str | None,
            typer.Option(
                "--cluster",
                help="threads (default), local, tcp://HOST:PORT, slurm or pbs (see arcodex.yaml).",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check a product: every chunk against its digest, the sources' fingerprints,
        structure, coverage and (a sample of, or with --full all) values."""
        from arcodex.cli._render import console, print_json
        from arcodex.convert import check as run

        if more_sources and not sources:
            raise ValidationError(
                f"unexpected arguments {' '.join(more_sources)}; "
                "pass source files with --sources FILE…"
            )
        if sources is not None:
            sources = [*sources, *(more_sources or [])]
        state = state_of(ctx)
        cat = state.catalog() if _has_catalog(state) and not Path(product).exists() else None
        report = run(
            product,
            sources=sources,
            catalog=cat,
            samples=samples,
            seed=seed,
            full=full,
            cluster=cluster or "threads",
        )
        if as_json:
            print_json(report.to_dict())
        else:
            out = console()
            out.print(f"{report.status}: {report.product} ({report.seconds:.1f} s)")
            done = report.checked
            if "chunks" in done:
                out.print(
                    f"  {done['chunks']} chunks verified by digest ({done.get('chunks_empty', 0)} "
                    f"empty); values {'all' if done.get('full') else 'sampled'}, "
                    f"seed {done.get('seed')}"
                )
            for reason in report.reasons:
                out.print(f"  fail: {reason}")
            for warning in report.warnings:
                out.print(f"  warn: {warning}")
        if report.status == "fail":
            raise typer.Exit(1)


@contextmanager
def refusals(dry_run: bool, action: str, as_json: bool) -> Iterator[None]:
    """Under --dry-run, a refusal is what would happen: said as such (JSON with --json)."""
    from arcodex.errors import ArcodexError

    if not dry_run:
        yield
        return
    try:
        yield
    except ArcodexError as exc:
        if not as_json:
            raise
        from arcodex.cli._render import print_json

        print_json({"action": action, "dry_run": True, "refused": str(exc)})
        raise typer.Exit(1) from None


def update_product(
    ctx: typer.Context,
    state: Any,
    product: str,
    sources: list[str] | None,
    *,
    spec_file: Path | None = None,
    dry_run: bool = False,
    print_spec: bool = False,
    as_json: bool = False,
) -> None:
    """``arcodex update PRODUCT SOURCES``: bring a product up to date (see convert.update)."""
    from arcodex.convert import update as run

    given = given_options(ctx)
    values = {
        name: value
        for name, value in ctx.params.items()
        if name in given and name in _UPDATE_OPTIONS
    }
    if "tag" in values:
        tags = values.pop("tag") or []
        if len(tags) > 1:
            raise ValidationError("an update makes one snapshot; pass --tag once")
        values["tag"] = tags[0] if tags else None
    spec = build_spec(spec_file, sources, values)
    if print_spec:
        print_spec_of(spec, as_json)
        return
    cat = state.catalog() if _has_catalog(state) else None
    with refusals(dry_run, "update", as_json), convert_progress(not as_json) as progress:
        result = run(product, spec, catalog=cat, progress=progress, dry_run=dry_run)
    print_result(result, as_json)


#: The options of `arcodex update` that are spec fields (with SOURCES).
_UPDATE_OPTIONS = ("cluster", "workers", "no_check", "tag", "dest_profile")


def _has_catalog(state: Any) -> bool:
    """Whether there is a catalog; one named (--catalog, $ARCODEX_CATALOG) must open."""
    return state.catalog_or_none() is not None


def print_result(result: Any, as_json: bool) -> None:
    from arcodex.cli._render import console, print_json

    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    data = result.to_dict()
    if result.dry_run:
        _print_dry_run(data)
        return
    if data["changes"].get("unchanged"):
        out.print(f"{data['product']['url']} is up to date; nothing written")
        return
    out.print(
        f"{result.action}: {data['product']['format']} at {data['product']['url']} — "
        f"{data['sources']} sources, {data['steps']} steps ({data['first']} to {data['last']}), "
        f"check {data['status']}, {data['seconds']:.1f} s"
    )
    if result.record is not None:
        out.print(f"record {result.record.id}")
    if result.report is not None:
        for warning in result.report.warnings:
            out.print(f"  warn: {warning}")


def _print_dry_run(data: dict[str, Any]) -> None:
    out = typer.echo
    product, layout, changes = data["product"], data["layout"], data["changes"]
    what = f"{data['action']} would write {product['format']} at {product['url']}"
    if changes.get("unchanged"):
        what = f"{product['url']} is up to date; update would write nothing"
    out(f"dry run: {what} (nothing written, nothing registered)")
    files = data["files"]
    out(f"files, in order ({len(files)}):")
    for f in files:
        out(f"  {f['url']}  {f['first']} to {f['last']} ({f['steps']} steps)")
    for key in ("appended", "overwritten"):
        if changes.get(key):
            out(f"{key}: {', '.join(u.rsplit('/', 1)[-1] for u in changes[key])}")
    if changes.get("new_variables"):
        out(f"new variables: {', '.join(changes['new_variables'])}")
    out(f"time: {data['first']} to {data['last']} ({data['steps']} steps)")
    if layout.get("references"):
        out(f"layout: {layout['format']} references (nothing copied)")
    else:
        level = layout.get("level")
        out(
            f"layout: {layout['format']}, Zarr format {layout['zarr_format']}, "
            f"{layout['codec']} (level {'default' if level is None else level})"
        )
    for name, var in layout["variables"].items():
        shape = "×".join(str(n) for n in var["shape"]) or "scalar"
        chunks = "×".join(str(n) for n in var["chunks"]) or "-"
        shards = f"  shards {'×'.join(str(n) for n in var['shards'])}" if "shards" in var else ""
        dims = ", ".join(var["dims"])
        out(f"  {name}  {var['dtype']} ({dims}) {shape}  chunks {chunks}{shards}")
    size = layout["size"]
    out(
        f"size: {_bytes(size['uncompressed_bytes'])} uncompressed in {size['chunks']} chunks"
        + (" (references only: 0 B written)" if size.get("written_bytes") == 0 else "")
    )
    for warning in data.get("warnings", []):
        out(f"  warn: {warning}")
    ran = ", ".join(data["timings"]) or "none"
    out(f"steps run: {ran}; skipped: {', '.join(data['skipped']) or 'none'}")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
