"""The one error tree of arcodex.

Every error a user can meet is an :class:`ArcodexError`; each subclass also
inherits the matching built-in so that ``except LookupError`` and friends keep
working. Messages say what happened and what to do next, on one line.
"""

from __future__ import annotations

__all__ = [
    "ArcodexError",
    "ArcodexWarning",
    "AuthError",
    "CatalogExistsError",
    "ConflictError",
    "ConversionError",
    "EmptySubsetWarning",
    "LockTimeoutError",
    "NotACatalogError",
    "NotFoundError",
    "PluginError",
    "QueryError",
    "StorageError",
    "ValidationError",
]


class ArcodexError(Exception):
    """Base of every error arcodex raises on purpose."""


class NotFoundError(ArcodexError, LookupError):
    """A record, artifact, file or catalog does not exist."""


class ConflictError(ArcodexError, RuntimeError):
    """The catalog changed under the caller (version mismatch, duplicate id, ambiguous prefix)."""


class CatalogExistsError(ConflictError):
    """``init`` on a directory that already holds a catalog."""


class ValidationError(ArcodexError, ValueError):
    """Input that does not have the required shape."""


class QueryError(ValidationError):
    """A query term that cannot be understood."""


class NotACatalogError(NotFoundError):
    """A path that holds no arcodex catalog."""


class LockTimeoutError(ArcodexError, TimeoutError):
    """Waiting for a lock (database or file) took longer than allowed."""


class StorageError(ArcodexError, OSError):
    """Reading or writing data (files, objects, database file) failed."""


class ConversionError(ArcodexError, RuntimeError):
    """An ARCO conversion could not be completed."""


class PluginError(ArcodexError, ImportError):
    """A plugin could not be loaded or misbehaved."""


class AuthError(ArcodexError, PermissionError):
    """Missing or wrong credentials."""


class ArcodexWarning(UserWarning):
    """Base of every warning arcodex gives (``pytest.warns(ArcodexWarning)`` catches them all)."""


class EmptySubsetWarning(ArcodexWarning):
    """A subset (bbox, time range, variables) that selects nothing of the data."""
