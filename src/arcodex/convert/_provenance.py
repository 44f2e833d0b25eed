"""What a product records about itself (its provenance), and what is done from it: the
source profile it was read with, the plan it was written with, and the check of the
product against its sources with that plan (one check path for convert, update, check)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.convert._access import profile_options
from arcodex.convert._attrs import AttrFixes
from arcodex.convert._check import CheckReport, check_product, close_sources
from arcodex.convert._plan import Plan, build_plan
from arcodex.convert._product import PROVENANCE_ATTR, Product
from arcodex.convert._scan import scan_grid
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.convert._sources import SourceScan

__all__ = ["check_against_sources", "provenance_of", "recorded_plan", "recorded_profile"]


def provenance_of(
    product: Product, cat: Catalog | None, options: dict[str, Any], what_else: str
) -> tuple[Product, dict[str, Any], dict[str, Any]]:
    """The product's provenance, with the source profile it records applied.

    Raises:
        ValidationError: the product was not made by arcodex (``what_else`` says what to do).
    """
    provenance = product.provenance()
    if not provenance:
        raise ValidationError(f"{product.target.url} carries no arcodex provenance; {what_else}")
    product, options = recorded_profile(product, provenance, cat, options)
    return product, provenance, options


def recorded_profile(
    product: Product,
    provenance: Mapping[str, Any],
    cat: Catalog | None,
    src_options: dict[str, Any],
) -> tuple[Product, dict[str, Any]]:
    """Read remote sources with the profile the conversion used, unless told otherwise."""
    name = provenance.get("parameters", {}).get("source_profile")
    if src_options or not name or cat is None:
        return product, src_options
    options = profile_options(cat, str(name))
    return dataclasses.replace(product, source_options=options), options


def recorded_plan(
    scans: Sequence[SourceScan], provenance: Mapping[str, Any], src_options: Mapping[str, Any]
) -> Plan:
    """The plan of a product, as its provenance records it, over the sources ``scans``.

    The one plan a product is checked against: by ``check``, and by ``convert`` and
    ``update`` right after writing (from the product's provenance, as written).
    """
    dim = provenance.get("concat_dim")
    params = provenance.get("parameters", {})
    grid_scan = None
    if params.get("grid"):
        grid_scan = scan_grid(params["grid"], src_options)
    variables = list(provenance.get("variables", {}))
    plan = build_plan(
        scans,
        concat_dim=dim,
        variables=variables or None,
        chunks={},
        fixes=AttrFixes.from_dict(params.get("attr_fixes") or {}),
        grid=grid_scan,
        grid_coords=params.get("grid_coords"),
        concat_units=provenance.get("concat_units"),
    )
    for name, var in plan.variables.items():
        stored = provenance.get("variables", {}).get(name)
        if stored:
            var.chunks = tuple(stored["chunks"])
    if params.get("format") == "zarr":
        from arcodex.convert._write import fill_attrs

        fill_attrs(plan, int(params.get("write", {}).get("zarr_format", 3)))
    plan.attrs[PROVENANCE_ATTR] = ""
    plan.attrs.pop(PROVENANCE_ATTR)
    return plan


def check_against_sources(
    product: Product,
    scans: Sequence[SourceScan],
    provenance: Mapping[str, Any],
    *,
    samples: int = 3,
    seed: int | None = None,
    full: bool = False,
    recorded: Sequence[Mapping[str, Any]] | None = None,
) -> CheckReport:
    """Check ``product`` against the sources ``scans`` describe, with the plan its provenance
    records (the one check path of ``convert``, ``update`` and ``check``)."""
    plan = recorded_plan(scans, provenance, product.source_options)
    try:
        return check_product(
            product, plan, samples=samples, seed=seed, full=full, recorded=recorded
        )
    finally:
        close_sources(plan)
