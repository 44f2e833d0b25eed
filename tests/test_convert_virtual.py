"""Virtual references of the archives users have: monthly files of 28 to 31 steps.

Each test runs the CLI as a user would (`arcodex convert … --to virtual`, `update`,
`check`) on small monthly NetCDF files it writes itself, stored as users' files
are: contiguous (netCDF's default without an unlimited dim), compressed in chunks
of one step, or compressed in one chunk a file. What the data allows must work and
read back with plain xarray; what it does not must be refused in one line, exit 1,
before anything is written; never an internal error (exit 70).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from arcodex.catalog import Catalog
from arcodex.cli import app

xr = pytest.importorskip("xarray")
h5py = pytest.importorskip("h5py")
icechunk = pytest.importorskip("icechunk")
pd = pytest.importorskip("pandas")

runner = CliRunner()
#: kerchunk/fsspec ask pandas for the fastparquet engine, which pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The 'fastparquet' engine is deprecated")
MONTHS = (31, 28, 31)
#: (--format, file suffix) of the virtual products.
FORMATS = {"kerchunk": ".json", "kerchunk-parquet": ".parq", "icechunk": ".icechunk"}


def write_months(
    where: Path, layout: str, lengths: tuple[int, ...] = MONTHS, *, start: str = "2001-01-01"
) -> list[Path]:
    """Monthly files of ``tas(time, lat, lon)`` with float coordinates xarray gives a NaN
    ``_FillValue`` (its default); ``layout`` is how ``tas`` is stored: ``contiguous``,
    ``step`` (zlib, chunks of one step), ``whole`` (zlib, one chunk a file) or ``ten``
    (zlib, chunks of ten steps)."""
    where.mkdir(parents=True, exist_ok=True)
    first = pd.Timestamp(start)
    lat = np.linspace(-60, 60, 6, dtype="f4")
    lon = np.linspace(0, 350, 8, dtype="f4")
    paths = []
    for i, n in enumerate(lengths):
        times = pd.date_range(first, periods=n, freq="D")
        first = times[-1] + pd.Timedelta(days=1)
        values = np.random.default_rng([i, n]).normal(280, 10, (n, 6, 8)).astype("f4")
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={"time": times, "lat": lat, "lon": lon},
        )
        encoding = {
            "contiguous": {"contiguous": True},
            "step": {"zlib": True, "chunksizes": (1, 6, 8)},
            "whole": {"zlib": True, "chunksizes": (n, 6, 8)},
            "ten": {"zlib": True, "chunksizes": (10, 6, 8)},
        }[layout]
        path = where / f"m{i + 1:02d}.nc"
        ds.to_netcdf(path, engine="netcdf4", encoding={"tas": encoding})
        paths.append(path)
    return paths


def cli(*args: str, catalog: Path | None = None) -> Result:
    argv = ["--catalog", str(catalog), *args] if catalog is not None else list(args)
    return runner.invoke(app, [*argv, *_cluster(args)])


def _cluster(args: tuple[str, ...]) -> list[str]:
    return ["--cluster", "threads"] if args and args[0] in ("convert", "update", "check") else []


def ok(*args: str, catalog: Path | None = None) -> Result:
    result = cli(*args, catalog=catalog)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def error_line(result: Result) -> str:
    """The one ``error: …`` line of a refused command (exit 1, never 70)."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def convert_virtual(sources: str | list[Path], fmt: str, dest: Path, *more: str) -> Result:
    given = [sources] if isinstance(sources, str) else [str(p) for p in sources]
    return cli("convert", *given, "--to", "virtual", "--format", fmt, "--dest", str(dest), *more)


def sources(files: list[Path]) -> Any:
    return xr.open_mfdataset([str(f) for f in files], combine="by_coords").load()


def plain_open(dest: Path, fmt: str, containers: str) -> Any:
    """The product as plain xarray opens it: the kerchunk engine, or Icechunk's store."""
    if fmt == "kerchunk":
        return xr.open_dataset(str(dest), engine="kerchunk")
    if fmt == "kerchunk-parquet":
        return xr.open_dataset(
            str(dest), engine="kerchunk", storage_options={"remote_protocol": "file"}
        )
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(dest)),
        authorize_virtual_chunk_access={containers: icechunk.credentials.LocalFileSystemAccess},
    )
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


def container(path: Path) -> str:
    return f"file:///{path.resolve().parts[1]}/"


def files_under(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# -- what the data allows works ------------------------------------------------------------


@pytest.mark.parametrize("layout", ["contiguous", "step"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_months_of_different_lengths_join(tmp_path: Path, layout: str, fmt: str) -> None:
    """31, 28 and 31 days make one product that plain xarray reads as the sources hold."""
    files = write_months(tmp_path / "src", layout)
    dest = tmp_path / f"out{FORMATS[fmt]}"
    done = convert_virtual(str(tmp_path / "src" / "m*.nc"), fmt, dest)
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert "check pass" in " ".join(done.stdout.split())
    want = sources(files)
    with plain_open(dest, fmt, container(tmp_path)) as got:
        assert got.sizes["time"] == sum(MONTHS)
        np.testing.assert_array_equal(got["tas"].values, want["tas"].values)
        np.testing.assert_array_equal(got["time"].values, want["time"].values)
        np.testing.assert_array_equal(got["lat"].values, want["lat"].values)
    ok("check", str(dest), "--full")


def test_contiguous_months_are_referenced_a_step_at_a_time(tmp_path: Path) -> None:
    """Each step of a contiguous variable is its own byte range of its file."""
    files = write_months(tmp_path / "src", "contiguous")
    dest = tmp_path / "out.json"
    ok("convert", str(tmp_path / "src" / "m*.nc"), "--to", "virtual", "--format", "kerchunk",
       "--dest", str(dest))  # fmt: skip
    refs = json.loads(dest.read_text())["refs"]
    assert json.loads(refs["tas/.zarray"])["chunks"] == [1, 6, 8]
    with h5py.File(files[1]) as f:
        offset, step = f["tas"].id.get_offset(), 6 * 8 * 4
    assert refs[f"tas/{31 + 5}.0.0"] == [str(files[1].resolve()), offset + 5 * step, step]


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_damaged_contiguous_source_fails_the_check(tmp_path: Path, fmt: str) -> None:
    files = write_months(tmp_path / "src", "contiguous")
    dest = tmp_path / f"out{FORMATS[fmt]}"
    ok("convert", str(tmp_path / "src" / "m*.nc"), "--to", "virtual", "--format", fmt,
       "--dest", str(dest))  # fmt: skip
    with h5py.File(files[1]) as f:
        offset = f["tas"].id.get_offset()
    with open(files[1], "r+b") as fh:  # step 3 of February: step 34 of the product
        fh.seek(offset + 3 * 6 * 8 * 4 + 8)
        fh.write(b"\x12\x34\x56\x78")
    done = cli("check", str(dest))
    assert done.exit_code == 1
    said = " ".join(done.stdout.split())
    # The digest names the chunk; Icechunk may refuse first, naming the file, when the
    # write moved the file's modification time past the one its reference recorded.
    assert "tas chunk (34, 0, 0) differs" in said or (
        fmt == "icechunk" and "virtual chunk has changed" in said and "m02.nc" in said
    ), said


def test_update_appends_a_month_of_another_length(tmp_path: Path) -> None:
    for fmt in ("kerchunk", "icechunk"):
        files = write_months(tmp_path / fmt, "contiguous")
        dest = tmp_path / f"out{FORMATS[fmt]}"
        ok("convert", *map(str, files[:2]), "--to", "virtual", "--format", fmt,
           "--dest", str(dest))  # fmt: skip
        done = ok("update", str(dest), str(files[2]))
        assert "check pass" in " ".join(done.stdout.split())
        with plain_open(dest, fmt, container(tmp_path)) as got:
            np.testing.assert_array_equal(got["tas"].values, sources(files)["tas"].values)
        ok("check", str(dest), "--full")


def test_one_file_with_one_chunk_is_referenced(tmp_path: Path) -> None:
    files = write_months(tmp_path / "src", "whole", (31,))
    dest = tmp_path / "out.icechunk"
    ok("convert", str(files[0]), "--to", "virtual", "--format", "icechunk", "--dest", str(dest))
    with plain_open(dest, "icechunk", container(tmp_path)) as got:
        np.testing.assert_array_equal(got["tas"].values, sources(files)["tas"].values)


def _mixed(tmp_path: Path, layouts: tuple[str, ...]) -> list[Path]:
    """One month a layout, in consecutive months."""
    files = []
    for i, layout in enumerate(layouts):
        start = str(pd.Timestamp("2001-01-01") + pd.Timedelta(days=sum(MONTHS[:i])))
        made = write_months(tmp_path / f"part{i}", layout, (MONTHS[i],), start=start)
        files.append(made[0].rename(tmp_path / f"m{i + 1:02d}.nc"))
    return files


# -- what it does not is refused before any work ----------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_whole_file_chunks_of_different_lengths_are_refused(tmp_path: Path, fmt: str) -> None:
    """Compressed chunks of 31 and 28 steps fit no regular grid: one line naming the files
    and their chunk lengths, pointing at --to zarr; no product, no record."""
    write_months(tmp_path / "src", "whole")
    ok("init", str(tmp_path / "cat"))
    done = cli("convert", str(tmp_path / "src" / "m*.nc"), "--to", "virtual", "--format", fmt,
               catalog=tmp_path / "cat")  # fmt: skip
    line = error_line(done)
    for part in ("m01.nc: 31 steps, chunks of 31", "m02.nc: 28 steps, chunks of 28", "--to zarr"):
        assert part in line, line
    assert not list((tmp_path / "cat" / "store").rglob("*.*")), "something was written"
    with Catalog.open(tmp_path / "cat") as cat:
        assert not cat.search(limit=None).records


def test_chunks_a_file_does_not_fill_are_refused(tmp_path: Path) -> None:
    """Chunks of ten in files of 31 and 28 steps: the same length, but a middle file ends
    in a partial chunk."""
    write_months(tmp_path / "src", "ten")
    line = error_line(
        convert_virtual(str(tmp_path / "src" / "m*.nc"), "kerchunk", tmp_path / "o.json")
    )
    assert "m01.nc: 31 steps, chunks of 10" in line, line
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_update_with_chunks_of_another_length_is_refused(tmp_path: Path, fmt: str) -> None:
    files = write_months(tmp_path / "src", "whole")
    dest = tmp_path / f"out{FORMATS[fmt]}"
    ok("convert", str(files[0]), "--to", "virtual", "--format", fmt, "--dest", str(dest))
    before = files_under(dest)
    line = error_line(cli("update", str(dest), str(files[1])))
    assert "m01.nc: 31 steps, chunks of 31; m02.nc: 28 steps, chunks of 28" in line, line
    assert "--to zarr" in line
    assert files_under(dest) == before


def test_compressed_and_uncompressed_files_are_refused(tmp_path: Path) -> None:
    """One product array has one encoding: a contiguous month among compressed ones is refused."""
    _mixed(tmp_path, ("step", "contiguous", "step"))
    line = error_line(convert_virtual(str(tmp_path / "m*.nc"), "icechunk", tmp_path / "o.icechunk"))
    assert "m01.nc and m02.nc store it differently" in line and "zlib" in line, line
    assert not (tmp_path / "o.icechunk").exists()


def test_other_chunks_along_other_dims_are_refused(tmp_path: Path) -> None:
    files = _mixed(tmp_path, ("step", "step"))
    with xr.open_dataset(files[1]) as ds:
        ds = ds.load()
    ds.to_netcdf(
        files[1], engine="netcdf4", encoding={"tas": {"zlib": True, "chunksizes": (1, 3, 8)}}
    )
    line = error_line(convert_virtual(str(tmp_path / "m*.nc"), "kerchunk", tmp_path / "o.json"))
    assert "chunked (1, 6, 8) vs (1, 3, 8)" in line, line


def test_files_with_other_variables_are_refused(tmp_path: Path) -> None:
    files = write_months(tmp_path / "src", "step")
    with xr.open_dataset(files[1]) as ds:
        extra = ds.load().assign(pr=ds["tas"] * 0)
    extra.to_netcdf(files[1], engine="netcdf4")
    line = error_line(
        convert_virtual(str(tmp_path / "src" / "m*.nc"), "kerchunk", tmp_path / "o.json")
    )
    assert "pr" in line and "--variables" in line, line


@pytest.mark.parametrize("damage", ["truncated", "not-netcdf"])
def test_broken_source_files_are_refused(tmp_path: Path, damage: str) -> None:
    files = write_months(tmp_path / "src", "contiguous")
    raw = files[2].read_bytes()
    files[2].write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"hello\n")
    for fmt in ("kerchunk", "icechunk"):
        dest = tmp_path / f"out{FORMATS[fmt]}"
        line = error_line(convert_virtual(str(tmp_path / "src" / "m*.nc"), fmt, dest))
        assert "m03.nc" in line, line
        assert not dest.exists()


@pytest.mark.parametrize("unlimited", [False, True], ids=["fixed", "record"])
def test_netcdf3_months_are_referenced(tmp_path: Path, unlimited: bool) -> None:
    """NetCDF3 (classic) files are read by kerchunk's netCDF3 reader; record variables
    interleave steps, each step its own byte range."""
    files = write_months(tmp_path / "nc4", "contiguous")
    classic = []
    for f in files:
        with xr.open_dataset(f) as ds:
            out = tmp_path / "nc3" / f.name
            out.parent.mkdir(exist_ok=True)
            ds.load().to_netcdf(out, format="NETCDF3_CLASSIC", engine="netcdf4",
                                unlimited_dims=["time"] if unlimited else None)  # fmt: skip
            classic.append(out)
    for fmt in ("kerchunk", "icechunk"):
        dest = tmp_path / f"out{FORMATS[fmt]}"
        ok("convert", str(tmp_path / "nc3" / "m*.nc"), "--to", "virtual", "--format", fmt,
           "--dest", str(dest))  # fmt: skip
        with plain_open(dest, fmt, container(tmp_path)) as got:
            np.testing.assert_array_equal(got["tas"].values, sources(files)["tas"].values)
        ok("check", str(dest), "--full")


# -- one check path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        ("virtual", "--format", "kerchunk"),
        ("virtual", "--format", "kerchunk-parquet"),
        ("virtual", "--format", "icechunk"),
        ("zarr",),
        ("icechunk",),
    ],
    ids=["kerchunk", "kerchunk-parquet", "virtual-icechunk", "zarr", "icechunk"],
)
def test_check_of_the_record_agrees_with_convert(tmp_path: Path, target: tuple[str, ...]) -> None:
    """`arcodex check ID` passes right after `convert` passed, though the coordinates carry
    a NaN `_FillValue` (xarray's default), and the product keeps that fill value."""
    write_months(tmp_path / "src", "step")
    cat = tmp_path / "cat"
    ok("init", str(cat))
    done = ok("convert", str(tmp_path / "src" / "m*.nc"), "--to", *target, "--json", catalog=cat)
    made = json.loads(done.stdout)
    assert made["status"] == "pass"
    for args in ((made["record"],), (made["record"][:12], "--full")):
        checked = ok("check", *args, catalog=cat)
        assert checked.stdout.startswith("pass"), checked.stdout
    with Catalog.open(cat) as catalog:
        from arcodex.convert import open_product

        with open_product(made["record"], catalog=catalog) as ds:
            assert np.isnan(ds["lat"].encoding["_FillValue"])


def test_contiguous_months_along_a_later_dim_join(tmp_path: Path) -> None:
    """With time second, ``tas(lat, time, lon)``: each (lat, step) row is one byte range."""
    files = write_months(tmp_path / "nc4", "contiguous")
    moved = []
    for f in files:
        with xr.open_dataset(f) as ds:
            ds = ds.load()
        ds["tas"] = ds["tas"].transpose("lat", "time", "lon")
        (tmp_path / "src").mkdir(exist_ok=True)
        ds.to_netcdf(tmp_path / "src" / f.name, encoding={"tas": {"contiguous": True}})
        moved.append(tmp_path / "src" / f.name)
    dest = tmp_path / "out.json"
    ok("convert", str(tmp_path / "src" / "m*.nc"), "--to", "virtual", "--format", "kerchunk",
       "--dest", str(dest))  # fmt: skip
    assert json.loads(json.loads(dest.read_text())["refs"]["tas/.zarray"])["chunks"] == [1, 1, 8]
    with plain_open(dest, "kerchunk", container(tmp_path)) as got:
        np.testing.assert_array_equal(got["tas"].values, sources(moved)["tas"].values)
    ok("check", str(dest), "--full")


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_packed_coordinates_stay_packed(tmp_path: Path, fmt: str) -> None:
    """A coordinate stored as int16 with scale_factor and _FillValue is written as stored
    (VirtualiZarr loads it decoded), so plain xarray decodes it as from the sources."""
    files = write_months(tmp_path / "src", "contiguous")
    for f in files:
        with xr.open_dataset(f) as ds:
            ds = ds.load()
        packed = {"dtype": "int16", "scale_factor": 0.01, "_FillValue": -9999}
        ds.to_netcdf(f, engine="netcdf4", encoding={"tas": {"contiguous": True}, "lat": packed})
    dest = tmp_path / f"out{FORMATS[fmt]}"
    ok("convert", str(tmp_path / "src" / "m*.nc"), "--to", "virtual", "--format", fmt,
       "--dest", str(dest))  # fmt: skip
    with plain_open(dest, fmt, container(tmp_path)) as got:
        assert got["lat"].encoding["dtype"] == np.dtype("int16")
        np.testing.assert_array_equal(got["lat"].values, sources(files)["lat"].values)
    ok("check", str(dest), "--full")
