"""Ingestion from providers and sync: datasets that keep themselves up to date.

Templates and extents (:mod:`arcodex.ingest._model`) say what can be ingested
and where; providers (:mod:`arcodex.ingest._provider`) say which periods exist
and fetch them.
"""

from __future__ import annotations

from arcodex.ingest._model import (
    Availability,
    Display,
    Extent,
    ProviderRef,
    Target,
    Template,
    Transforms,
    UnitConversion,
    VariableSpec,
)
from arcodex.ingest._periods import FREQUENCIES, PeriodType, parse_period, period_id, period_range
from arcodex.ingest._provider import FetchError, Grid, Provider

__all__ = [
    "FREQUENCIES",
    "Availability",
    "Display",
    "Extent",
    "FetchError",
    "Grid",
    "PeriodType",
    "Provider",
    "ProviderRef",
    "Target",
    "Template",
    "Transforms",
    "UnitConversion",
    "VariableSpec",
    "parse_period",
    "period_id",
    "period_range",
]
