"""The ``arcodex`` Typer app: every command is one call of the public Catalog API.

Each command is registered with :func:`command`, which records the Catalog
methods it calls in :data:`COMMAND_METHODS` (checked by the parity tests) and
turns errors into one line on stderr: ``error: …`` and exit 1 for an
:class:`~arcodex.errors.ArcodexError`, ``internal error: …`` and exit 70 for
anything else; ``--debug`` (before or after the command) adds the traceback.
Usage errors (an unknown option, a missing argument, a bad choice) are one
``error: …`` line too, with exit 2.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec

import typer
from typer.core import TyperGroup

from arcodex import __version__
from arcodex.cli import (
    _convert,
    _db,
    _discover,
    _group,
    _ingest,
    _ingest_run,
    _plugins,
    _run,
    _schema,
    _stac,
    _store,
    _sync,
    _templates,
    _users,
)
from arcodex.cli._options import (
    IdsOpt,
    InPlaceOpt,
    JsonOpt,
    KindOpt,
    MetaOpt,
    NoExtractOpt,
    PolicyOpt,
    ProfileOpt,
    RequireMetadataOpt,
    SchemaOpt,
    TagOpt,
)
from arcodex.errors import ArcodexError, NotACatalogError, ValidationError

try:  # typer 0.2x vendors its own click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - typer on the click package
    from click import exceptions as click_errors  # type: ignore[no-redef]


if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Query, Record

__all__ = ["COMMAND_METHODS", "EXIT_ERROR", "EXIT_INTERNAL", "app", "main"]

P = ParamSpec("P")

EXIT_ERROR = 1
#: EX_SOFTWARE from sysexits.h: a bug in arcodex, not in what the user asked.
EXIT_INTERNAL = 70
#: Same as arcodex.catalog.ENV_CATALOG (kept here so `arcodex --help` needs no pydantic).
ENV_CATALOG = "ARCODEX_CATALOG"

#: CLI command -> the public Catalog methods it calls (CLI/API parity, see tests).
COMMAND_METHODS: dict[str, tuple[str, ...]] = {}
#: Usage errors (click's code), as opposed to EXIT_ERROR for what arcodex refuses.
EXIT_USAGE = 2
CONFIG_FILE = "arcodex.yaml"


class _Root(TyperGroup):
    """The ``arcodex`` group: a usage error is one line on stderr, like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main,
            args,
            prog_name,
            complete_var,
            standalone_mode=False,
            windows_expand_args=windows_expand_args,
            **extra,
        )
        if not standalone_mode:
            return run()
        try:
            code = run()
        except click_errors.NoArgsIsHelpError as exc:
            # The help has been printed (rich prints it while the error is made).
            if exc.format_message().strip():
                typer.echo(exc.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click_errors.ClickException as exc:
            typer.echo(
                usage_line(exc, self._path(sys.argv[1:] if args is None else args)), err=True
            )
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted; nothing was changed", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else 0)

    def _path(self, args: Sequence[str]) -> list[str]:
        """The (sub)command names ``args`` call, for errors that do not say (click's own)."""
        names: list[str] = []
        command: Any = self
        for arg in args:
            commands = getattr(command, "commands", None)
            # Anything else is an option, an option's value or an argument.
            if isinstance(commands, dict) and arg in commands:
                names.append(arg)
                command = commands[arg]
        return names


def usage_line(exc: Any, path: Sequence[str] = ()) -> str:
    """A click usage error as one ``error: …`` line naming the command and its --help.

    ``path`` names the command when the error carries no context.
    """
    ctx = getattr(exc, "ctx", None)
    names: list[str] = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    where = " ".join(["arcodex", *(reversed(names[:-1]) if names else path)])
    if isinstance(exc, click_errors.NoSuchOption):
        text = f"no such option {exc.option_name!r} for {where!r}"
        if exc.possibilities:
            text += f" (did you mean {' or '.join(sorted(exc.possibilities))}?)"
        return f"error: {text}; run '{where} --help'"
    text = _one_line(exc.format_message()).removesuffix(".")
    suggestion = ""
    found = re.search(r"\.?\s*Did you mean (.+?)\??$", text)
    if found:
        text, suggestion = text[: found.start()], f" (did you mean {found[1]}?)"
    # Typer wraps its choice check in a pydantic-style message.
    text = text.replace("Value error, ", "")
    text = text[:1].lower() + text[1:]
    if isinstance(exc, click_errors.MissingParameter) or text.startswith("no such command"):
        text += f" for {where!r}"
    return f"error: {text}{suggestion}; run '{where} --help'"


app = typer.Typer(
    name="arcodex",
    help="Catalog archival Earth-science files and find them again.",
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class _State:
    """What the global options say, and the catalog once a command opens it."""

    catalog_path: Path | None = None
    debug: bool = False
    _catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        """The catalog the command means (``--catalog``, ``$ARCODEX_CATALOG``, cwd upwards)."""
        if self._catalog is None:
            from arcodex.catalog import open_catalog

            if self.catalog_path is not None:
                _check_catalog_option(self.catalog_path)
            self._catalog = open_catalog(self.catalog_path)
        return self._catalog

    def catalog_or_none(self) -> Catalog | None:
        """The catalog, or None when nothing names one and there is none upwards.

        A catalog named by ``--catalog`` or ``$ARCODEX_CATALOG`` that cannot be
        opened is an error, never silently no catalog.
        """
        if self.catalog_path is None and not os.environ.get(ENV_CATALOG):
            from arcodex.catalog import find_catalog_root

            try:
                find_catalog_root()
            except NotACatalogError:
                return None
        return self.catalog()

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def _check_catalog_option(path: Path) -> None:
    root = path.expanduser().resolve()
    if (root / CONFIG_FILE).is_file():
        return
    if not root.exists():
        why = "no such directory"
    elif not root.is_dir():
        why = "a file, not a directory"
    else:
        why = f"no {CONFIG_FILE} in it"
    raise NotACatalogError(
        f"--catalog {path} is not an arcodex catalog ({why}); pass the right --catalog PATH, "
        f"or run `arcodex init {path}` to make one"
    )


def _state(ctx: typer.Context) -> _State:
    state = ctx.find_object(_State)
    if state is None:  # a command invoked without the root callback (not via the app)
        state = ctx.ensure_object(_State)
    return state


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def _fail(debug: bool, exc: BaseException, line: str, code: int) -> NoReturn:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    typer.echo(line, err=True)
    raise typer.Exit(code)


#: Every command takes ``--debug`` after its name too (``arcodex search … --debug``).
DEBUG_PARAM = "arcodex_debug"
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show the traceback of an error (also before the command)."),
]


def _with_debug_option(fn: Callable[..., None], run: Callable[..., None]) -> None:
    """Give ``run`` (the wrapper of ``fn``) fn's parameters plus ``--debug``, for Typer."""
    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())
    extra = inspect.Parameter(
        DEBUG_PARAM, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOpt
    )
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        params.insert(len(params) - 1, extra)
    else:
        params.append(extra)
    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {**fn.__annotations__, DEBUG_PARAM: DebugOpt}


def command(
    name: str,
    *,
    api: tuple[str, ...],
    engine: bool = False,
    on: typer.Typer | None = None,
    group: str | None = None,
    hidden: bool = False,
) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Register a command that calls the Catalog methods ``api``, with arcodex error handling.

    ``engine`` commands call the conversion engine or STAC, not the catalog, and stay out
    of the parity map; ``on`` registers the command in a group instead of the top level,
    and ``group`` (that group's name) keys it in the parity map as ``"GROUP NAME"``.
    ``hidden`` commands (old names kept for a release) are left out of ``--help``.
    """

    def register(fn: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            # Typer passes the context by keyword (as its base click class, hence duck typing).
            find = getattr(kwargs.get("ctx"), "find_object", None)
            state = find(_State) if callable(find) else None
            debug = bool(kwargs.pop(DEBUG_PARAM, False))
            if state is not None:
                state.debug = state.debug or debug
                debug = state.debug
            try:
                fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
                raise
            except ArcodexError as exc:
                _fail(debug, exc, f"error: {_one_line(exc)}", EXIT_ERROR)
            except Exception as exc:
                _fail(
                    debug,
                    exc,
                    f"internal error: {type(exc).__name__}: {_one_line(exc)} "
                    "(run again with --debug and report it)",
                    EXIT_INTERNAL,
                )
            finally:
                if state is not None:
                    state.close()
                _plugins.print_notices()

        _with_debug_option(fn, run)
        key = f"{group} {name}" if group else name
        if (on is None or group) and key in COMMAND_METHODS:
            raise ValueError(f"command {key!r} is registered twice")
        if not engine:
            COMMAND_METHODS[key] = api
        (on or app).command(name, hidden=hidden)(run)
        return fn

    return register


def _version(value: bool) -> None:
    if value:
        typer.echo(f"arcodex {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            "-C",
            metavar="PATH",
            help=f"Catalog directory (default: ${ENV_CATALOG}, else the nearest one upwards).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Catalog archival Earth-science files and find them again."""
    ctx.obj = _State(catalog_path=catalog, debug=debug)


# -- shared options ---------------------------------------------------------------

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Record id, or a unique prefix of one.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _record_json(record: Record) -> dict[str, Any]:
    return record.model_dump(mode="json")


def _no_json_and_ids(as_json: bool, ids_only: bool) -> None:
    if as_json and ids_only:
        raise ValidationError("--json and --ids print different things; pass one of them")


def _confirm_purge(record: Record, yes: bool) -> None:
    if yes:
        return
    what = f"record {record.id} ({record.title or 'untitled'}) and the files arcodex stored for it"
    if not _interactive():
        raise ValidationError(f"purging removes {what}, for good; pass --yes to confirm")
    if not typer.confirm(f"Remove {what}, for good?", default=False, err=True):
        raise typer.Exit(EXIT_ERROR)


def _interactive() -> bool:
    return sys.stdin.isatty()


# -- commands ---------------------------------------------------------------------


@command("init", api=("create", "info"))
def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help=f"Directory for the new catalog (default: --catalog, ${ENV_CATALOG}, "
            "else the current directory)."
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="Keep the records in this database (postgresql://USER@HOST:PORT/DATABASE"
            "?schema=NAME), written to arcodex.yaml; the password goes in PGPASSWORD,"
            " ~/.pgpass or ARCODEX_DATABASE_PASSWORD, never in the URL.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a new, empty catalog."""
    from arcodex.catalog import Catalog

    state = _state(ctx)
    env = os.environ.get(ENV_CATALOG)
    target = path or state.catalog_path or (Path(env) if env else Path.cwd())
    config = None
    if database is not None:
        from arcodex.backends._postgres_url import PASSWORD_IN_URL, split_password
        from arcodex.catalog import CatalogConfig

        if split_password(database)[1] is not None:
            raise ValidationError(PASSWORD_IN_URL)
        config = CatalogConfig(database_url=database)
    with Catalog.create(target, config=config) as catalog:
        info = catalog.info()
    if as_json:
        from arcodex.cli._render import print_json

        print_json(info.to_dict())
        return
    typer.echo(f"created an arcodex catalog in {info.root}")
    typer.echo(
        f"next: arcodex --catalog {info.root} add FILE…  (or cd there, or set {ENV_CATALOG})"
    )


@command("add", api=("add_files", "add_externals", "plan_add"))
def add(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE", help="Files to add (URIs with --external).", show_default=False
        ),
    ],
    meta: MetaOpt = None,
    tag: TagOpt = None,
    kind: KindOpt = None,
    title: Annotated[str | None, typer.Option(help="Title (default: from the file).")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    record_id: Annotated[
        list[str] | None, typer.Option("--id", help="Record id, one per file, in order.")
    ] = None,
    in_place: InPlaceOpt = False,
    no_extract: NoExtractOpt = False,
    profile: ProfileOpt = None,
    schema: SchemaOpt = None,
    schema_policy: PolicyOpt = None,
    require_metadata: RequireMetadataOpt = False,
    external: Annotated[
        bool,
        typer.Option(
            "--external", help="Register URIs arcodex does not manage (nothing is fetched)."
        ),
    ] = False,
    allow_duplicate: Annotated[
        bool,
        typer.Option(
            "--allow-duplicate",
            help="Add a file the catalog holds already (same content, or the same path or URI "
            "registered) as another record; default: refuse, naming the record.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Change nothing: say what each file would become, where it would go, "
            "and what would be refused.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    ids_only: IdsOpt = False,
) -> None:
    """Add files (or external URIs) as records."""
    from arcodex.cli._parse import nest, parse_assignments

    _no_json_and_ids(as_json, ids_only)
    metadata = nest(parse_assignments(meta or (), "--meta"))
    tags = list(tag or ())
    ids = list(record_id or ())
    if ids and len(ids) != len(files):
        raise ValidationError(
            f"{len(ids)} --id given for {len(files)} files; give one --id per file"
        )
    catalog = _state(ctx).catalog()
    if external:
        for flag, used in (
            ("--in-place", in_place),
            ("--no-extract", no_extract),
            ("--profile", profile),
        ):
            if used:
                raise ValidationError(f"{flag} does not apply to --external URIs; drop it")
    # What every form of add takes; files (not URIs) also take the rest.
    given: dict[str, Any] = {
        "metadata": metadata,
        "tags": tags,
        "title": title,
        "description": description,
        "record_ids": ids or None,
        "schema": schema,
        "schema_policy": schema_policy,
        "allow_duplicate": allow_duplicate,
    }
    for_files: dict[str, Any] = {
        "in_place": in_place,
        "extract": not no_extract,
        "profile": profile,
        "require_metadata": require_metadata,
    }
    if dry_run:
        from arcodex.cli._run import print_run

        if ids_only:
            raise ValidationError("--ids does not apply to --dry-run; use --json or the text")
        run = catalog.plan_add(files, external=external, kind=kind, **given, **for_files)
        print_run(run, as_json)
        if run.refusals:
            raise typer.Exit(EXIT_ERROR)
        return
    if external:
        records = catalog.add_externals(files, kind=kind or "external", **given)
    else:
        records = catalog.add_files(files, kind=kind, **given, **for_files)
    _print_records(
        records,
        as_json=as_json,
        ids_only=ids_only,
        title=f"added {len(records)} record{'' if len(records) == 1 else 's'}",
    )


def _print_records(
    records: list[Record],
    *,
    as_json: bool,
    ids_only: bool,
    title: str | None = None,
    next_cursor: str | None = None,
    query: Query | None = None,
) -> None:
    from arcodex.cli import _render

    if as_json:
        _render.print_json(
            {"records": [_record_json(r) for r in records], "next_cursor": next_cursor}
        )
        return
    if ids_only:
        for record in records:
            typer.echo(record.id)
        if next_cursor:
            typer.echo(f"more results: pass --cursor {next_cursor}", err=True)
        return
    from arcodex.model import RECORD_FIELDS

    wanted: list[str] = []
    if query is not None:
        wanted = [c.metadata_path for c in query.conditions if c.metadata_path]
        wanted += [
            k.field.removeprefix("metadata.") for k in query.sort if k.field not in RECORD_FIELDS
        ]
    _render.print_records(records, wanted_metadata=wanted, title=title)
    if next_cursor:
        typer.echo(f"more results: run the same search with --cursor {next_cursor}")


@command("search", api=("search", "count"))
def search(
    ctx: typer.Context,
    terms: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TERMS",
            help="Conditions like site=MHD 'year>=2020' tag=ch4 'title~Mace*' doi:exists.",
            show_default=False,
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(help="Full text: every word must appear; a trailing * matches a prefix."),
    ] = None,
    bbox: Annotated[
        str | None,
        typer.Option(
            metavar="W,S,E,N",
            help="Bounding box in degrees the record's bbox intersects (W > E crosses 180°).",
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            metavar="START/END",
            help="Time range the record's overlaps: 2020-01/2021-06, 2020/.., ../2021 or 2020.",
        ),
    ] = None,
    sort: Annotated[
        list[str] | None,
        typer.Option(metavar="[-]FIELD", help="Sort key(s); -FIELD for descending."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Records per page.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    count: Annotated[bool, typer.Option("--count", help="Print how many records match.")] = False,
    as_json: JsonOpt = False,
    ids_only: IdsOpt = False,
) -> None:
    """Find records."""
    from arcodex.model import Query

    _no_json_and_ids(as_json, ids_only)
    catalog = _state(ctx).catalog()
    if count:
        if ids_only:
            raise ValidationError("--count prints a number; drop --ids")
        n = catalog.count(list(terms or ()), text=text, bbox=bbox, time=time)
        if as_json:
            from arcodex.cli._render import print_json

            print_json({"count": n})
        else:
            typer.echo(str(n))
        return
    # Parsed here too so that the table can show the metadata keys the user asked about.
    query = Query.parse(
        list(terms or ()), text=text, bbox=bbox, time=time, sort=sort, limit=limit, cursor=cursor
    )
    page = catalog.search(query)
    _print_records(
        page.records, as_json=as_json, ids_only=ids_only, next_cursor=page.next_cursor, query=query
    )


@command("show", api=("get", "locate"))
def show(ctx: typer.Context, record_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show one record."""
    from arcodex.cli import _render

    catalog = _state(ctx).catalog()
    record = catalog.get(record_id)
    if as_json:
        _render.print_json(_record_json(record))
    else:
        _render.print_record(record, catalog.locate)


@command("path", api=("get", "path"))
def path(
    ctx: typer.Context,
    record_id: IdArg,
    role: Annotated[str, typer.Option(help="Artifact role.")] = "primary",
    as_json: JsonOpt = False,
) -> None:
    """Print where a record's artifact lives (a local path or a URI)."""
    catalog = _state(ctx).catalog()
    record = catalog.get(record_id)
    where = catalog.path(record.id, role=role)
    if as_json:
        from arcodex.cli._render import print_json

        print_json({"id": record.id, "role": role, "path": where})
    else:
        typer.echo(where)


@command("update", api=("update",))
def update(
    ctx: typer.Context,
    record_id: Annotated[
        str, typer.Argument(help="A record id (or prefix); with SOURCES, a product path or id.")
    ],
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Bring the product up to date with these files (see `convert`)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", metavar="KEY=VALUE", help="Set metadata at a dotted path."),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", metavar="KEY", help="Remove metadata at a dotted path."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Add a tag.")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove a tag.")] = None,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    kind: Annotated[str | None, typer.Option(help="New kind.")] = None,
    status: Annotated[
        str | None, typer.Option(help="New status: active, planned, failed or deprecated.")
    ] = None,
    expected_version: Annotated[
        int | None,
        typer.Option(
            "--expected-version", metavar="N", help="Fail if the record is not at version N."
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="With SOURCES, the Dask cluster: local (default), threads, tcp://HOST:PORT, "
            "slurm or pbs.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="With SOURCES: workers of a local cluster; default: the cores."
        ),
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="With SOURCES: skip the product check.")
    ] = False,
    dest_profile: Annotated[
        str | None,
        typer.Option(
            "--dest-profile", help="With SOURCES: reach an s3:// product with this profile."
        ),
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec", metavar="FILE", help="Update a product from a convert spec (its sources)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With SOURCES: plan the update, write nothing."),
    ] = False,
    print_spec: Annotated[
        bool, typer.Option("--print-spec", help="With SOURCES: print the resolved spec.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a record's metadata, tags, title, description, kind or status.

    With SOURCES, update a converted product instead: append new steps, rewrite
    changed sources, add variables (`arcodex update PRODUCT new/*.nc`).
    """
    from arcodex.cli._parse import parse_assignments, parse_paths

    if sources or spec_file:
        _convert.update_product(
            ctx,
            _state(ctx),
            record_id,
            sources,
            spec_file=spec_file,
            dry_run=dry_run,
            print_spec=print_spec,
            as_json=as_json,
        )
        return
    if dry_run or print_spec:
        raise ValidationError("--dry-run and --print-spec need SOURCES (or --spec FILE)")

    changes = parse_assignments(set_ or (), "--set")
    removals = parse_paths(unset or (), "--unset")
    if not (changes or removals or tag or untag) and all(
        v is None for v in (title, description, kind, status)
    ):
        raise ValidationError(
            "nothing to change; pass --set, --unset, --tag, --untag, --title, --description, "
            "--kind or --status"
        )
    both = set(changes) & set(removals)
    if both:
        raise ValidationError(f"{sorted(both)[0]!r} is both --set and --unset; pick one")
    record = (
        _state(ctx)
        .catalog()
        .update(
            record_id,
            set=changes,
            unset=removals,
            add_tags=list(tag or ()),
            remove_tags=list(untag or ()),
            title=title,
            description=description,
            kind=kind,
            status=status,
            expected_version=expected_version,
        )
    )
    _print_record_result(record, as_json, f"updated {record.id} (version {record.version})")


def _print_record_result(record: Record, as_json: bool, line: str) -> None:
    if as_json:
        from arcodex.cli._render import print_json

        print_json(_record_json(record))
    else:
        typer.echo(line)


@command("delete", api=("get", "delete"))
def delete(
    ctx: typer.Context,
    record_id: IdArg,
    purge: Annotated[
        bool, typer.Option("--purge", help="Remove the record and its stored files for good.")
    ] = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a record (restorable), or with --purge remove it for good."""
    catalog = _state(ctx).catalog()
    target = record_id
    if purge:
        found = catalog.get(record_id)
        _confirm_purge(found, yes)
        target = found.id
    record = catalog.delete(target, purge=purge)
    if purge:
        _print_record_result(record, as_json, f"purged {record.id}")
    else:
        _print_record_result(
            record, as_json, f"deleted {record.id} (undo with `arcodex restore {record.id}`)"
        )


@command("restore", api=("restore",))
def restore(ctx: typer.Context, record_id: IdArg, as_json: JsonOpt = False) -> None:
    """Bring back a deleted record."""
    record = _state(ctx).catalog().restore(record_id)
    _print_record_result(record, as_json, f"restored {record.id} (status {record.status})")


@command("publish", api=("get", "publish"))
def publish(
    ctx: typer.Context,
    record_ids: Annotated[
        list[str],
        typer.Argument(metavar="ID...", help="Record ids, or unique prefixes of them."),
    ],
    tag: Annotated[
        str | None, typer.Option("--tag", help="Serve this tag of an Icechunk product.")
    ] = None,
    visibility: Annotated[
        str | None,
        typer.Option("--visibility", help="public, private or project:NAME (default: kept)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish datasets (products whose check passed, catalogued files), so that readers
    may see them. Every one is checked before any is published: one refused, none is.
    With --json, the record (a list of them when several ids are given)."""
    from arcodex.catalog._access import check_visibility
    from arcodex.catalog._publishing import publishable

    catalog = _state(ctx).catalog()
    if visibility is not None:
        check_visibility(visibility)
    found = [publishable(catalog.get(record_id), tag) for record_id in record_ids]
    done = [catalog.publish(record.id, tag=tag, visibility=visibility) for record in found]
    if as_json:
        from arcodex.cli._render import print_json

        print_json(_record_json(done[0]) if len(done) == 1 else [_record_json(r) for r in done])
        return
    for record in done:
        access = record.metadata["access"]
        served = f", snapshot {access['snapshot']}" if access.get("snapshot") else ""
        typer.echo(f"published {record.id} ({access['visibility']}{served})")


@command("unpublish", api=("unpublish",))
def unpublish(ctx: typer.Context, record_id: IdArg, as_json: JsonOpt = False) -> None:
    """Withdraw a published dataset (writers and admins still see it)."""
    record = _state(ctx).catalog().unpublish(record_id)
    _print_record_result(record, as_json, f"unpublished {record.id}")


@command("visibility", api=("set_visibility",))
def visibility(
    ctx: typer.Context,
    record_id: IdArg,
    value: Annotated[
        str, typer.Argument(metavar="VISIBILITY", help="public, private or project:NAME.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set who may see a dataset once published."""
    record = _state(ctx).catalog().set_visibility(record_id, value)
    _print_record_result(record, as_json, f"{record.id} is {value}")


@command("purge", api=("get", "purge"))
def purge(
    ctx: typer.Context, record_id: IdArg, yes: YesOpt = False, as_json: JsonOpt = False
) -> None:
    """Remove a record and the files arcodex stored for it, for good."""
    catalog = _state(ctx).catalog()
    found = catalog.get(record_id)
    _confirm_purge(found, yes)
    record = catalog.purge(found.id)
    _print_record_result(record, as_json, f"purged {record.id}")


@command("info", api=("info",))
def info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Summarise the catalog: where, what backend, how many of what, recent failures."""
    from arcodex.cli import _render

    summary = _state(ctx).catalog().info()
    if as_json:
        _render.print_json(summary.to_dict())
    else:
        _render.print_info(summary)
        if summary.plugins:
            typer.echo("\nplugins: " + ", ".join(_plugins.plugin_lines(summary.plugins)))


@command("fields", api=("fields",))
def fields(
    ctx: typer.Context,
    prefix: Annotated[
        str | None, typer.Argument(help="Only paths starting with this (e.g. netcdf.attrs).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the metadata paths in use, with their types and example values."""
    from arcodex.cli import _render

    found = _state(ctx).catalog().fields(prefix)
    if as_json:
        _render.print_json([f.model_dump(mode="json") for f in found])
    else:
        _render.print_fields(found)


@command("logs", api=("logs",))
def logs(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's events.")] = None,
    record: Annotated[
        str | None, typer.Option("--record", help="Only events of this record (id or prefix).")
    ] = None,
    operation: Annotated[
        str | None,
        typer.Option("--operation", help="Only events of this operation (id or prefix)."),
    ] = None,
    level: Annotated[
        str | None, typer.Option("--level", help="Minimum level: debug, info, warning, error.")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Event name; a trailing * matches a prefix.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this ISO date or period (2026-11).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to the end of this ISO date or period.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the last N matching events.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the catalog's event log: who did what, when, and what failed."""
    from arcodex.cli import _render

    found = (
        _state(ctx)
        .catalog()
        .logs(
            user=user,
            record=record,
            operation=operation,
            level=level,
            event=event,
            since=since,
            until=until,
            limit=limit,
        )
    )
    if as_json:
        _render.print_json(found)
    else:
        _render.print_events(found)


@command("validate", api=("validate",))
def validate(
    ctx: typer.Context,
    record_id: Annotated[str | None, typer.Argument(help="Record id or prefix.")] = None,
    all_records: Annotated[bool, typer.Option("--all", help="Every record.")] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="A record as JSON, not in the catalog.")
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Check against this schema instead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check records against their schemas; exit status 1 if any does not match."""
    import json

    from arcodex.cli import _render

    if [record_id is not None, file is not None, all_records].count(True) != 1:
        raise ValidationError("give one of: a record id, --all, or --file record.json")
    document = None
    if file is not None:
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValidationError(f"cannot read {file}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{file} is not JSON ({exc.msg} at line {exc.lineno})") from None
    results = (
        _state(ctx).catalog().validate(record_id, all=all_records, document=document, schema=schema)
    )
    if as_json:
        _render.print_json([r.to_dict() for r in results])
    else:
        for r in results:
            state = "valid" if r.valid else "INVALID"
            _render.console().print(f"{r.record_id or '(file)'}  {r.schema or '-'}  {state}")
            for line in r.errors + r.warnings:
                _render.console().print(f"    {line}")
    if not all(r.valid for r in results):
        raise typer.Exit(1)


@command("doctor", api=("doctor",))
def doctor(
    ctx: typer.Context,
    verify_hashes: Annotated[
        bool, typer.Option("--verify-hashes", help="Also re-hash every managed file (slow).")
    ] = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix", help="Remove the orphans a journal or provenance marker proves arcodex wrote."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --fix: only say what would be removed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Report interrupted operations, orphaned files and broken artifacts (exit 1 if any)."""
    from arcodex.cli import _render

    report = _state(ctx).catalog().doctor(verify_hashes=verify_hashes, fix=fix, dry_run=dry_run)
    if as_json:
        _render.print_json(report.to_dict())
    else:
        out = _render.console()
        if report.clean:
            out.print("clean: nothing to repair")
        for lock in report.stale_locks:
            out.print(
                f"stale lock note: pid {lock.get('pid')} of {lock.get('user')} on "
                f"{lock.get('host')} since {lock.get('since')} is gone; run `arcodex recover`"
            )
        for op in report.incomplete_operations:
            if op.get("running"):
                out.print(
                    f"running operation {op['operation_id']} ({op['action']}, at "
                    f"{op['last_state']}"
                    + (f" in step {op['step']}" if op.get("step") else "")
                    + f", pid {op['pid']} on {op.get('host')}): wait for it to finish"
                )
                continue
            kept = op.get("committed_periods") or 0
            out.print(
                f"incomplete operation {op['operation_id']} ({op['action']}, interrupted after "
                f"{op['last_state']}"
                + (f" in step {op['step']}" if op.get("step") else "")
                + f", pid {op['pid']}): run `arcodex recover`"
                + (
                    f"; its {kept} committed periods are kept, and the same ingestion run "
                    "again resumes after them"
                    if kept and op["action"] == "ingest"
                    else ""
                )
            )
        if report.fix is not None:
            for where in report.fix.would_remove:
                out.print(f"would remove {where}")
            for where in report.fix.removed:
                out.print(f"removed {where}")
            for item in report.fix.kept:
                out.print(f"kept {item['where']}: {item['reason']}")
        for item in report.orphaned_files:
            proof = f"; arcodex wrote it ({item['proof']})" if item.get("proof") else ""
            out.print(
                f"orphaned file {item['profile']}:{item['key']} (no record points at it{proof})"
            )
        for item in report.orphaned_products:
            out.print(
                f"orphaned product {item['url']} (left by operation {item['operation_id']}); "
                "`arcodex doctor --fix` removes it"
            )
        for item in report.missing_artifacts:
            out.print(f"missing artifact of {item['record_id']}: {item['location']}")
        for item in report.mismatched_artifacts:
            out.print(f"changed artifact of {item['record_id']}: {item['location']}")
    if not report.clean:
        raise typer.Exit(1)


@command("recover", api=("recover",))
def recover(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be done.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Finish or undo operations a crash interrupted, and remove leftover temporary files."""
    from arcodex.cli import _render

    done = _state(ctx).catalog().recover(dry_run=dry_run)
    if as_json:
        _render.print_json([r.to_dict() for r in done])
        return
    out = _render.console()
    if not done:
        out.print("nothing to recover")
    for r in done:
        verb = "would" if dry_run else "did"
        removing = r.would_remove if dry_run else r.removed
        restoring = r.would_restore if dry_run else r.restored
        out.print(
            f"{r.operation_id} ({r.action}, stopped after {r.last_state}): {verb} "
            f"{r.decision.replace('_', ' ')}"
            + (f", restoring {', '.join(restoring)}" if restoring else "")
            + (f", removing {', '.join(removing)}" if removing else "")
            + "".join(f"; kept {k['where']}: {k['reason']}" for k in r.kept)
        )


@command("extract", api=("extract",))
def extract(
    path: Annotated[
        Path, typer.Argument(help="A file, directory, Zarr store or Icechunk repository.")
    ],
    require_metadata: Annotated[
        bool, typer.Option("--require-metadata", help="Fail if any extractor cannot read it.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the metadata `add` would read from PATH (no catalog needed, nothing written)."""
    from arcodex.catalog import Catalog
    from arcodex.cli import _render

    found = Catalog.extract(path, require_metadata=require_metadata)
    if as_json:
        _render.print_json(found)
        return
    out = _render.console()
    out.print(f"{found['path']}: {found['kind']}, {found['format']} ({found['media_type']})")
    out.print(f"extractors: {', '.join(found['extractors'])}")
    for problem in found["errors"]:
        out.print(f"warning: {problem}")
    out.print_json(data=found["metadata"])


_convert.register(app, command, _state)
_stac.register(app, command, _state)
_discover.register(app, command, _state)
_schema.register(app, command, _state)
_run.register(app, command, _state)
_ingest.register(app, command, _state)
_ingest_run.register(app, command, _state)
_plugins.register(app, command, _state)
_store.register(app, command, _state)
_group.register(app, command, _state)
_db.register(app, command, _state)
_users.register(app, command, _state)
_templates.register(app, command, _state)
_sync.register(app, command, _state)


def main() -> None:
    """Entry point of the ``arcodex`` console script."""
    _app_for(sys.argv[1:])()


#: Global options that take a value (the token after them is not a command name).
_VALUED = frozenset({"--catalog", "-C"})


def _app_for(argv: list[str]) -> typer.Typer:
    """The app holding only the top-level command ``argv`` runs, when it names one.

    Typer turns every registered function into a click command (reading each one's
    type hints) before it runs any; for one command that was most of a short command's
    time. Help, ``--version``, groups and unknown names get the whole app; help and
    unknown names (which may be a plugin's group) get plugins' groups too.
    """
    name = None
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUED:
            next(tokens, None)
        elif token.startswith("-"):
            if token in ("-h", "--help"):
                _plugins.mount(app)  # the help lists plugins' groups
                return app
            if token in ("--version", "--"):
                return app
        else:
            name = token
            break
    chosen = [c for c in app.registered_commands if name is not None and c.name == name]
    if not chosen:
        if name is None or name not in {g.name for g in app.registered_groups}:
            _plugins.mount(app)  # a name arcodex does not have may be a plugin's group
        return app
    lean = copy.copy(app)
    lean.registered_commands = chosen
    lean.registered_groups = []
    return lean
