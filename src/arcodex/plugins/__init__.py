"""Plugins: packages that add extractors, schemas, hooks, steps, pipelines, stores,
source kinds, storage profile kinds, CLI groups, STAC formatters, ingestion providers
and dataset templates to arcodex.

A plugin declares an entry point in the ``arcodex.plugins`` group naming a
``register(registrar)`` function::

    [project.entry-points."arcodex.plugins"]
    myplug = "myplug:register"

Nothing is imported until something asks :func:`registry` what plugins
contributed. This package depends on nothing else of arcodex but its errors:
it keeps what plugins give as opaque objects, and each consumer (the catalog's
extraction, schemas and hooks, the CLI, STAC, storage, sources, stores and
pipelines) asks for the kind it uses.
"""

from __future__ import annotations

from arcodex.plugins._registrar import KINDS, PluginRegistrar
from arcodex.plugins._registry import (
    ENTRY_POINT_GROUP,
    ENV_PLUGINS,
    LoadedPlugin,
    Registry,
    parse_plugins_setting,
    registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_PLUGINS",
    "KINDS",
    "LoadedPlugin",
    "PluginRegistrar",
    "Registry",
    "parse_plugins_setting",
    "registry",
]
