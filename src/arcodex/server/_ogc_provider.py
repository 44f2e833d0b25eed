"""The pygeoapi provider of arcodex datasets: OGC API – Coverages and EDR over any product.

pygeoapi's own xarray providers open a dataset by path; this one is handed a
record id and opens the product through arcodex (:func:`open_dataset`), so Zarr
stores, Icechunk repositories (at the published snapshot) and virtual products
all answer. The selection rules are arcodex's own, stated once here:

* longitudes of a request are read modulo 360 in the frame of the request:
  ``bbox=-10,…,10,…`` on a 0–360 grid answers the cells whose longitude, shifted by
  a multiple of 360 into ``[minx, minx + 360)``, lies in ``[minx, maxx]``, in
  ascending order of that shifted longitude (the answer's ``x`` values);
* latitudes (and any other coordinate range) select the cells inside the range,
  in the grid's own order; ``datetime`` is an instant (a date selects its day) or
  an interval ``a/b`` with ``..`` for an open end;
* ``position`` answers the nearest cell (longitudes compared modulo 360; on a
  curvilinear grid the nearest cell centre on the sphere);
* ``area`` answers the cells of the polygon's bounding box, ``null`` outside it;
* missing values are JSON ``null``.

pygeoapi makes a provider per request, so opened datasets are kept in
:data:`_OPENED`, keyed by record id and version (an update opens the new one),
each with the :class:`~contextlib.ExitStack` its opener put what it opened on: a
dataset dropped (an older version, past :data:`OPENED_SIZE`, or its service
closing, :func:`close_opened`) is closed then, not whenever it is collected.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderRequestEntityTooLargeError,
)
from pygeoapi.provider.base_edr import BaseEDRProvider

from arcodex.extract._datacube import role

__all__ = ["ArcodexProvider", "Grid", "close_opened", "register_opener", "select"]

#: Most values one CoverageJSON answer may hold (JSON is ~20 bytes a value).
MAX_JSON_VALUES = 5_000_000
#: Most values one NetCDF answer may hold.
MAX_NETCDF_VALUES = 100_000_000
#: How many opened datasets are kept.
OPENED_SIZE = 32

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

#: Who opens a record's product: key (from the provider's options) → opener(record id,
#: stack), which puts what it opens on the stack (closed when the dataset is dropped).
_OPENERS: dict[str, Callable[[str, ExitStack], Any]] = {}
_OPENED: OrderedDict[tuple[str, str, str], tuple[Any, ExitStack]] = OrderedDict()
_LOCK = threading.Lock()


def register_opener(key: str, opener: Callable[[str, ExitStack], Any]) -> None:
    """Let providers whose ``options.source`` is ``key`` open datasets with ``opener``."""
    _OPENERS[key] = opener


def close_opened(key: str) -> None:
    """Close every dataset opened for ``key`` and forget its opener (its service stops)."""
    with _LOCK:
        _OPENERS.pop(key, None)
        dropped = [_OPENED.pop(k)[1] for k in [k for k in _OPENED if k[0] == key]]
    _close(dropped)


def _dataset(key: str, record_id: str, version: str) -> Any:
    with _LOCK:
        found = _OPENED.get((key, record_id, version))
        if found is not None:
            _OPENED.move_to_end((key, record_id, version))
            return found[0]
    opener = _OPENERS.get(key)
    if opener is None:
        raise ProviderConnectionError(user_msg="this collection's catalog is not served here")
    with ExitStack() as stack:
        ds = opener(record_id, stack)
        kept = stack.pop_all()  # opened: closed when dropped from the cache, not now
    with _LOCK:
        dropped = [_OPENED.pop(k)[1] for k in [k for k in _OPENED if k[:2] == (key, record_id)]]
        _OPENED[(key, record_id, version)] = (ds, kept)
        while len(_OPENED) > OPENED_SIZE:
            dropped.append(_OPENED.popitem(last=False)[1][1])
    _close(dropped)
    return ds


def _close(stacks: Iterable[ExitStack]) -> None:
    """Close dropped datasets (xarray reopens the file of one a request still reads)."""
    for stack in stacks:
        try:
            stack.close()
        except Exception:  # one that fails to close must not fail the request that dropped it
            import logging

            logging.getLogger("arcodex.server").warning("closing a dataset failed", exc_info=True)


def _bad(message: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(user_msg=message)


# -- the grid --------------------------------------------------------------------------


def _attr(var: Any, name: str) -> str:
    return str(var.attrs.get(name, "")).lower()


def _is_lon(var: Any) -> bool:
    # The rule the catalog's datacube uses (CF attributes, else the usual names).
    return role(str(var.name), var) == "x" or _attr(var, "units") == "degrees_e"


def _is_lat(var: Any) -> bool:
    return role(str(var.name), var) == "y" or _attr(var, "units") == "degrees_n"


def _is_time(var: Any) -> bool:
    kind = getattr(var.dtype, "kind", "")
    return kind == "M" or (kind == "O" and var.size and hasattr(var.values.flat[0], "calendar"))


@dataclass(frozen=True)
class Grid:
    """Where the axes of a dataset are: names of coordinates and of their dimensions."""

    x: str
    y: str
    #: The horizontal dimensions (y dim, x dim): the coordinates' own on a regular grid.
    ydim: str
    xdim: str
    t: str | None
    z: str | None
    curvilinear: bool
    #: Whether x is a longitude (read modulo 360).
    geographic: bool

    @classmethod
    def of(cls, ds: Any) -> Grid:
        """The grid of ``ds``; a ValueError says what is missing."""
        coords = [ds[name] for name in ds.coords]
        lon = [c for c in coords if c.ndim in (1, 2) and _is_lon(c)]
        lat = [c for c in coords if c.ndim in (1, 2) and _is_lat(c)]
        if not lon or not lat:
            raise ValueError(
                "no latitude/longitude coordinates (units degrees_north/east, or named lat/lon)"
            )
        x, y = lon[0], lat[0]
        if x.ndim != y.ndim:
            raise ValueError(f"{x.name} and {y.name} have different numbers of dimensions")
        if x.ndim == 2:
            if x.dims != y.dims:
                raise ValueError(f"{x.name} and {y.name} are on different dimensions")
            ydim, xdim = str(x.dims[0]), str(x.dims[1])
        else:
            ydim, xdim = str(y.dims[0]), str(x.dims[0])
        times = [c for c in coords if c.ndim == 1 and _is_time(c)]
        t = str(times[0].name) if times else None
        levels = [
            c
            for c in coords
            if c.ndim == 1
            and c.dims[0] not in (xdim, ydim, t)
            and (_attr(c, "axis") == "z" or "positive" in c.attrs)
        ]
        z = str(levels[0].name) if levels else None
        geographic = (
            _attr(x, "units").startswith("degree")
            or _attr(x, "standard_name") == "longitude"
            or str(x.name).lower() in ("lon", "longitude", "nav_lon")
        )
        return cls(str(x.name), str(y.name), ydim, xdim, t, z, x.ndim == 2, geographic)

    @property
    def axes(self) -> list[str]:
        """The names a ``subset`` may give."""
        return [n for n in (self.x, self.y, self.t, self.z) if n]

    def fields(self, ds: Any) -> list[str]:
        """The data variables over the horizontal grid, with no other dimension."""
        allowed = {self.xdim, self.ydim, self.t, self.z}
        return [
            str(name)
            for name, var in ds.data_vars.items()
            if {self.xdim, self.ydim} <= set(var.dims)
            and set(var.dims) <= allowed
            and getattr(var.dtype, "kind", "") in "fiub"
        ]


# -- selections ------------------------------------------------------------------------


def _lon_indices(values: Any, lo: float, hi: float) -> tuple[Any, Any]:
    """The cells with a longitude in ``[lo, hi]`` (modulo 360), in order, and their
    longitudes in the frame ``[lo, lo + 360)``."""
    import numpy as np

    if hi - lo >= 360:
        hi = lo + 360 - 1e-9
    shifted = lo + np.mod(np.asarray(values, dtype="float64") - lo, 360.0)
    inside = np.nonzero(shifted <= hi)[0]
    order = inside[np.argsort(shifted[inside], kind="stable")]
    return order, shifted[order]


def _range_indices(values: Any, lo: float, hi: float) -> Any:
    import numpy as np

    v = np.asarray(values, dtype="float64")
    return np.nonzero((v >= min(lo, hi)) & (v <= max(lo, hi)))[0]


def _as_index(order: Any) -> Any:
    """A slice where the indices are a contiguous run (cheaper to read), else the array."""
    import numpy as np

    if len(order) and np.array_equal(order, np.arange(order[0], order[0] + len(order))):
        return slice(int(order[0]), int(order[0]) + len(order))
    return order


def _time_label(text: str) -> str:
    text = text.strip()
    for suffix in ("Z", "z", "+00:00"):
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def select_time(ds: Any, grid: Grid, datetime_: str | None) -> Any:
    """``ds`` at the instant or within the interval ``datetime_`` (OGC syntax)."""
    if not datetime_:
        return ds
    if grid.t is None:
        raise _bad("this collection has no time axis: leave out datetime")
    if "/" in datetime_:
        begin, _, end = datetime_.partition("/")
        lo = None if begin.strip() in ("..", "") else _time_label(begin)
        hi = None if end.strip() in ("..", "") else _time_label(end)
        key: Any = slice(lo, hi)
    else:
        label = _time_label(datetime_)
        key = slice(label, label)
    try:
        return ds.sel({grid.t: key})
    except (KeyError, ValueError, TypeError) as exc:
        raise _bad(f"datetime {datetime_!r} cannot be read as a time or interval: {exc}") from None


def select_bbox(ds: Any, grid: Grid, bbox: list[float]) -> Any:
    """``ds`` within ``bbox`` = ``[minx, miny, maxx, maxy]`` (longitudes modulo 360)."""
    if grid.curvilinear:
        raise _curvilinear(grid)
    minx, miny, maxx, maxy = bbox
    if minx > maxx:
        raise _bad(f"bbox {bbox}: minx is greater than maxx; give minx,miny,maxx,maxy")
    ds = _select_x(ds, grid, minx, maxx)
    rows = _range_indices(ds[grid.y].values, miny, maxy)
    return ds.isel({grid.ydim: _as_index(rows)})


def _select_x(ds: Any, grid: Grid, lo: float, hi: float) -> Any:
    if not grid.geographic:
        return ds.isel({grid.xdim: _as_index(_range_indices(ds[grid.x].values, lo, hi))})
    if not (math.isfinite(lo) and math.isfinite(hi)):
        # Modulo 360 has no value there (numpy warns and answers NaN).
        raise _bad(f"longitudes {lo} to {hi}: give finite numbers, e.g. -180 to 180")
    order, shifted = _lon_indices(ds[grid.x].values, lo, hi)
    out = ds.isel({grid.xdim: _as_index(order)})
    return out.assign_coords({grid.x: (grid.xdim, shifted, ds[grid.x].attrs)})


def select_subset(ds: Any, grid: Grid, subsets: Mapping[str, list[Any]]) -> Any:
    """``ds`` within each ``subset`` axis range (pygeoapi parsed ``axis(lo:hi)``)."""
    for axis, values in subsets.items():
        if not values:
            raise _bad(f"subset {axis}(): give a value or lo:hi")
        lo, hi = values[0], values[-1]
        if axis == grid.t:
            ds = select_time(ds, grid, f"{lo}/{hi}" if len(values) > 1 else str(lo))
            continue
        try:
            low, high = float(lo), float(hi)
        except (TypeError, ValueError):
            raise _bad(f"subset {axis}({lo}:{hi}): give numbers") from None
        if grid.curvilinear and axis in (grid.x, grid.y):
            raise _curvilinear(grid)
        if axis == grid.x:
            ds = _select_x(ds, grid, low, high)
        else:
            dim = grid.ydim if axis == grid.y else axis
            ds = ds.isel({dim: _as_index(_range_indices(ds[axis].values, low, high))})
    return ds


def nearest_cell(ds: Any, grid: Grid, x: float, y: float) -> dict[str, int]:
    """The indices of the cell nearest to ``(x, y)``."""
    import numpy as np

    if grid.curvilinear:
        lat = np.radians(np.asarray(ds[grid.y].values, dtype="float64"))
        lon = np.radians(np.asarray(ds[grid.x].values, dtype="float64"))
        py, px = np.radians(y), np.radians(x)
        # Haversine: the nearest cell centre on the sphere (NaN coordinates never win).
        a = np.sin((lat - py) / 2) ** 2 + np.cos(lat) * np.cos(py) * np.sin((lon - px) / 2) ** 2
        j, i = np.unravel_index(int(np.nanargmin(np.where(np.isnan(a), np.inf, a))), a.shape)
        return {grid.ydim: int(j), grid.xdim: int(i)}
    xs = np.asarray(ds[grid.x].values, dtype="float64")
    dx = np.abs(xs - x)
    if grid.geographic:
        dx = np.minimum(np.mod(xs - x, 360.0), np.mod(x - xs, 360.0))
    ys = np.asarray(ds[grid.y].values, dtype="float64")
    return {grid.xdim: int(np.argmin(dx)), grid.ydim: int(np.argmin(np.abs(ys - y)))}


def _curvilinear(grid: Grid) -> ProviderInvalidQueryError:
    return _bad(
        f"this collection is on a curvilinear grid (2-D {grid.y}/{grid.x}): only EDR "
        "position queries are answered; for an area, download a subset from /datasets"
    )


def select_z(ds: Any, grid: Grid, z: Any) -> Any:
    if z is None or z == "":
        return ds
    if grid.z is None:
        raise _bad("this collection has no vertical axis: leave out z")
    text = str(z)
    try:
        if "/" in text:
            lo, _, hi = text.partition("/")
            rows = _range_indices(ds[grid.z].values, float(lo), float(hi))
            return ds.isel({grid.z: _as_index(rows)})
        return ds.sel({grid.z: [float(text)]}, method="nearest")
    except ValueError:
        raise _bad(f"z {text!r}: give a level or lo/hi") from None


def select(
    ds: Any,
    grid: Grid,
    *,
    fields: Iterable[str],
    bbox: list[float] | None = None,
    datetime_: str | None = None,
    subsets: Mapping[str, list[Any]] | None = None,
    z: Any = None,
) -> Any:
    """The selection of a coverage or cube query (the rules of this module's docstring)."""
    if grid.curvilinear:
        raise _curvilinear(grid)
    out = ds[list(fields)]
    if bbox:
        out = select_bbox(out, grid, bbox[:2] + bbox[3:5] if len(bbox) == 6 else bbox)
    if subsets:
        out = select_subset(out, grid, subsets)
    out = select_time(out, grid, datetime_)
    out = select_z(out, grid, z)
    if any(size == 0 for size in out.sizes.values()):
        raise _bad("the selection is empty: widen bbox, subset or datetime (see the extent)")
    return out


# -- the provider ----------------------------------------------------------------------


class ArcodexProvider(BaseEDRProvider):  # type: ignore[misc]
    """A coverage and EDR provider of one arcodex dataset (``data`` is its record id)."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        BaseEDRProvider.__init__(self, provider_def)
        options = provider_def.get("options") or {}
        try:
            self._data = _dataset(
                str(options.get("source")), str(self.data), str(options.get("version"))
            )
            self.grid = Grid.of(self._data)
        except ProviderConnectionError:
            raise
        except Exception as exc:  # a provider that cannot open is pygeoapi's connection error
            raise ProviderConnectionError(user_msg=f"the dataset cannot be read: {exc}") from exc
        self.x_field, self.y_field, self.time_field = self.grid.x, self.grid.y, self.grid.t
        self.z_field = self.grid.z
        self.axes = self.grid.axes
        self._coverage_properties = self._properties()
        self.get_fields()

    def get_fields(self) -> dict[str, Any]:
        if not self._fields:
            for name in self.grid.fields(self._data):
                var = self._data[name]
                kind = var.dtype.kind
                self._fields[name] = {
                    "type": "number" if kind == "f" else "integer",
                    "title": var.attrs.get("long_name") or name,
                    "x-ogc-unit": str(var.attrs.get("units", "1")),
                }
        fields: dict[str, Any] = self._fields
        return fields

    def _properties(self) -> dict[str, Any]:
        import numpy as np

        ds, g = self._data, self.grid
        xs = np.asarray(ds[g.x].values, dtype="float64")
        ys = np.asarray(ds[g.y].values, dtype="float64")
        props: dict[str, Any] = {
            "bbox": [
                float(np.nanmin(xs)),
                float(np.nanmin(ys)),
                float(np.nanmax(xs)),
                float(np.nanmax(ys)),
            ],
            "bbox_crs": CRS84,
            "crs_type": "GeographicCRS",
            "x_axis_label": g.x,
            "y_axis_label": g.y,
            "width": int(ds.sizes[g.xdim]),
            "height": int(ds.sizes[g.ydim]),
            "bbox_units": "degrees",
            "resx": float(abs(xs[1] - xs[0])) if xs.ndim == 1 and xs.size > 1 else 0.0,
            "resy": float(abs(ys[1] - ys[0])) if ys.ndim == 1 and ys.size > 1 else 0.0,
            "axes": g.axes,
        }
        if g.t is not None and ds.sizes[g.t]:
            times = ds[g.t].values
            props["time_axis_label"] = g.t
            props["time_range"] = [_iso(times[0]), _iso(times[-1])]
            props["time"] = int(ds.sizes[g.t])
        return props

    # -- OGC API – Coverages ----------------------------------------------------------

    def query(self, **kwargs: Any) -> Any:
        """A coverage (``properties``, ``subsets``, ``bbox``, ``datetime_``, ``format_``)
        or, with ``query_type``, an EDR query."""
        if kwargs.get("query_type"):
            return BaseEDRProvider.query(self, **kwargs)
        fields = self._fields_of(kwargs.get("properties") or [])
        data = select(
            self._data,
            self.grid,
            fields=fields,
            bbox=list(kwargs.get("bbox") or []),
            datetime_=kwargs.get("datetime_"),
            subsets=kwargs.get("subsets") or {},
        )
        if str(kwargs.get("format_") or "json").lower() == "netcdf":
            _bound(data, fields, MAX_NETCDF_VALUES)
            self.filename = f"{self.data}.nc"
            return to_netcdf(data)
        _bound(data, fields, MAX_JSON_VALUES)
        return covjson(data.load(), self.grid, fields, self.get_parameters(fields))

    def _fields_of(self, names: Iterable[str]) -> list[str]:
        names = [n for n in names if n]
        unknown = [n for n in names if n not in self.fields]
        if unknown:
            raise _bad(
                f"no field {unknown[0]!r} in this collection; its fields: {', '.join(self.fields)}"
            )
        return names or list(self.fields)

    # -- OGC API – EDR ------------------------------------------------------------------

    def _edr_fields(self, kwargs: Mapping[str, Any]) -> list[str]:
        if str(kwargs.get("format_") or "json").lower() not in ("json", "covjson", "html"):
            raise _bad("EDR answers are CoverageJSON (f=json); for NetCDF use /coverage?f=netcdf")
        return self._fields_of(kwargs.get("select_properties") or [])

    def position(self, **kwargs: Any) -> dict[str, Any]:
        """The time series of the cell nearest to ``coords=POINT(x y)``."""
        fields = self._edr_fields(kwargs)
        wkt = kwargs.get("wkt")
        # An empty point has no x (shapely raises), a NaN one is nearest to every cell.
        if wkt is None or wkt.geom_type != "Point" or wkt.is_empty:
            raise _bad("position takes coords=POINT(lon lat)")
        x, y = float(wkt.x), float(wkt.y)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _bad(f"position coords=POINT({x} {y}): give a finite lon and lat")
        cell = nearest_cell(self._data, self.grid, x, y)
        data = self._data[fields].isel({k: [v] for k, v in cell.items()})
        data = select_time(data, self.grid, kwargs.get("datetime_"))
        data = select_z(data, self.grid, kwargs.get("z"))
        if any(size == 0 for size in data.sizes.values()):
            raise _bad("the selection is empty: widen datetime (see the extent)")
        _bound(data, fields, MAX_JSON_VALUES)
        return covjson(data.load(), self.grid, fields, self.get_parameters(fields), point=True)

    def area(self, **kwargs: Any) -> dict[str, Any]:
        """The cells of ``coords=POLYGON(...)``'s bounding box, null outside the polygon."""
        import numpy as np
        import shapely  # type: ignore[import-untyped]  # no stubs

        fields = self._edr_fields(kwargs)
        wkt = kwargs.get("wkt")
        if wkt is None or wkt.geom_type not in ("Polygon", "MultiPolygon") or wkt.is_empty:
            raise _bad("area takes coords=POLYGON((lon lat, …))")
        minx, miny, maxx, maxy = wkt.bounds
        data = select(
            self._data,
            self.grid,
            fields=fields,
            bbox=[minx, miny, maxx, maxy],
            datetime_=kwargs.get("datetime_"),
            z=kwargs.get("z"),
        )
        g = self.grid
        xs, ys = np.meshgrid(data[g.x].values, data[g.y].values)
        inside = shapely.contains_xy(wkt, xs, ys) | shapely.touches(wkt, shapely.points(xs, ys))
        if not inside.any():
            raise _bad("no cell centre lies in the polygon: widen it")
        _bound(data, fields, MAX_JSON_VALUES)
        import xarray as xr

        mask = xr.DataArray(inside, dims=(g.ydim, g.xdim))
        data = data.load().where(mask)
        return covjson(data, g, fields, self.get_parameters(fields))

    def cube(self, **kwargs: Any) -> dict[str, Any]:
        """The cells within ``bbox`` (and ``datetime``, ``z``)."""
        fields = self._edr_fields(kwargs)
        bbox = list(kwargs.get("bbox") or [])
        data = select(
            self._data,
            self.grid,
            fields=fields,
            bbox=bbox,
            datetime_=kwargs.get("datetime_"),
            z=kwargs.get("z"),
        )
        _bound(data, fields, MAX_JSON_VALUES)
        return covjson(data.load(), self.grid, fields, self.get_parameters(fields))


# -- encodings ---------------------------------------------------------------------------


def _bound(data: Any, fields: Iterable[str], limit: int) -> None:
    count = sum(int(data[name].size) for name in fields)
    if count > limit:
        raise ProviderRequestEntityTooLargeError(
            user_msg=f"the answer would hold {count:,} values (more than {limit:,}); "
            "narrow it with bbox, datetime, subset or fewer properties"
        )


def _iso(value: Any) -> str:
    import numpy as np

    if isinstance(value, np.datetime64):
        text = np.datetime_as_string(value, unit="s")
        return f"{text}Z"
    isoformat = getattr(value, "isoformat", None)
    return f"{isoformat()}Z" if isoformat else str(value)


def _isos(values: Any) -> list[str]:
    """Times as ISO 8601 (UTC) strings; one vectorised call for datetime64 (a time series
    of ten years is 3,653 of them)."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind == "M":
        text = np.datetime_as_string(array.astype("datetime64[s]"), unit="s")
        return [f"{t}Z" for t in text.tolist()]
    return [_iso(v) for v in array.tolist()]


def _values(array: Any) -> list[Any]:
    """Values as JSON: floats, with null for NaN (JSON has no NaN)."""
    import numpy as np

    flat = np.asarray(array).ravel()
    if flat.dtype.kind != "f":
        return [int(v) for v in flat.tolist()]
    values: list[Any] = flat.astype("float64").tolist()
    if np.isnan(flat).any():
        values = [None if v != v else v for v in values]
    return values


def covjson(
    data: Any,
    grid: Grid,
    fields: Iterable[str],
    parameters: Mapping[str, Any],
    *,
    point: bool = False,
) -> dict[str, Any]:
    """``data`` as a CoverageJSON Coverage (a Grid, or a PointSeries with ``point``)."""
    import numpy as np

    names = {grid.xdim: "x", grid.ydim: "y"}
    axes: dict[str, Any] = {}
    if point:
        axes["x"] = {"values": [float(np.asarray(data[grid.x].values).ravel()[0])]}
        axes["y"] = {"values": [float(np.asarray(data[grid.y].values).ravel()[0])]}
    else:
        axes["x"] = {"values": _values(data[grid.x].values)}
        axes["y"] = {"values": _values(data[grid.y].values)}
    referencing: list[dict[str, Any]] = [
        {"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}}
    ]
    if grid.t is not None and grid.t in data.dims:
        names[grid.t] = "t"
        axes["t"] = {"values": _isos(data[grid.t].values)}
        calendar = "Gregorian"
        first = data[grid.t].values[:1]
        if len(first) and hasattr(first[0], "calendar"):
            calendar = str(first[0].calendar)
        referencing.append(
            {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": calendar}}
        )
    if grid.z is not None and grid.z in data.dims:
        names[grid.z] = "z"
        axes["z"] = {"values": _values(data[grid.z].values)}
        referencing.append(
            {
                "coordinates": ["z"],
                "system": {"type": "VerticalCRS", "cs": {"csAxes": [{"name": {"en": grid.z}}]}},
            }
        )
    ranges = {}
    for name in fields:
        var = data[name]
        dims = [d for d in var.dims if not (point and d in (grid.xdim, grid.ydim))]
        values = var.transpose(*dims, ...).values if point else var.values
        ranges[name] = {
            "type": "NdArray",
            "dataType": "float" if var.dtype.kind == "f" else "integer",
            "axisNames": [names[d] for d in dims],
            "shape": [int(var.sizes[d]) for d in dims],
            "values": _values(values),
        }
    return {
        "type": "Coverage",
        "domain": {
            "type": "Domain",
            "domainType": "PointSeries" if point else "Grid",
            "axes": axes,
            "referencing": referencing,
        },
        "parameters": dict(parameters),
        "ranges": ranges,
    }


def to_netcdf(data: Any) -> bytes:
    """``data`` as NetCDF4 bytes, without arcodex's provenance attributes (they hold paths)."""
    import os
    import tempfile

    out = data.copy()
    out.attrs = {k: v for k, v in out.attrs.items() if not str(k).startswith("arcodex")}
    for var in out.variables.values():
        var.encoding = {
            k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")
        }
    fd, path = tempfile.mkstemp(suffix=".nc")
    os.close(fd)
    try:
        out.to_netcdf(path, engine="netcdf4")
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)
