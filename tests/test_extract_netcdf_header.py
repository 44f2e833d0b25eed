"""The netCDF4-only header reader describes files exactly as the xarray path does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")
h5py = pytest.importorskip("h5py")

from arcodex.extract._netcdf import _read, _read_with_xarray  # noqa: E402
from arcodex.extract._netcdf_header import read_header  # noqa: E402
from arcodex.samples import write_sample_netcdf  # noqa: E402


def _grid(nt: int = 4, **time_attrs: Any) -> Any:
    time = xr.Variable("time", np.arange(nt, dtype="int64"), {"axis": "T", **time_attrs})
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.ones((nt, 3, 4), "f4"), {"units": "K"})},
        coords={
            "time": time,
            "lat": ("lat", [-10.0, 0.0, 10.0], {"units": "degrees_north"}),
            "lon": ("lon", [0.0, 90.0, 180.0, 270.0], {"units": "degrees_east"}),
        },
        attrs={"title": "t", "keywords": "a, b", "Conventions": "CF-1.8"},
    )


def _standard(path: Path) -> None:
    _grid(units="days since 2000-01-01", calendar="standard").to_netcdf(path)


def _hourly(path: Path) -> None:
    _grid(nt=30, units="hours since 2010-06-01 12:00:00").to_netcdf(path)


def _noleap(path: Path) -> None:
    _grid(units="days since 0001-01-01", calendar="noleap").to_netcdf(path)


def _day360(path: Path) -> None:
    _grid(nt=40, units="days since 1990-02-01", calendar="360_day").to_netcdf(path)


def _times_written_by_xarray(path: Path) -> None:
    days = np.arange("2001-01-01", "2001-01-05", dtype="datetime64[D]")
    ds = _grid().drop_vars("time").assign_coords(time=days.astype("datetime64[ns]"))
    ds.to_netcdf(path)


def _bounds(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds["time"].attrs["bounds"] = "time_bnds"
    ds["lat"].attrs["bounds"] = "lat_bnds"
    ds["time_bnds"] = (("time", "nv"), np.stack([np.arange(4), np.arange(1, 5)], axis=1))
    ds["lat_bnds"] = (("lat", "nv"), [[-15.0, -5.0], [-5.0, 5.0], [5.0, 15.0]])
    ds.to_netcdf(path)


def _curvilinear(path: Path) -> None:
    y, x = np.mgrid[0:3, 0:4]
    ds = xr.Dataset(
        {"sst": (("y", "x"), np.ones((3, 4), "f8"), {"units": "degC"})},
        coords={
            "nav_lat": (("y", "x"), 40.0 + y, {"units": "degrees_north"}),
            "nav_lon": (("y", "x"), 170.0 + 5 * x, {"units": "degrees_east"}),
            "depth": ("depth", [5.0], {"positive": "down", "units": "m"}),
        },
    )
    ds.to_netcdf(path)


def _fill_in_coordinate(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds["lon"] = ("lon", [0.0, 90.0, -999.0, 270.0], {"units": "degrees_east"})
    ds.to_netcdf(path, encoding={"lon": {"_FillValue": -999.0}, "tas": {"_FillValue": 1e20}})


def _groups_unlimited(path: Path) -> None:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("unused", 3)
        t = nc.createVariable("time", "i8", ("time",))
        t.units = "seconds since 1970-01-01T00:00:00"
        t[:] = [0, 60, 120]
        nc.createGroup("extra")
        nc.setncattr("source", "model x")
        nc.setncattr("values", np.array([1, 2, 3], "i4"))


def _netcdf3(path: Path) -> None:
    _grid(units="days since 2000-01-01").to_netcdf(path, format="NETCDF3_CLASSIC")


def _plain_hdf5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(12.0).reshape(3, 4)
        f.attrs["origin"] = "instrument"


def _packed(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds.to_netcdf(path, encoding={"tas": {"dtype": "int16", "scale_factor": 0.1, "_FillValue": -1}})


def _strings(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds["station"] = ("lat", ["a", "bb", "ccc"])
    ds.to_netcdf(path)


def _fractional_times(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds = ds.assign_coords(time=("time", np.arange(4) / 24, ds["time"].attrs))
    ds.to_netcdf(path)


def _timedelta(path: Path) -> None:
    ds = _grid(units="days since 2000-01-01")
    ds = ds.assign_coords(lead=("lead", np.array([1, 2]), {"units": "hours"}))
    ds.to_netcdf(path)


def _enum(path: Path) -> None:
    with netCDF4.Dataset(path, "w") as nc:
        kind = nc.createEnumType("u1", "cloud_t", {"clear": 0, "cloudy": 1})
        nc.createDimension("x", 3)
        cloud = nc.createVariable("cloud", kind, ("x",))
        cloud[:] = np.array([0, 1, 0], "u1")


def _sample(path: Path) -> None:
    write_sample_netcdf(path)


#: Files the netCDF4 reader handles itself.
LIGHT: dict[str, Callable[[Path], None]] = {
    "sample": _sample,
    "standard": _standard,
    "hourly": _hourly,
    "noleap": _noleap,
    "360_day": _day360,
    "xarray_times": _times_written_by_xarray,
    "bounds": _bounds,
    "curvilinear": _curvilinear,
    "fill_in_coordinate": _fill_in_coordinate,
    "groups_unlimited": _groups_unlimited,
    "netcdf3": _netcdf3,
    "plain_hdf5": _plain_hdf5,
}
#: Files it leaves to xarray.
FALLBACK: dict[str, Callable[[Path], None]] = {
    "packed": _packed,
    "strings": _strings,
    "fractional_times": _fractional_times,
    "timedelta": _timedelta,
    "enum": _enum,
}


@pytest.mark.parametrize("name", sorted(LIGHT))
def test_header_reader_describes_as_xarray_does(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.nc"
    LIGHT[name](path)
    with netCDF4.Dataset(path) as nc:
        assert read_header(nc) is not None, "the netCDF4 reader should handle this file"
    assert _read(path) == _read_with_xarray(path)


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_files_it_cannot_decode_go_through_xarray(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.nc"
    FALLBACK[name](path)
    with netCDF4.Dataset(path) as nc:
        assert read_header(nc) is None
    assert _read(path) == _read_with_xarray(path)


def test_extracting_a_plain_file_does_not_import_xarray(tmp_path: Path) -> None:
    sample = write_sample_netcdf(tmp_path / "s.nc")
    code = (
        "import sys, pathlib\n"
        "from arcodex.extract import extract_file\n"
        f"found = extract_file(pathlib.Path({str(sample)!r}))\n"
        "assert found.metadata['bbox'] and found.metadata['datacube']\n"
        "print(','.join(sorted({'xarray', 'pandas', 'dask', 'zarr'} & set(sys.modules))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
