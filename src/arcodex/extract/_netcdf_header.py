"""A NetCDF file's header and coordinates as xarray would decode them, read with netCDF4 alone.

Importing xarray (and pandas under it) costs more than everything else one
``arcodex add`` does, so the NetCDF extractor first tries this reader. It
covers the files most archives hold: numeric variables, float fill values,
``coordinates`` attributes, and times in whole days, hours, minutes or seconds
since a plain reference date. For anything whose decoding it does not
reproduce exactly (packed or unsigned integers, strings, integer fill values,
fractional or unusual times, odd names), :func:`read_header` returns None and
the extractor reads the file through xarray as before. ``tests`` compare both
readers on the same files, so the metadata is the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Header", "HeaderDataset", "HeaderVariable", "read_header"]

#: Attributes xarray moves from a variable's attributes to its encoding when it opens a file.
_ENCODING_ATTRS = ("_FillValue", "missing_value", "coordinates", "least_significant_digit")
#: Attributes that ask for a decoding this reader does not do (xarray reads such files).
_DECODING_ATTRS = frozenset({"scale_factor", "add_offset", "_Unsigned", "dtype", "_Encoding"})
#: Units xarray decodes as time spans.
_TIMEDELTA_UNITS = frozenset(
    {
        "days", "day", "d", "hours", "hour", "hr", "h", "minutes", "minute", "min",
        "seconds", "second", "sec", "s", "milliseconds", "millisecond", "ms",
        "microseconds", "microsecond", "us", "nanoseconds", "nanosecond", "ns",
    }
)  # fmt: skip
_STANDARD = frozenset({"standard", "gregorian", "proleptic_gregorian"})
_CFTIME = frozenset({"noleap", "365_day", "all_leap", "366_day", "360_day", "julian"})
_STEP = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
_UNITS = re.compile(
    r"(days|hours|minutes|seconds) since (\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
#: Years in which numpy datetimes (xarray's choice for standard calendars) hold every value.
_YEARS = (1700, 2200)


class _Unsupported(Exception):
    """The file needs a decoding this reader leaves to xarray."""


@dataclass(slots=True)
class HeaderVariable:
    """What the extractor reads of one variable (the part of ``xarray.Variable`` it uses)."""

    dims: tuple[str, ...]
    dtype: np.dtype[Any]
    attrs: dict[str, Any]
    shape: tuple[int, ...]
    _values: Any = field(default=None, repr=False)
    _read: Any = field(default=None, repr=False)

    @property
    def ndim(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        n = 1
        for length in self.shape:
            n *= length
        return n

    @property
    def values(self) -> np.ndarray[Any, Any]:
        if self._values is None:
            self._values = self._read()
        values: np.ndarray[Any, Any] = self._values
        return values


@dataclass(slots=True)
class HeaderDataset:
    """The part of ``xarray.Dataset`` the extractor uses: sizes, variables, coordinates, attributes."""

    variables: dict[str, HeaderVariable]
    coords: list[str]
    attrs: dict[str, Any]
    encoding: dict[str, Any]
    sizes: dict[str, int]

    @property
    def dims(self) -> Mapping[str, int]:
        return self.sizes

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)


@dataclass(slots=True)
class Header:
    """A file read without xarray: as opened with ``decode_times=False``, and fully decoded."""

    raw: HeaderDataset
    decoded: HeaderDataset
    data_model: str
    groups: list[str]
    has_nc_properties: bool


def read_header(nc: Any) -> Header | None:
    """The header of an open ``netCDF4.Dataset``, or None when xarray must read the file.

    Coordinate values are read when asked for, so the file must stay open while they are used.
    """
    try:
        raw = _dataset(nc)
        decoded = _decode_times(raw)
    except _Unsupported:
        return None
    try:
        has_nc_properties = bool(nc.getncattr("_NCProperties"))
    except (AttributeError, KeyError, RuntimeError):
        has_nc_properties = False
    return Header(
        raw=raw,
        decoded=decoded,
        data_model=str(nc.data_model),
        groups=sorted(str(g) for g in nc.groups),
        has_nc_properties=has_nc_properties,
    )


def _dataset(nc: Any) -> HeaderDataset:
    import numpy as np

    attrs = {str(k): nc.getncattr(k) for k in nc.ncattrs()}
    if "coordinates" in attrs:
        raise _Unsupported("global coordinates attribute")
    variables: dict[str, HeaderVariable] = {}
    coords: set[str] = set()
    sizes: dict[str, int] = {}
    for name, var in nc.variables.items():
        dtype = var.dtype
        # Enum, variable-length and compound types have a netCDF4 type object as datatype.
        plain = isinstance(var.datatype, np.dtype) and isinstance(dtype, np.dtype)
        if not plain or dtype.kind not in "iuf" or dtype == np.float16:
            raise _Unsupported(f"{name}: dtype {dtype}")
        dims = tuple(str(d) for d in var.dimensions)
        if name in dims and dims != (name,):
            raise _Unsupported(f"{name}: named like one of its dimensions")
        var_attrs = {str(k): var.getncattr(k) for k in var.ncattrs()}
        if _DECODING_ATTRS & var_attrs.keys():
            raise _Unsupported(f"{name}: packed or encoded")
        units = var_attrs.get("units")
        if isinstance(units, str) and units.strip().lower() in _TIMEDELTA_UNITS:
            raise _Unsupported(f"{name}: a time span")
        fills = [var_attrs[a] for a in ("_FillValue", "missing_value") if a in var_attrs]
        if fills and dtype.kind != "f":
            raise _Unsupported(f"{name}: integer fill value")
        listed = var_attrs.get("coordinates")
        if listed is not None:
            if not isinstance(listed, str):
                raise _Unsupported(f"{name}: coordinates attribute is not text")
            coords.update(c for c in listed.split() if c in nc.variables)
        for attr in _ENCODING_ATTRS:
            var_attrs.pop(attr, None)
        shape = tuple(int(n) for n in var.shape)
        for dim, length in zip(dims, shape, strict=True):
            sizes.setdefault(dim, length)
        variables[str(name)] = HeaderVariable(
            dims, dtype, var_attrs, shape, _read=_reader(var, fills)
        )
    coords.update(n for n, v in variables.items() if v.dims == (n,))
    unlimited = {str(k) for k, d in nc.dimensions.items() if d.isunlimited()}
    return HeaderDataset(
        variables=variables,
        coords=[n for n in variables if n in coords],
        attrs=attrs,
        encoding={"unlimited_dims": unlimited},
        sizes=sizes,
    )


def _reader(var: Any, fills: list[Any]) -> Any:
    def read() -> np.ndarray[Any, Any]:
        import numpy as np

        var.set_auto_maskandscale(False)
        values = np.asarray(var[...])
        masks = [np.asarray(f, dtype=values.dtype).ravel() for f in fills]
        for fill in (v for mask in masks for v in mask):
            if not np.isnan(fill):
                values = np.where(values == fill, np.nan, values).astype(values.dtype)
        return values

    return read


def _decode_times(raw: HeaderDataset) -> HeaderDataset:
    """The dataset as ``xarray.decode_cf`` leaves it: every variable with time units decoded."""
    variables = dict(raw.variables)
    # Time bounds take their variable's units and calendar (as xarray does).
    units_of = {n: dict(v.attrs) for n, v in variables.items()}
    for attrs in list(units_of.values()):
        bounds = attrs.get("bounds")
        if isinstance(attrs.get("units"), str) and "since" in attrs["units"] and bounds in units_of:
            units_of[bounds].setdefault("units", attrs["units"])
            if "calendar" in attrs:
                units_of[bounds].setdefault("calendar", attrs["calendar"])
    for name, var in raw.variables.items():
        attrs = units_of[name]
        units = attrs.get("units")
        if not (isinstance(units, str) and "since" in units):
            continue
        values = _times(var.values, units, attrs.get("calendar"))
        kept = {k: v for k, v in var.attrs.items() if k not in ("units", "calendar")}
        variables[name] = replace(var, dtype=values.dtype, attrs=kept, _values=values, _read=None)
    return replace(raw, variables=variables)


def _times(values: np.ndarray[Any, Any], units: str, calendar: Any) -> np.ndarray[Any, Any]:
    """Decoded times: numpy datetimes for standard calendars, cftime dates for the others."""
    import numpy as np

    match = _UNITS.fullmatch(units.strip())
    if match is None or values.dtype.kind not in "iuf":
        raise _Unsupported(f"time units {units!r}")
    if values.dtype.kind == "f" and not (
        np.isfinite(values).all() and (values == np.round(values)).all()
    ):
        raise _Unsupported("fractional or missing times")
    cal = "standard" if calendar is None else calendar
    if not isinstance(cal, str) or cal not in _STANDARD | _CFTIME:
        raise _Unsupported(f"calendar {calendar!r}")
    step, year, month, day, hour, minute, second = match.groups()
    if cal in _CFTIME:
        import cftime

        return np.asarray(
            cftime.num2date(values, units, calendar=cal, only_use_cftime_datetimes=True)
        )
    if not _YEARS[0] <= int(year) <= _YEARS[1]:
        raise _Unsupported("reference date out of range")
    reference = np.datetime64(
        f"{year}-{int(month):02d}-{int(day):02d}T{int(hour or 0):02d}:{int(minute or 0):02d}"
        f":{int(second or 0):02d}",
        "s",
    )
    seconds = values.astype("int64") * _STEP[step]
    if values.size and not (
        _bound(_YEARS[0]) <= reference + seconds.min()
        and reference + seconds.max() < _bound(_YEARS[1])
    ):
        raise _Unsupported("times out of range")
    return (reference + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")


def _bound(year: int) -> np.datetime64:
    import numpy as np

    return np.datetime64(f"{year}-01-01T00:00:00", "s")
