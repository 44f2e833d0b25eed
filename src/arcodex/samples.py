"""Small, deterministic sample data for tests, docs and the demo.

Needs the ``netcdf`` extra (xarray, netCDF4), imported when a sample is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from arcodex._archives import ARCHIVE_KINDS, ArchiveKind, write_archive

__all__ = [
    "ARCHIVE_KINDS",
    "SAMPLE_VARIABLES",
    "ArchiveKind",
    "NetCDFFormat",
    "write_archive",
    "write_daily_t2m",
    "write_sample_netcdf",
]

NetCDFFormat = Literal["NETCDF4", "NETCDF4_CLASSIC", "NETCDF3_64BIT", "NETCDF3_CLASSIC"]

#: CF description and typical value (mean, spread) of the variables samples know by name;
#: any other name gets a dimensionless field.
SAMPLE_VARIABLES: dict[str, dict[str, Any]] = {
    "ch4": {
        "standard_name": "mole_fraction_of_methane_in_air",
        "long_name": "methane mole fraction in air",
        "units": "1e-9",
        "typical": (1900.0, 30.0),
    },
    "co2": {
        "standard_name": "mole_fraction_of_carbon_dioxide_in_air",
        "long_name": "carbon dioxide mole fraction in air",
        "units": "1e-6",
        "typical": (415.0, 5.0),
    },
    "n2o": {
        "standard_name": "mole_fraction_of_nitrous_oxide_in_air",
        "long_name": "nitrous oxide mole fraction in air",
        "units": "1e-9",
        "typical": (333.0, 1.0),
    },
    "tas": {
        "standard_name": "air_temperature",
        "long_name": "near-surface air temperature",
        "units": "K",
        "typical": (280.0, 8.0),
    },
    "tos": {
        "standard_name": "sea_surface_temperature",
        "long_name": "sea surface temperature",
        "units": "K",
        "typical": (285.0, 4.0),
    },
    "pr": {
        "standard_name": "precipitation_flux",
        "long_name": "precipitation",
        "units": "kg m-2 s-1",
        "typical": (3e-5, 1e-5),
    },
}


def write_sample_netcdf(
    path: str | os.PathLike[str],
    *,
    start: str = "2020-01-01",
    days: int = 31,
    lat: tuple[float, float] = (40, 60),
    lon: tuple[float, float] = (-10, 5),
    nlat: int = 10,
    nlon: int = 15,
    calendar: str = "standard",
    seed: int = 0,
    variables: Sequence[str] = ("ch4", "tas"),
    attrs: Mapping[str, Any] | None = None,
    format: NetCDFFormat = "NETCDF4",
) -> Path:
    """Write a small CF-compliant NetCDF file of daily fields on a regular lat/lon grid.

    The same arguments always give the same content.

    Args:
        path: The file to write (parent directories are created).
        start: The first day, an ISO date (``2020-01-01``); time is
            ``days since start`` in ``calendar``.
        days: How many daily steps.
        lat: First and last latitude of the cell centres (degrees north).
        lon: First and last longitude of the cell centres (degrees east;
            0-360 values such as ``(160, 200)`` are written as given).
        nlat: Number of latitudes.
        nlon: Number of longitudes.
        calendar: CF calendar of the time axis (``standard``, ``noleap``, ``360_day`` …).
        seed: Seed of the random fields.
        variables: Data variables to write, each ``(time, lat, lon)`` float32;
            see :data:`SAMPLE_VARIABLES` for the names with a CF description.
        attrs: Global attributes added to (or replacing) the defaults; a None
            value removes a default.
        format: NetCDF file format (``NETCDF4``, ``NETCDF4_CLASSIC``, ``NETCDF3_CLASSIC`` …).

    Returns:
        The path written.
    """
    import numpy as np
    import xarray as xr

    if days < 1 or nlat < 1 or nlon < 1:
        raise ValueError(f"days, nlat and nlon must be at least 1, not {days}, {nlat}, {nlon}")
    if not variables:
        raise ValueError("give at least one variable name")
    out = Path(path)
    rng = np.random.default_rng(seed)
    shape = (days, nlat, nlon)
    coords = {
        "time": (
            "time",
            np.arange(days, dtype="float64"),
            {
                "standard_name": "time",
                "long_name": "time",
                "axis": "T",
                "units": f"days since {start}{'' if 'T' in start or ' ' in start else ' 00:00:00'}",
                "calendar": calendar,
            },
        ),
        "lat": (
            "lat",
            np.linspace(lat[0], lat[1], nlat),
            {
                "standard_name": "latitude",
                "long_name": "latitude",
                "units": "degrees_north",
                "axis": "Y",
            },
        ),
        "lon": (
            "lon",
            np.linspace(lon[0], lon[1], nlon),
            {
                "standard_name": "longitude",
                "long_name": "longitude",
                "units": "degrees_east",
                "axis": "X",
            },
        ),
    }
    data_vars = {}
    for name in variables:
        known = SAMPLE_VARIABLES.get(name, {"long_name": name, "units": "1", "typical": (0.0, 1.0)})
        mean, spread = known["typical"]
        values = (mean + spread * rng.standard_normal(shape)).astype("float32")
        var_attrs = {k: v for k, v in known.items() if k != "typical"}
        var_attrs["cell_methods"] = "time: point"
        data_vars[name] = (("time", "lat", "lon"), values, var_attrs)

    global_attrs: dict[str, Any] = {
        "title": f"Sample {', '.join(variables)} fields from {start}",
        "summary": f"{days} days of synthetic {', '.join(variables)} on a {nlat}x{nlon} grid",
        "institution": "arcodex sample data",
        "source": "synthetic fields written by arcodex.samples.write_sample_netcdf",
        "Conventions": "CF-1.10, ACDD-1.3",
        "keywords": ", ".join(SAMPLE_VARIABLES.get(n, {}).get("long_name", n) for n in variables),
        "site": "sample",
        "history": "written by arcodex.samples.write_sample_netcdf",
    }
    for key, value in (attrs or {}).items():
        if value is None:
            global_attrs.pop(key, None)
        else:
            global_attrs[key] = value

    ds = xr.Dataset(data_vars=data_vars, coords=coords, attrs=global_attrs)
    # CF: coordinates have no missing values, so no _FillValue on them.
    encoding: dict[str, dict[str, Any]] = {name: {"_FillValue": None} for name in coords}
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out, format=format, engine="netcdf4", encoding=encoding)
    return out


def write_daily_t2m(where: Path, day: str) -> Path:
    """One day of air temperature over Europe, as a data provider would publish it:
    ``where/t2m_{day}.nc`` (``day`` as ``2021-03-01``), its values seeded by the day."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    lat = np.arange(30.0, 70.0, 2.0)
    lon = np.arange(-20.0, 40.0, 2.0)
    seed = int(pd.Timestamp(day).strftime("%Y%m%d"))
    values = np.random.default_rng(seed).normal(285.0, 5.0, (1, lat.size, lon.size))
    xr.Dataset(
        {"t2m": (("time", "lat", "lon"), values.astype("f4"), {"units": "K"})},
        coords={
            "time": ("time", [np.datetime64(f"{day}T12:00", "ns")]),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    ).to_netcdf(path := where / f"t2m_{day}.nc")
    return path
