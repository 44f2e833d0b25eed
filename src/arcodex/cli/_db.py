"""``arcodex db status|upgrade|copy``: a catalog's database as a whole.

These call :mod:`arcodex.catalog._database` (database_status, upgrade_database,
copy_database), not Catalog methods: they must work on a database the catalog
cannot open yet (an older schema), so the group is listed in ``ENGINE_COMMANDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        metavar="[DATABASE]",
        help="A database URL (sqlite:///PATH, postgresql://USER@HOST/DB) or a catalog "
        "directory; default: the catalog's database (--catalog, $ARCODEX_CATALOG, cwd).",
        show_default=False,
    ),
]


def _target(state: Any, given: str | None) -> str:
    """The database a command means: the one given, else the catalog's (not opened)."""
    if given:
        return given
    from arcodex.catalog import find_catalog_root

    return str(find_catalog_root(state.catalog_path))


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``db`` group to ``app`` (``command`` supplies the CLI's error handling)."""
    group = typer.Typer(
        help="The catalog's database: schema version, upgrade, copy to another database.",
        no_args_is_help=True,
    )

    @command("status", api=(), engine=True, on=group)
    def status(ctx: typer.Context, target: TargetArg = None, as_json: JsonOpt = False) -> None:
        """The database's URL, its schema version beside this arcodex's, and counts."""
        from arcodex.catalog import database_status
        from arcodex.cli._render import print_json

        found = database_status(_target(state_of(ctx), target))
        if as_json:
            print_json(found.to_dict())
            return
        info = found.schema
        typer.echo(f"database: {found.url}")
        if info.up_to_date:
            typer.echo(f"schema: {info.version} (up to date)")
        else:
            n = len(info.pending)
            typer.echo(
                f"schema: {info.version}, this arcodex: {info.code_version}; {n} migration"
                f"{'s' * (n != 1)} pending: run `arcodex db upgrade`"
            )
            for line in info.pending:
                typer.echo(f"  pending {line}")
        if found.records is not None:
            by = ", ".join(f"{v} {k}" for k, v in sorted(found.records_by_status.items()))
            typer.echo(f"records: {found.records}" + (f" ({by})" if by else ""))
        if found.operations is not None:
            typer.echo(f"operations: {found.operations}")
        if found.schemas is not None:
            typer.echo(f"schemas: {found.schemas}")

    @command("upgrade", api=(), engine=True, on=group)
    def upgrade(
        ctx: typer.Context,
        target: TargetArg = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="List the pending migrations; change nothing.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Apply the pending schema migrations, all in one transaction."""
        from arcodex.catalog import upgrade_database
        from arcodex.cli._render import print_json

        result = upgrade_database(_target(state_of(ctx), target), dry_run=dry_run)
        if as_json:
            print_json(result.to_dict())
            return
        if not result.migrations:
            typer.echo(f"{result.url} is up to date (schema {result.version})")
            return
        n = len(result.migrations)
        if dry_run:
            typer.echo(
                f"dry run: would apply {n} migration{'s' * (n != 1)} to {result.url} "
                f"(schema {result.version_before}):"
            )
        else:
            typer.echo(
                f"upgraded {result.url} from schema {result.version_before} to {result.version}:"
            )
        for line in result.migrations:
            typer.echo(f"  {line}")

    @command("copy", api=(), engine=True, on=group)
    def copy(
        ctx: typer.Context,
        source: Annotated[
            str, typer.Argument(metavar="SRC", help="The database to copy: a URL or a catalog.")
        ],
        destination: Annotated[
            str,
            typer.Argument(
                metavar="DEST", help="An empty database (made when missing): a URL or a catalog."
            ),
        ],
        batch: Annotated[
            int, typer.Option("--batch", min=1, help="Records per transaction.")
        ] = 1000,
        as_json: JsonOpt = False,
    ) -> None:
        """Copy a whole catalog database into an empty one, and verify the copy."""
        from arcodex.catalog import copy_database
        from arcodex.cli._convert import convert_progress
        from arcodex.cli._render import print_json

        with convert_progress(not as_json) as progress:
            result = copy_database(source, destination, batch=batch, progress=progress)
        if as_json:
            print_json(result.to_dict())
            return
        typer.echo(
            f"copied {result.records} records, {result.operations} operations, "
            f"{result.schemas} schemas, {result.users} users and {result.tokens} tokens "
            f"from {result.source} to {result.destination} in "
            f"{result.seconds:.1f}s; verified (sha256 {result.sha256[:16]})"
        )
        typer.echo(
            "no arcodex.yaml was changed: to use the copy, set `database_url: "
            f"{result.destination}` in the catalog's arcodex.yaml (or $ARCODEX_DATABASE_URL)"
        )

    app.add_typer(group, name="db")
    ENGINE_COMMANDS.add("db")
