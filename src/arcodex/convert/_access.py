"""What a conversion reaches besides its product: the catalog it was given, the options
its sources are read with (a named profile's, never stored), and the catalog's cluster."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.convert._cluster import ClusterConfig

__all__ = ["cluster_config", "open_catalog_arg", "profile_options", "source_options"]


def open_catalog_arg(catalog: Any, stack: ExitStack) -> Catalog | None:
    """The catalog a call was given (a Catalog, or a path opened on ``stack``), or None."""
    if catalog is None:
        return None
    from arcodex.catalog import Catalog

    if isinstance(catalog, Catalog):
        return catalog
    return stack.enter_context(Catalog.open(catalog))


def cluster_config(cat: Catalog | None) -> ClusterConfig | None:
    if cat is None:
        return None
    return cat.config.cluster


def source_options(
    cat: Catalog | None, source_profile: str | None, storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The fsspec options sources are read with: given ones, else ``source_profile``'s."""
    if storage_options:
        return dict(storage_options)
    if source_profile:
        if cat is None:
            raise ValidationError("--source-profile needs a catalog (--catalog) that defines it")
        return profile_options(cat, source_profile)
    return {}


def profile_options(cat: Catalog, name: str) -> dict[str, Any]:
    store = cat.storage(name)
    fs = getattr(store, "fs", None)
    return dict(getattr(fs, "storage_options", {}) or {})
