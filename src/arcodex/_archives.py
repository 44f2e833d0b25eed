"""Small, deterministic multi-file NetCDF4 archives for the ARCO conversion tests.

Each archive is a handful of files that split one time series into consecutive
periods, in one of a few shapes met in practice (see :data:`ArchiveKind`). The
files are tiny (kilobytes), so tests can write them in a temporary directory.

Needs the ``netcdf`` extra (xarray, netCDF4, cftime), imported when an archive is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from numpy.typing import NDArray

__all__ = ["ARCHIVE_KINDS", "ArchiveKind", "write_archive"]

ArchiveKind = Literal["regular", "curvilinear", "lon360", "noleap", "multivar", "depth", "packed"]

#: The kinds of archive :func:`write_archive` can write, in the order of :data:`ArchiveKind`.
ARCHIVE_KINDS: tuple[str, ...] = (
    "regular",
    "curvilinear",
    "lon360",
    "noleap",
    "multivar",
    "depth",
    "packed",
)

#: Sizes of the grids: regular kinds are (lat, lon), the curvilinear one (y, x).
NLAT, NLON = 12, 16
NY, NX = 10, 14
#: Depth levels of the ``depth`` kind (metres, positive down).
DEPTHS = (5.0, 15.0, 30.0, 60.0, 120.0)

_DEFAULT_START = "2000-01-01"


@dataclass(frozen=True)
class _TimeAxis:
    """How a kind writes its time axis."""

    dim: str
    units: str
    calendar: str
    #: One day in ``units``.
    day: float
    #: The first step when the caller gives no ``start``.
    start: str


_TIME_AXES: dict[str, _TimeAxis] = {
    "curvilinear": _TimeAxis(
        "time_counter", "seconds since 1900-01-01", "gregorian", 86400.0, _DEFAULT_START
    ),
    "noleap": _TimeAxis("time", "days since 1850-01-01", "noleap", 1.0, "2001-02-26"),
}
_STANDARD_TIME = _TimeAxis("time", "days since 2000-01-01", "standard", 1.0, _DEFAULT_START)

_LAT_ATTRS = {
    "standard_name": "latitude",
    "long_name": "latitude",
    "units": "degrees_north",
    "axis": "Y",
}
_LON_ATTRS = {
    "standard_name": "longitude",
    "long_name": "longitude",
    "units": "degrees_east",
    "axis": "X",
}
_TAS_ATTRS = {
    "standard_name": "air_temperature",
    "long_name": "near-surface air temperature",
    "units": "K",
    "cell_methods": "time: mean",
}
_NO_FILL: dict[str, Any] = {"_FillValue": None}


def write_archive(
    directory: str | os.PathLike[str],
    kind: ArchiveKind = "regular",
    *,
    files: int = 3,
    steps: int = 4,
    start: str | None = None,
    seed: int = 0,
    shuffle_names: bool = False,
    time_units: str | None = None,
) -> list[Path]:
    """Write a small archive of NetCDF4 files holding consecutive periods of one time series.

    Every file has an unlimited time dimension holding ``steps`` daily steps;
    file ``i + 1`` starts the day after the last step of file ``i``. The values are
    drawn from generators seeded by ``seed`` and the file's place in time, so the
    same arguments always give the same content, and every file and step differs.
    Static fields (coordinates, ``orog``, land masks) are the same in every file;
    the global ``history`` attribute differs per file.

    The kinds:

    * ``regular``: ``tas(time, lat, lon)`` float32 on a 12 x 16 regular grid
      (longitudes -168.75 … 168.75), ``standard`` calendar, time in
      ``days since 2000-01-01``, zlib compressed in chunks of one step.
    * ``curvilinear``: NEMO-like ``tos(time_counter, y, x)`` on a rotated and
      curved 10 x 14 grid described by 2-D float32 ``nav_lat``/``nav_lon``
      (``coordinates="nav_lat nav_lon"``), time ``time_counter`` in
      ``seconds since 1900-01-01`` (``gregorian`` calendar), a few land points
      (NaN, ``_FillValue=1e20``). A grid file ``grid.nc`` is written next to the
      files (and not returned) with float64 ``glamt(y, x)``/``gphit(y, x)``: the
      true longitudes and latitudes, shifted from ``nav_lon``/``nav_lat`` by
      0.5 and 0.25 degrees.
    * ``lon360``: as ``regular`` with longitudes 0, 22.5, …, 337.5.
    * ``noleap``: as ``regular`` in the ``noleap`` calendar, time in
      ``days since 1850-01-01``, starting by default on 2001-02-26 so the
      default archive crosses the end of February.
    * ``multivar``: ``tas`` and ``pr`` ``(time, lat, lon)``, the static
      ``orog(lat, lon)`` (no time; identical in every file) and the bounds
      ``time_bnds(time, nv)`` named by the ``bounds`` attribute of ``time``.
    * ``depth``: ``thetao(time, depth, lat, lon)`` with 5 depth levels
      (``positive="down"``, ``axis="Z"``) in chunks of ``(1, 1, lat, lon)``.
    * ``packed``: ``tas`` stored as int16 (``scale_factor=0.01``,
      ``add_offset=280``, ``_FillValue=-32767``) with about 5 % missing points,
      and float32 ``sst`` with ``_FillValue=1e20`` and NaN over land; both decode
      to NaN with xarray.

    Args:
        directory: Where to write the files (created if missing; files of the
            same names are replaced).
        kind: The kind of archive, one of :data:`ARCHIVE_KINDS`.
        files: How many files.
        steps: Daily time steps per file.
        start: The first time step, an ISO date or date-time (``2000-01-01``,
            ``2000-01-01T12:00``); None for the kind's default (2001-02-26 for
            ``noleap``, 2000-01-01 for the others).
        seed: Seed of the values.
        shuffle_names: If True, the names do not sort in time order: the names
            are rotated by one, so ``<kind>_001.nc`` holds the first period and
            ``<kind>_000.nc`` the last; to test ordering by coordinate values.
            Otherwise ``<kind>_000.nc`` holds the first period, and so on.
        time_units: The CF units of the time axis (and its bounds), e.g.
            ``hours since 2010-01-01``; None for the kind's own. Archives written
            with other units line up in time with the default ones.

    Returns:
        The files written (not the curvilinear ``grid.nc``), in time order.

    Raises:
        ValueError: If ``kind`` is unknown, ``files`` or ``steps`` is less than 1,
            or ``start`` is not a valid date in the kind's calendar.
    """
    import numpy as np

    if kind not in ARCHIVE_KINDS:
        raise ValueError(
            f"unknown archive kind {kind!r}; expected one of {', '.join(ARCHIVE_KINDS)}"
        )
    if files < 1 or steps < 1:
        raise ValueError(f"files and steps must be at least 1, not {files} and {steps}")
    axis = _TIME_AXES.get(kind, _STANDARD_TIME)
    if time_units is not None:
        axis = _with_units(axis, time_units)
    first = _date_to_number(axis.start if start is None else start, axis)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    static = np.random.default_rng([seed, 0])
    grid = _Grid.make(kind, static)
    if kind == "curvilinear":
        _write_nemo_grid(out / "grid.nc", grid)

    written: list[Path] = []
    for index in range(files):
        label = (index + 1) % files if shuffle_names else index
        path = out / f"{kind}_{label:03d}.nc"
        offsets = index * steps + np.arange(steps)
        times = first + axis.day * offsets.astype("float64")
        rng = np.random.default_rng([seed, 1, index])
        ds, encoding = _file_dataset(kind, axis, grid, times, offsets, rng)
        ds.attrs["history"] = (
            f"created for file {index} of {files} by arcodex._archives.write_archive"
        )
        ds.to_netcdf(
            path,
            mode="w",
            format="NETCDF4",
            engine="netcdf4",
            encoding=encoding,
            unlimited_dims=[axis.dim],
        )
        written.append(path)
    return written


def _with_units(axis: _TimeAxis, units: str) -> _TimeAxis:
    """``axis`` with its steps counted in ``units`` (seconds, minutes, hours or days since …)."""
    import dataclasses

    per_day = {"second": 86400.0, "minute": 1440.0, "hour": 24.0, "day": 1.0}
    word = units.split(" since ", 1)[0].strip().lower().rstrip("s")
    if " since " not in units or word not in per_day:
        raise ValueError(
            f"time_units {units!r} must be '<seconds|minutes|hours|days> since <date>'"
        )
    return dataclasses.replace(axis, units=units, day=per_day[word])


def _date_to_number(start: str, axis: _TimeAxis) -> float:
    """``start`` (ISO date or date-time) as a number in the units and calendar of ``axis``."""
    import cftime

    try:
        parsed = datetime.fromisoformat(start)
        when = cftime.datetime(
            parsed.year,
            parsed.month,
            parsed.day,
            parsed.hour,
            parsed.minute,
            parsed.second,
            calendar=axis.calendar,
        )
    except ValueError as exc:
        raise ValueError(
            f"start {start!r} is not a date in the {axis.calendar} calendar: {exc}"
        ) from exc
    return float(cftime.date2num(when, axis.units, calendar=axis.calendar))


@dataclass(frozen=True)
class _Grid:
    """The static part of an archive: coordinates, masks and static fields."""

    #: 1-D latitudes and longitudes (regular kinds) or 2-D nav_lat/nav_lon (curvilinear).
    lat: NDArray[Any]
    lon: NDArray[Any]
    #: True where a cell is land (NaN in ocean fields), shape of the horizontal grid.
    land: NDArray[np.bool_]
    #: Surface altitude (m), shape of the horizontal grid.
    orog: NDArray[np.float32]
    #: The "true" curvilinear coordinates (``glamt``/``gphit``), None on regular grids.
    true_lon: NDArray[np.float64] | None = None
    true_lat: NDArray[np.float64] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """The horizontal shape: (lat, lon) or (y, x)."""
        return (int(self.land.shape[0]), int(self.land.shape[1]))

    @classmethod
    def make(cls, kind: str, rng: np.random.Generator) -> _Grid:
        """The grid of ``kind``, with static fields drawn from ``rng``."""
        import numpy as np

        if kind == "curvilinear":
            j, i = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
            angle = np.deg2rad(30.0)
            # A grid rotated by 30 degrees, bent so that rows are curves.
            true_lon = -40.0 + 2.0 * (i * np.cos(angle) - j * np.sin(angle)) + 0.05 * j**2
            true_lat = (
                30.0 + 2.0 * (i * np.sin(angle) + j * np.cos(angle)) - 0.03 * (i - NX / 2) ** 2
            )
            lat = (true_lat - 0.25).astype("float32")
            lon = (true_lon - 0.5).astype("float32")
            land = np.zeros((NY, NX), dtype=bool)
            land[-3:, :4] = True  # a coast in one corner
            orog = np.zeros((NY, NX), dtype="float32")
            return cls(lat, lon, land, orog, true_lon.astype("float64"), true_lat.astype("float64"))
        lat = -82.5 + 15.0 * np.arange(NLAT, dtype="float64")
        if kind == "lon360":
            lon = 22.5 * np.arange(NLON, dtype="float64")
        else:
            lon = -168.75 + 22.5 * np.arange(NLON, dtype="float64")
        land = np.zeros((NLAT, NLON), dtype=bool)
        land[3:7, 2:6] = True  # a continent
        land[8:10, 10:13] = True  # and another
        orog = np.where(land, 200.0 + 2500.0 * rng.random((NLAT, NLON)), 0.0).astype("float32")
        return cls(lat, lon, land, orog)


def _file_dataset(
    kind: str,
    axis: _TimeAxis,
    grid: _Grid,
    times: NDArray[np.float64],
    offsets: NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The dataset of one file and its NetCDF encoding."""
    import numpy as np
    import xarray as xr

    steps = times.shape[0]
    ny, nx = grid.shape
    time_attrs = {
        "standard_name": "time",
        "long_name": "time",
        "axis": "T",
        "units": axis.units,
        "calendar": axis.calendar,
    }
    # Drift a little from day to day so that every step differs even without the noise.
    drift = 0.1 * offsets.astype("float64")[:, None, None]
    lat2d = grid.lat if grid.lat.ndim == 2 else np.broadcast_to(grid.lat[:, None], grid.shape)
    climate = 300.0 - 40.0 * np.sin(np.deg2rad(lat2d)) ** 2  # warm equator, cold poles
    compressed: dict[str, Any] = {"zlib": True, "complevel": 4, "chunksizes": (1, ny, nx)}

    if kind == "curvilinear":
        tos = climate - 12.0 + drift + 0.5 * rng.standard_normal((steps, ny, nx))
        tos = np.where(grid.land, np.nan, tos).astype("float32")
        ds = xr.Dataset(
            data_vars={
                "tos": (
                    (axis.dim, "y", "x"),
                    tos,
                    {
                        "standard_name": "sea_surface_temperature",
                        "long_name": "sea surface temperature",
                        "units": "degC",
                        "online_operation": "average",
                    },
                )
            },
            coords={
                axis.dim: (axis.dim, times, time_attrs),
                "nav_lat": (("y", "x"), grid.lat, _without_axis(_LAT_ATTRS)),
                "nav_lon": (("y", "x"), grid.lon, _without_axis(_LON_ATTRS)),
            },
            attrs=_global_attrs(kind, "NEMO-like sea surface temperature on a curvilinear grid"),
        )
        encoding = {
            axis.dim: {"_FillValue": None, "chunksizes": (steps,)},
            "nav_lat": dict(_NO_FILL),
            "nav_lon": dict(_NO_FILL),
            "tos": compressed | {"_FillValue": np.float32(1e20)},
        }
        return ds, encoding

    coords: dict[str, Any] = {
        axis.dim: (axis.dim, times, time_attrs),
        "lat": ("lat", grid.lat, _LAT_ATTRS),
        "lon": ("lon", grid.lon, _LON_ATTRS),
    }
    encoding = {name: dict(_NO_FILL) for name in coords}
    encoding[axis.dim]["chunksizes"] = (steps,)
    dims = (axis.dim, "lat", "lon")
    tas = (climate + drift + 1.5 * rng.standard_normal((steps, ny, nx))).astype("float32")
    data_vars: dict[str, Any] = {"tas": (dims, tas, _TAS_ATTRS)}
    encoding["tas"] = dict(compressed)
    title = "near-surface air temperature on a regular grid"

    if kind == "multivar":
        title = "air temperature, precipitation and orography on a regular grid"
        pr = 3e-5 * rng.gamma(0.8, 1.0, (steps, ny, nx))
        data_vars["pr"] = (
            dims,
            pr.astype("float32"),
            {
                "standard_name": "precipitation_flux",
                "long_name": "precipitation",
                "units": "kg m-2 s-1",
                "cell_methods": "time: mean",
            },
        )
        data_vars["orog"] = (
            ("lat", "lon"),
            grid.orog,
            {"standard_name": "surface_altitude", "long_name": "surface altitude", "units": "m"},
        )
        bounds = np.stack([times, times + axis.day], axis=1)
        data_vars["time_bnds"] = ((axis.dim, "nv"), bounds)
        coords[axis.dim][2]["bounds"] = "time_bnds"
        encoding |= {
            "pr": dict(compressed),
            "orog": {"zlib": True, "_FillValue": None},
            "time_bnds": {"_FillValue": None, "chunksizes": (steps, 2)},
        }
    elif kind == "depth":
        title = "sea water potential temperature on depth levels"
        depth = np.asarray(DEPTHS, dtype="float64")
        coords["depth"] = (
            "depth",
            depth,
            {
                "standard_name": "depth",
                "long_name": "depth",
                "units": "m",
                "positive": "down",
                "axis": "Z",
            },
        )
        encoding["depth"] = dict(_NO_FILL)
        surface = climate - 275.0
        profile = np.exp(-depth / 60.0)[None, :, None, None]
        thetao = 2.0 + (surface[None, None] - 2.0) * profile + drift[:, :, None]
        thetao = thetao + 0.3 * rng.standard_normal((steps, depth.size, ny, nx))
        del data_vars["tas"], encoding["tas"]
        data_vars["thetao"] = (
            (axis.dim, "depth", "lat", "lon"),
            thetao.astype("float32"),
            {
                "standard_name": "sea_water_potential_temperature",
                "long_name": "sea water potential temperature",
                "units": "degC",
            },
        )
        encoding["thetao"] = compressed | {"chunksizes": (1, 1, ny, nx)}
    elif kind == "packed":
        title = "packed air temperature and sea surface temperature with missing values"
        missing = rng.random((steps, ny, nx)) < 0.05
        missing[:, 0, :3] = True  # at least a few points in every step
        data_vars["tas"] = (dims, np.where(missing, np.nan, tas).astype("float32"), _TAS_ATTRS)
        encoding["tas"] = compressed | {
            "dtype": "int16",
            "scale_factor": np.float32(0.01),
            "add_offset": np.float32(280.0),
            "_FillValue": np.int16(-32767),
        }
        sst = climate - 273.15 + drift + 0.5 * rng.standard_normal((steps, ny, nx))
        data_vars["sst"] = (
            dims,
            np.where(grid.land, np.nan, sst).astype("float32"),
            {
                "standard_name": "sea_surface_temperature",
                "long_name": "sea surface temperature",
                "units": "degC",
            },
        )
        encoding["sst"] = compressed | {"_FillValue": np.float32(1e20)}
    elif kind == "noleap":
        title = "near-surface air temperature in a noleap calendar"
    elif kind == "lon360":
        title = "near-surface air temperature on a 0-360 longitude grid"

    ds = xr.Dataset(data_vars=data_vars, coords=coords, attrs=_global_attrs(kind, title))
    return ds, encoding


def _without_axis(attrs: dict[str, str]) -> dict[str, str]:
    """``attrs`` without ``axis``: 2-D coordinates are no axis of their own."""
    return {key: value for key, value in attrs.items() if key != "axis"}


def _global_attrs(kind: str, title: str) -> dict[str, Any]:
    """The global attributes shared by every file of an archive (``history`` is added per file)."""
    return {
        "title": f"arcodex test archive ({kind}): {title}",
        "institution": "arcodex test data",
        "source": "synthetic fields written by arcodex._archives.write_archive",
        "Conventions": "CF-1.10",
        "frequency": "day",
    }


def _write_nemo_grid(path: Path, grid: _Grid) -> None:
    """Write the NEMO-like grid file of a curvilinear archive: ``glamt`` and ``gphit``."""
    import xarray as xr

    assert grid.true_lon is not None and grid.true_lat is not None
    ds = xr.Dataset(
        data_vars={
            "glamt": (
                ("y", "x"),
                grid.true_lon,
                {"long_name": "longitude of T points", "units": "degrees_east"},
            ),
            "gphit": (
                ("y", "x"),
                grid.true_lat,
                {"long_name": "latitude of T points", "units": "degrees_north"},
            ),
        },
        attrs={
            "title": "arcodex test archive (curvilinear): grid of T points",
            "institution": "arcodex test data",
            "source": "synthetic grid written by arcodex._archives.write_archive",
        },
    )
    encoding = {"glamt": dict(_NO_FILL), "gphit": dict(_NO_FILL)}
    ds.to_netcdf(path, mode="w", format="NETCDF4", engine="netcdf4", encoding=encoding)
