"""What a NetCDF (or HDF5) file says about itself: dimensions, variables, attributes, extents.

Only headers and the coordinate values needed for the extents are read; data
variables are never loaded. xarray and netCDF4 come with the ``netcdf``
extra and are imported when a file is read, never when arcodex is imported;
most files are read with netCDF4 alone (:mod:`._netcdf_header`), which gives
the same description without xarray's import cost.

Extents follow STAC conventions and land at the top level of the metadata:

- ``bbox`` is ``[west, south, east, north]`` in degrees. Longitudes are
  normalised to -180..180 (so 0-360 grids come out in -180..180), and the
  longitude interval is the smallest arc of the circle that holds every
  longitude: the complement of the largest gap between neighbouring values.
  When that arc passes through 180° the box crosses the antimeridian and
  ``west > east`` (e.g. a grid over 170°E..170°W gives west 170, east -170).
- ``start_datetime``/``end_datetime`` are ISO 8601 UTC strings (``Z``). Dates
  in non-standard calendars (``noleap``, ``360_day``, …) keep their calendar
  date and time of day; a day that the Gregorian calendar lacks (30 February
  in ``360_day``) becomes the last day of that month so that the string stays
  a real date. ``netcdf.calendar`` names the file's calendar and
  ``netcdf.time`` keeps the exact dates in it.

Where a coordinate names CF cell bounds (``bounds`` attribute), the extents
come from the bounds rather than the cell centres.
"""

from __future__ import annotations

import calendar as gregorian
import importlib.util
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import PluginError, ValidationError
from arcodex.extract._attrs import clean_attrs, clean_value, metadata_key
from arcodex.extract._base import Extracted
from arcodex.extract._datacube import DATACUBE, datacube_or_none

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from arcodex.extract._netcdf_header import HeaderDataset

    #: What the description is made from: a dataset opened by xarray, or read by netCDF4 alone.
    _Data = xr.Dataset | HeaderDataset

__all__ = ["NetCDFExtractor"]

_SUFFIXES = frozenset({".nc", ".nc4", ".cdf", ".netcdf", ".h5", ".hdf5"})
_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF")
_VAR_ATTRS = ("units", "long_name", "standard_name")
_TOP_ATTRS = ("title", "institution", "source")

_LAT_UNITS = frozenset(
    {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"}
)
_LON_UNITS = frozenset(
    {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"}
)
_LAT_NAMES = ("lat", "latitude", "nav_lat")
_LON_NAMES = ("lon", "longitude", "nav_lon")
_TIME_NAMES = ("time", "time_counter")


class NetCDFExtractor:
    """Dimensions, variables, global attributes, bbox and time coverage of NetCDF/HDF5 files."""

    name = "netcdf"

    def matches(self, path: Path) -> bool:
        if not path.is_file():
            return False
        if path.suffix.lower() in _SUFFIXES:
            return True
        try:
            with path.open("rb") as fh:
                head = fh.read(4)
        except OSError:
            return False
        return head in _MAGIC

    def extract(self, path: Path, into: Extracted) -> None:
        if (
            importlib.util.find_spec("xarray") is None
            or importlib.util.find_spec("netCDF4") is None
        ):
            raise PluginError(
                f"reading {path.name} as NetCDF needs xarray and netCDF4; "
                "install them with pip install 'arcodex[netcdf]'"
            )
        try:
            info = _read(path)
        except (OSError, RuntimeError, ValueError, KeyError, IndexError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ValidationError(
                f"cannot read {path} as NetCDF: {reason}; "
                "check the file or add it with --no-extract"
            ) from exc
        plain_hdf5 = info.pop("_plain_hdf5")
        top = info.pop("_top")
        cube = info.pop(DATACUBE)
        into.metadata["netcdf"] = info
        into.metadata.update(top)
        if cube is not None:
            into.metadata[DATACUBE] = cube
        into.kind = "dataset"
        into.format = "hdf5" if plain_hdf5 else "netcdf"
        into.media_type = "application/x-hdf5" if plain_hdf5 else "application/netcdf"


def _read(path: Path) -> dict[str, Any]:
    """The file's description: read with netCDF4 alone where that decodes the file as xarray
    would (most files, and without xarray's import cost), else through xarray."""
    import netCDF4

    from arcodex.extract._netcdf_header import read_header

    with netCDF4.Dataset(str(path), mode="r") as nc:
        header = read_header(nc)
        if header is not None:
            info = _describe(header.raw, header.data_model, header.groups, header.has_nc_properties)
            info[DATACUBE] = datacube_or_none(header.decoded, decoded=True)
            return info
    return _read_with_xarray(path)


def _read_with_xarray(path: Path) -> dict[str, Any]:
    import xarray as xr

    # Through the store, for the file format xarray does not report.
    store = xr.backends.NetCDF4DataStore.open(str(path), mode="r")  # type: ignore[no-untyped-call]
    try:
        nc = store.ds
        data_model = str(nc.data_model)
        groups = sorted(str(g) for g in nc.groups)
        try:
            has_nc_properties = bool(nc.getncattr("_NCProperties"))
        except (AttributeError, KeyError, RuntimeError):
            has_nc_properties = False
        with warnings.catch_warnings():
            # Odd encodings (several fill values, …) concern the data, not its description.
            warnings.simplefilter("ignore", xr.SerializationWarning)
            # Times are decoded here, only for the extent values, with cftime: that keeps
            # every calendar readable and the time units in the variable attributes.
            # engine="store" skips guessing an engine, which imports every installed backend.
            ds = xr.open_dataset(store, engine="store", decode_times=False, decode_timedelta=False)
            info = _describe(ds, data_model, groups, has_nc_properties)
            info[DATACUBE] = datacube_or_none(ds)
            return info
    finally:
        store.close()


def _describe(
    ds: _Data, data_model: str, groups: list[str], has_nc_properties: bool
) -> dict[str, Any]:
    dims = {metadata_key(name): int(size) for name, size in ds.sizes.items()}
    variables: dict[str, Any] = {}
    for name, var in ds.variables.items():
        entry: dict[str, Any] = {
            "dims": [metadata_key(d) for d in var.dims],
            "dtype": str(var.dtype),
        }
        for attr in _VAR_ATTRS:
            value = clean_value(var.attrs.get(attr))
            if value is not None:
                entry[attr] = value
        variables[metadata_key(name)] = entry
    attrs = clean_attrs(ds.attrs)
    info: dict[str, Any] = {
        "format": data_model,
        "dims": dims,
        "variables": variables,
        "coords": [metadata_key(c) for c in ds.coords],
        "attrs": attrs,
    }
    unlimited = ds.encoding.get("unlimited_dims") or ()
    if unlimited:
        info["unlimited_dims"] = sorted(metadata_key(d) for d in unlimited)
    if groups:
        info["groups"] = groups

    top: dict[str, Any] = {}
    bbox = _bbox(ds)
    if bbox is not None:
        top["bbox"] = bbox
    coverage = _time_coverage(ds)
    if coverage is not None:
        start, end, time_info = coverage
        top["start_datetime"] = start
        top["end_datetime"] = end
        info["calendar"] = time_info["calendar"]
        info["time"] = time_info
    for attr in _TOP_ATTRS:
        if isinstance(attrs.get(attr), str | int | float) and str(attrs[attr]).strip():
            top[attr] = str(attrs[attr]).strip()
    keywords = _keywords(attrs.get("keywords"))
    if keywords:
        top["keywords"] = keywords

    phony = not dims or any(str(d).startswith("phony_dim_") for d in ds.dims)
    info["_plain_hdf5"] = data_model.startswith("NETCDF4") and not has_nc_properties and phony
    info["_top"] = top
    return info


def _keywords(value: Any) -> list[str]:
    if isinstance(value, str):
        parts = value.replace(";", ",").split(",")
    elif isinstance(value, list):
        parts = [str(v) for v in value]
    else:
        return []
    return [p.strip() for p in parts if p.strip()]


# -- bbox --------------------------------------------------------------------


def _candidates(ds: _Data) -> list[tuple[str, Any]]:
    """Numeric variables, coordinates first (NEMO's nav_lat may be a data variable)."""
    names = [str(n) for n in ds.coords] + [str(n) for n in ds.variables if n not in ds.coords]
    return [(n, ds.variables[n]) for n in names if ds.variables[n].dtype.kind in "fiu"]


def _pick(candidates: list[tuple[str, Any]], tests: tuple[Any, ...]) -> tuple[str, Any] | None:
    """The first candidate passing the first test any candidate passes."""
    for test in tests:
        for name, var in candidates:
            if test(name.lower(), var.attrs):
                return name, var
    return None


def _find(
    ds: _Data, standard_name: str, units: frozenset[str], names: tuple[str, ...]
) -> Any | None:
    """The variable that best looks like this coordinate (CF standard name, units, then name)."""
    candidates = [(n, v) for n, v in _candidates(ds) if 1 <= v.ndim <= 2]
    tests = (
        lambda n, a: str(a.get("standard_name", "")).lower() == standard_name,
        lambda n, a: str(a.get("units", "")).lower() in units,
        lambda n, a: n in names,
    )
    found = _pick(candidates, tests)
    return None if found is None else found[1]


def _values(ds: _Data, var: Any) -> np.ndarray:
    """Finite values of a coordinate, or of its CF cell bounds when it has them."""
    import numpy as np

    bounds = var.attrs.get("bounds")
    source = ds.variables[bounds] if isinstance(bounds, str) and bounds in ds.variables else var
    values = np.asarray(source.values, dtype="float64").ravel()
    return values[np.isfinite(values)]


def _bbox(ds: _Data) -> list[float] | None:
    import numpy as np

    lat_var = _find(ds, "latitude", _LAT_UNITS, _LAT_NAMES)
    lon_var = _find(ds, "longitude", _LON_UNITS, _LON_NAMES)
    if lat_var is None or lon_var is None:
        return None
    lat = _values(ds, lat_var)
    lat = lat[(lat >= -90) & (lat <= 90)]
    lon = _values(ds, lon_var)
    lon = lon[(lon >= -360) & (lon <= 720)]
    if lat.size == 0 or lon.size == 0:
        return None
    west, east = _lon_extent(lon)
    return [_round(west), _round(float(np.min(lat))), _round(east), _round(float(np.max(lat)))]


def _lon_extent(lon: np.ndarray) -> tuple[float, float]:
    """(west, east) of the smallest arc holding every longitude; west > east crosses 180°."""
    import numpy as np

    if float(np.max(lon)) - float(np.min(lon)) >= 360:
        return -180.0, 180.0
    norm = np.unique((lon + 180.0) % 360.0 - 180.0)
    if norm.size == 1:
        west = east = float(norm[0])
    else:
        gaps = np.diff(norm)
        wrap_gap = float(norm[0]) + 360.0 - float(norm[-1])
        i = int(np.argmax(gaps))
        # Ties go to the wrap-around gap: a global grid is not said to cross 180°.
        if float(gaps[i]) > wrap_gap:
            west, east = float(norm[i + 1]), float(norm[i])
        else:
            west, east = float(norm[0]), float(norm[-1])
    # 180°E normalises to -180; as an eastern edge it is 180.
    if east == -180.0:
        east = 180.0
    return west, east


def _round(value: float) -> float:
    # float32 coordinates carry noise (40.1 -> 40.09999847); a micro-degree is ~0.1 m.
    return round(value, 6) + 0.0


# -- time --------------------------------------------------------------------


def _time_var(ds: _Data) -> tuple[str, Any] | None:
    candidates = [
        (n, v)
        for n, v in _candidates(ds)
        if v.ndim == 1 and " since " in str(v.attrs.get("units", ""))
    ]
    tests = (
        lambda n, a: str(a.get("axis", "")).upper() == "T",
        lambda n, a: str(a.get("standard_name", "")).lower() == "time",
        lambda n, a: n in _TIME_NAMES,
    )
    return _pick(candidates, tests)


def _time_coverage(ds: _Data) -> tuple[str, str, dict[str, Any]] | None:
    import cftime
    import numpy as np

    found = _time_var(ds)
    if found is None:
        return None
    name, var = found
    values = _values(ds, var)
    if values.size == 0:
        return None
    units = str(var.attrs["units"])
    cal = str(var.attrs.get("calendar", "standard")).strip().lower() or "standard"
    try:
        first, last = cftime.num2date(
            [float(np.min(values)), float(np.max(values))],
            units,
            calendar=cal,
            only_use_cftime_datetimes=True,
        )
    except (ValueError, TypeError, OverflowError):
        # Units or calendar cftime cannot read: describe the file without a time extent.
        return None
    if not (1 <= first.year <= 9999 and 1 <= last.year <= 9999):
        return None
    info = {
        "name": metadata_key(name),
        "units": units,
        "calendar": cal,
        "start": _calendar_iso(first),
        "end": _calendar_iso(last),
        "steps": int(var.size),
    }
    return _utc_iso(first), _utc_iso(last), info


def _calendar_iso(moment: Any) -> str:
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "")


def _utc_iso(moment: Any) -> str:
    """The calendar date as an ISO UTC string, clamped to a day the Gregorian calendar has."""
    last_day = gregorian.monthrange(moment.year, moment.month)[1]
    day = min(moment.day, last_day)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"
