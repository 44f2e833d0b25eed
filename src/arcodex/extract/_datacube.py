"""The STAC datacube of a dataset, computed once, when its record is written.

A record stores it under :data:`DATACUBE` so that STAC documents (and the
server answering a search) describe the data without opening it again. The
summary is plain JSON and compact: per dimension its type, axis, extent, step
and reference system, never its coordinate values (a curvilinear grid's 2-D
latitudes and longitudes are summed up by the record's bbox, not stored).
Dimensions and variables are lists of named entries, since record metadata
keys may not contain the dots that variable names may
(:func:`cube_fields` gives STAC's mappings back):

.. code-block:: python

    {
        "dimensions": [{"name": "time", "type": "temporal", "extent": [...], "step": "P1D"}, ...],
        "variables": [{"name": "tas", "dimensions": [...], "type": "data", "unit": "K"}, ...],
        "regular_grid": True,  # 1-D x and y: a plain EPSG:4326 grid
        "attrs": {"title": ..., "license": ...},  # the global attributes STAC reads
    }

A dataset opened raw (``decode_cf=False`` or ``decode_times=False``) is
CF-decoded here first (lazily; only the 1-D coordinate values are read), so
the summary is the same as that of the dataset opened as any reader opens it.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "DATACUBE",
    "STAC_ATTRS",
    "cube_fields",
    "datacube",
    "datacube_or_none",
    "role",
    "tag_entry",
]

#: The record metadata key holding the summary (and, per tag, in ``convert.tags``).
DATACUBE = "datacube"
#: The global attributes STAC documents are made of (title, license, providers, science).
STAC_ATTRS = (
    "title",
    "summary",
    "comment",
    "license",
    "keywords",
    "institution",
    "creator_name",
    "creator_url",
    "publisher_name",
    "publisher_url",
    "doi",
    "DOI",
    "citation",
    "references",
)


def datacube(ds: Any, *, decoded: bool = False) -> dict[str, Any]:
    """The JSON summary of an ``xarray.Dataset`` (see the module docstring); ``decoded``
    says it is CF-decoded already (no xarray needed)."""
    from arcodex.extract._attrs import clean_attrs

    if not decoded:
        ds = _decoded(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN coordinates: described as indexes
        dims, regular = _dimensions(ds)
    attrs = clean_attrs({k: v for k, v in ds.attrs.items() if k in STAC_ATTRS})
    return {
        "dimensions": _named(dims),
        "variables": _named(_variables(ds)),
        "regular_grid": regular,
        "attrs": attrs,
    }


def cube_fields(summary: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """STAC's ``cube:dimensions`` and ``cube:variables`` of a stored summary."""
    return _unnamed(summary.get("dimensions")), _unnamed(summary.get("variables"))


def _named(entries: Mapping[str, Any]) -> list[dict[str, Any]]:
    # A list, not a mapping: record metadata keys may not hold the dots names may have.
    return [{"name": name, **entry} for name, entry in entries.items()]


def _unnamed(entries: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, Mapping) and entry.get("name") is not None:
            out[str(entry["name"])] = copy.deepcopy({k: v for k, v in entry.items() if k != "name"})
    return out


def datacube_or_none(ds: Any, *, decoded: bool = False) -> dict[str, Any] | None:
    """:func:`datacube`, or None for a dataset it cannot describe (its record keeps the rest)."""
    try:
        return datacube(ds, decoded=decoded)
    except Exception:  # odd coordinates (object dtypes, unreadable values): no stored cube
        return None


def tag_entry(tag: str, snapshot: str, cube: Mapping[str, Any]) -> dict[str, Any]:
    """What a record keeps of one tagged snapshot: its cube (no attributes) and time extent."""
    entry: dict[str, Any] = {
        "tag": tag,
        "snapshot": snapshot,
        DATACUBE: {k: cube[k] for k in ("dimensions", "variables", "regular_grid")},
    }
    for dim in cube_fields(cube)[0].values():
        start, end = dim["extent"] if dim.get("type") == "temporal" else (None, None)
        if start and end:
            entry["start_datetime"], entry["end_datetime"] = start, end
            break
    return entry


def role(name: str, var: Any) -> str | None:
    """The axis a coordinate stands for (``x``, ``y``, ``t``, ``z``), from CF attributes or name."""
    attrs = var.attrs
    std = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower()
    axis = str(attrs.get("axis", "")).upper()
    lname = name.lower()
    if (
        std == "longitude"
        or units in ("degrees_east", "degree_east")
        or axis == "X"
        or lname in ("lon", "longitude", "nav_lon")
    ):
        return "x"
    if (
        std == "latitude"
        or units in ("degrees_north", "degree_north")
        or axis == "Y"
        or lname in ("lat", "latitude", "nav_lat")
    ):
        return "y"
    if std == "time" or axis == "T" or lname in ("time", "time_counter"):
        return "t"
    if axis == "Z" or "positive" in attrs or std in ("depth", "height", "altitude", "air_pressure"):
        return "z"
    return None


def _decoded(ds: Any) -> Any:
    """``ds`` CF-decoded as ``xarray.open_dataset`` would (a no-op on a decoded dataset)."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return xr.decode_cf(ds)
        except (ValueError, TypeError, OverflowError):  # undecodable: described as stored
            return ds


def _dimensions(ds: Any) -> tuple[dict[str, Any], bool]:
    import numpy as np

    dims: dict[str, Any] = {}
    regular = 0
    for name in ds.dims:
        var = ds.variables.get(name)
        axis = role(str(name), var) if var is not None else None
        size = int(ds.sizes[name])
        if var is None or var.ndim != 1:
            dims[str(name)] = {"type": "index", "extent": [0, max(0, size - 1)]}
            continue
        values = np.asarray(var.values)
        numeric = values.dtype.kind in "fiu" and size > 0
        if numeric and not np.isfinite([np.nanmin(values), np.nanmax(values)]).all():
            # NaN or infinite throughout or at an end: no extent a record could hold
            dims[str(name)] = {"type": "index", "extent": [0, max(0, size - 1)]}
            continue
        entry: dict[str, Any]
        if axis in ("x", "y") and values.dtype.kind in "fiu" and size:
            entry = {
                "type": "spatial",
                "axis": axis,
                "extent": [float(np.nanmin(values)), float(np.nanmax(values))],
                "reference_system": 4326,
            }
            step = _step(values)
            if step is not None:
                entry["step"] = step
            regular += 1
        elif axis == "t" and size:
            entry = {"type": "temporal", "extent": [_time(values[0]), _time(values[-1])]}
            duration = _duration(values)
            if duration:
                entry["step"] = duration
        elif axis == "z" and values.dtype.kind in "fiu" and size:
            entry = {
                "type": "spatial",
                "axis": "z",
                "extent": [float(np.nanmin(values)), float(np.nanmax(values))],
            }
            if var.attrs.get("units"):
                entry["unit"] = str(var.attrs["units"])
        elif values.dtype.kind in "fiu" and size:
            entry = {
                "type": "other",
                "extent": [float(np.nanmin(values)), float(np.nanmax(values))],
            }
        else:
            entry = {"type": "index", "extent": [0, max(0, size - 1)]}
        dims[str(name)] = entry
    return dims, regular == 2


def _variables(ds: Any) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for name, var in ds.variables.items():
        if name in ds.dims:
            continue
        entry: dict[str, Any] = {
            "dimensions": [str(d) for d in var.dims],
            "type": "auxiliary" if name in ds.coords else "data",
        }
        if var.attrs.get("units"):
            entry["unit"] = str(var.attrs["units"])
        if var.attrs.get("long_name"):
            entry["description"] = str(var.attrs["long_name"])
        variables[str(name)] = entry
    return variables


def _step(values: Any) -> float | None:
    import numpy as np

    if len(values) < 2:
        return None
    diffs = np.diff(values.astype("f8"))
    if np.allclose(diffs, diffs[0], rtol=1e-6, atol=0):
        return float(diffs[0])
    return None


def _time(value: Any) -> str | None:
    """RFC 3339 UTC text of a decoded time (numpy, datetime or cftime: its calendar fields)."""
    import numpy as np

    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="s")) + "Z"
    if hasattr(value, "year"):
        moment = datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second
        )
        return moment.isoformat() + "Z"
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
