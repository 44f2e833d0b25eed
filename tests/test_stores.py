"""arcodex.stores: the store contract run against every built-in kind, and what is particular
to each (NetCDF files, S3 credentials, multi-level products, the registry, the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from arcodex.catalog import Catalog
from arcodex.cli import app
from arcodex.errors import ConflictError, ValidationError
from arcodex.stores import (
    DatasetDescriptor,
    list_store_kinds,
    new_store,
    store_params_schema,
)
from arcodex.testing import (
    S3_KEY_ID,
    S3_SECRET,
    ReadOnlyStoreTests,
    WritableStoreTests,
    http_directory,
    remove_zarr_chunks,
    sample_dataset,
)

runner = CliRunner()


def _local_fs() -> Any:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def _to_zarr(ds: Any, target: Any) -> None:
    """Write like a user would, with plain xarray (no arcodex mark)."""
    ds.to_zarr(target, mode="w", consolidated=False)


# -- the contract, once per kind ---------------------------------------------------------------


class TestFileStore(WritableStoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        with new_store("file", root=str(tmp_path / "data")) as store:
            yield store

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(store.fs, store._path(data_id), variable)

    def put_foreign(self, store: Any, dataset: Any) -> str:
        _to_zarr(dataset, store._path("theirs.zarr"))
        return "theirs.zarr"


class TestMemoryStore(WritableStoreTests):
    @pytest.fixture
    def store(self) -> Iterator[Any]:
        with new_store("memory") as store:
            yield store

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(store.fs, store._path(data_id), variable)

    def put_foreign(self, store: Any, dataset: Any) -> str:
        import zarr.storage

        path = store._path("theirs.zarr")
        _to_zarr(dataset, zarr.storage.FsspecStore.from_url(store._url(path)))
        return "theirs.zarr"


@pytest.fixture
def bucket(s3_endpoint: str, s3_env: None) -> str:
    import boto3

    name = f"stores-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    ).create_bucket(Bucket=name)
    return name


class TestS3Store(WritableStoreTests):
    @pytest.fixture
    def store(self, bucket: str, s3_endpoint: str) -> Iterator[Any]:
        params = {
            "bucket": bucket,
            "prefix": "datasets/v1",
            "endpoint_url": s3_endpoint,
            "region": "us-east-1",
            "path_style": True,
        }
        with new_store("s3", **params) as store:
            yield store

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(store.fs, store._path(data_id), variable)
        store.fs.invalidate_cache()

    def put_foreign(self, store: Any, dataset: Any) -> str:
        _to_zarr(dataset, store._zarr_store(store._path("theirs.zarr")))
        return "theirs.zarr"


class TestHttpsStore(ReadOnlyStoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        self.served = tmp_path / "served"
        self.served.mkdir()
        with http_directory(self.served) as url, new_store("https", url=url + "/") as store:
            yield store

    def put(self, store: Any, dataset: Any, name: str) -> str:
        with new_store("file", root=str(self.served / "deep")) as files:
            files.write_data(dataset, name)
        return f"deep/{name}"

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(_local_fs(), str(self.served / data_id), variable)


class TestReferenceStore(ReadOnlyStoreTests):
    name = "sample.json"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        self.root = tmp_path / "refs"
        self.root.mkdir()
        self.sources = tmp_path / "sources"
        self.sources.mkdir()
        with new_store("reference", root=str(self.root)) as store:
            yield store

    def put(self, store: Any, dataset: Any, name: str) -> str:
        from kerchunk.hdf import SingleHdf5ToZarr

        source = self.sources / "sample.nc"
        dataset.to_netcdf(source, engine="h5netcdf")
        refs = SingleHdf5ToZarr(str(source), inline_threshold=100).translate()
        (self.root / name).write_text(json.dumps(refs), encoding="utf-8")
        return name

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        path = self.root / data_id
        refs = json.loads(path.read_text(encoding="utf-8"))
        keys = [k for k in refs["refs"] if k.startswith(f"{variable}/") and "/." not in k]
        assert keys
        for key in keys:
            del refs["refs"][key]
        path.write_text(json.dumps(refs), encoding="utf-8")


def _convert_sample(cat: Catalog, dataset: Any, name: str, where: Path) -> str:
    """A product of ``dataset`` in ``cat``, converted from a NetCDF file of it (titled as the
    dataset is, as STAC items and list attributes then say)."""
    from arcodex.convert import convert

    where.mkdir(parents=True, exist_ok=True)
    source = where / f"{name}.nc"
    dataset.to_netcdf(source)
    result = convert(
        source,
        catalog=cat,
        title=dataset.attrs["title"],
        key=f"products/{name}.zarr",
        cluster="threads",
    )
    assert result.record is not None
    return result.record.id


class TestCatalogStore(WritableStoreTests):
    name = "sample"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        self.tmp = tmp_path
        Catalog.create(tmp_path / "cat").close()
        with new_store("catalog", root=str(tmp_path / "cat")) as store:
            yield store

    def put(self, store: Any, dataset: Any, name: str) -> str:
        return _convert_sample(store.catalog, dataset, name, self.tmp / "sources")

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(_local_fs(), store.catalog.path(data_id), variable)

    def put_foreign(self, store: Any, dataset: Any) -> str:
        source = self.tmp / "theirs.nc"
        dataset.to_netcdf(source)
        record = store.catalog.add_file(source, in_place=True)
        return str(record.id)


class TestStacStore(ReadOnlyStoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        self.tmp = tmp_path
        self.cat = Catalog.create(tmp_path / "cat")
        self.published = tmp_path / "published"
        with new_store("stac", url=str(self.published / "catalog.json")) as store:
            yield store
        self.cat.close()

    def put(self, store: Any, dataset: Any, name: str) -> str:
        from arcodex.stac import export_stac

        record_id = _convert_sample(self.cat, dataset, name, self.tmp / "sources")
        export_stac(self.cat, self.published)
        return record_id

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        remove_zarr_chunks(_local_fs(), self.cat.path(data_id), variable)


# -- what is particular to a kind -----------------------------------------------------------


def test_kinds_and_their_schemas() -> None:
    kinds = list_store_kinds()
    assert {"catalog", "file", "s3", "memory", "https", "reference", "stac"} <= set(kinds)
    for kind in kinds:
        schema = store_params_schema(kind)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert store_params_schema("file")["required"] == ["root"]
    with pytest.raises(ValidationError, match=r"no store kind 'nope'.*arcodex store kinds"):
        new_store("nope")
    with pytest.raises(ValidationError, match="'root'"):
        new_store("file")


def test_import_stays_light() -> None:
    code = (
        "import sys; import arcodex.stores; "
        "print(','.join(m for m in ('xarray', 'dask', 'zarr', 'fsspec') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_file_store_netcdf(tmp_path: Path) -> None:
    with new_store("file", root=str(tmp_path)) as store:
        data_id = store.write_data(sample_dataset(), "obs/sample.nc")
        assert store.list_data_ids() == ["obs/sample.nc"]
        described = store.describe_data(data_id)
        assert described.data_vars["tas"].units == "K"
        assert described.time_period == "P1D"
        with store.open_data(data_id, variables=["pr"]) as ds:
            assert set(ds.data_vars) == {"pr"}
        store.delete_data(data_id)
        assert not (tmp_path / "obs" / "sample.nc").exists()


def test_file_store_refuses_to_replace_what_it_did_not_write(tmp_path: Path) -> None:
    _to_zarr(sample_dataset(), tmp_path / "theirs.zarr")
    before = sorted(p.name for p in (tmp_path / "theirs.zarr").rglob("*"))
    with (
        new_store("file", root=str(tmp_path)) as store,
        pytest.raises(ConflictError, match="did not write"),
    ):
        store.write_data(sample_dataset(), "theirs.zarr", replace=True)
    assert sorted(p.name for p in (tmp_path / "theirs.zarr").rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name != "theirs.zarr"]


def test_data_ids_stay_inside_the_root(tmp_path: Path) -> None:
    with new_store("file", root=str(tmp_path / "root")) as store:
        for bad in ("../x.zarr", "/etc/x.zarr", "a//b.zarr", ""):
            with pytest.raises(ValidationError, match="relative path"):
                store.write_data(sample_dataset(), bad)
            assert not store.has_data(bad)
        with pytest.raises(ValidationError, match="suffix"):
            store.write_data(sample_dataset(), "x.txt")
    assert not (tmp_path / "x.zarr").exists()


def test_multi_level_products(tmp_path: Path) -> None:
    ds = sample_dataset()
    root = tmp_path / "pyramid.zarr"
    coarse = ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2))
    import xarray as xr

    xr.Dataset(attrs={"multiscales": {"layout": [{"asset": "0"}, {"asset": "1"}]}}).to_zarr(
        root, mode="w", consolidated=False
    )
    _to_zarr(ds, root / "0")
    coarse.to_zarr(root, group="1", mode="w", consolidated=False)
    with new_store("file", root=str(tmp_path)) as store:
        described = store.describe_data("pyramid.zarr")
        assert described.levels == ["0", "1"]
        assert described.dims == {"time": 4, "lat": 3, "lon": 4}
        with store.open_data("pyramid.zarr", level=1) as level:
            assert dict(level.sizes) == {"time": 4, "lat": 2, "lon": 2}
        with pytest.raises(ValidationError, match="level 0 to 1"):
            store.open_data("pyramid.zarr", level=2)


def test_s3_credentials_reach_no_descriptor_or_message(bucket: str, s3_endpoint: str) -> None:
    params = {"bucket": bucket, "endpoint_url": s3_endpoint, "path_style": True}
    with new_store("s3", **params) as store:
        data_id = store.write_data(sample_dataset(), "tas.zarr")
        text = json.dumps(store.describe_data(data_id).to_dict()) + repr(store)
        text += json.dumps(store.params_schema("open_data"))
        with pytest.raises(ConflictError) as caught:
            store.write_data(sample_dataset(), "tas.zarr")
        text += str(caught.value)
    assert S3_KEY_ID not in text and S3_SECRET not in text


def test_https_store_with_given_ids(tmp_path: Path) -> None:
    with new_store("file", root=str(tmp_path)) as files:
        files.write_data(sample_dataset(), "a.zarr")
        files.write_data(sample_dataset(), "b.nc")
    with http_directory(tmp_path) as url:
        store = new_store("https", url=url, data_ids=["a.zarr", "b.nc"])
        assert store.list_data_ids() == ["a.zarr", "b.nc"]
        assert store.describe_data("b.nc").data_vars["tas"].dtype == "float32"
        assert store.has_data("a.zarr") and not store.has_data("c.zarr")


def test_catalog_store_search_uses_the_index(tmp_path: Path) -> None:
    Catalog.create(tmp_path / "cat").close()
    with new_store("catalog", root=str(tmp_path / "cat")) as store:
        first = _convert_sample(store.catalog, sample_dataset(), "one", tmp_path / "src")
        later = sample_dataset().assign_coords(lon=[100.0, 110.0, 120.0, 130.0])
        second = _convert_sample(store.catalog, later, "two", tmp_path / "src")
        assert sorted(store.list_data_ids()) == sorted([first, second])
        found = [d.data_id for d in store.search_data(bbox=(95, 0, 135, 40))]
        assert found == [second]
        assert store.has_data(first[:10])  # a unique prefix
        described = store.describe_data(first)
        assert described.attrs["title"] == "arcodex store sample"


def test_catalog_store_describes_without_the_product(tmp_path: Path) -> None:
    """A record's description is its extracted metadata: the product is not even opened."""
    import shutil

    Catalog.create(tmp_path / "cat").close()
    with new_store("catalog", root=str(tmp_path / "cat")) as store:
        rid = _convert_sample(store.catalog, sample_dataset(), "gone", tmp_path / "src")
        before = store.describe_data(rid)
        shutil.rmtree(store.catalog.path(rid))
        assert store.describe_data(rid) == before
        assert before.data_vars["tas"].chunks is not None


def test_built_in_stores_are_data_stores(tmp_path: Path) -> None:
    from arcodex.stores import DataStore, WritableDataStore

    with new_store("memory") as memory, new_store("file", root=str(tmp_path)) as files:
        assert isinstance(memory, WritableDataStore) and isinstance(files, DataStore)
        assert memory.writable and files.writable
    with new_store("file", root=str(tmp_path), read_only=True) as frozen:
        assert not frozen.writable
        with pytest.raises(ValidationError, match="read-only"):
            frozen.write_data(sample_dataset(), "x.zarr")


def test_descriptor_round_trip() -> None:
    described = DatasetDescriptor(
        data_id="x", store="file", dims={"t": 2}, bbox=(0, 1, 2, 3), attrs={"a": [1, 2]}
    )
    assert DatasetDescriptor.from_dict(json.loads(json.dumps(described.to_dict()))) == described


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_store_group(tmp_path: Path) -> None:
    with new_store("file", root=str(tmp_path / "data")) as store:
        store.write_data(sample_dataset(), "tas.zarr")
    root = f"root={tmp_path / 'data'}"
    kinds = runner.invoke(app, ["store", "kinds", "--json"])
    assert kinds.exit_code == 0, kinds.stderr
    assert "file" in {k["kind"] for k in json.loads(kinds.stdout)}
    listed = runner.invoke(app, ["store", "list", "file", "-p", root, "--json"])
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == ["tas.zarr"]
    described = runner.invoke(app, ["store", "describe", "file", "-p", root, "tas.zarr", "--json"])
    assert described.exit_code == 0, described.stderr
    assert json.loads(described.stdout)["data_vars"]["tas"]["units"] == "K"
    text = runner.invoke(app, ["store", "describe", "file", "-p", root, "tas.zarr"])
    assert text.exit_code == 0 and "tas" in text.stdout and "P1D" in text.stdout
    opened = runner.invoke(
        app, ["store", "open", "file", "-p", root, "tas.zarr", "-p", "variables=tas"]
    )
    assert opened.exit_code == 0, opened.stderr
    assert "tas" in opened.stdout and "pr" not in opened.stdout
    bad = runner.invoke(app, ["store", "list", "file", "-p", root, "-p", "nope=1"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().count("\n") == 0 and "'nope'" in bad.stderr
    missing = runner.invoke(app, ["store", "describe", "file", "-p", root, "x.zarr"])
    assert missing.exit_code == 1 and "no data 'x.zarr'" in missing.stderr
    schema = runner.invoke(app, ["store", "kinds", "file", "--json"])
    assert schema.exit_code == 0 and json.loads(schema.stdout)["required"] == ["root"]


def test_cli_param_values_are_json_or_text(tmp_path: Path) -> None:
    from arcodex.cli._store import parse_params

    assert parse_params(["root=data", "bbox=[0,1,2,3]", "read_only=true", "n=3"]) == {
        "root": "data",
        "bbox": [0, 1, 2, 3],
        "read_only": True,
        "n": 3,
    }
    with pytest.raises(ValidationError, match="key=value"):
        parse_params(["novalue"])


def test_open_values_match_after_write(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with new_store("memory", name="shared") as one, new_store("memory", name="shared") as two:
            one.write_data(sample_dataset(), "x.zarr")
            with two.open_data("x.zarr") as ds:
                np.testing.assert_array_equal(ds["tas"].values, sample_dataset()["tas"].values)
            two.delete_data("x.zarr")
            assert not one.has_data("x.zarr")


# -- plugins' stores ----------------------------------------------------------------------------

PLUGIN = """
from arcodex.stores._memory import MemoryStore


class ToyStore(MemoryStore):
    kind = "toy"


def register(registrar):
    registrar.add_store("toy", ToyStore)
    registrar.add_store("file", ToyStore)  # a built-in kind: refused, the built-in stays
"""


@pytest.fixture
def toy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed plugin (a module and its dist-info on sys.path) that adds a store kind."""
    from arcodex.plugins import registry

    site = tmp_path / "site"
    info = site / "toy_store_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "toy_store_plugin.py").write_text(PLUGIN, encoding="utf-8")
    (info / "METADATA").write_text("Name: toy-store-plugin\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[arcodex.plugins]\ntoy = toy_store_plugin:register\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ARCODEX_PLUGINS", raising=False)
    registry().reset()
    yield
    registry().reset()
    sys.modules.pop("toy_store_plugin", None)


def test_plugin_stores_are_kinds(toy_plugin: None, tmp_path: Path) -> None:
    assert "toy" in list_store_kinds()
    with new_store("toy") as store:
        assert store.kind == "toy"
        store.write_data(sample_dataset(), "x.zarr")
        assert store.describe_data("x.zarr").store == "toy"
    with new_store("file", root=str(tmp_path)) as files:
        assert type(files).__name__ == "FileStore"
    listed = runner.invoke(app, ["store", "kinds", "--json"])
    assert "toy" in {k["kind"] for k in json.loads(listed.stdout)}


def test_builtin_kinds_do_not_discover_plugins(tmp_path: Path) -> None:
    from arcodex.plugins import registry

    registry().reset()
    with new_store("file", root=str(tmp_path)):
        assert not registry().discovered
