"""STAC for the catalog: build, validate and publish Collections and Items.

Needs the ``stac`` extra (pystac), imported when STAC is built::

    from arcodex.stac import stac_for, validate_stac

    collection, item = stac_for(record, catalog)
    validate_stac([collection.to_dict(), item.to_dict()]).valid
"""

from __future__ import annotations

from arcodex.stac._build import (
    EXTENSIONS,
    STAC_VERSION,
    collection_for,
    item_for,
    stac_for,
    version_items,
)
from arcodex.stac._export import ExportResult, build_documents, export_stac
from arcodex.stac._extents import bbox_geometry, normalise_bbox, rfc3339
from arcodex.stac._validate import PROFILE, Problem, Report, load_profile, validate_stac

__all__ = [
    "EXTENSIONS",
    "PROFILE",
    "STAC_VERSION",
    "ExportResult",
    "Problem",
    "Report",
    "bbox_geometry",
    "build_documents",
    "collection_for",
    "export_stac",
    "item_for",
    "load_profile",
    "normalise_bbox",
    "rfc3339",
    "stac_for",
    "validate_stac",
    "version_items",
]
