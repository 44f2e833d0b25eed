"""Operation state shared by every host of a PostgreSQL catalog: journal, events, leases.

A mixin of :class:`~arcodex.backends._postgres.PostgresBackend`: it reaches the
database only through the backend's ``_tx()``, ``_q()`` and its pool.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PostgresOperations"]


class PostgresOperations:
    """The journal, event log and operation leases of a PostgreSQL catalog."""

    def _ops_create(self, conn: Any) -> None:
        """Create the shared operation tables of a new catalog (inside its creating transaction)."""
