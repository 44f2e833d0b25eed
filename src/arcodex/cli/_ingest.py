"""``arcodex ingest-files INPUT… [--manifest FILE]``: many files, registered in resumable
batches (``Catalog.ingest_files``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from arcodex.cli._options import (
    InPlaceOpt,
    KindOpt,
    MetaOpt,
    NoExtractOpt,
    PolicyOpt,
    ProfileOpt,
    RequireMetadataOpt,
    SchemaOpt,
    TagOpt,
)
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import IngestResult

__all__ = ["print_ingest", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
EXIT_ERROR = 1


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add ``ingest-files`` to ``app``."""

    @command("ingest-files", api=("ingest_files",))
    def ingest_files(
        ctx: typer.Context,
        inputs: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="[INPUT]...",
                help="Files, globs (quote them; ** recurses) and directories (every file "
                "under them, hidden ones left out).",
                show_default=False,
            ),
        ] = None,
        manifest: Annotated[
            list[str] | None,
            typer.Option(
                "--manifest",
                "-f",
                metavar="FILE",
                help="A list of files: text, one path or glob per line; or CSV with a path "
                "column and optional title, kind, tags (a;b) and metadata columns (repeatable).",
            ),
        ] = None,
        meta: MetaOpt = None,
        tag: TagOpt = None,
        kind: KindOpt = None,
        in_place: InPlaceOpt = False,
        no_extract: NoExtractOpt = False,
        profile: ProfileOpt = None,
        schema: SchemaOpt = None,
        schema_policy: PolicyOpt = None,
        require_metadata: RequireMetadataOpt = False,
        by_hash: Annotated[
            bool,
            typer.Option(
                "--by-hash",
                help="Also skip files whose content (sha256) the catalog holds (reads each file).",
            ),
        ] = False,
        continue_on_error: Annotated[
            bool,
            typer.Option(
                "--continue-on-error",
                help="Set a failing file aside with its reason and go on (default: stop at the "
                "first batch with a failure; the batches before it stay).",
            ),
        ] = False,
        batch_size: Annotated[
            int,
            typer.Option(
                "--batch-size", min=1, help="Files per batch; each batch commits as one unit."
            ),
        ] = 500,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Change nothing: say what would be added, skipped (and why) and refused.",
            ),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        ids_only: Annotated[
            bool, typer.Option("--ids", help="Print only the ids of the records added.")
        ] = False,
    ) -> None:
        """Register many files as `add` does, in batches: resumable (files the catalog holds
        are skipped), with a summary; exit 1 if any file failed."""
        from arcodex.cli._convert import convert_progress
        from arcodex.cli._parse import nest, parse_assignments

        if as_json and ids_only:
            raise ValidationError("--json and --ids print different things; pass one of them")
        if ids_only and dry_run:
            raise ValidationError("--ids does not apply to --dry-run; use --json or the text")
        metadata = nest(parse_assignments(meta or (), "--meta"))
        catalog = state_of(ctx).catalog()
        with convert_progress(not as_json and not ids_only) as bar:
            result = catalog.ingest_files(
                list(inputs or ()),
                manifests=list(manifest or ()),
                kind=kind,
                metadata=metadata,
                tags=list(tag or ()),
                in_place=in_place,
                extract=not no_extract,
                profile=profile,
                schema=schema,
                schema_policy=schema_policy,
                require_metadata=require_metadata,
                by_hash=by_hash,
                continue_on_error=continue_on_error,
                batch_size=batch_size,
                dry_run=dry_run,
                progress=(lambda done, total: bar("ingest", done, total)) if bar else None,
            )
        print_ingest(result, as_json=as_json, ids_only=ids_only)
        if not result.ok:
            raise typer.Exit(EXIT_ERROR)


def print_ingest(result: IngestResult, *, as_json: bool = False, ids_only: bool = False) -> None:
    """The summary of an ingest: JSON, the ids added, or lines for people."""
    from arcodex.cli import _render

    if as_json:
        _render.print_json(result.to_dict())
        return
    if ids_only:
        for record_id in result.record_ids:
            typer.echo(record_id)
        return
    # Plain lines (never wrapped): one per file, for people and for grep.
    out = typer.echo
    would = "would " if result.dry_run else ""
    if result.dry_run:
        for item in result.added:
            out(f"would add {item.path} -> {item.location}")
        for item in result.skipped:
            out(f"would skip {item.path}: {item.reason}")
    for item in result.failed:
        out(f"{would}fail {item.path}: {item.reason}")
    counts = result.counts
    if result.dry_run:
        line = (
            f"dry run: would add {counts['added']}, would skip {counts['skipped']}, "
            f"would fail {counts['failed']}"
        )
    else:
        line = f"added {counts['added']}, skipped {counts['skipped']}, failed {counts['failed']}"
    if result.pending:
        line += (
            f"; stopped: {counts['pending']} files not tried (the batches before the failure "
            "are committed); fix the failure and run again, or pass --continue-on-error"
        )
    out(line + f" ({result.seconds:.1f} s)")
