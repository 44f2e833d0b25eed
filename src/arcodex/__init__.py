"""arcodex: make Earth-science archives Analysis-Ready and Cloud-Optimised, and keep them findable.

``import arcodex`` stays light: heavy parts (xarray, dask, the server) load
only when used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Icechunk's Rust log warns of every local repository opened ("not safe for concurrent
# commits"), on reads too, where it cannot apply. Errors still show, and a user's own
# ICECHUNK_LOG wins. Set before icechunk is imported (it reads the variable then), and
# here so that every path that opens a repository, and the Dask workers, inherit it.
os.environ.setdefault("ICECHUNK_LOG", "error")

__version__ = "0.1.0.dev0"

__all__ = [
    "ArcodexError",
    "Catalog",
    "ConflictError",
    "NotFoundError",
    "Query",
    "Record",
    "ValidationError",
    "__version__",
    "open_catalog",
]

from arcodex.errors import ArcodexError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog, open_catalog
    from arcodex.model import Query, Record

_LAZY = {
    "Catalog": "arcodex.catalog",
    "open_catalog": "arcodex.catalog",
    "Query": "arcodex.model",
    "Record": "arcodex.model",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import arcodex` does not pay for pydantic until it is used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'arcodex' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
