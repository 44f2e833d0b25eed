"""Extraction of Zarr stores, Icechunk repositories and directories; non-fatal failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcodex.catalog import Catalog
from arcodex.cli import app
from arcodex.errors import PluginError, ValidationError
from arcodex.samples import write_sample_netcdf


def _dataset(tmp_path: Path):  # type: ignore[no-untyped-def]
    import xarray as xr

    nc = write_sample_netcdf(tmp_path / "s.nc", days=4, lat=(40, 60), lon=(-10, 5))
    with xr.open_dataset(nc) as ds:
        return ds.load()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_store(tmp_path: Path, zarr_format: int) -> None:
    ds = _dataset(tmp_path)
    store = tmp_path / f"v{zarr_format}.zarr"
    # zarr warns that consolidated metadata is not part of the v3 spec: use it on v2 only.
    ds.to_zarr(store, zarr_format=zarr_format, consolidated=zarr_format == 2)
    found = Catalog.extract(store)
    assert found["format"] == "zarr" and found["kind"] == "dataset"
    assert found["errors"] == []
    info = found["metadata"]["zarr"]
    assert info["zarr_format"] == zarr_format
    assert info["consolidated"] is (zarr_format == 2)
    ch4 = info["arrays"]["ch4"]
    assert ch4["shape"] == [4, 10, 15]
    assert ch4["dtype"] == "float32"
    assert ch4["codecs"]
    assert found["metadata"]["bbox"][1] >= 39 and found["metadata"]["bbox"][3] <= 61
    assert found["metadata"]["start_datetime"].startswith("2020-01-01")
    assert found["metadata"]["directory"]["files"] > 3


def test_icechunk_repository(tmp_path: Path) -> None:
    import icechunk
    import zarr

    path = tmp_path / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.group(store=session.store)
    group.create_array("t", shape=(6,), chunks=(3,), dtype="f8")[:] = 1.0
    snapshot = session.commit("first data")
    repo.create_tag("v1", snapshot)
    found = Catalog.extract(path)
    info = found["metadata"]["icechunk"]
    assert found["format"] == "icechunk"
    assert info["branches"] == ["main"] and info["tags"] == ["v1"]
    assert info["latest_snapshot"]["id"] == snapshot
    assert info["latest_snapshot"]["message"] == "first data"
    assert info["arrays"]["t"]["chunks"] == [3]


def test_plain_directory(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.csv").write_text("1\n")
    (folder / "b.csv").write_text("22\n")
    found = Catalog.extract(folder)
    assert found["kind"] == "collection"
    assert found["metadata"]["directory"]["files"] == 2
    assert found["metadata"]["directory"]["suffixes"] == {"csv": 2}


def test_broken_zarr_is_a_warning_unless_required(tmp_path: Path) -> None:
    store = tmp_path / "broken.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{not json")
    found = Catalog.extract(store)
    assert found["errors"] and found["errors"][0].startswith("zarr: cannot read")
    with pytest.raises(ValidationError, match=r"cannot read .* as Zarr"):
        Catalog.extract(store, require_metadata=True)
    cat = Catalog.create(tmp_path / "cat")
    with pytest.raises(ValidationError, match="as Zarr"):
        cat.add_file(store, in_place=True, require_metadata=True)
    assert cat.count() == 0
    rec = cat.add_file(store, in_place=True)
    assert rec.artifact().metadata["extract_errors"]
    (warning,) = cat.logs(event="extract.failed")
    assert "as Zarr" in warning["message"]


def test_directories_are_registered_in_place_only(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    store = tmp_path / "x.zarr"
    ds.to_zarr(store, zarr_format=3, consolidated=False)
    cat = Catalog.create(tmp_path / "cat")
    with pytest.raises(ValidationError, match="--in-place"):
        cat.add_file(store)
    rec = cat.add_file(store, in_place=True)
    assert rec.artifact().format == "zarr"
    assert rec.artifact().size_bytes and rec.artifact().size_bytes > 0
    assert cat.search("zarr.arrays.ch4.dtype=float32").records[0].id == rec.id


def test_missing_netcdf_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from arcodex.extract import _netcdf

    nc = write_sample_netcdf(tmp_path / "s.nc", days=2)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        _netcdf.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "xarray" else real(name, *a),
    )
    found = Catalog.extract(nc)
    assert any("arcodex[netcdf]" in e for e in found["errors"])
    with pytest.raises(PluginError, match=r"arcodex\[netcdf\]"):
        Catalog.extract(nc, require_metadata=True)


def test_cli_extract(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    store = tmp_path / "x.zarr"
    ds.to_zarr(store, zarr_format=3, consolidated=False)
    result = CliRunner().invoke(app, ["extract", str(store), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metadata"]["zarr"]["arrays"]["tas"]["shape"] == [4, 10, 15]
    missing = CliRunner().invoke(app, ["extract", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
