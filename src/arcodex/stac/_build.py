"""STAC for catalog records: one Collection per dataset record, an Item for its product.

The datacube extension is filled from the opened dataset (dimensions with
extents, steps and reference systems; variables with units and long names);
assets carry media types, roles, ``xarray:open_kwargs`` and non-secret
``xarray:storage_options`` so that any client can open them; CF global
attributes become STAC fields (title, description, license, providers,
keywords, DOI and citation).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.stac._extents import bbox_geometry, normalise_bbox, rfc3339

if TYPE_CHECKING:
    import pystac

    from arcodex.catalog import Catalog
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
    collection = _collection(record, info, item)
    collection.add_item(item)
    return collection, item


def version_items(
    record: Record, item: pystac.Item, catalog: Catalog | None = None, *, describe: bool = True
) -> list[pystac.Item]:
    """One Item per tagged snapshot of an Icechunk product (``{record}@{tag}``), newest first.

    Each opens that snapshot (``icechunk:tag``) for its datacube unless ``describe``
    is False (then it keeps the latest's); the product's own Item stays the
    latest version. Other formats have no versions.
    """
    conv = record.metadata.get("convert")
    if not isinstance(conv, Mapping) or conv.get("format") not in ("icechunk", "virtual-icechunk"):
        return []
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
        version = item.clone()
        version.id = f"{record.id}@{tag}"
        if describe:
            _describe_snapshot(version, product, snapshot)
        version.properties["version"] = tag
        version.properties["arcodex:snapshot"] = snapshot
        version.properties["title"] = f"{item.properties.get('title', record.id)} ({tag})"
        version.stac_extensions = sorted({*version.stac_extensions, EXTENSIONS["version"]})
        for asset in version.assets.values():
            asset.extra_fields.pop("icechunk:branch", None)
            asset.extra_fields["icechunk:tag"] = tag
            asset.extra_fields["icechunk:snapshot"] = snapshot
        out.append(version)
    return out


def _describe_snapshot(version: pystac.Item, product: Any, snapshot: str) -> None:
    """The datacube and time extent of the Item as they were at ``snapshot``."""
    info = _Info()
    try:
        with product.open(snapshot=snapshot) as ds:
            _cube(ds, info)
    except Exception:  # a snapshot that cannot be read keeps the latest description
        return
    if info.dimensions:
        version.properties["cube:dimensions"] = info.dimensions
        version.properties["cube:variables"] = info.variables
    for dim in info.dimensions.values():
        start, end = dim["extent"] if dim.get("type") == "temporal" else (None, None)
        if start and end:
            version.properties["start_datetime"], version.properties["end_datetime"] = start, end
            version.datetime = None
            break


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
    if open_data and info.assets:
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


def _role(name: str, var: Any) -> str | None:
    attrs = var.attrs
    std = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower()
    axis = str(attrs.get("axis", "")).upper()
    lname = name.lower()
    if (
        std == "longitude"
        or units in ("degrees_east", "degree_east")
        or axis == "X"
        or lname
        in (
            "lon",
            "longitude",
            "nav_lon",
        )
    ):
        return "x"
    if (
        std == "latitude"
        or units in ("degrees_north", "degree_north")
        or axis == "Y"
        or lname
        in (
            "lat",
            "latitude",
            "nav_lat",
        )
    ):
        return "y"
    if std == "time" or axis == "T" or lname in ("time", "time_counter"):
        return "t"
    if axis == "Z" or "positive" in attrs or std in ("depth", "height", "altitude", "air_pressure"):
        return "z"
    return None


def _cube(ds: Any, info: _Info) -> None:
    import numpy as np

    dims: dict[str, Any] = {}
    regular = 0
    for name in ds.dims:
        var = ds.variables.get(name)
        role = _role(str(name), var) if var is not None else None
        size = int(ds.sizes[name])
        if var is None or var.ndim != 1:
            dims[str(name)] = {"type": "index", "extent": [0, max(0, size - 1)]}
            continue
        values = np.asarray(var.values)
        if role in ("x", "y") and values.dtype.kind in "fiu" and size:
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            entry: dict[str, Any] = {
                "type": "spatial",
                "axis": role,
                "extent": [lo, hi],
                "reference_system": 4326,
            }
            step = _step(values)
            if step is not None:
                entry["step"] = step
            dims[str(name)] = entry
            regular += 1
        elif role == "t" and size:
            first, last = values[0], values[-1]
            entry = {"type": "temporal", "extent": [_time(first), _time(last)]}
            duration = _duration(values)
            if duration:
                entry["step"] = duration
            dims[str(name)] = entry
        elif role == "z" and values.dtype.kind in "fiu" and size:
            entry = {
                "type": "spatial",
                "axis": "z",
                "extent": [float(np.nanmin(values)), float(np.nanmax(values))],
            }
            if var.attrs.get("units"):
                entry["unit"] = str(var.attrs["units"])
            dims[str(name)] = entry
        elif values.dtype.kind in "fiu" and size:
            dims[str(name)] = {
                "type": "other",
                "extent": [float(np.nanmin(values)), float(np.nanmax(values))],
            }
        else:
            dims[str(name)] = {"type": "index", "extent": [0, max(0, size - 1)]}
    variables: dict[str, Any] = {}
    for name, var in ds.variables.items():
        if name in ds.dims:
            continue
        entry = {
            "dimensions": [str(d) for d in var.dims],
            "type": "auxiliary" if name in ds.coords else "data",
        }
        if var.attrs.get("units"):
            entry["unit"] = str(var.attrs["units"])
        if var.attrs.get("long_name"):
            entry["description"] = str(var.attrs["long_name"])
        variables[str(name)] = entry
    info.dimensions = dims
    info.variables = variables
    info.regular_grid = regular == 2


def _step(values: Any) -> float | None:
    import numpy as np

    if len(values) < 2:
        return None
    diffs = np.diff(values.astype("f8"))
    if np.allclose(diffs, diffs[0], rtol=1e-6, atol=0):
        return float(diffs[0])
    return None


def _time(value: Any) -> str | None:
    import numpy as np

    if isinstance(value, np.datetime64):
        text = str(np.datetime_as_string(value, unit="s"))
        return text + "Z"
    if hasattr(value, "year"):
        return rfc3339(value)
    return None


def _duration(values: Any) -> str | None:
    import numpy as np

    if len(values) < 2:
        return None
    if values.dtype.kind == "M":
        seconds = np.diff(values).astype("timedelta64[s]").astype("i8")
    else:
        try:
            seconds = np.array([(b - a).total_seconds() for a, b in itertools.pairwise(values)])
        except (TypeError, AttributeError):
            return None
    if not len(seconds) or not np.all(seconds == seconds[0]) or seconds[0] <= 0:
        return None
    step = int(seconds[0])
    if step % 86400 == 0:
        return f"P{step // 86400}D"
    if step % 3600 == 0:
        return f"PT{step // 3600}H"
    return f"PT{step}S"


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
    return {"data": asset}


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
    return item


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC)


def _collection(record: Record, info: _Info, item: pystac.Item) -> pystac.Collection:
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
        license=_license(attrs.get("license")),
        keywords=_keywords(attrs.get("keywords"), record.tags) or None,
        providers=_providers(attrs) or None,
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
