"""Store kinds: the built-in ones by dotted path (imported when used), and plugins' stores."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from arcodex.errors import PluginError, ValidationError

if TYPE_CHECKING:
    from arcodex.stores._base import DataStore

__all__ = ["BUILTIN_STORES", "list_store_kinds", "new_store", "store_class", "store_params_schema"]

#: kind -> "module:Class"; imported on first use, like fsspec's ``known_implementations``.
BUILTIN_STORES: dict[str, str] = {
    "catalog": "arcodex.stores._catalog:CatalogStore",
    "file": "arcodex.stores._file:FileStore",
    "https": "arcodex.stores._https:HttpsStore",
    "memory": "arcodex.stores._memory:MemoryStore",
    "reference": "arcodex.stores._reference:ReferenceStore",
    "s3": "arcodex.stores._s3:S3Store",
    "stac": "arcodex.stores._stac:StacStore",
}


def _plugin_stores() -> dict[str, Any]:
    """Stores registered by plugins (kind -> factory or ``"pkg.mod:Class"``); a plugin may not
    take a built-in kind's name (the registry refuses it, naming the plugin)."""
    from arcodex.plugins import registry

    plugins = registry()
    plugins.reserve("store", BUILTIN_STORES)
    return dict(plugins.stores())


def _kinds(kind: str | None = None) -> dict[str, Any]:
    if kind in BUILTIN_STORES:  # no plugin discovery for a built-in kind
        return BUILTIN_STORES
    return {**_plugin_stores(), **BUILTIN_STORES}


def list_store_kinds() -> list[str]:
    """The kinds :func:`new_store` makes: the built-in ones and plugins' ones."""
    return sorted(_kinds())


def store_class(kind: str) -> Any:
    """The class (or factory) of store ``kind``.

    Raises:
        ValidationError: If no store has that kind.
        PluginError: If its module cannot be imported.
    """
    kinds = _kinds(kind)
    found = kinds.get(kind)
    if found is None:
        raise ValidationError(
            f"no store kind {kind!r}; the kinds are: {', '.join(sorted(kinds))} "
            "(run `arcodex store kinds`)"
        )
    if not isinstance(found, str):
        return found
    module, _, name = found.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise PluginError(
            f"the {kind} store ({found}) cannot be loaded: {exc}; install what it needs "
            "(pip install 'arcodex[convert,stac]')"
        ) from exc


def new_store(kind: str, **params: Any) -> DataStore:
    """A new store of ``kind`` with ``params`` (see :func:`store_params_schema`).

    Raises:
        ValidationError: If the kind is unknown or a parameter is bad (the message names it).
    """
    store: DataStore = store_class(kind)(**params)
    return store


def store_params_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of the parameters :func:`new_store` takes for ``kind``."""
    cls = store_class(kind)
    config = getattr(cls, "Config", None)
    if config is None or not hasattr(config, "model_json_schema"):
        return {"type": "object"}
    schema: dict[str, Any] = config.model_json_schema()
    return schema
