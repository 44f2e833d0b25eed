"""The arcodex pytest plugin (entry point ``pytest11``), loaded in every pytest run.

It only registers the marker the backend contract puts on its tests, so that
``pytest -m arcodex_contract`` selects them under ``--strict-markers``. Keep it
import-light: no pydantic, xarray or arcodex models here.
"""

from __future__ import annotations

import pytest

__all__ = ["pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers arcodex's test helpers use."""
    config.addinivalue_line(
        "markers",
        "arcodex_contract: a test from arcodex.testing.BackendContract (a backend's shared contract)",
    )
