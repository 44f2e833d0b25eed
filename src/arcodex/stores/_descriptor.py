"""What a store says about a dataset without reading its data arrays.

:class:`DatasetDescriptor` is built from what a dataset opened lazily already
holds (Zarr or consolidated metadata, a NetCDF header, the 1-D coordinates
xarray reads for its indexes) or from a catalog record's extracted metadata.
The spatial and temporal parts come from the same datacube summary the catalog
stores and STAC publishes (:func:`arcodex.extract._datacube.datacube`), so a
store, a record and a STAC Item agree on a dataset's extent and steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import xarray as xr

    from arcodex.model import Record
    from arcodex.stores._base import SearchParams

__all__ = [
    "DatasetDescriptor",
    "VariableDescriptor",
    "describe_dataset",
    "describe_record",
    "matches",
    "multiscale_levels",
    "parse_time_range",
    "record_levels",
]

#: The attribute a store writes into what it writes, and checks before it deletes.
WRITTEN_BY = "arcodex_store"
#: Record metadata keys that describe structure, not the dataset's own attributes.
_STRUCTURE = {
    "bbox",
    "start_datetime",
    "end_datetime",
    "datetime",
    "dims",
    "variables",
    "datacube",
    "convert",
    "zarr",
    "icechunk",
    "netcdf",
    "file",
    "levels",
}


class VariableDescriptor(BaseModel):
    """One variable: its dims, shape, dtype and CF attributes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...] = ()
    dtype: str
    chunks: tuple[int, ...] | None = None
    units: str | None = None
    long_name: str | None = None
    standard_name: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)


class DatasetDescriptor(BaseModel):
    """A dataset as a store describes it (xcube's ``DatasetDescriptor``, in arcodex's words)."""

    model_config = ConfigDict(extra="forbid")

    data_id: str
    store: str = Field(description="The kind of store that described it.")
    dims: dict[str, int]
    coords: dict[str, VariableDescriptor] = Field(default_factory=dict)
    data_vars: dict[str, VariableDescriptor] = Field(default_factory=dict)
    bbox: tuple[float, float, float, float] | None = None
    time_range: tuple[str | None, str | None] | None = None
    time_period: str | None = Field(None, description="ISO 8601 duration of a regular time step.")
    spatial_res: float | None = Field(None, description="Step of the x axis, in its units.")
    crs: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)
    levels: list[str] = Field(
        default_factory=list, description="Groups of a multi-level product, finest first."
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetDescriptor:
        return cls.model_validate(dict(data))


# -- from a lazily opened dataset -------------------------------------------------------------


def describe_dataset(
    ds: xr.Dataset, data_id: str, store: str, *, levels: Sequence[str] = ()
) -> DatasetDescriptor:
    """The descriptor of a lazily opened, CF-decoded ``ds``: reads 1-D coordinates only."""
    from arcodex.extract._datacube import cube_fields, datacube

    dims, _ = cube_fields(datacube(ds, decoded=True))
    coords = {str(n): _variable(str(n), v) for n, v in ds.coords.items()}
    data_vars = {str(n): _variable(str(n), v) for n, v in ds.data_vars.items()}
    return DatasetDescriptor(
        data_id=data_id,
        store=store,
        dims={str(k): int(v) for k, v in ds.sizes.items()},
        coords=coords,
        data_vars=data_vars,
        crs=_crs(ds, dims),
        attrs=_attrs(ds.attrs),
        levels=list(levels),
        **_extents(dims),
    )


def _variable(name: str, var: Any) -> VariableDescriptor:
    attrs = _attrs(var.attrs)
    chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
    if isinstance(chunks, Mapping):
        chunks = [chunks.get(d, n) for d, n in zip(var.dims, var.shape, strict=True)]
    return VariableDescriptor(
        name=name,
        dims=tuple(str(d) for d in var.dims),
        shape=tuple(int(n) for n in var.shape),
        dtype=str(var.dtype),
        chunks=tuple(int(c) for c in chunks) if chunks else None,
        units=_text(attrs.pop("units", None)),
        long_name=_text(attrs.pop("long_name", None)),
        standard_name=_text(attrs.pop("standard_name", None)),
        attrs=attrs,
    )


def _crs(ds: Any, dims: Mapping[str, Any]) -> str | None:
    for var in ds.variables.values():
        for key in ("crs_wkt", "spatial_ref"):
            if isinstance(var.attrs.get(key), str):
                return str(var.attrs[key])
    axes = {d.get("axis") for d in dims.values() if d.get("type") == "spatial"}
    return "EPSG:4326" if {"x", "y"} <= axes else None


# -- from a catalog record ----------------------------------------------------------------


def describe_record(record: Record, store: str = "catalog") -> DatasetDescriptor | None:
    """The descriptor of a dataset record from its extracted metadata, or None if it has none."""
    from arcodex.extract._datacube import DATACUBE, cube_fields

    meta = record.metadata
    variables = meta.get("variables")
    sizes = meta.get("dims")
    if not isinstance(variables, Mapping) or not isinstance(sizes, Mapping):
        return None
    found = meta.get(DATACUBE)
    cube: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    dims, cube_vars = cube_fields(cube)
    chunks = (
        meta.get("convert", {}).get("chunks", {})
        if isinstance(meta.get("convert"), Mapping)
        else {}
    )
    coords: dict[str, VariableDescriptor] = {}
    data_vars: dict[str, VariableDescriptor] = {}
    for name, entry in variables.items():
        if not isinstance(entry, Mapping):
            continue
        var_dims = tuple(str(d) for d in entry.get("dims", ()))
        extra = {
            k: v
            for k, v in entry.items()
            if k not in ("dims", "dtype", "units", "long_name", "standard_name", "shape")
        }
        described = VariableDescriptor(
            name=str(name),
            dims=var_dims,
            shape=tuple(int(sizes.get(d, 0)) for d in var_dims),
            dtype=str(entry.get("dtype", "")),
            chunks=tuple(chunks[name]) if isinstance(chunks.get(name), list) else None,
            units=_text(entry.get("units")),
            long_name=_text(entry.get("long_name")),
            standard_name=_text(entry.get("standard_name")),
            attrs=extra,
        )
        auxiliary = cube_vars.get(str(name), {}).get("type") == "auxiliary"
        (coords if name in sizes or auxiliary else data_vars)[str(name)] = described
    extents = _extents(dims)
    if isinstance(meta.get("bbox"), list) and len(meta["bbox"]) == 4:
        extents["bbox"] = tuple(float(v) for v in meta["bbox"])
    if meta.get("start_datetime") or meta.get("end_datetime"):
        extents["time_range"] = (meta.get("start_datetime"), meta.get("end_datetime"))
    attrs = {k: v for k, v in meta.items() if k not in _STRUCTURE}
    if record.title and "title" not in attrs:
        attrs["title"] = record.title
    return DatasetDescriptor(
        data_id=record.id,
        store=store,
        dims={str(k): int(v) for k, v in sizes.items()},
        coords=coords,
        data_vars=data_vars,
        crs="EPSG:4326" if cube.get("regular_grid") else None,
        attrs=attrs,
        levels=record_levels(record),
        **extents,
    )


def _extents(dims: Mapping[str, Any]) -> dict[str, Any]:
    """bbox, time range and period, spatial resolution of a datacube's dimensions."""
    out: dict[str, Any] = {}
    spatial = {d.get("axis"): d for d in dims.values() if d.get("type") == "spatial"}
    x, y = spatial.get("x"), spatial.get("y")
    if x and y:
        out["bbox"] = (x["extent"][0], y["extent"][0], x["extent"][1], y["extent"][1])
    if x and isinstance(x.get("step"), int | float):
        out["spatial_res"] = abs(float(x["step"]))
    for d in dims.values():
        if d.get("type") == "temporal":
            out["time_range"] = (d["extent"][0], d["extent"][1])
            if d.get("step"):
                out["time_period"] = str(d["step"])
            break
    return out


def record_levels(record: Record) -> list[str]:
    """The level groups of a multi-level product's record (``convert --pyramid``), finest first."""
    found = record.metadata.get("levels")
    paths = []
    for entry in found if isinstance(found, list) else ():
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        if path is not None:
            paths.append(str(path))
    return paths


def multiscale_levels(attrs: Mapping[str, Any]) -> list[str]:
    """The level groups a ``multiscales`` attribute names (OGC/GeoZarr or NGFF form)."""
    found = attrs.get("multiscales")
    entries: Any = []
    if isinstance(found, Mapping):  # GeoZarr: {"layout": [{"asset": "0"}, …]}
        entries = found.get("layout") or found.get("datasets") or []
    elif isinstance(found, list) and found and isinstance(found[0], Mapping):
        entries = found[0].get("datasets") or []  # NGFF: [{"datasets": [{"path": "0"}, …]}]
    levels = []
    for entry in entries:
        if isinstance(entry, Mapping):
            path = entry.get("path", entry.get("asset", entry.get("group")))
            if path is not None:
                levels.append(str(path))
    return levels


# -- attributes as JSON -------------------------------------------------------------------


def _attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): _json(v) for k, v in attrs.items() if k != WRITTEN_BY}


def _json(value: Any) -> Any:
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json(value.tolist())
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- search filters ---------------------------------------------------------------------


def parse_time_range(value: str | Sequence[str | None] | None) -> tuple[Any, Any] | None:
    """``'start/end'`` or ``(start, end)`` as numpy datetimes (None for an open end).

    A partial end (``2000-01``) reaches to the end of that month, as a reader means it.
    """
    import numpy as np

    from arcodex.errors import ValidationError

    if value is None:
        return None
    parts = value.split("/", 1) if isinstance(value, str) else list(value)
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        raise ValidationError(f"time {value!r} is not 'start/end' or [start, end]; fix it")
    out: list[Any] = []
    for i, part in enumerate(parts):
        text = (part or "").strip().removesuffix("Z")
        if text in ("", ".."):
            out.append(None)
            continue
        try:
            moment = np.datetime64(text)
        except ValueError:
            raise ValidationError(
                f"time {part!r} is not an ISO 8601 time (e.g. 2000-01-31T12:00); fix it"
            ) from None
        if i == 1:
            # np.datetime_data gives the unit the text was written to (a month, a day …).
            step: Any = np.timedelta64(1, np.datetime_data(moment.dtype)[0])  # type: ignore[call-overload]
            moment = (moment + step).astype("datetime64[ms]") - np.timedelta64(1, "ms")
        out.append(moment.astype("datetime64[ms]"))
    return out[0], out[1]


def matches(described: DatasetDescriptor, wanted: SearchParams) -> bool:
    """Whether ``described`` meets every filter of ``wanted``."""
    if wanted.variables and not set(wanted.variables) <= set(described.data_vars):
        return False
    if wanted.text:
        haystack = " ".join([described.data_id, *map(str, described.attrs.values())]).lower()
        if not all(word in haystack for word in wanted.text.lower().split()):
            return False
    if wanted.bbox is not None and (
        described.bbox is None or not _overlaps(described.bbox, wanted.bbox)
    ):
        return False
    if wanted.time is not None:
        want = parse_time_range(wanted.time)
        have = parse_time_range(described.time_range) if described.time_range else None
        if have is None or want is None:
            return have is not None
        if want[0] is not None and have[1] is not None and have[1] < want[0]:
            return False
        if want[1] is not None and have[0] is not None and have[0] > want[1]:
            return False
    return True


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two boxes meet; longitudes compared modulo 360 (0–360 data, -180–180 boxes)."""
    if a[3] < b[1] or a[1] > b[3]:
        return False

    def spans(box: Sequence[float]) -> list[tuple[float, float]]:
        west, east = box[0] % 360, box[2] % 360
        if box[2] - box[0] >= 360:
            return [(0.0, 360.0)]
        if west <= east:
            return [(west, east)]
        return [(west, 360.0), (0.0, east)]

    return any(w1 <= e2 and w2 <= e1 for w1, e1 in spans(a) for w2, e2 in spans(b))
