"""Catalog backends: where records live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arcodex.backends._base import BackendStats, CatalogBackend, Page
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog._config import CatalogConfig

__all__ = ["BackendStats", "CatalogBackend", "Page", "open_backend"]


def open_backend(
    url: str, *, create: bool = False, config: CatalogConfig | None = None
) -> CatalogBackend:
    """The backend for ``url`` (``sqlite:///path`` or ``postgresql://USER@HOST/DB?schema=NAME``)."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from arcodex.backends._sqlite import SQLiteBackend

        timeout = config.busy_timeout if config is not None else 30.0
        return SQLiteBackend(url.removeprefix("sqlite:///"), create=create, busy_timeout=timeout)
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise ValidationError(
                "PostgreSQL catalogs need the [postgres] extra: pip install 'arcodex[postgres]'"
            ) from None
        from arcodex.backends._postgres import PostgresBackend

        timeout = config.busy_timeout if config is not None else 30.0
        secret = getattr(config, "database_password", None) if config is not None else None
        password = secret.get_secret_value() if secret is not None else None
        return PostgresBackend(url, create=create, password=password, busy_timeout=timeout)
    raise ValidationError(
        f"unsupported database URL scheme {scheme!r}; use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
    )
