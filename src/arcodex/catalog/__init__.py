"""The Catalog service."""

from arcodex.catalog._catalog import (
    ENV_CATALOG,
    Catalog,
    CatalogInfo,
    find_catalog_root,
    open_catalog,
)
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.storage import FileProfileConfig

__all__ = [
    "CONFIG_FILE",
    "ENV_CATALOG",
    "Catalog",
    "CatalogConfig",
    "CatalogInfo",
    "FileProfileConfig",
    "find_catalog_root",
    "load_config",
    "open_catalog",
]
