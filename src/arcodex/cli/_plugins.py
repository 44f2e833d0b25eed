"""``arcodex plugins``: the installed plugins, and plugins' command groups in the CLI.

Plugins load only when a command needs them: ``plugins``, ``info``, ``--help``,
a command name arcodex does not have (it may be a plugin's group), or a
catalog operation that runs extractors, schemas or hooks. Every plugin that
failed to load, or whose registration was refused, is one ``warning:`` line
on stderr, and the command goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.errors import ArcodexError, NotFoundError
from arcodex.plugins import LoadedPlugin, registry

__all__ = ["mount", "plugin_lines", "plugin_summary", "print_notices", "register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
_mounted: set[str] = set()


def print_notices() -> None:
    """The plugin failures and refusals not yet shown, one ``warning:`` line each (stderr)."""
    if not registry().discovered:
        return
    for line in registry().take_notices():
        typer.echo(f"warning: {line}", err=True)


def _reserve_built_ins(app: typer.Typer) -> None:
    """The names arcodex has built in, so that a plugin's clash is refused and listed."""
    built_in = {c.name for c in app.registered_commands if c.name}
    built_in |= {g.name for g in app.registered_groups if g.name}
    registry().reserve("cli", built_in - _mounted)


def _listing(app: typer.Typer) -> list[LoadedPlugin]:
    """Every installed plugin, after the lookups that reserve built-in names ran."""
    _reserve_built_ins(app)
    from arcodex.catalog import step_registry

    step_registry()  # reserves the built-in steps
    return registry().plugins()


def mount(app: typer.Typer) -> None:
    """Add every plugin's command group to ``app`` (built-in names are refused)."""
    reg = registry()
    _reserve_built_ins(app)
    try:
        groups = reg.cli_apps()
    except ArcodexError as exc:  # a bad ARCODEX_PLUGINS: the built-in commands still run
        typer.echo(f"warning: {' '.join(str(exc).split())}; plugins are left out", err=True)
        return
    for name, sub in sorted(groups.items()):
        if name in _mounted:
            continue
        if not isinstance(sub, typer.Typer):
            typer.echo(
                f"warning: plugin {reg.owner('cli', name)!r}: command group {name!r} is a "
                f"{type(sub).__name__}, not a typer.Typer; refused",
                err=True,
            )
            continue
        app.add_typer(sub, name=name)
        _mounted.add(name)
    print_notices()


def plugin_summary(plugin: LoadedPlugin) -> str:
    """What a plugin registered, as ``kind name, name; kind name``."""
    return "; ".join(f"{k} {', '.join(v)}" for k, v in plugin.registered.items()) or "-"


def plugin_lines(plugins: Sequence[Mapping[str, Any]]) -> list[str]:
    """``name version status`` per plugin of ``CatalogInfo.plugins`` (for ``arcodex info``)."""
    return [f"{p['name']} {p.get('version') or '?'} {p['status']}" for p in plugins]


def _print(plugins: list[LoadedPlugin]) -> None:
    from arcodex.cli import _render

    if not plugins:
        typer.echo(
            "no plugins installed; a plugin is a package with an 'arcodex.plugins' entry point"
        )
        return
    out = _render.console()
    _render.print_table(
        out,
        [
            _render.Column("plugin", [p.name for p in plugins], fixed=True),
            _render.Column("version", [p.version or "?" for p in plugins], fixed=True),
            _render.Column("status", [p.status for p in plugins], fixed=True),
            _render.Column("registered", [plugin_summary(p) for p in plugins], weight=3),
            _render.Column("dist", [p.dist or "" for p in plugins], optional=True),
        ],
    )
    for p in plugins:
        for line in ([p.error] if p.error else []) + p.refused:
            out.print(f"{p.name}: {line}", markup=False, highlight=False)


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``plugins`` group (``command`` supplies the CLI's error handling)."""
    group = typer.Typer(
        help="Installed plugins: their versions, status and what each registered.",
        invoke_without_command=True,
    )

    def _configured(ctx: typer.Context) -> None:
        # Inside a catalog, its arcodex.yaml says which plugins may load.
        state = state_of(ctx)
        try:
            state.catalog_or_none()
        finally:
            state.close()

    @group.callback(invoke_without_command=True)
    def plugins(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the installed plugins (name, version, status, what each registered)."""
        if ctx.invoked_subcommand is not None:
            return
        try:
            _configured(ctx)
            found = _listing(app)
        except ArcodexError as exc:
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(1) from None
        registry().take_notices()  # each is in the listing already
        if as_json:
            from arcodex.cli import _render

            _render.print_json([p.to_dict() for p in found])
        else:
            _print(found)

    @command("show", api=(), engine=True, on=group)
    def show(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The plugin (entry-point) name.")],
        as_json: JsonOpt = False,
    ) -> None:
        """One plugin: its dist, version, status, error and what it registered."""
        _configured(ctx)
        found = {p.name: p for p in _listing(app)}
        registry().take_notices()
        if name not in found:
            known = ", ".join(found) or "none installed"
            raise NotFoundError(f"no plugin {name!r} ({known}); run `arcodex plugins` to list them")
        if as_json:
            from arcodex.cli import _render

            _render.print_json(found[name].to_dict())
        else:
            _print([found[name]])

    app.add_typer(group, name="plugins")
    ENGINE_COMMANDS.add("plugins")
