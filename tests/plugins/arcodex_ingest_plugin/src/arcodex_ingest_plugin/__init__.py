"""Ingestion plugins (installed by arcodex's tests).

- ``ingest``: provider ``grid`` (a factory given the catalog), a claim on the built-in
  ``files`` provider (refused), and template ``grid-monthly`` as a Template object
- ``ingest_bad``: a template dict without its provider, and one naming no known provider
"""

from __future__ import annotations

from typing import Any

#: The catalogs the ``grid`` factory was given (the tests check it was passed).
MADE_WITH: list[Any] = []


class GridProvider:
    """Periods of a constant grid (``arcodex.ingest.Provider``); nothing is fetched."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog

    def probe(self, extent: Any, params: dict[str, Any]) -> Any:
        from arcodex.ingest import Grid

        return Grid(dims={"lat": 1, "lon": 1}, coords={}, dtypes={"v": "float32"})

    def periods(self, start: Any, end: Any, params: dict[str, Any]) -> list[Any]:
        import pandas as pd

        return list(pd.period_range(start, end, freq=start.freq))

    def fetch_period(self, period: Any, extent: Any, params: dict[str, Any]) -> Any:
        return []


def make_grid(catalog: Any = None) -> GridProvider:
    MADE_WITH.append(catalog)
    return GridProvider(catalog)


def _not_a_provider(catalog: Any = None) -> Any:
    raise AssertionError("the built-in files provider was replaced by a plugin's")


def register(registrar: Any) -> None:
    from arcodex.ingest import Template

    registrar.add_provider("grid", make_grid)
    registrar.add_provider("files", _not_a_provider)
    registrar.add_template(
        Template(
            id="grid-monthly",
            name="A monthly grid",
            period="monthly",
            provider={"name": "grid", "params": {"token": "plugin-token-value", "level": 2}},
        )
    )


def register_bad(registrar: Any) -> None:
    registrar.add_template({"id": "no-provider", "period": "daily"})
    registrar.add_template({"id": "lost", "period": "daily", "provider": {"name": "nowhere"}})
