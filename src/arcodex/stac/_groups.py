"""Collections that group records (``stac_collections`` in ``arcodex.yaml``).

By default every dataset record is a Collection of its own. A catalog can
configure Collections that gather records instead, each defined by query
terms (``tags=ocean``, ``metadata.source=model``): a record belongs to the
first group it matches, and to its own Collection when it matches none. The
group's extent covers its members'.

A ``collection`` record may define one too, in its metadata
(``stac: {id, where, title, description}``): a group of conversions
(:mod:`arcodex.groups`) does, so that its products make one Collection as they are
registered. The configured Collections come first (and win an id they share).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.model import Condition, Query, parse_term
from arcodex.stac._extents import normalise_bbox, rfc3339

if TYPE_CHECKING:
    import pystac

    from arcodex.catalog import Catalog
    from arcodex.catalog._config import StacCollectionConfig, StacDefaultsConfig
    from arcodex.model import Record

__all__ = ["Grouping", "group_collection"]


class Grouping:
    """Which Collection each record's Item belongs to, from the catalog's configuration."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.groups: dict[str, StacCollectionConfig] = {
            g.id: g for g in catalog.config.stac_collections
        }
        for defined in _recorded(catalog):
            self.groups.setdefault(defined.id, defined)
        self._conditions = {
            g.id: [parse_term(term) for term in g.where] for g in self.groups.values()
        }

    def __bool__(self) -> bool:
        return bool(self.groups)

    def conditions(self, group_id: str) -> list[Condition]:
        """The conditions a member of the group matches."""
        return list(self._conditions[group_id])

    def collection_id(self, record: Record) -> str:
        """The id of the Collection holding the record's Item (a group's, or the record's)."""
        for group_id, conditions in self._conditions.items():
            exact = Condition(field="id", value=record.id)
            if self.catalog.count(Query(conditions=[*conditions, exact], limit=None)):
                return group_id
        return record.id

    def members(self, group_id: str, only: Sequence[Condition] = ()) -> Iterator[Record]:
        """The dataset records of the group (those that match no earlier group), of those
        matching ``only`` too (the server's: the records its asker may see)."""
        cursor = None
        conditions = [
            Condition(field="kind", value="dataset"),
            *only,
            *self._conditions[group_id],
        ]
        while True:
            page = self.catalog.search(Query(conditions=conditions, limit=500, cursor=cursor))
            for record in page.records:
                if self.collection_id(record) == group_id:
                    yield record
            cursor = page.next_cursor
            if not cursor:
                return


def _recorded(catalog: Catalog) -> list[StacCollectionConfig]:
    """The Collections ``collection`` records define (``metadata.stac``), by id; one that
    does not make a valid definition is left out (it is a record, not configuration)."""
    from arcodex.catalog._config import StacCollectionConfig

    found: dict[str, StacCollectionConfig] = {}
    cursor = None
    while True:
        page = catalog.search(
            Query(
                conditions=[Condition(field="kind", value="collection")], limit=500, cursor=cursor
            )
        )
        for record in page.records:
            stac = record.metadata.get("stac")
            if not isinstance(stac, Mapping) or not stac.get("where"):
                continue
            try:
                defined = StacCollectionConfig(
                    id=str(stac.get("id") or record.id),
                    where=list(stac["where"]),
                    title=stac.get("title") or record.title,
                    description=stac.get("description") or record.description,
                )
            except ValueError:
                continue
            found.setdefault(defined.id, defined)
        cursor = page.next_cursor
        if not cursor:
            return [found[k] for k in sorted(found)]


def group_collection(
    group: StacCollectionConfig,
    members: Sequence[Record],
    defaults: StacDefaultsConfig | None = None,
) -> pystac.Collection:
    """The Collection of a group: its extent, keywords, providers and license from its
    members' metadata (no data is opened), its text from the configuration.

    The group's own license and providers come first, then its members' (a member
    without a license has the catalog's default one, as its own Collection would); the
    catalog's default providers when neither the group nor any member names one.
    """
    import pystac

    from arcodex.stac._build import (
        EXTENSIONS,
        _keywords,
        record_attrs,
        record_license,
        record_providers,
    )

    boxes: list[list[float]] = []
    starts: list[str] = []
    ends: list[str] = []
    keywords: dict[str, None] = dict.fromkeys(group.keywords)
    licenses: set[str] = set()
    providers: dict[str, pystac.Provider] = {
        p.name: p
        for p in (
            pystac.Provider.from_dict(d.model_dump(exclude_none=True)) for d in group.providers
        )
    }
    for record in members:
        meta = record.metadata
        if meta.get("bbox"):
            boxes.append(normalise_bbox(meta["bbox"]))
        start = rfc3339(meta.get("start_datetime") or meta.get("datetime"))
        end = rfc3339(meta.get("end_datetime") or meta.get("datetime")) or start
        starts += [start] if start else []
        ends += [end] if end else []
        attrs = record_attrs(record)
        keywords.update(dict.fromkeys(_keywords(attrs.get("keywords"), record.tags)))
        licenses.add(record_license(attrs, defaults))
        for provider in record_providers(attrs, None):
            providers.setdefault(provider.name, provider)
    if not providers:
        providers = {p.name: p for p in record_providers({}, defaults)}
    interval = [_moment(min(starts, default=None)), _moment(max(ends, default=None))]
    bboxes = _union(boxes)
    dimensions, variables = _group_cube(
        members, bboxes[0], [min(starts, default=None), max(ends, default=None)]
    )
    return pystac.Collection(
        id=group.id,
        title=group.title or group.id,
        description=group.description
        or f"Datasets of the catalog matching {' and '.join(group.where)}",
        extent=pystac.Extent(pystac.SpatialExtent(bboxes), pystac.TemporalExtent([interval])),
        license=group.license or (licenses.pop() if len(licenses) == 1 else "other"),
        keywords=list(keywords) or None,
        providers=list(providers.values()) or None,
        stac_extensions=[EXTENSIONS["datacube"]],
        extra_fields={
            "cube:dimensions": dimensions,
            "cube:variables": variables,
            "arcodex:where": list(group.where),
        },
    )


def _group_cube(
    members: Sequence[Record], bbox: Sequence[float], interval: Sequence[str | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The datacube of a group from its members' extracted metadata and the group's extent:
    each dimension and variable once (the first member that has it describes it)."""
    from types import SimpleNamespace

    from arcodex.stac._build import _role

    west, south, east, north = bbox
    spans = {"x": [west, east] if west <= east else [-180.0, 180.0], "y": [south, north]}
    dimensions: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    for record in members:
        meta = record.metadata
        nested = meta.get("netcdf")
        netcdf: Mapping[str, Any] = nested if isinstance(nested, Mapping) else meta
        described: Mapping[str, Any] = netcdf.get("variables") or {}
        sizes: Mapping[str, Any] = netcdf.get("dims") or {}
        coords = set(netcdf.get("coords") or ())
        for name, size in sizes.items():
            if name in dimensions:
                continue
            attrs = described.get(name) if isinstance(described.get(name), Mapping) else {}
            role = _role(str(name), SimpleNamespace(attrs=attrs))
            if role in spans:
                dimensions[name] = {
                    "type": "spatial",
                    "axis": role,
                    "extent": spans[str(role)],
                    "reference_system": 4326,
                }
            elif role == "t":
                dimensions[name] = {"type": "temporal", "extent": list(interval)}
            else:
                dimensions[name] = {"type": "index", "extent": [0, max(0, int(size) - 1)]}
        for name, attrs in described.items():
            if name in sizes or name in variables or not isinstance(attrs, Mapping):
                continue
            entry: dict[str, Any] = {
                "dimensions": [str(d) for d in attrs.get("dims", [])],
                "type": "auxiliary" if name in coords else "data",
            }
            if attrs.get("units"):
                entry["unit"] = str(attrs["units"])
            if attrs.get("long_name"):
                entry["description"] = str(attrs["long_name"])
            variables[name] = entry
    return dimensions, variables


def _union(boxes: list[list[float]]) -> list[list[float]]:
    """STAC's bbox list: the overall box first, then the members' when there are several."""
    if not boxes:
        return [[-180.0, -90.0, 180.0, 90.0]]
    south = min(b[1] for b in boxes)
    north = max(b[3] for b in boxes)
    if any(b[0] > b[2] for b in boxes):  # one crosses the antimeridian: all longitudes
        overall = [-180.0, south, 180.0, north]
    else:
        overall = [min(b[0] for b in boxes), south, max(b[2] for b in boxes), north]
    distinct = [b for i, b in enumerate(boxes) if b not in boxes[:i]]
    return [overall, *distinct] if len(distinct) > 1 else [overall]


def _moment(text: str | None) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
