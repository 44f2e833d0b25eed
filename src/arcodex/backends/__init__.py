"""Catalog backends: where records live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arcodex.backends._base import BackendStats, CatalogBackend, Page
from arcodex.backends._migrations import SchemaInfo, admin_open
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog._config import CatalogConfig

__all__ = ["BackendStats", "CatalogBackend", "Page", "SchemaInfo", "admin_open", "open_backend"]


def open_backend(
    url: str, *, create: bool = False, config: CatalogConfig | None = None
) -> CatalogBackend:
    """The backend for ``url`` (``sqlite:///path``)."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from arcodex.backends._sqlite import SQLiteBackend

        timeout = config.busy_timeout if config is not None else 30.0
        return SQLiteBackend(url.removeprefix("sqlite:///"), create=create, busy_timeout=timeout)
    raise ValidationError(
        f"unsupported database URL scheme {scheme!r}; use sqlite:///PATH (PostgreSQL support comes with the [postgres] extra)"
    )
