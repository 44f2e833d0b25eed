"""Test helpers for arcodex and for packages that extend it.

:class:`BackendContract` is the shared contract every catalog backend passes
(subclass it once per backend); :mod:`arcodex.testing.strategies` holds
Hypothesis strategies for the models. Both need the ``test`` extra (pytest,
hypothesis), so they load lazily: the pytest plugin in
:mod:`arcodex.testing.plugin` imports this package in every pytest run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BackendContract", "clear_backend", "full_record", "sample_records", "search_ids"]

if TYPE_CHECKING:
    from arcodex.testing._contract import BackendContract
    from arcodex.testing._support import clear_backend, full_record, sample_records, search_ids

_LAZY = {
    "BackendContract": "arcodex.testing._contract",
    "clear_backend": "arcodex.testing._support",
    "full_record": "arcodex.testing._support",
    "sample_records": "arcodex.testing._support",
    "search_ids": "arcodex.testing._support",
}


def __getattr__(name: str) -> Any:
    # Lazy so that loading the pytest plugin does not import pytest-only helpers or pydantic.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'arcodex.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
