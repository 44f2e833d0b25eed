"""The NetCDF extractor on small files written by xarray, and the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")

from arcodex.errors import ValidationError  # noqa: E402
from arcodex.extract import Extracted, extract_file  # noqa: E402
from arcodex.extract._netcdf import NetCDFExtractor  # noqa: E402
from arcodex.model import check_metadata, normalize_bbox, parse_iso_period  # noqa: E402
from arcodex.samples import write_sample_netcdf  # noqa: E402


def extract(path: Path) -> Extracted:
    found = Extracted()
    NetCDFExtractor().extract(path, found)
    return found


def write(ds: Any, path: Path, **kwargs: Any) -> Path:
    ds.to_netcdf(path, engine="netcdf4", **kwargs)
    return path


# -- recognising files ---------------------------------------------------------


@pytest.mark.parametrize("name", ["a.nc", "a.NC", "a.nc4", "a.cdf", "a.netcdf", "a.h5", "a.hdf5"])
def test_matches_by_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert NetCDFExtractor().matches(path)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"CDF\x01rest", True),
        (b"CDF\x02rest", True),
        (b"\x89HDF\r\n\x1a\n", True),
        (b"PK\x03\x04", False),
        (b"", False),
    ],
)
def test_matches_by_magic_bytes(tmp_path: Path, head: bytes, expected: bool) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(head)
    assert NetCDFExtractor().matches(path) is expected


def test_matches_real_file_without_suffix(tmp_path: Path) -> None:
    path = write_sample_netcdf(tmp_path / "sample.nc").rename(tmp_path / "sample")
    assert NetCDFExtractor().matches(path)
    assert extract(path).format == "netcdf"


def test_missing_file_does_not_match(tmp_path: Path) -> None:
    assert not NetCDFExtractor().matches(tmp_path / "missing")


# -- structure -----------------------------------------------------------------


def test_dims_variables_coords_and_attrs(tmp_path: Path) -> None:
    path = write_sample_netcdf(
        tmp_path / "s.nc", days=5, nlat=3, nlon=4, variables=("ch4", "mystery")
    )
    found = extract(path)
    nc = found.metadata["netcdf"]

    assert found.kind == "dataset"
    assert (found.format, found.media_type) == ("netcdf", "application/netcdf")
    assert nc["format"] == "NETCDF4"
    assert nc["dims"] == {"time": 5, "lat": 3, "lon": 4}
    assert sorted(nc["coords"]) == ["lat", "lon", "time"]
    assert nc["variables"]["ch4"] == {
        "dims": ["time", "lat", "lon"],
        "dtype": "float32",
        "units": "1e-9",
        "long_name": "methane mole fraction in air",
        "standard_name": "mole_fraction_of_methane_in_air",
    }
    # Only attributes the file has are listed.
    assert nc["variables"]["mystery"] == {
        "dims": ["time", "lat", "lon"],
        "dtype": "float32",
        "units": "1",
        "long_name": "mystery",
    }
    assert nc["variables"]["time"]["units"] == "days since 2020-01-01 00:00:00"
    assert nc["attrs"]["Conventions"] == "CF-1.10, ACDD-1.3"
    assert nc["attrs"]["site"] == "sample"


def test_title_institution_source_keywords_at_top_level(tmp_path: Path) -> None:
    path = write_sample_netcdf(
        tmp_path / "s.nc",
        attrs={"title": "Mace Head methane", "institution": "NOC", "keywords": "methane; CH4, air"},
    )
    meta = extract(path).metadata
    assert meta["title"] == "Mace Head methane"
    assert meta["institution"] == "NOC"
    assert meta["source"].startswith("synthetic")
    assert meta["keywords"] == ["methane", "CH4", "air"]
    assert meta["netcdf"]["attrs"]["keywords"] == "methane; CH4, air"


def test_absent_global_attrs_are_not_invented(tmp_path: Path) -> None:
    path = write_sample_netcdf(
        tmp_path / "s.nc",
        attrs={"title": None, "institution": None, "source": None, "keywords": None},
    )
    meta = extract(path).metadata
    assert not {"title", "institution", "source", "keywords"} & set(meta)


def test_attributes_are_sanitised_to_json(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {
            "sea.ice": (
                ("x",),
                np.zeros(3, dtype="f4"),
                {"units": "1", "valid_range": np.array([0, 1])},
            )
        },
        attrs={
            "count": np.int32(7),
            "scale": np.float32(0.5),
            "levels": np.array([1, 2, 3], dtype="i2"),
            "weights": np.array([1.0, np.nan, 2.0]),
            "missing": np.nan,
            "huge": np.inf,
            "flag": np.int8(1),
            "name.with.dots": "dotted",
            "text": "snow ❄",
        },
    )
    meta = extract(write(ds, tmp_path / "a.nc")).metadata
    attrs = meta["netcdf"]["attrs"]
    assert attrs == {
        "count": 7,
        "scale": 0.5,
        "levels": [1, 2, 3],
        "weights": [1.0, 2.0],
        "flag": 1,
        "name_with_dots": "dotted",
        "text": "snow ❄",
    }
    assert type(attrs["count"]) is int
    assert type(attrs["scale"]) is float
    assert "sea_ice" in meta["netcdf"]["variables"]
    # What the catalog will store: plain JSON, no dotted keys, no NaN.
    assert check_metadata(meta) == meta
    json.dumps(meta, allow_nan=False)


def test_netcdf3_file(tmp_path: Path) -> None:
    path = write_sample_netcdf(tmp_path / "classic.nc", format="NETCDF3_CLASSIC")
    found = extract(path)
    assert found.metadata["netcdf"]["format"] == "NETCDF3_CLASSIC"
    assert found.metadata["bbox"] == [-10.0, 40.0, 5.0, 60.0]


def test_groups_and_unlimited_dims_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "groups.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("obs", None)
        nc.createVariable("value", "f4", ("obs",))
        nc.createGroup("raw")
        nc.createGroup("calibrated")
    nc_meta = extract(path).metadata["netcdf"]
    assert nc_meta["groups"] == ["calibrated", "raw"]
    assert nc_meta["unlimited_dims"] == ["obs"]
    assert nc_meta["dims"] == {"obs": 0}


def test_file_without_coordinates_has_no_extents(tmp_path: Path) -> None:
    ds = xr.Dataset({"v": (("x", "y"), np.zeros((2, 3)))}, attrs={"title": "bare"})
    meta = extract(write(ds, tmp_path / "bare.nc")).metadata
    assert meta["netcdf"]["dims"] == {"x": 2, "y": 3}
    assert not {"bbox", "start_datetime", "end_datetime"} & set(meta)
    assert "calendar" not in meta["netcdf"]


# -- bbox ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "bbox"),
    [
        ((-10, 5), [-10.0, 40.0, 5.0, 60.0]),
        # 0-360 longitudes come out in -180..180.
        ((10, 50), [10.0, 40.0, 50.0, 60.0]),
        ((200, 250), [-160.0, 40.0, -110.0, 60.0]),
        # Across 180 degrees: west > east.
        ((160, 200), [160.0, 40.0, -160.0, 60.0]),
        # Ending exactly on 180 degrees does not cross it.
        ((150, 180), [150.0, 40.0, 180.0, 60.0]),
    ],
)
def test_bbox_of_regular_grid(tmp_path: Path, lon: tuple[float, float], bbox: list[float]) -> None:
    path = write_sample_netcdf(tmp_path / "g.nc", lon=lon, nlon=11, days=2)
    assert extract(path).metadata["bbox"] == bbox


def test_bbox_of_global_grid_does_not_cross_antimeridian(tmp_path: Path) -> None:
    path = write_sample_netcdf(
        tmp_path / "g.nc", lat=(-90, 90), lon=(0, 358), nlat=91, nlon=180, days=1
    )
    west, south, east, north = extract(path).metadata["bbox"]
    assert (south, north) == (-90.0, 90.0)
    assert west < east
    assert (west, east) == (-180.0, 178.0)


def test_bbox_crossing_is_searchable_as_two_boxes(tmp_path: Path) -> None:
    path = write_sample_netcdf(tmp_path / "g.nc", lon=(170, 190), nlon=5, days=1)
    bbox = extract(path).metadata["bbox"]
    assert normalize_bbox(bbox) == [(170.0, 40.0, 180.0, 60.0), (-180.0, 40.0, -170.0, 60.0)]


def _curvilinear(lon0: float, lon1: float) -> Any:
    """A NEMO-like grid: 2-D nav_lat/nav_lon data variables, known only by name."""
    y, x = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 5), indexing="ij")
    lat = 50 + 10 * y + 2 * x
    lon = lon0 + (lon1 - lon0) * x + 3 * y
    lon = (lon + 180) % 360 - 180
    return xr.Dataset(
        {
            "nav_lat": (("y", "x"), lat.astype("f4")),
            "nav_lon": (("y", "x"), lon.astype("f4")),
            "sst": (("time_counter", "y", "x"), np.zeros((2, 4, 5), dtype="f4")),
            "time_counter": (
                ("time_counter",),
                np.array([0.0, 86400.0]),
                {"units": "seconds since 1990-01-01 00:00:00"},
            ),
        }
    )


def test_bbox_of_curvilinear_grid(tmp_path: Path) -> None:
    meta = extract(write(_curvilinear(-20, 0), tmp_path / "nemo.nc")).metadata
    assert meta["bbox"] == [-20.0, 50.0, 3.0, 62.0]
    assert meta["start_datetime"] == "1990-01-01T00:00:00Z"
    assert meta["end_datetime"] == "1990-01-02T00:00:00Z"


def test_bbox_of_curvilinear_grid_across_antimeridian(tmp_path: Path) -> None:
    meta = extract(write(_curvilinear(170, 190), tmp_path / "nemo.nc")).metadata
    assert meta["bbox"] == [170.0, 50.0, -167.0, 62.0]


def test_bbox_found_by_units_and_cell_bounds(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 3)))},
        coords={
            "y": ("y", [10.5, 11.5], {"units": "degrees_north", "bounds": "y_bnds"}),
            "x": ("x", [20.5, 21.5, 22.5], {"units": "degrees_east", "bounds": "x_bnds"}),
            "y_bnds": (("y", "nv"), [[10.0, 11.0], [11.0, 12.0]]),
            "x_bnds": (("x", "nv"), [[20.0, 21.0], [21.0, 22.0], [22.0, 23.0]]),
        },
    )
    assert extract(write(ds, tmp_path / "b.nc")).metadata["bbox"] == [20.0, 10.0, 23.0, 12.0]


# -- time --------------------------------------------------------------------------


def test_time_coverage_standard_calendar(tmp_path: Path) -> None:
    meta = extract(write_sample_netcdf(tmp_path / "t.nc", start="2020-02-10", days=20)).metadata
    assert meta["start_datetime"] == "2020-02-10T00:00:00Z"
    assert meta["end_datetime"] == "2020-02-29T00:00:00Z"
    assert meta["netcdf"]["calendar"] == "standard"
    assert meta["netcdf"]["time"]["steps"] == 20


def test_time_coverage_noleap_calendar(tmp_path: Path) -> None:
    path = write_sample_netcdf(tmp_path / "t.nc", start="2001-02-20", days=10, calendar="noleap")
    meta = extract(path).metadata
    assert meta["start_datetime"] == "2001-02-20T00:00:00Z"
    assert meta["end_datetime"] == "2001-03-01T00:00:00Z"
    assert meta["netcdf"]["calendar"] == "noleap"


def test_time_coverage_360_day_calendar_keeps_dates_valid(tmp_path: Path) -> None:
    path = write_sample_netcdf(tmp_path / "t.nc", start="2001-02-21", days=10, calendar="360_day")
    meta = extract(path).metadata
    assert meta["netcdf"]["calendar"] == "360_day"
    # The file's own last day is 30 February; the UTC string must still be a real date.
    assert meta["netcdf"]["time"]["end"] == "2001-02-30T00:00:00"
    assert meta["start_datetime"] == "2001-02-21T00:00:00Z"
    assert meta["end_datetime"] == "2001-02-28T00:00:00Z"
    for key in ("start_datetime", "end_datetime"):
        parse_iso_period(meta[key])


def test_time_coverage_uses_cell_bounds(tmp_path: Path) -> None:
    ds = xr.Dataset(
        coords={
            "time": (
                "time",
                [15.5, 45.0],
                {"standard_name": "time", "units": "days since 2000-01-01", "bounds": "time_bnds"},
            ),
            "time_bnds": (("time", "nv"), [[0.0, 31.0], [31.0, 60.0]]),
        }
    )
    meta = extract(write(ds, tmp_path / "b.nc")).metadata
    assert meta["start_datetime"] == "2000-01-01T00:00:00Z"
    assert meta["end_datetime"] == "2000-03-01T00:00:00Z"


def test_undecodable_time_units_give_no_time_extent(tmp_path: Path) -> None:
    ds = xr.Dataset(coords={"time": ("time", [1.0, 2.0], {"units": "days since the flood"})})
    meta = extract(write(ds, tmp_path / "t.nc")).metadata
    assert "start_datetime" not in meta
    assert meta["netcdf"]["dims"] == {"time": 2}


# -- errors and laziness ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"this is not a netcdf file", b"\x89HDF\r\n\x1a\n" + b"\0" * 64]
)
def test_unreadable_file_is_a_validation_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.nc"
    path.write_bytes(content)
    with pytest.raises(ValidationError) as info:
        extract(path)
    message = str(info.value)
    assert message.startswith(f"cannot read {path} as NetCDF: ")
    assert message.endswith("check the file or add it with --no-extract")
    assert "\n" not in message


def test_truncated_file_is_a_validation_error(tmp_path: Path) -> None:
    whole = write_sample_netcdf(tmp_path / "whole.nc").read_bytes()
    path = tmp_path / "cut.nc"
    path.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ValidationError, match=r"cannot read .* as NetCDF"):
        extract(path)


def test_data_variables_are_not_loaded(tmp_path: Path) -> None:
    # 4000 x 4000 float64 = 128 MB declared but never written: HDF5 stores no chunks,
    # so the file is tiny, yet reading the variable would allocate all of it.
    path = tmp_path / "big.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", 4000)
        nc.createDimension("x", 4000)
        nc.createVariable("big", "f8", ("y", "x"), chunksizes=(500, 500))
        lat = nc.createVariable("lat", "f8", ("y",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-90, 90, 4000)
        lon = nc.createVariable("lon", "f8", ("x",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(-180, 180, 4000)
    assert path.stat().st_size < 1_000_000
    extract(path)  # warm up imports and caches outside the measurement

    tracemalloc.start()
    try:
        found = extract(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.metadata["netcdf"]["variables"]["big"]["dims"] == ["y", "x"]
    assert found.metadata["bbox"] == [-180.0, -90.0, 180.0, 90.0]
    assert peak < 16_000_000


def test_extract_file_runs_file_then_netcdf(tmp_path: Path) -> None:
    found = extract_file(write_sample_netcdf(tmp_path / "s.h5"))
    assert found.extractors == ["file", "netcdf"]
    # The suffix says HDF5; the content says NetCDF-4, which wins.
    assert (found.format, found.media_type) == ("netcdf", "application/netcdf")
    assert found.metadata["file"]["suffix"] == ".h5"


def test_import_arcodex_does_not_import_xarray(tmp_path: Path) -> None:
    sample = write_sample_netcdf(tmp_path / "s.nc")
    code = (
        "import sys, pathlib\n"
        "import arcodex, arcodex.extract, arcodex.extract._netcdf, arcodex.samples, arcodex.demo\n"
        "from arcodex.extract._netcdf import NetCDFExtractor\n"
        f"assert NetCDFExtractor().matches(pathlib.Path({str(sample)!r}))\n"
        "heavy = sorted({'xarray', 'netCDF4', 'numpy', 'cftime'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


# -- samples ---------------------------------------------------------------------------


def test_samples_are_deterministic(tmp_path: Path) -> None:
    a = write_sample_netcdf(tmp_path / "a.nc", seed=3)
    b = write_sample_netcdf(tmp_path / "b.nc", seed=3)
    c = write_sample_netcdf(tmp_path / "c.nc", seed=4)
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db, xr.open_dataset(c) as dc:
        assert da.identical(db)
        assert not da.identical(dc)
        assert str(da["time"].values[0]).startswith("2020-01-01")


def test_samples_refuse_empty_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_sample_netcdf(tmp_path / "a.nc", days=0)


# -- the demo ----------------------------------------------------------------------------


def test_demo_refuses_a_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arcodex.demo import main

    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    assert main(["--dir", str(tmp_path)]) == 1
    assert keep.read_text() == "mine"
    assert "was not made by the demo" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "ARCODEX_CATALOG"}
    # wide enough that no line wraps: tmp_path's length varies from run to run
    env["COLUMNS"] = "1000"
    for _ in range(2):  # the second run starts afresh in the same directory
        done = subprocess.run(
            [sys.executable, "-m", "arcodex.demo", "--dir", str(directory)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=300,  # two busy cores in CI: a run took over 120 s under load
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    for command in (
        "init",
        "add",
        "search",
        "show",
        "fields",
        "info",
        "convert",
        "update",
        "check",
        "publish",
        "templates",
        "extents",
        "ingest",
        "sync",
    ):
        assert f"\n$ arcodex {command} " in done.stdout or f" catalog {command}" in done.stdout
    # It ends by reading the published product over /zarr with xarray alone.
    assert 'xr.open_zarr("http://127.0.0.1:' in done.stdout
    sizes, mean = (
        done.stdout.split("no credentials.\n$ python -c ")[1].splitlines()[1].rsplit(" ", 1)
    )
    assert sizes == "{'time': 32, 'lat': 12, 'lon': 16}" and 200 < float(mean) < 350
    assert "is up to date; nothing written" in done.stdout
    # It ingests five days through a template, plans a sync of the sixth, syncs only it.
    assert "t2m-daily+alps: 5 periods committed, 0 already held, 0 failed; check pass" in (
        done.stdout
    )
    assert "t2m-daily+alps: append 2021-03-06 to 2021-03-06" in done.stdout
    assert "t2m-daily+alps: append: 1 periods committed; check pass" in done.stdout
    assert "t2m-daily+alps: up to date" in done.stdout
    assert "/stac/ --variables tas" in done.stdout and "found" in done.stdout, "found via the API"
    opened = json.loads(done.stdout.rsplit("--json\n", 1)[1].split("\n\n#", 1)[0])
    assert opened["variables"] == ["tas"] and opened["dims"]["time"] == 7

    from arcodex import open_catalog

    with open_catalog(directory / "catalog") as catalog:
        ingested = catalog.get("t2m-daily+alps")
        assert ingested.metadata["convert"]["format"] == "icechunk"
        assert ingested.metadata["convert"]["check"] == "pass"
        products = [
            r for r in catalog.search().records if "convert" in r.metadata and r.id != ingested.id
        ]
        assert sorted(r.metadata["convert"]["format"] for r in products) == ["kerchunk", "zarr"]
        zarr_product = next(r for r in products if r.metadata["convert"]["format"] == "zarr")
        assert zarr_product.metadata["convert"]["steps"] == 32
        assert zarr_product.metadata["convert"]["check"] == "pass"
        everything = [r for r in catalog.search().records if "convert" not in r.metadata]
        assert len(everything) == 2
        found = catalog.search(
            ["netcdf.attrs.site=MHD"], bbox="-15,45,0,60", time="2020-01"
        ).records
        assert [r.title for r in found] == ["Mace Head (MHD) methane and air temperature, 2020-01"]
        assert catalog.search(["netcdf.attrs.site=MHD"], time="2020-02").records == []
        texts = catalog.search(text="Tacolneston").records
        assert [r.metadata["netcdf"]["attrs"]["site"] for r in texts] == ["TAC"]
