"""STAC for catalog records: one Collection per dataset record, an Item for its product.

The datacube extension (dimensions with extents, steps and reference systems;
variables with units and long names) is what the record stored when it was
written (:mod:`arcodex.extract._datacube`); a record that has none (written by
an older arcodex) is described from its opened data, or else from its metadata;
assets carry media types, roles, ``xarray:open_kwargs`` and non-secret
``xarray:storage_options`` so that any client can open them; CF global
attributes become STAC fields (title, description, license, providers,
keywords, DOI and citation). A Collection whose record names no license or
provider gets the catalog's ``stac_defaults`` (``arcodex.yaml``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.extract._datacube import DATACUBE, cube_fields, datacube, role
from arcodex.stac._extents import bbox_geometry, normalise_bbox, rfc3339

if TYPE_CHECKING:
    import pystac

    from arcodex.catalog import Catalog
    from arcodex.catalog._config import StacDefaultsConfig
    from arcodex.model import Record

__all__ = ["EXTENSIONS", "STAC_VERSION", "collection_for", "item_for", "stac_for", "version_items"]

STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "datacube": "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "xarray": "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json",
    "scientific": "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
    "version": "https://stac-extensions.github.io/version/v1.2.0/schema.json",
}
_MEDIA = {
    "zarr": "application/vnd+zarr",
    "icechunk": "application/vnd.icechunk",
    "virtual-icechunk": "application/vnd.icechunk",
    "kerchunk": "application/json",
    "kerchunk-parquet": "application/vnd.apache.parquet",
    "netcdf": "application/netcdf",
}
_LICENSES = {
    "cc-by-4.0": "CC-BY-4.0",
    "cc by 4.0": "CC-BY-4.0",
    "creative commons attribution 4.0": "CC-BY-4.0",
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "odc-by": "ODC-By-1.0",
    "apache-2.0": "Apache-2.0",
    "mit": "MIT",
}


def stac_for(
    record: Record, catalog: Catalog | None = None, *, open_data: bool = True
) -> tuple[pystac.Collection, pystac.Item]:
    """The Collection and Item of one dataset record (the data opened for the datacube)."""
    info = _describe(record, catalog, open_data=open_data)
    item = _item(record, info)
    collection = _collection(record, info, catalog.config.stac_defaults if catalog else None)
    collection.add_item(item)
    return collection, item


def version_items(
    record: Record, item: pystac.Item, catalog: Catalog | None = None, *, describe: bool = True
) -> list[pystac.Item]:
    """One Item per tagged snapshot of an Icechunk product (``{record}@{tag}``), newest first.

    A record written by this arcodex lists its tags with each snapshot's datacube
    and time extent (``convert.tags``), and nothing is opened. For an older record
    the repository is read for its tags, and each snapshot is opened for its
    datacube unless ``describe`` is False (then it keeps the latest's). The
    product's own Item stays the latest version. Other formats have no versions.
    """
    conv = record.metadata.get("convert")
    if not isinstance(conv, Mapping) or conv.get("format") not in ("icechunk", "virtual-icechunk"):
        return []
    stored = conv.get("tags")
    if isinstance(stored, list):
        # Recorded, each with its own datacube, when the record was written: nothing to open.
        return [
            _version(record, item, str(t["tag"]), str(t["snapshot"]), t)
            for t in sorted(stored, key=lambda t: str(t["tag"]), reverse=True)
            if isinstance(t, Mapping) and t.get("tag") and t.get("snapshot")
        ]
    try:
        from arcodex.convert import Product

        product = Product.detect(
            str(conv.get("url")), group=conv.get("group"), branch=conv.get("branch", "main")
        )
        repo = product.repository()
        tags = sorted(
            ((tag, str(repo.lookup_tag(tag))) for tag in repo.list_tags()),
            key=lambda pair: pair[0],
            reverse=True,
        )
    except Exception:  # a repository that cannot be read (e.g. remote, no credentials): no versions
        return []
    out = []
    for tag, snapshot in tags:
        described: dict[str, Any] = {}
        if describe:
            described = _snapshot_cube(product, snapshot)
        out.append(_version(record, item, tag, snapshot, described))
    return out


def _version(
    record: Record, item: pystac.Item, tag: str, snapshot: str, described: Mapping[str, Any]
) -> pystac.Item:
    """The Item of one tagged snapshot: the latest's, with that snapshot's cube and times."""
    version = item.clone()
    version.id = f"{record.id}@{tag}"
    cube = described.get(DATACUBE)
    dimensions, variables = cube_fields(cube) if isinstance(cube, Mapping) else ({}, {})
    if dimensions:
        version.properties["cube:dimensions"] = dimensions
        version.properties["cube:variables"] = variables
    start, end = described.get("start_datetime"), described.get("end_datetime")
    if start and end:
        version.properties["start_datetime"], version.properties["end_datetime"] = start, end
        version.datetime = None
    version.properties["version"] = tag
    version.properties["arcodex:snapshot"] = snapshot
    version.properties["title"] = f"{item.properties.get('title', record.id)} ({tag})"
    version.stac_extensions = sorted({*version.stac_extensions, EXTENSIONS["version"]})
    for asset in version.assets.values():
        asset.extra_fields.pop("icechunk:branch", None)
        asset.extra_fields["icechunk:tag"] = tag
        asset.extra_fields["icechunk:snapshot"] = snapshot
    return version


def _snapshot_cube(product: Any, snapshot: str) -> dict[str, Any]:
    """The datacube and time extent of a product as it was at ``snapshot`` (a record of
    an old arcodex, which stored neither); nothing when the snapshot cannot be read."""
    from arcodex.extract._datacube import tag_entry

    try:
        with product.open(snapshot=snapshot) as ds:
            return tag_entry("", snapshot, datacube(ds))
    except Exception:  # a snapshot that cannot be read keeps the latest description
        return {}


def collection_for(
    record: Record, catalog: Catalog | None = None, *, open_data: bool = True
) -> pystac.Collection:
    return stac_for(record, catalog, open_data=open_data)[0]


def item_for(
    record: Record, catalog: Catalog | None = None, *, open_data: bool = True
) -> pystac.Item:
    return stac_for(record, catalog, open_data=open_data)[1]


# -- what a record holds -----------------------------------------------------------------


class _Info:
    """What STAC needs from a record: extents, attributes, cube, assets."""

    def __init__(self) -> None:
        self.bbox: list[float] | None = None
        self.start: str | None = None
        self.end: str | None = None
        self.attrs: dict[str, Any] = {}
        self.dimensions: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}
        self.regular_grid = False
        self.assets: dict[str, dict[str, Any]] = {}


def _describe(record: Record, catalog: Catalog | None, *, open_data: bool) -> _Info:
    info = _Info()
    meta = record.metadata
    if meta.get("bbox"):
        info.bbox = normalise_bbox(meta["bbox"])
    info.start = rfc3339(meta.get("start_datetime") or meta.get("datetime"))
    info.end = rfc3339(meta.get("end_datetime") or meta.get("datetime"))
    info.attrs = record_attrs(record)
    info.assets = _assets(record, catalog)
    stored = _stored_cube(meta)
    if stored is not None:
        # Computed from the data when the record was written: nothing to open.
        _apply_cube(stored, info)
        attrs = stored.get("attrs")
        if isinstance(attrs, Mapping):
            info.attrs = {**{str(k): v for k, v in attrs.items()}, **info.attrs}
    elif open_data and info.assets:
        ds = _open(record, catalog)
        if ds is not None:
            with ds:
                _cube(ds, info)
                info.attrs = {**{str(k): v for k, v in ds.attrs.items()}, **info.attrs}
    if not info.variables:
        _cube_from_metadata(meta, info)
    return info


def record_attrs(record: Record) -> dict[str, Any]:
    """The dataset attributes a record's metadata holds (NetCDF globals, then scalars)."""
    meta = record.metadata
    netcdf = meta.get("netcdf") if isinstance(meta.get("netcdf"), Mapping) else {}
    return {
        **dict((netcdf or {}).get("attrs", {}).items()),
        **{k: v for k, v in meta.items() if isinstance(v, str | int | float)},
    }


def _open(record: Record, catalog: Catalog | None) -> Any:
    conv = record.metadata.get("convert")
    try:
        if conv:
            from arcodex.convert import open_product

            return open_product(record.id, catalog=catalog) if catalog else None
        primary = next((a for a in record.artifacts if a.role == "primary"), None)
        if primary is None or catalog is None:
            return None
        import xarray as xr

        return xr.open_dataset(catalog.locate(primary), chunks={})
    except Exception:  # a record whose data cannot be opened still gets STAC from metadata
        return None


# -- the datacube --------------------------------------------------------------------------

#: Kept under its old name: stac._groups reads axes through it.
_role = role


def _cube(ds: Any, info: _Info) -> None:
    """The datacube of an opened dataset (as a record written today stores it)."""
    _apply_cube(datacube(ds), info)


def _apply_cube(summary: Mapping[str, Any], info: _Info) -> None:
    """Fill ``info`` from a datacube summary (:func:`arcodex.extract._datacube.datacube`)."""
    info.dimensions, info.variables = cube_fields(summary)
    info.regular_grid = bool(summary.get("regular_grid"))


def _stored_cube(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The datacube summary the record stored when it was written, if any."""
    found = meta.get(DATACUBE)
    if isinstance(found, Mapping) and isinstance(found.get("dimensions"), list):
        return found
    return None


def _cube_from_metadata(meta: Mapping[str, Any], info: _Info) -> None:
    """A datacube from the record's extracted metadata, when the data cannot be opened."""
    variables = meta.get("variables") or (meta.get("netcdf") or {}).get("variables") or {}
    dims = meta.get("dims") or (meta.get("netcdf") or {}).get("dims") or {}
    for name, size in dims.items():
        info.dimensions.setdefault(
            str(name), {"type": "index", "extent": [0, max(0, int(size) - 1)]}
        )
    for name, var in variables.items():
        if name in dims or not isinstance(var, Mapping):
            continue
        entry: dict[str, Any] = {"dimensions": list(var.get("dims", [])), "type": "data"}
        if var.get("units"):
            entry["unit"] = str(var["units"])
        if var.get("long_name"):
            entry["description"] = str(var["long_name"])
        info.variables[str(name)] = entry


# -- assets ---------------------------------------------------------------------------------


def _assets(record: Record, catalog: Catalog | None) -> dict[str, dict[str, Any]]:
    primary = next((a for a in record.artifacts if a.role == "primary"), None)
    if primary is None:
        return {}
    found = record.metadata.get("convert")
    conv: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    href = catalog.locate(primary) if catalog is not None else _href(primary.locator)
    if href and "://" not in href and os.path.isabs(href):
        # An absolute path would read as relative to the document's own (HTTP) URL.
        href = Path(href).as_uri()
    if catalog is not None and catalog.config.stac_asset_hrefs:
        href = public_href(href, catalog.config.stac_asset_hrefs)
    fmt = conv.get("format") or primary.format or "netcdf"
    asset: dict[str, Any] = {
        "href": href,
        "type": _MEDIA.get(fmt, primary.media_type or "application/octet-stream"),
        "roles": ["data"],
        "title": f"{fmt} product" if conv else "data file",
    }
    open_kwargs: dict[str, Any] = {}
    if fmt == "zarr":
        open_kwargs = {"engine": "zarr", "consolidated": True, "chunks": {}}
    elif fmt in ("kerchunk", "kerchunk-parquet"):
        asset["roles"] = ["data", "references"]
        open_kwargs = {"engine": "kerchunk", "chunks": {}}
    elif fmt in ("icechunk", "virtual-icechunk"):
        asset["icechunk:branch"] = conv.get("branch", "main")
        if conv.get("snapshot"):
            asset["icechunk:snapshot"] = conv["snapshot"]
        containers = conv.get("containers") or []
        if containers:
            asset["icechunk:virtual_chunk_containers"] = list(containers)
        open_kwargs = {"engine": "zarr", "consolidated": False, "chunks": {}}
    elif fmt == "netcdf":
        open_kwargs = {"chunks": {}}
    if fmt in ("kerchunk", "kerchunk-parquet", "virtual-icechunk"):
        open_kwargs["chunks"] = _virtual_chunks(conv)
    if conv.get("group"):
        open_kwargs["group"] = conv["group"]
    if open_kwargs:
        asset["xarray:open_kwargs"] = open_kwargs
    asset.update(_access(fmt, href, conv))
    if primary.size_bytes is not None:
        asset["file:size"] = primary.size_bytes
    assets = {"data": asset}
    for level in record.metadata.get("levels") or []:
        # The coarser levels of a multi-level product (convert --pyramid): the same store,
        # another group; "data" stays level 0, the one a reader opens by default.
        if level.get("level"):
            assets[f"level-{level['level']}"] = {
                **{k: v for k, v in asset.items() if k != "file:size"},
                "roles": ["data", "overview"],
                "title": f"{fmt} product, level {level['level']} ({2 ** level['level']}x coarser)",
                "xarray:open_kwargs": {**open_kwargs, "group": level["path"]},
            }
    return assets


def _access(fmt: str, href: str, conv: Mapping[str, Any]) -> dict[str, Any]:
    """How a reader reaches the product, in the form its library takes (never a secret).

    Zarr: s3fs ``xarray:storage_options``; kerchunk: the fsspec ``reference``
    filesystem's (``target_options`` for the file, ``remote_options`` for its
    sources); Icechunk on S3: ``icechunk:storage``, the keyword arguments of
    ``icechunk.s3_storage``.
    """
    from arcodex.storage._access import (
        icechunk_storage_config,
        public_options,
        reference_options,
    )

    found = conv.get("options")
    options: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    protocol = href.split("://", 1)[0] if "://" in href else "file"
    # A public href (stac_asset_hrefs) is reached otherwise than the product's own URL.
    own = str(conv.get("url") or href)
    if (own.split("://", 1)[0] if "://" in own else "file") != protocol:
        options = {}
    if fmt in ("kerchunk", "kerchunk-parquet"):
        sources = conv.get("source_options")
        remote = _remote_protocol(conv)
        if protocol == "file" and remote in (None, "file"):
            return {}
        refs = reference_options(
            href if protocol != "file" else "",
            options,
            remote,
            sources if isinstance(sources, Mapping) else {},
        )
        return {"xarray:storage_options": refs} if refs else {}
    if fmt in ("icechunk", "virtual-icechunk"):
        if protocol in ("s3", "s3a"):
            return {"icechunk:storage": icechunk_storage_config(href, options)}
        return {}
    if protocol in ("s3", "s3a") or (options and protocol != "file"):
        return {"xarray:storage_options": public_options(protocol, options)}
    return {}


def _remote_protocol(conv: Mapping[str, Any]) -> str | None:
    """The protocol of a virtual product's sources (None when none are recorded)."""
    for prefix in conv.get("containers") or ():
        return str(prefix).split("://", 1)[0] if "://" in str(prefix) else "file"
    return None


def public_href(href: str, prefixes: Mapping[str, str]) -> str:
    """``href`` with its longest configured prefix (a path, file URI or URL) replaced."""
    best, target = "", ""
    for prefix, public in prefixes.items():
        local = Path(prefix).as_uri() if "://" not in prefix and os.path.isabs(prefix) else prefix
        local = local.rstrip("/")
        whole = href == local or href.startswith(local + "/")
        if whole and len(local) > len(best):
            best, target = local, public
    if not best:
        return href
    return target.rstrip("/") + href[len(best) :]


def _virtual_chunks(conv: Mapping[str, Any]) -> dict[str, int]:
    """Dask chunks for a virtual product: one source file per chunk along the concat dim.

    Its Zarr chunks are the sources' (often one step of about 1 MB); a Dask task
    per chunk costs more than reading it, so the product is opened a file at a time.
    """
    dim = conv.get("concat_dim")
    steps, sources = int(conv.get("steps") or 0), int(conv.get("sources") or 0)
    if not dim or not steps or not sources:
        return {}
    return {str(dim): max(1, steps // sources)}


def _href(locator: Any) -> str:
    for field in ("path", "url", "uri"):
        value = getattr(locator, field, None)
        if value:
            return str(value)
    return ""


# -- Items and Collections -----------------------------------------------------------------


def _item(record: Record, info: _Info) -> pystac.Item:
    import pystac

    bbox = info.bbox or [-180.0, -90.0, 180.0, 90.0]
    start = info.start
    end = info.end or start
    properties: dict[str, Any] = {
        "title": record.title or record.id,
        "start_datetime": start,
        "end_datetime": end,
        "arcodex:record": record.id,
        "arcodex:kind": record.kind,
    }
    if record.description:
        properties["description"] = record.description
    conv = record.metadata.get("convert")
    if isinstance(conv, Mapping) and conv.get("check"):
        properties["arcodex:check"] = conv["check"]
    if record.metadata.get("levels"):
        # Each level's group, spatial shape and resolution (assets level-1, level-2, …).
        properties["arcodex:levels"] = record.metadata["levels"]
    extensions = [EXTENSIONS["datacube"], EXTENSIONS["xarray"]]
    if info.dimensions:
        properties["cube:dimensions"] = info.dimensions
        properties["cube:variables"] = info.variables
    if info.regular_grid:
        properties["proj:code"] = "EPSG:4326"
        extensions.append(EXTENSIONS["projection"])
    _science(info.attrs, properties, extensions)
    item = pystac.Item(
        id=record.id,
        geometry=bbox_geometry(bbox),
        bbox=bbox,
        datetime=None if start else _epoch(),
        properties={k: v for k, v in properties.items() if v is not None},
        stac_extensions=sorted(set(extensions)),
    )
    for key, asset in info.assets.items():
        extra = {k: v for k, v in asset.items() if k not in ("href", "type", "roles", "title")}
        item.add_asset(
            key,
            pystac.Asset(
                href=asset["href"],
                media_type=asset["type"],
                roles=asset["roles"],
                title=asset.get("title"),
                extra_fields=extra,
            ),
        )
    return _plugin_formatted(record, item)


def _plugin_formatted(record: Record, item: pystac.Item) -> pystac.Item:
    """The Item as plugins' STAC formatters change it (a failing one is logged and skipped)."""
    from arcodex.plugins import registry

    formatters = registry().stac_formatters()
    if not formatters:
        return item
    import logging

    import pystac

    document = item.to_dict(include_self_link=False, transform_hrefs=False)
    for formatter in formatters:
        try:
            changed = formatter(record, copy.deepcopy(document))
        except Exception as exc:
            logging.getLogger("arcodex.stac").warning(
                "STAC formatter %s failed on %s and was skipped: %s: %s",
                getattr(formatter, "__qualname__", formatter),
                record.id,
                type(exc).__name__,
                exc,
            )
            continue
        if changed is not None:
            document = dict(changed)
    return pystac.Item.from_dict(document, preserve_dict=False)


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC)


def _collection(
    record: Record, info: _Info, defaults: StacDefaultsConfig | None
) -> pystac.Collection:
    from datetime import datetime

    import pystac

    attrs = info.attrs
    bbox = info.bbox or [-180.0, -90.0, 180.0, 90.0]
    bboxes = [bbox]
    if bbox[0] > bbox[2]:
        # STAC: the first box is the overall extent; the two sides of the antimeridian follow.
        bboxes = [bbox, [bbox[0], bbox[1], 180.0, bbox[3]], [-180.0, bbox[1], bbox[2], bbox[3]]]
    start = datetime.fromisoformat(info.start.replace("Z", "+00:00")) if info.start else None
    end = datetime.fromisoformat(info.end.replace("Z", "+00:00")) if info.end else None
    description = (
        record.description
        or _text(attrs.get("summary"))
        or _text(attrs.get("comment"))
        or _text(attrs.get("title"))
        or record.title
        or record.id
    )
    extensions = [EXTENSIONS["datacube"]]
    extra: dict[str, Any] = {}
    if info.dimensions:
        extra["cube:dimensions"] = info.dimensions
        extra["cube:variables"] = info.variables
    _science(attrs, extra, extensions)
    collection = pystac.Collection(
        id=record.id,
        title=record.title or _text(attrs.get("title")) or record.id,
        description=description,
        extent=pystac.Extent(pystac.SpatialExtent(bboxes), pystac.TemporalExtent([[start, end]])),
        license=record_license(attrs, defaults),
        keywords=_keywords(attrs.get("keywords"), record.tags) or None,
        providers=record_providers(attrs, defaults) or None,
        stac_extensions=sorted(set(extensions)),
        extra_fields=extra,
    )
    return collection


def _science(attrs: Mapping[str, Any], fields: dict[str, Any], extensions: list[str]) -> None:
    doi = _text(attrs.get("doi") or attrs.get("DOI"))
    citation = _text(attrs.get("citation") or attrs.get("references"))
    if doi:
        fields["sci:doi"] = doi.removeprefix("https://doi.org/").removeprefix("doi:")
    if citation:
        fields["sci:citation"] = citation
    if doi or citation:
        extensions.append(EXTENSIONS["scientific"])


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _license(value: Any) -> str:
    text = _text(value)
    if not text:
        return "other"
    mapped = _LICENSES.get(text.lower())
    if mapped:
        return mapped
    # An SPDX-looking identifier is kept; free text means "other" (the text stays in the attrs).
    return text if all(c.isalnum() or c in "-.+" for c in text) else "other"


def _keywords(value: Any, tags: Sequence[str]) -> list[str]:
    words: list[str] = []
    if isinstance(value, str):
        words = [w.strip() for w in value.replace(";", ",").split(",") if w.strip()]
    elif isinstance(value, list | tuple):
        words = [str(w).strip() for w in value if str(w).strip()]
    return list(dict.fromkeys([*words, *tags]))


def record_license(attrs: Mapping[str, Any], defaults: StacDefaultsConfig | None) -> str:
    """The record's own ``license`` attribute, else the catalog's default, else "other"."""
    if _text(attrs.get("license")) or defaults is None or not defaults.license:
        return _license(attrs.get("license"))
    return defaults.license


def record_providers(
    attrs: Mapping[str, Any], defaults: StacDefaultsConfig | None
) -> list[pystac.Provider]:
    """The providers the record's attributes name, else the catalog's default ones."""
    import pystac

    own = _providers(attrs)
    if own or defaults is None:
        return own
    return [pystac.Provider.from_dict(p.model_dump(exclude_none=True)) for p in defaults.providers]


def _providers(attrs: Mapping[str, Any]) -> list[Any]:
    import pystac

    providers: list[pystac.Provider] = []
    for key, roles in (
        ("institution", [pystac.ProviderRole.PRODUCER]),
        ("creator_name", [pystac.ProviderRole.PRODUCER]),
        ("publisher_name", [pystac.ProviderRole.HOST]),
    ):
        name = _text(attrs.get(key))
        if name and name not in [p.name for p in providers]:
            url = _text(attrs.get(key.replace("_name", "_url"))) if "_name" in key else None
            providers.append(pystac.Provider(name=name, roles=roles, url=url))
    return providers
