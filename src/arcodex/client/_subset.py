"""Cut a dataset down to some variables, a lon/lat box and a time range, lazily.

The box is in WGS84 degrees, ``(west, south, east, north)``, with ``west > east``
for a box that crosses the antimeridian. A cell is inside when its centre is,
bounds included. Longitudes are compared on the circle, so the box works on
data in any convention (−180..180 or 0..360).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from numpy.typing import NDArray

__all__ = ["BBox", "TimeRange", "find_lat_lon", "find_time", "lon_inside", "subset"]

BBox = tuple[float, float, float, float]
TimeRange = str | tuple[str | None, str | None] | Sequence[str | None]

_LAT_NAMES = ("lat", "latitude", "nav_lat")
_LON_NAMES = ("lon", "longitude", "nav_lon")
_LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}
_LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}
_TIME_NAMES = ("time", "time_counter")
# Attributes through which a variable names the variables it needs (CF 1.10, sections 5 and 7).
_LINK_ATTRS = ("coordinates", "bounds", "cell_measures", "grid_mapping", "ancillary_variables")


def subset(
    ds: xr.Dataset,
    *,
    variables: Sequence[str] | str | None = None,
    bbox: Sequence[float] | None = None,
    time: TimeRange | None = None,
) -> xr.Dataset:
    """A lazy subset of ``ds``: some variables, a lon/lat box, a time range.

    Args:
        ds: The dataset (as :func:`arcodex.client.open_dataset` returns it).
        variables: Data variables to keep; all coordinates stay, and so do the
            bounds, cell measures and grid mappings the kept variables name.
        bbox: ``(west, south, east, north)`` in WGS84 degrees; ``west > east``
            crosses the antimeridian. 1-D lon/lat grids are cut to the cells
            inside (the two pieces of a box crossing the data's seam come back
            joined in longitude order); 2-D (curvilinear) grids are cut to the
            smallest window holding every cell inside and the cells outside
            are masked with NaN. Coordinates are never masked.
        time: ``(start, end)`` as ISO strings (either may be None for an open
            end) or one string (``"2001-02"``: that whole month), inclusive.
            Works with cftime calendars.

    Returns:
        The subset, still lazy where ``ds`` was.

    Raises:
        ValidationError: An unknown variable, a malformed box or time range, or
            a dataset without the latitude/longitude or time coordinate asked for.
    """
    if variables is not None:
        ds = _select_variables(ds, [variables] if isinstance(variables, str) else list(variables))
    if time is not None:
        ds = _select_time(ds, time)
    if bbox is not None:
        ds = _select_bbox(ds, _check_bbox(bbox))
    return ds


# -- variables ------------------------------------------------------------------------------


def _select_variables(ds: xr.Dataset, names: list[str]) -> xr.Dataset:
    available = [str(v) for v in ds.data_vars]
    unknown = [n for n in names if n not in ds.data_vars]
    if unknown:
        raise ValidationError(
            f"no variable {', '.join(map(repr, unknown))} in the dataset; "
            f"choose from {', '.join(available) or '(none)'}"
        )
    keep: set[Hashable] = set()
    todo: list[Hashable] = [*names, *ds.coords]
    while todo:
        name = todo.pop()
        if name in keep or name not in ds.variables:
            continue
        keep.add(name)
        todo.extend(_linked(ds.variables[name]))
    return ds.drop_vars([v for v in ds.data_vars if v not in keep])


def _linked(var: Any) -> list[str]:
    """The names a variable links to through its CF attributes."""
    out: list[str] = []
    for attr in _LINK_ATTRS:
        for where in (var.attrs, var.encoding):
            text = where.get(attr)
            if not isinstance(text, str):
                continue
            # cell_measures and grid_mapping may read "area: cell_area" or "crs: lat lon".
            out.extend(word for word in text.split() if not word.endswith(":"))
    return out


# -- time ----------------------------------------------------------------------------------


def find_time(ds: xr.Dataset) -> str:
    """The name of the time dimension (CF ``axis="T"``, ``standard_name="time"`` or its name).

    Raises:
        ValidationError: If the dataset has no time coordinate.
    """
    candidates = [ds[v] for v in [*ds.coords, *ds.data_vars] if ds[v].ndim == 1]
    for key, wanted in (("axis", ("T",)), ("standard_name", ("time",)), ("", _TIME_NAMES)):
        for var in candidates:
            value = var.attrs.get(key) if key else str(var.name)
            if value in wanted:
                return str(var.dims[0])
    raise ValidationError(
        "the dataset has no time coordinate (axis T, standard_name time, or named time); "
        "drop the time range"
    )


def _select_time(ds: xr.Dataset, time: TimeRange) -> xr.Dataset:
    if isinstance(time, str):
        start: str | None = time
        end: str | None = time
    else:
        bounds = list(time)
        if len(bounds) != 2:
            raise ValidationError(
                f"a time range is (start, end) or one ISO string, not {time!r}; "
                "give e.g. ('2001-01-01', None)"
            )
        start, end = bounds
    dim = find_time(ds)
    if dim not in ds.indexes:
        raise ValidationError(
            f"the time dimension {dim!r} has no coordinate values to select on; drop the time range"
        )
    try:
        return ds.sel({dim: slice(start, end)})
    except (KeyError, ValueError, TypeError) as exc:
        raise ValidationError(
            f"cannot select time {start!r}..{end!r} on {dim!r}: {exc}; give ISO dates such as 2001-02-26"
        ) from exc


# -- lon/lat box -------------------------------------------------------------------------------


def _check_bbox(bbox: Sequence[float]) -> BBox:
    values = list(bbox)
    if len(values) == 6:  # a 3-D STAC box: (west, south, bottom, east, north, top)
        values = [values[0], values[1], values[3], values[4]]
    try:
        west, south, east, north = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"a bbox is (west, south, east, north) in degrees, not {bbox!r}"
        ) from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise ValidationError(f"the bbox {bbox!r} holds a non-finite number; give degrees")
    if south > north:
        raise ValidationError(f"the bbox {bbox!r} has south > north; swap them")
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise ValidationError(f"the bbox {bbox!r} has a latitude outside -90..90; fix it")
    if not (-360.0 <= west <= 360.0 and -360.0 <= east <= 360.0):
        raise ValidationError(f"the bbox {bbox!r} has a longitude outside -360..360; fix it")
    return west, south, east, north


def lon_inside(lon: Any, west: float, east: float) -> NDArray[np.bool_]:
    """Which longitudes lie in ``[west, east]`` going east (``west > east`` crosses 180°).

    A longitude is inside when one of its turns (``lon + 360 k``) lies in
    ``[west, east]``, or ``[west, east + 360]`` for a box across the antimeridian.
    """
    import numpy as np

    values = np.asarray(lon, dtype="float64")
    reach = east if west <= east else east + 360.0
    if reach - west >= 360.0:
        return np.isfinite(values)
    inside = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for turn in (-720.0, -360.0, 0.0, 360.0, 720.0):
            shifted = values + turn
            inside |= (shifted >= west) & (shifted <= reach)
    return inside


def find_lat_lon(ds: xr.Dataset) -> tuple[str, str]:
    """The latitude and longitude variables (by standard_name, units, then name).

    Raises:
        ValidationError: If either is missing.
    """
    lat = _find_axis(ds, "latitude", _LAT_UNITS, _LAT_NAMES)
    lon = _find_axis(ds, "longitude", _LON_UNITS, _LON_NAMES)
    if lat is None or lon is None:
        raise ValidationError(
            "the dataset has no latitude/longitude coordinates (standard_name, units "
            "degrees_north/east, or named lat/lon); drop the bbox"
        )
    return lat, lon


def _find_axis(
    ds: xr.Dataset, standard_name: str, units: set[str], names: Iterable[str]
) -> str | None:
    bounds = {str(w) for v in ds.variables.values() for w in _bounds_of(v)}
    candidates = [
        str(v) for v in [*ds.coords, *ds.data_vars] if str(v) not in bounds and ds[v].ndim in (1, 2)
    ]
    tests: list[tuple[str, Collection[str]]] = [
        ("standard_name", (standard_name,)),
        ("units", units),
        ("", tuple(names)),
    ]
    for key, wanted in tests:
        found = [v for v in candidates if _attr(ds[v], key).lower() in wanted]
        if found:
            # A coordinate of its own dimension (lat(lat)) beats an auxiliary one.
            found.sort(key=lambda v: (ds[v].dims != (v,), v not in ds.coords))
            return found[0]
    return None


def _attr(var: Any, key: str) -> str:
    """A variable's attribute as a string (its name for ``key=""``)."""
    return str(var.name) if not key else str(var.attrs.get(key, ""))


def _bounds_of(var: Any) -> list[str]:
    text = var.attrs.get("bounds") or var.encoding.get("bounds")
    return [text] if isinstance(text, str) else []


def _select_bbox(ds: xr.Dataset, bbox: BBox) -> xr.Dataset:
    import numpy as np

    west, south, east, north = bbox
    lat_name, lon_name = find_lat_lon(ds)
    lat, lon = ds[lat_name], ds[lon_name]
    if lat.ndim == 1 and lon.ndim == 1 and lat.dims != lon.dims:
        lat_idx = np.flatnonzero(_lat_inside(lat.values, south, north))
        lon_values = np.asarray(lon.values, dtype="float64")
        lon_idx = np.flatnonzero(lon_inside(lon_values, west, east))
        # Where the box crosses the data's seam, its pieces join going east from ``west``
        # (west from ``east`` on descending data); otherwise this keeps the data's order.
        if lon_values.size > 1 and lon_values[0] > lon_values[-1]:
            key = np.mod(east - lon_values[lon_idx], 360.0)
        else:
            key = np.mod(lon_values[lon_idx] - west, 360.0)
        lon_idx = lon_idx[np.argsort(key, kind="stable")]
        return ds.isel({lat.dims[0]: _indexer(lat_idx), lon.dims[0]: _indexer(lon_idx)})
    if lat.dims == lon.dims and lat.ndim == 1:
        # Points (stations, unstructured cells): keep those inside.
        mask = _lat_inside(lat.values, south, north) & lon_inside(lon.values, west, east)
        return ds.isel({lat.dims[0]: _indexer(np.flatnonzero(mask))})
    if lat.ndim == 2 and set(lon.dims) == set(lat.dims):
        cut: xr.Dataset = _select_curvilinear(ds, lat, lon.transpose(*lat.dims), bbox)
        return cut
    raise ValidationError(
        f"cannot cut a box on latitude {lat_name}{lat.dims} and longitude {lon_name}{lon.dims}; "
        "use 1-D lat/lon or 2-D lat/lon on the same dimensions"
    )


def _select_curvilinear(ds: xr.Dataset, lat: xr.DataArray, lon: xr.DataArray, bbox: BBox) -> Any:
    import numpy as np
    import xarray as xr

    west, south, east, north = bbox
    mask = _lat_inside(lat.values, south, north) & lon_inside(lon.values, west, east)
    ydim, xdim = (str(d) for d in lat.dims)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return ds.isel({ydim: slice(0, 0), xdim: slice(0, 0)})
    window = {
        ydim: slice(int(rows[0]), int(rows[-1]) + 1),
        xdim: slice(int(cols[0]), int(cols[-1]) + 1),
    }
    out = ds.isel(window)
    inside = xr.DataArray(mask[window[ydim], window[xdim]], dims=(ydim, xdim))
    masked = {
        name: var.where(inside)
        for name, var in out.data_vars.items()
        if ydim in var.dims and xdim in var.dims
    }
    return out.assign(masked)


def _lat_inside(values: Any, south: float, north: float) -> NDArray[np.bool_]:
    import numpy as np

    lat = np.asarray(values, dtype="float64")
    with np.errstate(invalid="ignore"):
        result: NDArray[np.bool_] = (lat >= south) & (lat <= north)
    return result


def _indexer(idx: NDArray[np.intp]) -> slice | NDArray[np.intp]:
    """A slice where the indices are one ascending run (dask keeps its chunks), else the array."""
    if idx.size == 0:
        return slice(0, 0)
    if int(idx[-1]) - int(idx[0]) + 1 == idx.size and bool((idx[1:] > idx[:-1]).all()):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
