"""The arcodex pytest plugin (entry point ``pytest11``), loaded in every pytest run.

It registers the marker the backend contract puts on its tests, so that
``pytest -m arcodex_contract`` selects them under ``--strict-markers``, and the
opt-in CI skip policy (:mod:`arcodex.testing._skips`): with the ini option
``arcodex_expected_skips`` set and ``CI`` in the environment, an unexpected skip
fails the run. Keep it import-light: no pydantic, xarray or arcodex models here.
"""

from __future__ import annotations

import pytest

from arcodex.testing import _skips

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini option naming the allow-list of expected skips."""
    parser.addini(
        _skips.INI_OPTION,
        "file listing the skips expected in CI (`PATTERN  reason` a line); with CI set, any other skip fails the run",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers arcodex's test helpers use, and the CI skip policy."""
    config.addinivalue_line(
        "markers",
        "arcodex_contract: a test from arcodex.testing.BackendContract (a backend's shared contract)",
    )
    _skips.configure(config)
