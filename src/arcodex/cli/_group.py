"""``arcodex group init|list|status|show|run``: groups of products (:mod:`arcodex.groups`).

These call :mod:`arcodex.groups`, not Catalog methods, so the group is listed in
``ENGINE_COMMANDS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.errors import ValidationError

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NameArg = Annotated[str, typer.Argument(help="The group's name.")]
_STYLE = {"done": "green", "warn": "yellow", "failed": "red", "running": "cyan", "pending": ""}


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``group`` group to ``app`` (``command`` supplies the CLI's error handling)."""
    group = typer.Typer(
        help="Groups of products converted together: init from a CSV/YAML, run, status.",
        no_args_is_help=True,
    )

    @command("init", api=(), engine=True, on=group)
    def init(
        ctx: typer.Context,
        name: NameArg,
        members: Annotated[
            Path,
            typer.Option(
                "--from",
                metavar="FILE",
                help="The members file: CSV or YAML, one row per member (id, sources, "
                "any convert spec field, updates, removals).",
            ),
        ],
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                metavar="FIELD=VALUE",
                help="A default for every member (a row's own value wins); repeatable.",
            ),
        ] = None,
        title: Annotated[str | None, typer.Option("--title", help="The group's title.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a group from a members file; bad rows are refused and nothing is made."""
        from arcodex.groups import init_group
        from arcodex.groups._rows import parse_value

        defaults: dict[str, Any] = {}
        for term in set_ or []:
            field, eq, value = term.partition("=")
            if not eq or not field.strip():
                raise ValidationError(f"bad --set {term!r}; write FIELD=VALUE (e.g. to=icechunk)")
            defaults[field.strip()] = parse_value(field.strip(), value.strip())
        status = init_group(state_of(ctx).catalog(), name, members, defaults=defaults, title=title)
        if as_json:
            from arcodex.cli._render import print_json

            print_json(status.to_dict())
            return
        typer.echo(
            f"group {name}: {len(status.members)} members pending; "
            f"run them with `arcodex group run {name}`"
        )

    @command("list", api=(), engine=True, on=group)
    def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """The catalog's groups with their counts."""
        from arcodex.cli._render import console, print_json
        from arcodex.groups import list_groups

        groups = list_groups(state_of(ctx).catalog())
        if as_json:
            print_json([_summary(g.to_dict()) for g in groups])
            return
        if not groups:
            typer.echo("no groups; make one with `arcodex group init NAME --from members.csv`")
            return
        out = console()
        for g in groups:
            counts = ", ".join(f"{v} {k}" for k, v in g.counts.items() if v)
            out.print(f"{g.name}  {len(g.members)} members  {counts}", markup=False)

    @command("status", api=(), engine=True, on=group)
    def status(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
        """Each member's status, phase and reason, with counts."""
        from arcodex.cli._render import print_json
        from arcodex.groups import group_status

        found = group_status(state_of(ctx).catalog(), name)
        if as_json:
            print_json(found.to_dict())
            return
        _status_table(found.to_dict())

    @command("show", api=(), engine=True, on=group)
    def show(
        ctx: typer.Context,
        name: NameArg,
        member: Annotated[str, typer.Argument(help="The member's id.")],
        as_json: JsonOpt = False,
    ) -> None:
        """One member: status, log lines, scan summary and check report."""
        from arcodex.cli._render import console, print_json
        from arcodex.groups import member_detail

        detail = member_detail(state_of(ctx).catalog(), name, member)
        if as_json:
            print_json(detail)
            return
        out = console()
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        out.print(
            f"{name} {member}: {detail['status']} after {detail.get('phase') or '-'}{reason}",
            markup=False,
        )
        if detail.get("product"):
            out.print(f"product: {detail['product']}", markup=False)
        if detail.get("scan"):
            scan = detail["scan"]
            size = (scan.get("size") or {}).get("uncompressed_bytes")
            out.print(
                f"scan: {scan.get('sources')} sources, {scan.get('steps')} steps along "
                f"{scan.get('concat_dim')} ({scan.get('first')} … {scan.get('last')}), "
                f"{size} bytes uncompressed",
                markup=False,
            )
        if detail.get("check"):
            check = detail["check"]
            out.print(f"check: {check.get('status')}", markup=False)
            for line in [*check.get("reasons", []), *check.get("warnings", [])][:10]:
                out.print(f"  {line}", markup=False)
        if detail.get("log"):
            out.print("log:", markup=False)
            for line in detail["log"][-20:]:
                out.print(f"  {line}", markup=False)

    @command("run", api=(), engine=True, on=group)
    def run(
        ctx: typer.Context,
        name: NameArg,
        phase: Annotated[
            Literal["scan", "compute", "validate", "run"],
            typer.Option(
                "--phase",
                help="scan (sources and size), compute (convert), validate (the full check) "
                "or run (all three).",
            ),
        ] = "run",
        only: Annotated[
            Literal["failed", "pending"] | None,
            typer.Option("--only", help="Only the members that failed, or are pending."),
        ] = None,
        members: Annotated[
            str | None,
            typer.Option("--members", metavar="ID,…", help="Only these members."),
        ] = None,
        retries: Annotated[
            int, typer.Option("--retries", min=0, help="Run a failed phase again N times.")
        ] = 0,
        cluster: Annotated[
            str | None,
            typer.Option(
                "--cluster",
                help="local, threads, tcp://HOST:PORT, slurm or pbs; default: arcodex.yaml's.",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run the group's members in parallel; exit status 1 when any failed."""
        from arcodex.cli._render import print_json
        from arcodex.groups import run_group

        ids = [m.strip() for m in members.split(",") if m.strip()] if members else None
        cat = state_of(ctx).catalog()
        with _progress(not as_json, cat, name, 3 if phase == "run" else 1) as progress:
            result = run_group(
                cat,
                name,
                phase=phase,
                only=only,
                members=ids,
                retries=retries,
                cluster=cluster,
                progress=progress,
            )
        if as_json:
            print_json(result.to_dict())
        else:
            _run_table(result.to_dict())
        if result.exit_code:
            raise typer.Exit(result.exit_code)

    app.add_typer(group, name="group")
    ENGINE_COMMANDS.add("group")


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "members"}


def _status_table(status: dict[str, Any]) -> None:
    from rich.table import Table

    from arcodex.cli._render import console

    table = Table(title=f"group {status['name']}", title_justify="left")
    for column in ("member", "status", "phase", "seconds", "bytes", "reason"):
        table.add_column(column, overflow="fold")
    for m in status["members"]:
        style = _STYLE.get(m["status"], "")
        table.add_row(
            m["id"],
            f"[{style}]{m['status']}[/]" if style else m["status"],
            m.get("phase") or "",
            f"{m['seconds']:.1f}" if m.get("seconds") is not None else "",
            str(m["bytes"]) if m.get("bytes") is not None else "",
            _escape(m.get("reason") or ""),
        )
    out = console()
    out.print(table)
    out.print(
        ", ".join(f"{v} {k}" for k, v in status["counts"].items()) + f" of {status['total']}",
        markup=False,
    )


def _run_table(run: dict[str, Any]) -> None:
    from arcodex.cli._render import console

    out = console()
    if not run["members"]:
        out.print(f"group {run['name']} {run['phase']}: no member to run", markup=False)
        return
    for m in run["members"]:
        reason = f"  {m['reason']}" if m.get("reason") else ""
        out.print(
            f"{m['id']:<16} {m['status']:<8} {m.get('phase') or '-':<9}{reason}", markup=False
        )
    counts = ", ".join(f"{v} {k}" for k, v in run["counts"].items() if v)
    out.print(
        f"group {run['name']} {run['phase']}: {counts} in {run['seconds']:.1f}s", markup=False
    )
    if run["counts"].get("failed"):
        out.print(
            f"see why with `arcodex group show {run['name']} MEMBER`, fix it, and run "
            f"`arcodex group run {run['name']} --only failed`",
            markup=False,
        )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextmanager
def _progress(
    enabled: bool, cat: Any, name: str, phases: int
) -> Iterator[Callable[..., None] | None]:
    """A bar of member phases finished (and what the last one did) on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from arcodex.groups import group_status

    total = len(group_status(cat, name).members) * phases
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"group {name}", total=total)

        def update(member: str, phase: str, status: str) -> None:
            bar.update(task, description=f"group {name}: {member} {phase} {status}")
            if status != "running":
                bar.advance(task)

        yield update
