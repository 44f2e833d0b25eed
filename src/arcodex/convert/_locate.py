"""Finding a product again: from a path, a URL or a record id, with the catalog that
knows it and the options to read its sources; and its record."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.convert._access import open_catalog_arg, profile_options, source_options
from arcodex.convert._dest import dest_access, reach
from arcodex.convert._product import Product
from arcodex.convert._target import Target
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["locate_product", "managed", "record_of", "resolve_product"]


def resolve_product(
    product: str | os.PathLike[str] | Product,
    cat: Catalog | None,
    dest_options: Mapping[str, Any] | None,
    src_options: Mapping[str, Any],
    group: str | None,
    branch: str,
    dest_profile: str | None = None,
) -> Product:
    if isinstance(product, Product):
        return product
    text = os.fspath(product)
    if cat is not None and "/" not in text and not Path(text).exists():
        record = cat.get(text)
        primary = next((a for a in record.artifacts if a.role == "primary"), None)
        if primary is None:
            raise ValidationError(f"record {record.id} has no product artifact")
        text = cat.locate(primary)
        conv = record.metadata.get("convert", {})
        group = group or conv.get("group")
        if not dest_options and "://" in text:
            name = getattr(primary.locator, "profile", None)
            dest_options = profile_options(cat, name) if name else None
    if "://" in text and not dest_options:
        dest_options, found = dest_access(cat, text, dest_profile, None)
        reach(Target.of(text, dest_options), found, cat, option="--dest-profile NAME")
    prod = Product.detect(
        text, dest_options, group=group, branch=branch, source_options=src_options
    )
    return prod


def locate_product(
    stack: ExitStack,
    product: str | os.PathLike[str] | Product,
    catalog: Any,
    source_profile: str | None,
    storage_options: Mapping[str, Any] | None,
    dest_options: Mapping[str, Any] | None,
    group: str | None,
    branch: str,
    dest_profile: str | None = None,
) -> tuple[Catalog | None, Product, dict[str, Any]]:
    """The catalog (opened on ``stack``), the product, and the options to read its sources."""
    cat = open_catalog_arg(catalog, stack)
    options = source_options(cat, source_profile, storage_options)
    found = resolve_product(product, cat, dest_options, options, group, branch, dest_profile)
    return cat, found, options


def record_of(cat: Catalog | None, product: Product) -> Record | None:
    """The catalog's record of ``product`` (by its URL), if there is one."""
    if cat is None:
        return None
    found = cat.search(kind="dataset", **{"convert.product.url": product.target.url})  # type: ignore[arg-type]
    records: list[Record] = list(found.records)
    return records[0] if records else None


def managed(record: Record) -> bool:
    """Whether arcodex placed the record's product (in a storage profile) and so owns it."""
    return any(a.managed for a in record.artifacts if a.role == "primary")
