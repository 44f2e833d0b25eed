"""Providers by name: the built-in ones by dotted path (imported when used), and plugins'.

A template's ``provider.name`` is looked up here. Built-in providers are
``"module:Class"`` strings, imported on first use like fsspec's
``known_implementations``; plugins add theirs with the ``provider`` kind
(``registrar.add_provider(name, factory)``), and may not take a built-in name.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from arcodex.errors import NotFoundError, PluginError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.ingest._provider import Provider

__all__ = ["BUILTIN_PROVIDERS", "get_provider", "provider_factory", "provider_names"]

#: name -> "module:Class"; each class is made as ``Class(catalog=None)``.
BUILTIN_PROVIDERS: dict[str, str] = {
    "files": "arcodex.ingest._files:FilesProvider",
    "http": "arcodex.ingest._http:HttpProvider",
    "s3": "arcodex.ingest._s3:S3Provider",
    "remote-zarr": "arcodex.ingest._remote_zarr:RemoteZarrProvider",
}
#: What to install when a built-in provider's module (or what it imports) is missing.
_INSTALL = {
    "files": "pip install 'arcodex[netcdf]'",
    "http": "pip install 'arcodex[netcdf,stac]'",
    "s3": "pip install 'arcodex[netcdf,s3]'",
    "remote-zarr": "pip install 'arcodex[zarr]'",
}


def _plugin_providers() -> dict[str, Any]:
    from arcodex.plugins import registry

    plugins = registry()
    plugins.reserve("provider", BUILTIN_PROVIDERS)
    return dict(plugins.providers())


def _known(name: str | None = None) -> dict[str, Any]:
    if name in BUILTIN_PROVIDERS:  # no plugin discovery for a built-in name
        return BUILTIN_PROVIDERS
    return {**_plugin_providers(), **BUILTIN_PROVIDERS}


def provider_names() -> list[str]:
    """The names templates may give as ``provider.name``: built-in ones, then plugins'."""
    plugins = sorted(set(_plugin_providers()) - set(BUILTIN_PROVIDERS))
    return [*BUILTIN_PROVIDERS, *plugins]


def provider_factory(name: str) -> Any:
    """The class or factory of provider ``name`` (imported now if it is a dotted path).

    Raises:
        NotFoundError: No provider has that name (the message lists those that do).
        PluginError: Its module cannot be imported (the message says what to install).
    """
    known = _known(name)
    found = known.get(name)
    if found is None:
        raise NotFoundError(
            f"no provider {name!r}; the providers are: {', '.join(provider_names())} "
            "(plugins add more with registrar.add_provider)"
        )
    if not isinstance(found, str):
        return found
    module, _, attr = found.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        missing = getattr(exc, "name", None)
        if missing is None or missing == module:
            what = f"{module} is missing" + (
                "; reinstall or upgrade arcodex"
                if module.startswith("arcodex.")
                else "; install the package that provides it"
            )
        else:  # the module is there, a package it imports is not
            hint = _INSTALL.get(name, "install the package that provides it")
            what = f"it needs {missing}, which is not installed; {hint}"
        raise PluginError(f"provider {name!r} ({found}) cannot be loaded: {what}") from exc


def get_provider(name: str, catalog: Catalog | None = None) -> Provider:
    """A new provider ``name``, made with ``catalog`` when its factory takes one.

    Raises:
        NotFoundError: No provider has that name.
        PluginError: It cannot be loaded or made, or what it made is no provider.
    """
    from arcodex.ingest._provider import Provider

    factory = provider_factory(name)
    try:
        takes_catalog = "catalog" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable with no signature
        takes_catalog = False
    try:
        made = factory(catalog=catalog) if takes_catalog else factory()
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"provider {name!r} could not be made: {type(exc).__name__}: {exc}; "
            "fix its plugin or configuration"
        ) from exc
    if not isinstance(made, Provider):
        raise PluginError(
            f"provider {name!r} made a {type(made).__name__}, which lacks probe, periods or "
            "fetch_period; fix its plugin"
        )
    return made
