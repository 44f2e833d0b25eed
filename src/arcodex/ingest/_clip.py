"""One period's data, clipped to an extent and checked: what every file-based provider returns.

The clip is :func:`arcodex.client.subset`'s box (latitude and longitude found by
CF attributes or names; 0..360 longitudes, descending latitudes and boxes
across the antimeridian handled there). The check is the period's realised
coverage: every time value lies inside the period, and the clip is not empty.
Files are sanity-checked before they are opened, so that an HTML error page or
a stub is refused by what it is, not by a library's traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import ArcodexError
from arcodex.ingest._provider import FetchError, Grid

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = [
    "as_timestamps",
    "check_coverage",
    "check_netcdf",
    "clip",
    "grid_of",
    "netcdf_engine",
    "open_period",
    "probe_newest",
]

_NETCDF3 = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_HDF5 = b"\x89HDF\r\n\x1a\n"


def netcdf_engine(head: bytes) -> str | None:
    """The xarray engine for a file starting with ``head``, or None if it is not NetCDF/HDF5.

    NetCDF4/HDF5 is opened with netCDF4 when it is installed: h5netcdf's opening
    (h5py group lookups) costs several times the read of a small period's file.
    """
    if head.startswith(_HDF5):
        return "netcdf4" if _has_netcdf4() else "h5netcdf"
    if head.startswith(_NETCDF3):
        return "netcdf4"
    return None


@functools.cache
def _has_netcdf4() -> bool:
    import importlib.util

    return importlib.util.find_spec("netCDF4") is not None


def _open(path: Path, engine: str, **kwargs: Any) -> xr.Dataset:
    """``path`` opened with ``engine``; an HDF5 file netCDF-C refuses (HDF5 that is not
    NetCDF4) is tried again with h5netcdf, which reads more of plain HDF5."""
    import xarray as xr

    try:
        return xr.open_dataset(path, engine=engine, **kwargs)
    except Exception:
        if engine != "netcdf4" or not _is_hdf5(path):
            raise
        return xr.open_dataset(path, engine="h5netcdf", **kwargs)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == _HDF5


def _what_it_is(head: bytes) -> str:
    text = head.lstrip()[:64].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML/HTML document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    return "not NetCDF/HDF5 (no CDF or HDF magic bytes)"


def check_netcdf(path: Path, what: str, *, open_it: bool = True) -> str:
    """Refuse ``path`` unless it is a NetCDF/HDF5 file xarray can open; its engine.

    ``what`` names the period and where the file came from, for the message.
    With ``open_it=False`` only the size and magic bytes are checked (the caller
    opens the file next and checks the rest, see :func:`open_period`).

    Raises:
        FetchError: the file is empty, an HTML or JSON page, has no NetCDF/HDF5
            magic bytes, or cannot be opened or holds no variables (a stub, a
            truncated file).
    """

    size = path.stat().st_size
    if size == 0:
        raise FetchError(f"{what}: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(512)
    engine = netcdf_engine(head)
    if engine is None:
        raise FetchError(f"{what}: the file ({size} bytes) is {_what_it_is(head)}")
    if not open_it:
        return engine
    try:
        with _open(path, engine, decode_times=False) as ds:
            variables = len(ds.data_vars)
    except Exception as exc:  # any library's failure to read is a bad file
        raise FetchError(
            f"{what}: the file ({size} bytes) is not a readable NetCDF/HDF5 file "
            f"({type(exc).__name__}: {exc}); it may be truncated or a stub"
        ) from exc
    if not variables:
        raise FetchError(f"{what}: the file ({size} bytes) holds no data variables: a stub")
    return engine


def clip(ds: xr.Dataset, extent: Extent, what: str) -> xr.Dataset:
    """``ds`` cut to the extent's bbox (lazily where ``ds`` is lazy)."""
    from arcodex.client._subset import subset

    try:
        return subset(ds, bbox=extent.bbox)
    except ArcodexError as exc:
        raise FetchError(f"{what}: cannot clip to extent {extent.id!r}: {exc}") from exc


def as_timestamps(values: Any) -> pd.DatetimeIndex:
    """Time values (numpy datetimes, or cftime dates of a standard calendar) as pandas'."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        return pd.DatetimeIndex(array)
    return pd.DatetimeIndex([pd.Timestamp(str(v)) for v in array])


def check_coverage(
    ds: xr.Dataset, whole: xr.Dataset, period: pd.Period, extent: Extent, what: str
) -> None:
    """Refuse a clip ``ds`` (of ``whole``) that is empty or has times outside ``period``."""

    from arcodex.client._subset import find_lat_lon, find_time

    try:
        dim = find_time(ds)
    except ArcodexError as exc:
        raise FetchError(f"{what}: no time coordinate to check against the period") from exc
    values: Any = ds[dim].values if dim in ds.variables else []
    if len(values) == 0:
        raise FetchError(f"{what}: no time steps")
    try:
        times = as_timestamps(values)
    except (ValueError, TypeError) as exc:
        raise FetchError(f"{what}: time values {values[:3]!r} are not dates") from exc
    outside = times[(times < period.start_time) | (times > period.end_time)]
    if len(outside):
        first = ", ".join(str(t) for t in outside[:3])
        raise FetchError(
            f"{what}: {len(outside)} of {len(times)} time steps lie outside the period "
            f"({period.start_time} to {period.end_time}): {first}"
        )
    lat, lon = find_lat_lon(ds)
    empty = [d for d in {*ds[lat].dims, *ds[lon].dims} if ds.sizes[d] == 0]
    if empty:
        covers = ""
        try:
            la, lo = whole[lat].values, whole[lon].values
            covers = (
                f"; the data covers lat {float(la.min()):g} to {float(la.max()):g}, "
                f"lon {float(lo.min()):g} to {float(lo.max()):g}"
            )
        except (ValueError, KeyError):
            pass
        raise FetchError(
            f"{what}: extent {extent.id!r} bbox {list(extent.bbox)} selects no cell{covers}"
        )


def open_period(paths: Sequence[Path], period: pd.Period, extent: Extent, what: str) -> xr.Dataset:
    """The period held by ``paths`` (checked NetCDF/HDF5 files), clipped, checked and loaded.

    The clip is read into memory and the files closed: a period over an extent is
    small, and nothing stays open once the provider returns.
    """
    import xarray as xr

    parts = []
    for path in paths:
        where = f"{what} ({Path(path).name})" if len(paths) > 1 else what
        engine = check_netcdf(Path(path), where, open_it=False)
        try:
            opened = _open(Path(path), engine)
        except Exception as exc:  # any library's failure to read is a bad file
            size = Path(path).stat().st_size
            raise FetchError(
                f"{where}: the file ({size} bytes) is not a readable NetCDF/HDF5 file "
                f"({type(exc).__name__}: {exc}); it may be truncated or a stub"
            ) from exc
        try:
            with opened as whole:
                if not whole.data_vars:
                    size = Path(path).stat().st_size
                    raise FetchError(f"{where}: the file ({size} bytes) holds no data variables")
                cut = clip(whole, extent, where)
                check_coverage(cut, whole, period, extent, where)
                parts.append(cut.load())
        except (OSError, ValueError, RuntimeError) as exc:
            raise FetchError(f"{where}: cannot read: {type(exc).__name__}: {exc}") from exc
    if len(parts) == 1:
        return parts[0]
    try:
        return xr.combine_by_coords(parts, combine_attrs="override")  # type: ignore[return-value]
    except (ValueError, TypeError) as exc:
        raise FetchError(f"{what}: its {len(parts)} files do not combine: {exc}") from exc


def grid_of(ds: xr.Dataset) -> Grid:
    """The grid of ``ds``: its sizes, the first and last value of each 1-D non-time
    coordinate, the data variables' types."""
    from arcodex.client._subset import find_time

    try:
        time: str | None = find_time(ds)
    except ArcodexError:
        time = None
    coords: dict[str, tuple[float, float]] = {}
    for name, var in ds.coords.items():
        if var.ndim != 1 or name == time or var.size == 0 or var.dtype.kind not in "iuf":
            continue
        coords[str(name)] = (float(var.values[0]), float(var.values[-1]))
    attrs: dict[str, Any] = {k: v for k, v in ds.attrs.items() if isinstance(v, str | int | float)}
    return Grid(
        dims={str(d): int(n) for d, n in ds.sizes.items()},
        coords=coords,
        dtypes={str(n): str(v.dtype) for n, v in ds.data_vars.items()},
        attrs=attrs,
    )


def probe_newest(periods: Sequence[pd.Period], fetch: Callable[[pd.Period], xr.Dataset]) -> Grid:
    """The grid of the newest of the last three ``periods`` that fetches (a bad newest
    file does not hide the grid); the last one's error if none does."""
    candidates = sorted(periods, reverse=True)[:3]
    for period in candidates[:-1]:
        try:
            return grid_of(fetch(period))
        except FetchError:
            continue
    return grid_of(fetch(candidates[-1]))
