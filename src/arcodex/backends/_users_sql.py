"""The users and API tokens tables, the same SQL on SQLite and PostgreSQL.

Both backends mix in :class:`UserTables` and say how one statement runs
(:meth:`UserTables._auth_run`); the SQL is written with ``?`` placeholders,
which the PostgreSQL backend turns into ``%s``. Times are ISO 8601 UTC text
(``2026-12-03T06:40:00+00:00``), which sorts and compares the same on both.

A token row holds the sha256 of the secret, never the secret itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["USERS_DDL", "UserTables"]

#: The tables of users and their API tokens (a migration of each backend makes them).
USERS_DDL = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    projects TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_name)
"""

UserRow = tuple[str, str, str, str, str | None]
TokenRow = tuple[str, str, str, str, str | None, str | None, str | None]
_USER_COLUMNS = "name, role, projects, created_at, created_by"
_TOKEN_COLUMNS = "id, user_name, hash, created_at, expires_at, last_used_at, revoked_at"


class UserTables:
    """Rows of ``users`` and ``tokens`` (the catalog's :mod:`arcodex.catalog._users` uses them)."""

    def _auth_run(
        self, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); its rows, if it returns any."""
        raise NotImplementedError

    # -- users -------------------------------------------------------------------------------

    def user_insert(self, row: UserRow) -> bool:
        """Add a user; False when the name is taken."""
        rows = self._auth_run(
            f"INSERT INTO users({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            row,
            write=True,
        )
        return bool(rows)

    def user_get(self, name: str) -> UserRow | None:
        rows = self._auth_run(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name])
        return tuple(rows[0]) if rows else None

    def user_rows(self) -> list[UserRow]:
        return [
            tuple(r) for r in self._auth_run(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        ]

    def user_update(self, name: str, role: str, projects: str) -> bool:
        rows = self._auth_run(
            "UPDATE users SET role = ?, projects = ? WHERE name = ? RETURNING name",
            [role, projects, name],
            write=True,
        )
        return bool(rows)

    def user_delete(self, name: str) -> bool:
        """Remove a user and its tokens; False when there is none."""
        self._auth_run("DELETE FROM tokens WHERE user_name = ?", [name], write=True)
        rows = self._auth_run("DELETE FROM users WHERE name = ? RETURNING name", [name], write=True)
        return bool(rows)

    # -- tokens ------------------------------------------------------------------------------

    def token_insert(self, row: TokenRow) -> None:
        self._auth_run(
            f"INSERT INTO tokens({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row, write=True
        )

    def token_get(self, token_id: str) -> TokenRow | None:
        rows = self._auth_run(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", [token_id])
        return tuple(rows[0]) if rows else None

    def token_rows(self, user: str | None = None) -> list[TokenRow]:
        if user is None:
            rows = self._auth_run(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
        else:
            rows = self._auth_run(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE user_name = ? ORDER BY created_at, id",
                [user],
            )
        return [tuple(r) for r in rows]

    def token_revoke(self, token_id: str, at: str) -> bool:
        """Revoke a token (kept, for the record); False when there is none."""
        rows = self._auth_run(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING id",
            [at, token_id],
            write=True,
        )
        return bool(rows)

    def token_used(self, token_id: str, at: str) -> None:
        self._auth_run(
            "UPDATE tokens SET last_used_at = ? WHERE id = ?", [at, token_id], write=True
        )
