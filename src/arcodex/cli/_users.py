"""``arcodex user add|list|role|remove`` and ``arcodex token create|list|revoke``.

The server's users and API tokens (``catalog.users``); a local catalog used
through the CLI needs none of them. The commands call ``catalog.users`` (a
:class:`~arcodex.catalog._users.Users`, not a Catalog method), so they stay out of
the Catalog parity map, as ``arcodex db`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from arcodex.cli._convert import ENGINE_COMMANDS
from arcodex.cli._options import JsonOpt

__all__ = ["register"]

Decorator = Callable[[Callable[..., None]], Callable[..., None]]
NameArg = Annotated[str, typer.Argument(help="The user's name.")]


def register(
    app: typer.Typer, command: Callable[..., Decorator], state_of: Callable[..., Any]
) -> None:
    """Add the ``user`` and ``token`` groups to ``app``."""
    from arcodex.cli._render import print_json

    users = typer.Typer(help="Users of the server and their roles.", no_args_is_help=True)
    tokens = typer.Typer(help="API tokens of the server's users.", no_args_is_help=True)

    def add(
        ctx: typer.Context,
        name: NameArg,
        role: Annotated[str, typer.Option("--role", help="reader, writer or admin.")] = "reader",
        project: Annotated[
            list[str] | None,
            typer.Option("--project", help="A project the user reads (repeat for more)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Add a user with a role (and the projects it reads)."""
        user = state_of(ctx).catalog().users.add(name, role, project or [])
        if as_json:
            print_json(user.to_dict())
        else:
            typer.echo(f"user {user.name} added as {user.role}; `arcodex token create {name}`")

    def list_users(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List the users."""
        found = state_of(ctx).catalog().users.list()
        if as_json:
            print_json([u.to_dict() for u in found])
        elif not found:
            typer.echo("no users; add one with `arcodex user add NAME --role reader`")
        for user in [] if as_json else found:
            projects = f" projects={','.join(user.projects)}" if user.projects else ""
            typer.echo(f"{user.name}\t{user.role}{projects}")

    def role(
        ctx: typer.Context,
        name: NameArg,
        new_role: Annotated[str, typer.Argument(metavar="ROLE", help="reader, writer or admin.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Change a user's role."""
        user = state_of(ctx).catalog().users.set_role(name, new_role)
        if as_json:
            print_json(user.to_dict())
        else:
            typer.echo(f"user {user.name} is now {user.role}")

    def remove(ctx: typer.Context, name: NameArg) -> None:
        """Remove a user and every token of it."""
        state_of(ctx).catalog().users.remove(name)
        typer.echo(f"user {name} removed")

    def create(
        ctx: typer.Context,
        user: Annotated[str, typer.Argument(help="Whose token.")],
        expires: Annotated[
            float | None, typer.Option("--expires", help="Days until it expires (default never).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Make a token and print its secret, once: it cannot be shown again."""
        info, secret = state_of(ctx).catalog().users.create_token(user, expires)
        if as_json:
            print_json({**info.to_dict(), "token": secret})
            return
        typer.echo(secret)
        typer.echo(f"token {info.id} of {user}; keep it now, it is not shown again", err=True)

    def list_tokens(
        ctx: typer.Context,
        user: Annotated[str | None, typer.Argument(help="Only this user's.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List tokens (never their secrets)."""
        found = state_of(ctx).catalog().users.tokens(user)
        if as_json:
            print_json([t.to_dict() for t in found])
            return
        if not found:
            typer.echo("no tokens; make one with `arcodex token create USER`")
        for t in found:
            typer.echo(
                f"{t.id}\t{t.user}\t{t.status}\tcreated {t.created_at}"
                f"\texpires {t.expires_at or 'never'}\tlast used {t.last_used_at or 'never'}"
            )

    def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
        """Revoke a token: it authenticates nobody from now on."""
        info = state_of(ctx).catalog().users.revoke(token_id)
        typer.echo(f"token {info.id} of {info.user} revoked")

    command("add", api=(), engine=True, on=users)(add)
    command("list", api=(), engine=True, on=users)(list_users)
    command("role", api=(), engine=True, on=users)(role)
    command("remove", api=(), engine=True, on=users)(remove)
    command("create", api=(), engine=True, on=tokens)(create)
    command("list", api=(), engine=True, on=tokens)(list_tokens)
    command("revoke", api=(), engine=True, on=tokens)(revoke)
    ENGINE_COMMANDS.update({"user", "token"})
    app.add_typer(users, name="user")
    app.add_typer(tokens, name="token")
