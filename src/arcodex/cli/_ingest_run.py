"""``arcodex ingest TEMPLATE --extent ID --start S --end E``: an ingestion in the foreground.

It runs :func:`arcodex.ingest.ingest` (the code ``POST /ingestions`` runs as a
job) with a progress bar on a terminal: each missing period fetched and
committed on its own, so an interrupted run is resumed by running it again.
It calls :mod:`arcodex.ingest`, not Catalog methods, so it is an engine command.
A period that could not be fetched is listed, and the exit status is 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS

if TYPE_CHECKING:
    from arcodex.ingest._ingestion import IngestionResult

__all__ = ["print_ingestion", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]


@contextmanager
def ingest_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar fed by ``progress(period, done, total)``, naming the period."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total} periods"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None)

        def update(period: str, done: int, total: int) -> None:
            label = f"ingest {period}" if period else "ingest"
            bar.update(task, description=label, completed=done, total=max(total, 1))

        yield update


def print_ingestion(result: IngestionResult, *, as_json: bool = False) -> None:
    from arcodex.cli import _render

    if as_json:
        _render.print_json(result.to_dict())
        return
    if result.reused:
        typer.echo(
            f"{result.record_id}: already holds the {len(result.skipped)} periods asked for; "
            "nothing fetched (--overwrite rebuilds it)"
        )
        return
    typer.echo(
        f"{result.record_id}: {len(result.done)} periods committed, "
        f"{len(result.skipped)} already held, {len(result.failed)} failed"
        + (f", {len(result.unavailable)} not yet available" if result.unavailable else "")
        + (f"; check {result.check}" if result.check else "")
        + ("; published" if result.published else "")
    )
    for failure in result.failed:
        typer.echo(f"failed: {failure.period}: {failure.message}", err=True)
    for reason in result.reasons:
        typer.echo(f"note: {reason}", err=True)
    if result.failed:
        typer.echo("run the same command again to fetch the failed periods", err=True)


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``ingest`` to ``app``."""
    ENGINE_COMMANDS.add("ingest")

    @command("ingest", api=(), engine=True)
    def ingest(
        ctx: typer.Context,
        template: Annotated[
            str, typer.Argument(help="The dataset template's id (see `arcodex templates`).")
        ],
        extent: Annotated[
            str, typer.Option("--extent", help="The extent's id (see `arcodex extents`).")
        ],
        start: Annotated[
            str, typer.Option("--start", help="The first period (2020-01, 2020-01-05 …).")
        ],
        end: Annotated[str, typer.Option("--end", help="The last period, included.")],
        overwrite: Annotated[
            bool,
            typer.Option(
                "--overwrite",
                help="Rebuild the dataset beside the old one (which stays until the new is "
                "complete), even if it holds the periods.",
            ),
        ] = False,
        publish: Annotated[
            bool, typer.Option("--publish", help="Publish the dataset once its check passes.")
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
    ) -> None:
        """Ingest a template's periods over an extent, one commit per period (resumable)."""
        from arcodex.ingest._ingestion import ingest as run
        from arcodex.ingest._loading import get_extent, get_template

        catalog = state_of(ctx).catalog()
        found = get_template(catalog, template)
        area = get_extent(catalog, extent)
        with ingest_progress(not as_json) as progress:
            result = run(
                catalog, found, area, start, end,
                overwrite=overwrite, publish=publish, progress=progress,
            )  # fmt: skip
        print_ingestion(result, as_json=as_json)
        if result.failed:
            raise typer.Exit(1)
