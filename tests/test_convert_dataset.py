"""An ``xarray.Dataset`` as the source of ``convert`` and ``update`` (as zappend takes one).

Each test builds its dataset in memory (numpy- or Dask-backed), converts or
appends it, and compares the product with the dataset as xarray decodes it;
refusals must leave the product exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arcodex.catalog import Catalog
from arcodex.convert import check, convert, open_product, update
from arcodex.errors import ConversionError, ValidationError

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")
da = pytest.importorskip("dask.array")


def dataset(start: str = "2000-01-01", steps: int = 4, *, seed: int = 0, ny: int = 6) -> Any:
    """A small daily field with a missing value and a static variable."""
    rng = np.random.default_rng(seed)
    values = rng.random((steps, ny, 8)).astype("f4")
    values[0, 0, 0] = np.nan
    return xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), values, {"units": "K", "long_name": "air temperature"}),
            "orog": (("lat", "lon"), np.arange(ny * 8, dtype="f8").reshape(ny, 8), {"units": "m"}),
        },
        coords={
            "time": pd.date_range(start, periods=steps, freq="D"),
            "lat": ("lat", np.linspace(-50, 50, ny), {"units": "degrees_north", "axis": "Y"}),
            "lon": ("lon", np.linspace(0, 315, 8), {"units": "degrees_east", "axis": "X"}),
        },
        attrs={"title": "in memory"},
    )


def _as_f8(ds: Any) -> Any:
    return ds.assign(tas=ds["tas"].astype("f8"))


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _same(product: Any, expected: Any) -> None:
    for name in expected.data_vars:
        np.testing.assert_array_equal(product[name].values, expected[name].values)
    np.testing.assert_array_equal(product["time"].values, expected["time"].values)
    assert product["tas"].attrs["long_name"] == "air temperature"


@pytest.mark.parametrize("to", ["zarr", "icechunk"])
def test_dataset_converts_and_is_checked_against_itself(tmp_path: Path, to: str) -> None:
    ds = dataset()
    result = convert(ds, to=to, dest=tmp_path / f"p.{to}", cluster="threads")
    assert result.status == "pass", result.report
    assert result.report is not None and result.report.checked["chunks"] > 0
    with open_product(tmp_path / f"p.{to}") as out:
        _same(out.load(), ds)
    provenance = result.product.provenance()
    [source] = provenance["sources"]
    # No path: the source is named by a digest of the dataset.
    assert source["url"].startswith("dataset://") and source["fingerprint"]
    assert str(tmp_path) not in json.dumps(provenance["sources"])
    # Checked again later, without the dataset: the chunks' digests vouch for it.
    assert check(tmp_path / f"p.{to}").status == "pass"


@pytest.mark.parametrize("cluster", ["local", "threads"])
def test_dask_backed_dataset_on_processes_and_threads(tmp_path: Path, cluster: str) -> None:
    ds = dataset(steps=6).chunk({"time": 2, "lat": 3})
    result = convert(ds, to="zarr", dest=tmp_path / "p.zarr", cluster=cluster, workers=2)
    assert result.status == "pass"
    with open_product(tmp_path / "p.zarr") as out:
        _same(out.load(), ds.compute())


#: What the guarded arrays were asked for (a module global: the cluster works on copies).
_READS: list[int] = []
_DRIFT = {"reads": 0}


class _Guarded:
    """An array that refuses to be read whole, and counts what it was asked for."""

    def __init__(self, values: np.ndarray, limit: int) -> None:
        self.values, self.limit = values, limit
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        part = self.values[key]
        _READS.append(part.size)
        if part.size > self.limit:
            raise AssertionError(f"read {part.size} values at once")
        return part


def test_dask_backed_dataset_is_never_computed_whole(tmp_path: Path) -> None:
    base = dataset(steps=8)
    _READS.clear()
    guarded = _Guarded(base["tas"].values, limit=2 * 6 * 8)
    ds = base.assign(
        tas=(base["tas"].dims, da.from_array(guarded, chunks=(2, 6, 8)), base["tas"].attrs)
    )
    result = convert(ds, to="zarr", dest=tmp_path / "p.zarr", cluster="threads", chunks={"time": 2})
    assert result.status == "pass"
    assert _READS and max(_READS) <= 2 * 6 * 8


def test_update_appends_a_slice_and_the_same_slice_again_changes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "p.icechunk"
    convert(dataset(), to="icechunk", dest=dest, cluster="threads")
    first = update(dest, dataset("2000-01-05", 2, seed=1), cluster="threads")
    assert first.status == "pass" and first.changes["appended_steps"] == 2
    # A second append: the earlier in-memory slices are read back from the product.
    second = update(dest, dataset("2000-01-07", 3, seed=2), cluster="threads")
    assert second.status == "pass" and second.changes["appended_steps"] == 3
    again = update(dest, dataset("2000-01-07", 3, seed=2), cluster="threads")
    assert again.changes == {"unchanged": True}
    expected = xr.concat(
        [dataset(), dataset("2000-01-05", 2, seed=1), dataset("2000-01-07", 3, seed=2)],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    )
    with open_product(dest) as out:
        _same(out.load(), expected)


@pytest.mark.parametrize(
    ("slice_", "message"),
    [
        (lambda: dataset("2000-01-03", 2, seed=5), "between the product's steps|not after the end"),
        (lambda: dataset("1999-12-01", 2, seed=5), "before the product's first step|not after"),
        (lambda: dataset("2000-01-05", 2, ny=4), "lat"),
        (lambda: dataset("2000-01-05", 2).rename({"tas": "pr"}), "pr|tas"),
        (lambda: _as_f8(dataset("2000-01-05", 2)), "dtype|stored as"),
    ],
    ids=["overlap", "before", "other-dims", "other-variables", "other-dtype"],
)
def test_incompatible_slices_are_refused_and_nothing_is_written(
    tmp_path: Path, slice_: Any, message: str
) -> None:
    import re

    dest = tmp_path / "p.zarr"
    convert(dataset(), to="zarr", dest=dest, cluster="threads")
    before = _tree(dest)
    with pytest.raises((ConversionError, ValidationError)) as caught:
        update(dest, slice_(), cluster="threads")
    assert "\n" not in str(caught.value)
    assert re.search(message, str(caught.value)), caught.value
    assert _tree(dest) == before


def test_virtual_products_refuse_an_in_memory_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot reference an in-memory dataset"):
        convert(dataset(), to="virtual", dest=tmp_path / "p.json", cluster="threads")
    assert not (tmp_path / "p.json").exists()


def test_datasets_and_files_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="either datasets or files"):
        convert([dataset(), "x.nc"], to="zarr", dest=tmp_path / "p.zarr", cluster="threads")


class _Drifting:
    """An array whose values change once they were read (a source that cannot be trusted)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        part = np.array(self.values[key])
        if part.size:  # Dask reads an empty slice for the array's type
            _DRIFT["reads"] += 1
        return part if _DRIFT["reads"] <= 1 else part + 1


def test_a_failed_check_rolls_back_with_a_catalog(tmp_path: Path) -> None:
    base = dataset()
    _DRIFT["reads"] = 0
    drifting = base.assign(
        tas=(base["tas"].dims, da.from_array(_Drifting(base["tas"].values), chunks=-1), {})
    )
    with Catalog.create(tmp_path / "cat") as cat:
        with pytest.raises(ConversionError, match="failed its check and was rolled back"):
            convert(drifting, to="zarr", catalog=cat, cluster="threads")
        assert list(cat.search(kind="dataset").records) == []
        assert not list((tmp_path / "cat").rglob("*.zarr"))


def test_registered_like_any_product(tmp_path: Path) -> None:
    with Catalog.create(tmp_path / "cat") as cat:
        result = convert(dataset(), to="zarr", catalog=cat, cluster="threads", title="memory")
        assert result.record is not None
        record = cat.get(result.record.id)
        [source] = [a for a in record.artifacts if a.role == "source"]
        assert source.format == "xarray-dataset"
        assert source.locator.type == "external_uri" and source.locator.uri.startswith("dataset://")
        with open_product(record.id, catalog=cat) as out:
            _same(out.load(), dataset())
        appended = update(
            record.id, dataset("2000-01-05", 2, seed=3), catalog=cat, cluster="threads"
        )
        assert appended.record is not None and appended.record.id == record.id
        assert cat.get(record.id).metadata["convert"]["steps"] == 6


def test_a_dataset_opened_from_a_file_keeps_its_encoding(tmp_path: Path) -> None:
    """Packing (scale_factor, add_offset, _FillValue) comes from the dataset's encoding, so a
    dataset opened lazily from a file is stored as the file stores it."""
    from arcodex._archives import write_archive

    [path] = write_archive(tmp_path / "src", "packed", files=1, steps=3)
    with xr.open_dataset(path, chunks={}) as ds:
        result = convert(ds, to="zarr", dest=tmp_path / "p.zarr", cluster="local", workers=1)
    assert result.status == "pass"
    with xr.open_dataset(path, decode_cf=False) as raw, open_product(tmp_path / "p.zarr") as out:
        packed = [n for n in raw.data_vars if "scale_factor" in raw[n].attrs]
        assert packed
        for name in packed:
            assert out[name].encoding["dtype"] == raw[name].dtype
    product = result.product.open(raw=True)
    with xr.open_dataset(path, decode_cf=False) as raw, product:
        for name in raw.data_vars:
            np.testing.assert_array_equal(product[name].values, raw[name].values)


def test_update_with_several_slices_at_once(tmp_path: Path) -> None:
    dest = tmp_path / "p.zarr"
    convert(dataset(), to="zarr", dest=dest, cluster="threads")
    later = [dataset("2000-01-07", 2, seed=2), dataset("2000-01-05", 2, seed=1)]  # any order
    result = update(dest, later, cluster="threads")
    assert result.status == "pass"
    assert result.changes["appended_sources"] == 2 and result.changes["appended_steps"] == 4
    names = [s["url"].rsplit("/", 1)[-1] for s in result.product.provenance()["sources"]]
    assert names == ["tas-orog-dataset"] * 3
