"""``arcodex stac validate`` and ``arcodex stac export``: a command group over :mod:`arcodex.stac`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS

__all__ = ["register"]


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``stac`` group to ``app`` (``command`` supplies the CLI's error handling)."""
    group = typer.Typer(
        help="Describe the catalog as STAC: validate, export.", no_args_is_help=True
    )

    @command("validate", api=(), engine=True, on=group)
    def validate(
        ctx: typer.Context,
        target: Annotated[
            str | None,
            typer.Argument(
                help="A record id, a STAC file or directory, or a URL; default: every dataset."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Validate STAC offline: core STAC schemas, then the arcodex metadata profile."""
        from arcodex.stac import load_profile, validate_stac

        state = state_of(ctx)
        docs, profile_path = _documents(state, target)
        report = validate_stac(docs, profile=load_profile(profile_path))
        _print_report(report.to_dict(), as_json)
        if not report.valid:
            raise typer.Exit(1)

    @command("export", api=(), engine=True, on=group)
    def export(
        ctx: typer.Context,
        dest: Annotated[str, typer.Argument(help="A directory, or a URL (s3://…) with --profile.")],
        check: Annotated[
            bool,
            typer.Option(
                "--check",
                help="Write nothing; exit 1 if the published catalog is stale or invalid.",
            ),
        ] = False,
        profile: Annotated[
            str | None,
            typer.Option("--profile", help="Write with this storage profile's credentials."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Write a self-contained static STAC catalog of every dataset (only what changed)."""
        from arcodex.cli._render import console, print_json
        from arcodex.stac import export_stac

        cat = state_of(ctx).catalog()
        options: dict[str, Any] = {}
        if profile:
            store = cat.storage(profile)
            options = dict(getattr(getattr(store, "fs", None), "storage_options", {}) or {})
        result = export_stac(
            cat, dest, storage_options=options, check=check, profile_path=_profile_path(cat)
        )
        if as_json:
            print_json(result.to_dict())
        else:
            out = console()
            verb = "would write" if check else "wrote"
            out.print(
                f"{verb} {len(result.written)}, unchanged {result.unchanged}, "
                f"{'would remove' if check else 'removed'} {len(result.removed)} — {result.dest}"
            )
            for problem in result.report.problems:
                out.print(f"  invalid: {problem.id} {problem.path}: {problem.message}")
        if not result.ok:
            raise typer.Exit(1)

    app.add_typer(group, name="stac")
    ENGINE_COMMANDS.add("stac")


def _profile_path(cat: Any) -> str | None:
    configured = cat.config.stac_profile
    if not configured:
        return None
    path = Path(configured)
    return str(path if path.is_absolute() else cat.root / path)


def _documents(state: Any, target: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The STAC documents to validate, and the catalog's profile (if there is a catalog)."""
    import pystac

    from arcodex.errors import NotFoundError

    if target and ("://" in target or Path(target).exists()):
        path = Path(target)
        href = str(path / "catalog.json") if path.is_dir() else target
        obj = pystac.read_file(href)
        docs = [obj.to_dict(include_self_link=False)]
        if isinstance(obj, pystac.Catalog):
            docs += [c.to_dict(include_self_link=False) for c in obj.get_all_collections()]
            docs += [i.to_dict(include_self_link=False) for i in obj.get_items(recursive=True)]
        try:
            profile = _profile_path(state.catalog())
        except NotFoundError:
            profile = None
        return docs, profile
    from arcodex.stac import build_documents, stac_for

    cat = state.catalog()
    if target:
        record = cat.get(target)
        collection, item = stac_for(record, cat)
        collection.normalize_hrefs(f"/arcodex-stac/{record.id}")
        docs = [
            collection.to_dict(include_self_link=False, transform_hrefs=False),
            item.to_dict(include_self_link=False, transform_hrefs=False),
        ]
    else:
        docs = list(build_documents(cat).values())
    return docs, _profile_path(cat)


def _print_report(data: dict[str, Any], as_json: bool) -> None:
    from arcodex.cli._render import console, print_json

    if as_json:
        print_json(data)
        return
    out = console()
    verdict = "valid" if data["valid"] else "invalid"
    out.print(f"{verdict}: {data['checked']} documents, {len(data['problems'])} problems")
    for problem in data["problems"]:
        out.print(f"  {problem['schema']}: {problem['id']} {problem['path']}: {problem['message']}")
