"""Schema versions of a catalog database, and the migrations between them.

Each backend keeps an ordered list of :class:`Migration` (version, description,
what it runs) and a table ``arcodex_schema`` with one row per migration applied
(version, when, by which arcodex, what it did). Opening a database whose
schema is newer than the code is refused on every backend; an older one is
upgraded on open by SQLite (one user, one file) and refused by PostgreSQL,
which many processes share, until someone runs ``arcodex db upgrade``.

The administrative commands (``arcodex db status|upgrade``) open a backend
inside :func:`admin_open`, which lets them see an older schema without
upgrading it or being refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from arcodex.errors import StorageError

__all__ = [
    "AppliedMigration",
    "Migration",
    "SchemaInfo",
    "admin_open",
    "admin_opening",
    "newer_schema",
    "older_schema",
    "pending",
]


@dataclass(frozen=True)
class Migration:
    """One step of a backend's schema: what version it makes and how.

    ``apply`` is SQL (statements separated by ``;``) or a function given the open
    connection, inside the transaction that applies every pending step; ``None``
    for a version only ever made by creating a catalog (the first one).
    """

    version: int
    description: str
    apply: str | Callable[[Any], None] | None = None


@dataclass(frozen=True)
class AppliedMigration:
    """A row of ``arcodex_schema``: a migration this database has had."""

    version: int
    description: str
    applied_at: str | None = None  # None: before the database kept the table
    arcodex_version: str | None = None


@dataclass(frozen=True)
class SchemaInfo:
    """Where a database's schema stands beside the code's (``arcodex db status``)."""

    version: int
    code_version: int
    applied: list[AppliedMigration] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # "N: description", in order

    @property
    def up_to_date(self) -> bool:
        return self.version == self.code_version

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        out = asdict(self)
        out["up_to_date"] = self.up_to_date
        return out


def pending(migrations: Sequence[Migration], version: int) -> list[Migration]:
    """The migrations after ``version``, in order."""
    return sorted((m for m in migrations if m.version > version), key=lambda m: m.version)


def newer_schema(where: str, version: int, known: int) -> StorageError:
    """The refusal of a database made by a newer arcodex."""
    return StorageError(
        f"catalog database {where} was made by a newer arcodex (schema {version}, this one "
        f"knows {known}); upgrade arcodex"
    )


def older_schema(where: str, version: int, known: int) -> StorageError:
    """The refusal of a shared database not yet upgraded to this code's schema."""
    return StorageError(
        f"catalog database {where}: catalog schema {version} is older than this arcodex "
        f"({known}); run `arcodex db upgrade`"
    )


_ADMIN: ContextVar[bool] = ContextVar("arcodex_admin_open", default=False)


@contextmanager
def admin_open() -> Iterator[None]:
    """Backends opened inside this block keep an older schema as it is, and open anyway
    (for ``db status`` and ``db upgrade``); a newer schema is still refused."""
    token = _ADMIN.set(True)
    try:
        yield
    finally:
        _ADMIN.reset(token)


def admin_opening() -> bool:
    """Whether a backend is being opened inside :func:`admin_open`."""
    return _ADMIN.get()
