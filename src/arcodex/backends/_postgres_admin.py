"""Schema versions, migrations, the schema registry and whole-catalog export on PostgreSQL.

A mixin of :class:`~arcodex.backends._postgres.PostgresBackend`: it reaches the
database only through the backend's ``_tx()`` and ``_q()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PostgresAdmin"]


class PostgresAdmin:
    """The administrative side of the PostgreSQL backend."""

    def _admin_create(self, conn: Any) -> None:
        """Create the administrative tables of a new catalog (inside its creating transaction)."""

    def _admin_check(self, conn: Any) -> None:
        """Refuse a catalog whose schema this code cannot use (called on every open)."""
