"""Ingestion from providers and sync: datasets that keep themselves up to date.

Templates and extents (:mod:`arcodex.ingest._model`) say what can be ingested
and where; providers (:mod:`arcodex.ingest._provider`) say which periods exist
and fetch them; :func:`ingest` writes a template's periods over an extent into
an Icechunk repository, one commit per period.
"""

from __future__ import annotations

from arcodex.ingest._availability import available
from arcodex.ingest._cursor import committed_periods
from arcodex.ingest._files import FilesProvider
from arcodex.ingest._http import HttpProvider
from arcodex.ingest._ingestion import IngestionResult, PeriodFailure, ingest
from arcodex.ingest._loading import (
    LoadError,
    get_extent,
    get_template,
    load_extent_file,
    load_extents,
    load_template_file,
    load_templates,
)
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
from arcodex.ingest._registry import get_provider, provider_names
from arcodex.ingest._remote_zarr import RemoteZarrProvider
from arcodex.ingest._s3 import S3Provider

__all__ = [
    "FREQUENCIES",
    "Availability",
    "Display",
    "Extent",
    "FetchError",
    "FilesProvider",
    "Grid",
    "HttpProvider",
    "IngestionResult",
    "LoadError",
    "PeriodFailure",
    "PeriodType",
    "Provider",
    "ProviderRef",
    "RemoteZarrProvider",
    "S3Provider",
    "Target",
    "Template",
    "Transforms",
    "UnitConversion",
    "VariableSpec",
    "available",
    "committed_periods",
    "get_extent",
    "get_provider",
    "get_template",
    "ingest",
    "load_extent_file",
    "load_extents",
    "load_template_file",
    "load_templates",
    "parse_period",
    "period_id",
    "period_range",
    "provider_names",
]
