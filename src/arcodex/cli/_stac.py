"""``arcodex stac validate|export`` and ``arcodex stac schemas fetch|list``: a command group over
:mod:`arcodex.stac`."""

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
        help="Describe the catalog as STAC: validate, export, cache extension schemas.",
        no_args_is_help=True,
    )
    schemas = typer.Typer(
        help="The offline cache of STAC extension schemas that validation uses.",
        no_args_is_help=True,
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
        strict_extensions: Annotated[
            bool,
            typer.Option(
                "--strict-extensions",
                help="An extension whose schema is not cached is a problem, not a notice.",
            ),
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
    ) -> None:
        """Validate STAC offline: core STAC, cached extension schemas, the arcodex profile."""
        from arcodex.stac import catalog_schema_cache, load_profile, validate_stac

        docs, cat = _documents(state_of(ctx), target)
        report = validate_stac(
            docs,
            profile=load_profile(_profile_path(cat)),
            schema_cache=catalog_schema_cache(cat),
            strict_extensions=strict_extensions,
        )
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
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
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
                out.print(
                    f"  invalid: {problem.id} {problem.path}: {problem.message}", markup=False
                )
            _print_notices(result.to_dict()["notices"])
        if not result.ok:
            raise typer.Exit(1)

    @command("fetch", api=(), engine=True, on=schemas)
    def fetch(
        ctx: typer.Context,
        uris: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="[URI]...",
                help="More schema URIs to cache, besides the extensions arcodex writes.",
            ),
        ] = None,
        mirror: Annotated[
            str | None,
            typer.Option(
                "--mirror",
                metavar="URL",
                help="Fetch from this URL instead of https://stac-extensions.github.io/ "
                "(a mirror of it).",
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
    ) -> None:
        """Download the extension schemas into the cache, for offline validation."""
        from arcodex.cli._render import console, print_json
        from arcodex.stac import catalog_schema_cache, fetch_schemas

        cache = catalog_schema_cache(_catalog_or_none(state_of(ctx)))
        fetched = fetch_schemas(uris or (), cache=cache, mirror=mirror)
        if as_json:
            print_json({"cache": str(cache), "fetched": [s.to_dict() for s in fetched]})
            return
        out = console()
        out.print(f"fetched {len(fetched)} schemas into {cache}")
        for schema in fetched:
            out.print(f"  {schema.uri}")

    @command("list", api=(), engine=True, on=schemas)
    def list_(
        ctx: typer.Context,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of text.")
        ] = False,
    ) -> None:
        """The extension schemas arcodex writes and every cached one: cached or not, and where."""
        from arcodex.cli._render import console, print_json
        from arcodex.stac import cached_schemas, catalog_schema_cache
        from arcodex.stac._schemas import FETCH_HINT

        cache = catalog_schema_cache(_catalog_or_none(state_of(ctx)))
        found = cached_schemas(cache=cache)
        if as_json:
            print_json({"cache": str(cache), "schemas": [s.to_dict() for s in found]})
            return
        out = console()
        out.print(f"cache: {cache}")
        for schema in found:
            out.print(f"  {'cached ' if schema.cached else 'missing'} {schema.uri}")
        if not all(schema.cached for schema in found):
            out.print(f"{FETCH_HINT} to cache the missing ones")

    group.add_typer(schemas, name="schemas")
    app.add_typer(group, name="stac")
    ENGINE_COMMANDS.add("stac")


def _profile_path(cat: Any) -> str | None:
    configured = cat.config.stac_profile if cat is not None else None
    if not configured:
        return None
    path = Path(configured)
    return str(path if path.is_absolute() else cat.root / path)


def _catalog_or_none(state: Any) -> Any:
    """The catalog the command means, or None where there is none (a STAC file needs none)."""
    return state.catalog_or_none()


def _documents(state: Any, target: str | None) -> tuple[list[dict[str, Any]], Any]:
    """The STAC documents to validate, and the catalog (None for a file outside any)."""
    import pystac

    if target and ("://" in target or Path(target).exists()):
        path = Path(target)
        href = str(path / "catalog.json") if path.is_dir() else target
        obj = pystac.read_file(href)
        docs = [obj.to_dict(include_self_link=False)]
        if isinstance(obj, pystac.Catalog):
            docs += [c.to_dict(include_self_link=False) for c in obj.get_all_collections()]
            docs += [i.to_dict(include_self_link=False) for i in obj.get_items(recursive=True)]
        return docs, _catalog_or_none(state)
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
    return docs, cat


def _print_report(data: dict[str, Any], as_json: bool) -> None:
    from arcodex.cli._render import console, print_json

    if as_json:
        print_json(data)
        return
    out = console()
    verdict = "valid" if data["valid"] else "invalid"
    out.print(f"{verdict}: {data['checked']} documents, {len(data['problems'])} problems")
    for problem in data["problems"]:
        out.print(
            f"  {problem['schema']}: {problem['id']} {problem['path']}: {problem['message']}",
            markup=False,
        )
    _print_notices(data["notices"])


def _print_notices(notices: list[dict[str, str]]) -> None:
    """Each notice once, with the schemas it concerns (not once per document)."""
    from arcodex.cli._render import console

    by_message: dict[str, list[str]] = {}
    for notice in notices:
        by_message.setdefault(notice["message"], []).append(_short(notice["schema"]))
    out = console()
    for message, schemas in by_message.items():
        out.print(f"notice: {message} ({', '.join(schemas)})")


def _short(uri: str) -> str:
    """``datacube/v2.2.0`` for an official extension schema URI; other URIs whole."""
    from arcodex.stac._schemas import OFFICIAL_SCHEMAS

    if uri.startswith(OFFICIAL_SCHEMAS) and uri.endswith("/schema.json"):
        return uri[len(OFFICIAL_SCHEMAS) : -len("/schema.json")]
    return uri
