"""``arcodex sync ID|--all [--plan] [--end DATE] [--json]``: ingested datasets brought up to
date with their providers, for people and for cron jobs.

It calls :func:`arcodex.ingest._sync.sync` (or :func:`~arcodex.ingest._sync.plan_sync` with
``--plan``, which changes nothing), not Catalog methods, so it is an engine
command. The exit status is 1 when any sync failed or left a period out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.errors import ArcodexError, ValidationError

if TYPE_CHECKING:
    from arcodex.ingest._sync import SyncPlan, SyncResult

__all__ = ["print_plan", "print_sync", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def print_plan(plan: SyncPlan) -> None:
    """A plan as lines for people: the action, the delta range, then each reason."""
    span = f" {plan.start} to {plan.end} ({len(plan.missing)} periods)" if plan.start else ""
    typer.echo(f"{plan.record_id}: {plan.action.replace('_', ' ')}{span}")
    for reason in plan.reasons:
        typer.echo(f"  {reason}")


def print_sync(result: SyncResult) -> None:
    """What a sync did, as lines for people; failures on stderr."""
    if result.action in ("up_to_date", "not_syncable"):
        print_plan(result.plan)
        return
    line = f"{result.record_id}: {result.action}: {len(result.done)} periods committed"
    if result.failed:
        line += f", {len(result.failed)} failed"
    if result.action == "rematerialize":
        line += (
            f"; switched to release {result.plan.release}, the old one kept as tag "
            f"{result.kept_tag}"
            if result.switched
            else "; not switched, the dataset is as it was"
        )
    if result.check:
        line += f"; check {result.check}"
    typer.echo(line)
    for failure in result.failed:
        typer.echo(f"failed: {failure.period}: {failure.message}", err=True)
    for reason in result.reasons:
        typer.echo(f"note: {reason}", err=True)


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``sync`` to ``app``."""
    ENGINE_COMMANDS.add("sync")

    @command("sync", api=(), engine=True)
    def sync(
        ctx: typer.Context,
        record_id: Annotated[
            str | None,
            typer.Argument(
                metavar="[ID]",
                help="The ingested dataset's record id (TEMPLATE+EXTENT) or a unique prefix.",
                show_default=False,
            ),
        ] = None,
        every: Annotated[
            bool, typer.Option("--all", help="Sync every ingested dataset of the catalog.")
        ] = False,
        plan_only: Annotated[
            bool,
            typer.Option("--plan", help="Only say what would be done (action, periods, reasons)."),
        ] = False,
        end: Annotated[
            str | None,
            typer.Option(
                "--end",
                metavar="DATE",
                help="Sync up to this period (default: now), clamped to the availability.",
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
    ) -> None:
        """Append a dataset's new periods (or rebuild it for a new release) from its provider."""
        from arcodex.cli import _render
        from arcodex.ingest._sync import plan_sync, syncable_ids
        from arcodex.ingest._sync import sync as run

        if every == (record_id is not None):
            raise ValidationError("give a dataset ID or --all (one of them)")
        catalog = state_of(ctx).catalog()
        ids = syncable_ids(catalog) if every else [str(record_id)]
        shown: list[dict[str, Any]] = []
        failed = False
        for rid in ids:
            if plan_only:
                plan = plan_sync(catalog, rid, end=end)
                shown.append(plan.model_dump(mode="json"))
                if not as_json:
                    print_plan(plan)
                continue
            try:
                result = run(catalog, rid, end=end)
            except ArcodexError as exc:
                if not every:
                    raise
                failed = True
                shown.append({"record_id": rid, "error": str(exc)})
                if not as_json:
                    typer.echo(f"{rid}: failed: {exc}", err=True)
                continue
            failed = failed or not result.ok
            shown.append(result.model_dump(mode="json"))
            if not as_json:
                print_sync(result)
        if as_json:
            _render.print_json(shown if every else shown[0])
        elif every and not ids:
            typer.echo("no ingested dataset to sync")
        if failed:
            raise typer.Exit(1)
