"""The Catalog service."""

from arcodex.catalog._catalog import (
    ENV_CATALOG,
    Catalog,
    CatalogInfo,
    find_catalog_root,
    open_catalog,
)
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.catalog._hooks import HOOK_POINTS, HookContext, HookError, HookResult
from arcodex.storage import FileProfileConfig

__all__ = [
    "CONFIG_FILE",
    "ENV_CATALOG",
    "HOOK_POINTS",
    "Catalog",
    "CatalogConfig",
    "CatalogInfo",
    "FileProfileConfig",
    "HookContext",
    "HookError",
    "HookResult",
    "find_catalog_root",
    "load_config",
    "open_catalog",
]
