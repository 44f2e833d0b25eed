"""STAC for the catalog: build, validate and publish Collections and Items.

Needs the ``stac`` extra (pystac), imported when STAC is built::

    from arcodex.stac import stac_for, validate_stac

    collection, item = stac_for(record, catalog)
    validate_stac([collection.to_dict(), item.to_dict()]).valid

Extension blocks are validated against the official extension schemas once
they are cached (``fetch_schemas``, or ``arcodex stac schemas fetch``).
"""

from __future__ import annotations

from arcodex.stac._build import (
    EXTENSIONS,
    STAC_VERSION,
    collection_for,
    item_for,
    public_href,
    stac_for,
    version_items,
)
from arcodex.stac._export import ExportResult, build_documents, export_stac
from arcodex.stac._extents import bbox_geometry, normalise_bbox, rfc3339
from arcodex.stac._groups import Grouping, group_collection
from arcodex.stac._schemas import (
    CachedSchema,
    cached_schemas,
    catalog_schema_cache,
    fetch_schemas,
    schema_cache_dir,
)
from arcodex.stac._validate import (
    PROFILE,
    Notice,
    Problem,
    Report,
    load_profile,
    validate_stac,
)

__all__ = [
    "EXTENSIONS",
    "PROFILE",
    "STAC_VERSION",
    "CachedSchema",
    "ExportResult",
    "Grouping",
    "Notice",
    "Problem",
    "Report",
    "bbox_geometry",
    "build_documents",
    "cached_schemas",
    "catalog_schema_cache",
    "collection_for",
    "export_stac",
    "fetch_schemas",
    "group_collection",
    "item_for",
    "load_profile",
    "normalise_bbox",
    "public_href",
    "rfc3339",
    "schema_cache_dir",
    "stac_for",
    "validate_stac",
    "version_items",
]
