"""``arcodex run PIPELINE [INPUT…]`` and ``arcodex pipelines``: declared pipelines, by name;
and how a run (or ``add --dry-run``) is printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Pipeline
    from arcodex.catalog._running import PipelineRun

__all__ = ["print_pipelines", "print_run", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``run`` and ``pipelines`` to ``app``."""

    @command("run", api=("run_pipeline", "pipelines"))
    def run(
        ctx: typer.Context,
        pipeline: Annotated[
            str | None,
            typer.Argument(
                help="The pipeline (`arcodex pipelines` lists them).", show_default=False
            ),
        ] = None,
        inputs: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="[INPUT]...",
                help="What the pipeline works on: files for the add steps.",
                show_default=False,
            ),
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param",
                "-p",
                metavar="KEY=VALUE",
                help="A parameter of the steps (kind=dataset, in_place=true, tags=[a,b]); "
                "dotted keys nest (metadata.site=MHD).",
            ),
        ] = None,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run", help="Run only the steps that change nothing; say what would happen."
            ),
        ] = False,
        list_all: Annotated[
            bool, typer.Option("--list", help="List the pipelines and their steps instead.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Run a pipeline: built-in, declared under `pipelines:` in arcodex.yaml, or a plugin's."""
        from arcodex.cli._parse import nest, parse_assignments

        catalog = state_of(ctx).catalog()
        _register_engine_pipelines()
        if list_all:
            if pipeline is not None or inputs or param or dry_run:
                raise ValidationError("--list takes no pipeline, inputs or options; drop them")
            print_pipelines(catalog.pipelines(), as_json)
            return
        if pipeline is None:
            raise ValidationError(
                "say which pipeline to run: `arcodex run NAME …` (`arcodex pipelines` lists them)"
            )
        params = nest(parse_assignments(param or (), "--param"))
        if pipeline in ENGINE_PIPELINES:
            run_engine(pipeline, catalog, inputs or [], params, dry_run=dry_run, as_json=as_json)
            return
        result = catalog.run_pipeline(pipeline, inputs or (), params=params, dry_run=dry_run)
        print_run(result, as_json)
        if result.refusals:
            raise typer.Exit(1)

    @command("pipelines", api=("pipelines",))
    def pipelines(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the pipelines this catalog can run, and their steps."""
        _register_engine_pipelines()
        print_pipelines(state_of(ctx).catalog().pipelines(), as_json)


#: The conversion engine's pipelines: their steps hand each other a job that the
#: engine's own API builds from a spec, so ``run`` hands them to that API.
ENGINE_PIPELINES = ("convert", "update")


def _register_engine_pipelines() -> None:
    """Make convert and update known to the pipeline registry (importing the engine
    registers them; the catalog itself may not import the engine)."""
    import arcodex.convert._pipelines  # noqa: F401


def run_engine(
    name: str,
    catalog: Any,
    inputs: list[str],
    params: dict[str, Any],
    *,
    dry_run: bool,
    as_json: bool,
) -> None:
    """``arcodex run convert SOURCE… -p to=zarr`` / ``run update PRODUCT SOURCE…``: the
    inputs and parameters make a :class:`~arcodex.convert.ConvertSpec`."""
    from arcodex.cli._convert import convert_progress, print_result, refusals
    from arcodex.convert import ConvertSpec, convert, update

    if name == "update":
        if len(inputs) < 2:
            raise ValidationError(
                "`arcodex run update` takes the product, then its new sources: "
                "arcodex run update PRODUCT SOURCE…"
            )
        product, sources = inputs[0], inputs[1:]
    else:
        if not inputs and "sources" not in params:
            raise ValidationError(
                "`arcodex run convert` takes the sources: arcodex run convert SOURCE…"
            )
        product, sources = None, inputs
    fields = {**params, **({"sources": sources} if sources else {})}
    with refusals(dry_run, name, as_json), convert_progress(not as_json) as progress:
        spec = ConvertSpec.from_dict(fields)
        if product is None:
            result = convert(spec, catalog=catalog, progress=progress, dry_run=dry_run)
        else:
            result = update(product, spec, catalog=catalog, progress=progress, dry_run=dry_run)
    print_result(result, as_json)


def print_pipelines(found: list[Pipeline], as_json: bool) -> None:
    """Each pipeline, where it comes from, and its steps (``*``: changes something)."""
    from arcodex.cli import _render

    if as_json:
        _render.print_json([p.to_dict() for p in found])
        return
    out = _Echo()
    for pipe in found:
        steps = " → ".join(s.name + ("" if s.changes else " (dry)") for s in pipe.steps)
        out.print(f"{pipe.name}  [{pipe.origin}]  {steps}")
        if pipe.doc:
            out.print(f"    {pipe.doc}")
    out.print("(dry): runs under --dry-run, changing nothing")


def print_run(result: PipelineRun, as_json: bool) -> None:
    """What a run did, or what a dry run would do: each item, its place and refusals."""
    from arcodex.cli import _render

    if as_json:
        _render.print_json(result.to_dict())
        return
    out = _Echo()
    ran = ", ".join(f"{s['name']} {s['seconds']:.3f} s" for s in result.steps if s["ran"])
    skipped = [s["name"] for s in result.steps if not s["ran"]]
    head = f"dry run of {result.pipeline}: nothing was changed" if result.dry_run else (
        f"ran {result.pipeline}"
        + (f" (operation {result.operation_id})" if result.operation_id else "")
    )  # fmt: skip
    out.print(head)
    out.print(
        f"steps: {ran or 'none'}" + (f"; skipped: {', '.join(skipped)}" if skipped else ""),
    )
    for item in (i.to_dict() for i in result.items if hasattr(i, "to_dict")):
        where = item["location"] or "-"
        if item["profile"] and item["key"]:
            where = f"{item['profile']}:{item['key']}"
        what = ", ".join(
            str(v) for v in (item["kind"], item["format"], _size(item["size_bytes"])) if v
        )
        out.print(f"{item['source']} -> {where}")
        if item["record_id"]:
            out.print(f"    record {item['record_id']}: {item['title']} ({what})")
        for key, value in item["fields"].items():
            out.print(f"    {key}: {value}")
        for why in item["warnings"]:
            out.print(f"    warning: {why}")
        for why in item["refusals"]:
            out.print(f"    refused: {why}")
    refused = sum(1 for i in result.items if getattr(i, "refusals", None))
    total = len(result.items)
    if result.dry_run:
        out.print(
            f"would add {total - refused} of {total}"
            + (f"; {refused} refused, so the add would change nothing" if refused else ""),
        )
    else:
        for record in result.records:
            out.print(f"added {record.id}")


class _Echo:
    """Plain lines, never wrapped (paths and ids stay whole for copy and paste)."""

    @staticmethod
    def print(line: str) -> None:
        typer.echo(line)


def _size(size: int | None) -> str | None:
    if size is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size = size / 1024  # type: ignore[assignment]
    return None
