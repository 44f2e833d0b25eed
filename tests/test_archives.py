"""The test archives of arcodex._archives are what they claim, opened with xarray and netCDF4."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, get_args

import pytest

np = pytest.importorskip("numpy")
xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")
cftime = pytest.importorskip("cftime")

from arcodex._archives import ARCHIVE_KINDS, ArchiveKind, write_archive  # noqa: E402

#: The data variables of each kind and their dims.
EXPECTED_VARIABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "regular": {"tas": ("time", "lat", "lon")},
    "curvilinear": {"tos": ("time_counter", "y", "x")},
    "lon360": {"tas": ("time", "lat", "lon")},
    "noleap": {"tas": ("time", "lat", "lon")},
    "multivar": {
        "tas": ("time", "lat", "lon"),
        "pr": ("time", "lat", "lon"),
        "orog": ("lat", "lon"),
        "time_bnds": ("time", "nv"),
    },
    "depth": {"thetao": ("time", "depth", "lat", "lon")},
    "packed": {"tas": ("time", "lat", "lon"), "sst": ("time", "lat", "lon")},
}


def time_dim(kind: str) -> str:
    return "time_counter" if kind == "curvilinear" else "time"


def open_cftime(path: Path, **kwargs: Any) -> Any:
    """Open with times decoded as cftime objects in every calendar."""
    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), **kwargs)


def raw_times(path: Path, kind: str) -> tuple[Any, str, str]:
    """The time values on disk, their units and calendar."""
    with netCDF4.Dataset(path) as nc:
        var = nc[time_dim(kind)]
        return var[:].data.copy(), var.units, var.calendar


def test_kinds_match_the_literal() -> None:
    assert get_args(ArchiveKind) == ARCHIVE_KINDS
    assert set(EXPECTED_VARIABLES) == set(ARCHIVE_KINDS)


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_structure(tmp_path: Path, kind: ArchiveKind) -> None:
    files = write_archive(tmp_path, kind, files=2, steps=3)
    assert [f.name for f in files] == [f"{kind}_000.nc", f"{kind}_001.nc"]
    tdim = time_dim(kind)
    for path in files:
        assert path.stat().st_size < 1_000_000
        with netCDF4.Dataset(path) as nc:
            assert nc.data_model == "NETCDF4"
            assert nc.dimensions[tdim].isunlimited()
            assert [d for d, dim in nc.dimensions.items() if dim.isunlimited()] == [tdim]
            time = nc[tdim]
            assert time.axis == "T" and time.standard_name == "time"
        with open_cftime(path) as ds:
            assert {name: ds[name].dims for name in ds.data_vars} == EXPECTED_VARIABLES[kind]
            assert ds.sizes[tdim] == 3
            assert ds.attrs["title"] and ds.attrs["institution"]
            assert "history" in ds.attrs


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_time_is_contiguous_and_values_differ(tmp_path: Path, kind: ArchiveKind) -> None:
    files = write_archive(tmp_path, kind, files=3, steps=4)
    tdim = time_dim(kind)
    values = [raw_times(path, kind)[0] for path in files]
    day = 86400.0 if kind == "curvilinear" else 1.0
    joined = np.concatenate(values)
    assert np.array_equal(np.diff(joined), np.full(11, day))
    # The same through xarray: one contiguous, increasing daily axis.
    with xr.open_mfdataset(
        files,
        combine="nested",
        concat_dim=tdim,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
        decode_times=xr.coders.CFDatetimeCoder(use_cftime=True),
    ) as ds:
        assert ds.sizes[tdim] == 12
        assert ds.indexes[tdim].is_monotonic_increasing and ds.indexes[tdim].is_unique
        name = next(iter(EXPECTED_VARIABLES[kind]))
        data = ds[name].values
        steps = [data[i] for i in range(12)]
        for a, b in itertools.pairwise(steps):
            assert not np.array_equal(a, b, equal_nan=True)
        assert np.isfinite(data).any()


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_deterministic_from_seed(tmp_path: Path, kind: ArchiveKind) -> None:
    a = write_archive(tmp_path / "a", kind, files=2, steps=2, seed=7)
    b = write_archive(tmp_path / "b", kind, files=2, steps=2, seed=7)
    c = write_archive(tmp_path / "c", kind, files=2, steps=2, seed=8)
    for fa, fb, fc in zip(a, b, c, strict=True):
        with open_cftime(fa) as da, open_cftime(fb) as db, open_cftime(fc) as dc:
            assert da.identical(db)
            name = next(iter(EXPECTED_VARIABLES[kind]))
            assert not np.array_equal(da[name].values, dc[name].values, equal_nan=True)


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_history_differs_per_file(tmp_path: Path, kind: ArchiveKind) -> None:
    files = write_archive(tmp_path, kind, files=3, steps=1)
    attrs = []
    for path in files:
        with netCDF4.Dataset(path) as nc:
            attrs.append({k: nc.getncattr(k) for k in nc.ncattrs()})
    assert len({a["history"] for a in attrs}) == 3
    # Nothing else differs between the files' global attributes.
    rest = [{k: v for k, v in a.items() if k != "history"} for a in attrs]
    assert rest[0] == rest[1] == rest[2]


@pytest.mark.parametrize("kind", ["regular", "curvilinear", "noleap"])
def test_shuffled_names_do_not_sort_in_time_order(tmp_path: Path, kind: ArchiveKind) -> None:
    files = write_archive(tmp_path, kind, files=3, shuffle_names=True)
    assert files[0].name == f"{kind}_001.nc"
    by_name = sorted(files)
    assert by_name != files and by_name != files[::-1]
    starts = [raw_times(path, kind)[0][0] for path in files]
    assert starts == sorted(starts)
    # Sorting by the first time value gives back the returned (time) order.
    assert sorted(by_name, key=lambda p: raw_times(p, kind)[0][0]) == files
    # The same content as the unshuffled archive, file by file.
    plain = write_archive(tmp_path / "plain", kind, files=3)
    for shuffled, ordered in zip(files, plain, strict=True):
        with open_cftime(shuffled) as a, open_cftime(ordered) as b:
            assert a.identical(b)


def test_regular_grid_and_encoding(tmp_path: Path) -> None:
    (path, *_) = write_archive(tmp_path, "regular")
    with netCDF4.Dataset(path) as nc:
        tas = nc["tas"]
        assert tas.dtype == np.float32
        assert tas.chunking() == [1, 12, 16]
        assert tas.filters()["zlib"]
        assert nc["time"].units == "days since 2000-01-01"
        assert nc["time"].calendar == "standard"
        assert "_FillValue" not in nc["lat"].ncattrs()
    with xr.open_dataset(path) as ds:
        assert ds.sizes["lat"] == 12 and ds.sizes["lon"] == 16
        assert ds["lat"].attrs["units"] == "degrees_north"
        assert ds["lon"].attrs["standard_name"] == "longitude"
        assert float(ds["lon"].min()) < 0 < float(ds["lon"].max()) < 180
        assert str(ds["time"].values[0]).startswith("2000-01-01")
        assert ds["tas"].encoding["zlib"]


def test_lon360(tmp_path: Path) -> None:
    (path, *_) = write_archive(tmp_path, "lon360", files=1)
    with xr.open_dataset(path) as ds:
        assert np.array_equal(ds["lon"].values, np.arange(16) * 22.5)


def test_noleap_calendar_survives(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "noleap", files=3, steps=4)
    assert raw_times(files[0], "noleap")[1:] == ("days since 1850-01-01", "noleap")
    dates = []
    for path in files:
        with open_cftime(path) as ds:
            assert ds["time"].encoding["calendar"] == "noleap"
            dates += list(ds["time"].values)
    assert all(isinstance(d, cftime.DatetimeNoLeap) for d in dates)
    assert dates[0] == cftime.DatetimeNoLeap(2001, 2, 26)
    assert dates[3] == cftime.DatetimeNoLeap(2001, 3, 1)  # Feb 28 is followed by Mar 1
    assert not any(d.month == 2 and d.day == 29 for d in dates)
    assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))


def test_noleap_start_crosses_a_standard_leap_day(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "noleap", files=1, steps=4, start="2000-02-27")
    with open_cftime(files[0]) as ds:
        days = [(d.month, d.day) for d in ds["time"].values]
    assert days == [(2, 27), (2, 28), (3, 1), (3, 2)]


def test_start_is_honoured(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "regular", files=2, steps=2, start="1999-12-31")
    assert list(raw_times(files[1], "regular")[0]) == [1.0, 2.0]
    with xr.open_dataset(files[0]) as ds:
        assert str(ds["time"].values[0]).startswith("1999-12-31")


def test_curvilinear_grid(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "curvilinear", files=2)
    grid = tmp_path / "grid.nc"
    assert grid.is_file() and grid not in files
    assert sorted(tmp_path.iterdir()) == sorted([*files, grid])
    with netCDF4.Dataset(files[0]) as nc:
        assert nc["tos"].coordinates == "nav_lat nav_lon"
        assert nc["time_counter"].units == "seconds since 1900-01-01"
        assert nc["nav_lat"].dimensions == ("y", "x")
    with open_cftime(files[0]) as ds, xr.open_dataset(grid) as g:
        assert ds.sizes["y"] == 10 and ds.sizes["x"] == 14
        assert set(ds["tos"].coords) == {"time_counter", "nav_lat", "nav_lon"}
        nav_lon, nav_lat = ds["nav_lon"].values, ds["nav_lat"].values
        # Curved: neither coordinate is constant along a row or a column.
        assert np.ptp(nav_lat[:, 0]) > 0 and np.ptp(nav_lat[0, :]) > 0
        assert np.ptp(nav_lon[:, 0]) > 0 and np.ptp(nav_lon[0, :]) > 0
        assert g["glamt"].dims == ("y", "x") and g["gphit"].dims == ("y", "x")
        assert g["glamt"].dtype == np.float64 and g["gphit"].dtype == np.float64
        assert not np.allclose(g["glamt"].values, nav_lon)
        assert not np.allclose(g["gphit"].values, nav_lat)
        # A test can put the true coordinates in place of nav_lon/nav_lat.
        fixed = ds.assign_coords(nav_lon=g["glamt"], nav_lat=g["gphit"])
        assert np.array_equal(fixed["tos"]["nav_lon"].values, g["glamt"].values)
        assert ds["tos"].isnull().any() and ds["tos"].notnull().any()  # land and sea


def test_multivar(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "multivar", files=3, steps=2)
    orogs = []
    for path in files:
        with open_cftime(path) as ds:
            assert ds["time"].attrs["bounds"] == "time_bnds"
            bounds = ds["time_bnds"].values
            assert list(bounds[:, 0]) == list(ds["time"].values)
            assert all((hi - lo).days == 1 for lo, hi in bounds)
            assert "time" not in ds["orog"].dims
            orogs.append(ds["orog"].values)
            assert not np.array_equal(ds["tas"].values, ds["pr"].values)
    assert all(np.array_equal(orogs[0], o) for o in orogs[1:])
    assert (orogs[0] > 0).any()


def test_depth(tmp_path: Path) -> None:
    (path, *_) = write_archive(tmp_path, "depth", files=1)
    with netCDF4.Dataset(path) as nc:
        assert nc["thetao"].chunking() == [1, 1, 12, 16]
    with xr.open_dataset(path) as ds:
        depth = ds["depth"]
        assert depth.size == 5
        assert depth.attrs["positive"] == "down" and depth.attrs["axis"] == "Z"
        assert depth.indexes["depth"].is_monotonic_increasing


def test_packed_decodes_to_nan(tmp_path: Path) -> None:
    files = write_archive(tmp_path, "packed", files=2, steps=3)
    for path in files:
        with netCDF4.Dataset(path) as nc:
            assert nc["tas"].dtype == np.int16
            assert nc["tas"].getncattr("_FillValue") == -32767
            assert nc["sst"].dtype == np.float32
            assert nc["sst"].getncattr("_FillValue") == np.float32(1e20)
        with xr.open_dataset(path, decode_cf=False) as raw, xr.open_dataset(path) as ds:
            assert raw["tas"].dtype == np.int16
            assert raw["tas"].attrs["scale_factor"] == np.float32(0.01)
            assert raw["tas"].attrs["add_offset"] == np.float32(280.0)
            tas, raw_tas = ds["tas"].values, raw["tas"].values
            assert np.isnan(tas).any() and np.isfinite(tas).any()
            assert np.array_equal(np.isnan(tas), raw_tas == -32767)
            sst, raw_sst = ds["sst"].values, raw["sst"].values
            assert np.isnan(sst).any() and np.isfinite(sst).any()
            assert np.array_equal(np.isnan(sst), raw_sst == np.float32(1e20))
            assert np.nanmin(tas) > 200 and np.nanmax(tas) < 340


def test_one_file_and_bad_arguments(tmp_path: Path) -> None:
    assert [p.name for p in write_archive(tmp_path, files=1, shuffle_names=True)] == [
        "regular_000.nc"
    ]
    with pytest.raises(ValueError, match="at least 1"):
        write_archive(tmp_path, files=0)
    with pytest.raises(ValueError, match="at least 1"):
        write_archive(tmp_path, steps=0)
    with pytest.raises(ValueError, match="unknown archive kind"):
        write_archive(tmp_path, "hexagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noleap"):
        write_archive(tmp_path, "noleap", start="2000-02-29")
    with pytest.raises(ValueError, match="not a date"):
        write_archive(tmp_path, start="yesterday")
