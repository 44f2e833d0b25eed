"""The ARCO conversion engine (`arcodex.convert`): faithful products, refusals, checks, catalog.

Every test converts small archives written by :func:`arcodex._archives.write_archive`
and compares the product with the sources as xarray and the plain libraries
(zarr, icechunk, kerchunk) read them, so a test fails when a product is not
faithful, not readable without arcodex, or not refused when it should be.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.catalog._journal import FAIL_AT_ENV, KILL_AT_ENV, InjectedFailure
from arcodex.convert import check, convert, open_product
from arcodex.errors import ConversionError, ValidationError
from arcodex.testing import S3_KEY_ID, S3_SECRET, assert_same_values, sources_dataset

xr = pytest.importorskip("xarray")
zarr = pytest.importorskip("zarr")
icechunk = pytest.importorskip("icechunk")

KINDS = ("regular", "curvilinear", "lon360", "noleap", "multivar", "depth", "packed")
#: (to, format) of each product kind.
TARGETS = {
    "zarr": ("zarr", "icechunk"),
    "icechunk": ("icechunk", "icechunk"),
    "virtual-icechunk": ("virtual", "icechunk"),
    "kerchunk": ("virtual", "kerchunk"),
}
EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
}


# -- helpers ----------------------------------------------------------------------------------


def _dim(kind: str) -> str:
    return "time_counter" if kind == "curvilinear" else "time"


def _archive(tmp_path: Path, kind: str = "regular", **kwargs: Any) -> tuple[Path, list[Path]]:
    src = tmp_path / "src"
    files = write_archive(src, kind, **kwargs)
    return src, files


def _glob(src: Path, kind: str = "regular") -> str:
    # The curvilinear archive also holds grid.nc, which is no source.
    return str(src / f"{kind}_*.nc")


def _convert(src: str | list[str], target: str, dest: Path, **kwargs: Any) -> Any:
    to, fmt = TARGETS[target]
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 2)
    return convert(src, to=to, format=fmt, dest=dest, **kwargs)


def _zarr_group(path: Path, mode: str = "r") -> Any:
    with warnings.catch_warnings():
        # The product carries consolidated metadata on purpose (not part of the Zarr 3 spec).
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return zarr.open_group(str(path), mode=mode)


def _reconsolidate(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(path))


def _histories(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        with xr.open_dataset(f, decode_cf=False) as ds:
            out.append(ds.attrs["history"])
    return out


# -- 1. faithful products ------------------------------------------------------------------

CASES = [(kind, "zarr") for kind in KINDS] + [
    (kind, target)
    for kind in ("regular", "packed", "noleap", "curvilinear")
    for target in ("icechunk", "virtual-icechunk", "kerchunk")
]


@pytest.mark.parametrize(("kind", "target"), CASES)
def test_product_equals_sources(tmp_path: Path, kind: str, target: str) -> None:
    src, files = _archive(tmp_path, kind)
    dest = tmp_path / f"out{EXT[target]}"
    result = _convert(_glob(src, kind), target, dest)
    assert result.status == "pass", result.report.reasons
    assert result.product.format == target
    dim = _dim(kind)

    raw = result.product.open(raw=True)
    with raw:
        want = sources_dataset(files, dim, raw=True)
        assert_same_values(raw, want)
        assert raw.sizes[dim] == 12

    decoded = open_product(dest)
    with decoded:
        want = sources_dataset(files, dim, raw=False)
        got = decoded[list(want.data_vars)].load()
        # Packed int16 decodes to float64 from Zarr but float32 from NetCDF: Zarr's JSON
        # attributes keep scale_factor=0.01 as a (float64) number, not as a float32. The
        # values agree to float32 precision, which is what assert_allclose checks.
        xr.testing.assert_allclose(got, want)
        if kind == "noleap":
            times = decoded[dim].values
            assert {t.calendar for t in times} == {"noleap"}
            assert not any(t.month == 2 and t.day == 29 for t in times)
            assert [t.strftime("%m-%d") for t in times[:4]] == ["02-26", "02-27", "02-28", "03-01"]


def test_names_out_of_time_order_are_sorted_by_time(tmp_path: Path) -> None:
    src, files = _archive(tmp_path, shuffle_names=True)
    assert sorted(files) != files  # the names do not sort in time order
    result = _convert(_glob(src), "zarr", tmp_path / "out.zarr")
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        times = ds["time"].values
        assert np.all(np.diff(times) > 0)
        want = sources_dataset(files, "time", raw=True)  # files in time order
        assert_same_values(ds, want)
    assert [Path(s.url).name for s in result.plan.sources] == [f.name for f in files]


# -- 3. the products open with the plain libraries -----------------------------------------


def test_plain_libraries_open_the_products(tmp_path: Path) -> None:
    src, files = _archive(tmp_path)
    want = sources_dataset(files, "time", raw=True)

    _convert(_glob(src), "zarr", tmp_path / "out.zarr")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds = xr.open_zarr(tmp_path / "out.zarr", decode_cf=False)
    with ds:
        assert_same_values(ds, want)

    _convert(_glob(src), "icechunk", tmp_path / "out.icechunk")
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(tmp_path / "out.icechunk"))
    )
    store = repo.readonly_session("main").store
    with xr.open_zarr(store, consolidated=False, decode_cf=False) as ds:
        assert_same_values(ds, want)

    _convert(_glob(src), "kerchunk", tmp_path / "out.json")
    # The kerchunk engine takes the references' path as a string (not a Path), and decodes
    # times whatever decode_cf says: compare decoded values.
    with xr.open_dataset(str(tmp_path / "out.json"), engine="kerchunk") as ds:
        xr.testing.assert_allclose(ds.load(), sources_dataset(files, "time", raw=False))


# -- 4. check finds damaged products ---------------------------------------------------------


def _truncate(path: Path) -> None:
    group = _zarr_group(path, "r+")
    for _name, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if "time" in dims:
            shape = list(array.shape)
            shape[dims.index("time")] = 8  # drop the last file's 4 steps
            array.resize(tuple(shape))
    _reconsolidate(path)


def _swap_times(path: Path) -> None:
    array = _zarr_group(path, "r+")["time"]
    values = array[:]
    values[[0, 1]] = values[[1, 0]]
    array[:] = values


def _swap_slabs(path: Path) -> None:
    array = _zarr_group(path, "r+")["tas"]
    first, fifth = array[0], array[4]
    array[0], array[4] = fifth, first


def _delete_chunks(path: Path) -> None:
    chunks = path / "tas" / "c"
    assert chunks.is_dir()
    shutil.rmtree(chunks)


DAMAGE = {
    "truncated": (_truncate, "8 steps along time, its sources 12"),
    "reordered-time": (_swap_times, "reordered"),
    "swapped-slabs": (_swap_slabs, "differs from its sources"),
    "deleted-chunks": (_delete_chunks, "differs from its sources"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_check_fails_on_damaged_product(tmp_path: Path, damage: str) -> None:
    src, _ = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    assert _convert(_glob(src), "zarr", dest).status == "pass"
    assert check(dest, cluster="threads").status == "pass"
    spoil, reason = DAMAGE[damage]
    spoil(dest)
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any(reason in r for r in report.reasons), report.reasons


# -- 5. attribute fixes ------------------------------------------------------------------


FIXES = {
    "global": {"set": {"title": "Fixed"}, "delete": ["institution"]},
    "variables": {"tas": {"set": {"units": "degC"}, "rename": {"long_name": "description"}}},
}


def test_attribute_fixes_are_applied_and_checked(tmp_path: Path) -> None:
    src, files = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    result = _convert(_glob(src), "zarr", dest, attrs=FIXES)
    assert result.status == "pass", result.report.reasons
    with xr.open_dataset(files[0], decode_cf=False) as ds:
        source_global, source_tas = dict(ds.attrs), dict(ds["tas"].attrs)
    with result.product.open(raw=True) as ds:
        assert ds.attrs["title"] == "Fixed"
        assert "institution" not in ds.attrs
        for key in ("source", "Conventions", "frequency"):
            assert ds.attrs[key] == source_global[key]
        tas = dict(ds["tas"].attrs)
    # The NaN _FillValue of the source (float32) is compared apart: NaN != NaN.
    assert np.isnan(tas.pop("_FillValue")) and np.isnan(source_tas.pop("_FillValue"))
    want = {k: v for k, v in source_tas.items() if k != "long_name"}
    want |= {"units": "degC", "description": source_tas["long_name"]}
    assert tas == want
    assert check(dest, cluster="threads").status == "pass"


def test_attribute_fix_of_unknown_variable_is_refused(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    fixes = {"variables": {"nope": {"set": {"units": "K"}}}}
    with pytest.raises(ValidationError, match="nope"):
        _convert(_glob(src), "zarr", dest, attrs=fixes)
    assert not dest.exists()


# -- 6. selection, chunks, formats ------------------------------------------------------------


def test_variable_selection_keeps_coordinates(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path, "multivar")
    result = _convert(_glob(src, "multivar"), "zarr", tmp_path / "out.zarr", variables=["pr"])
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        names = set(ds.variables)
    assert {"pr", "time", "lat", "lon", "time_bnds"} <= names
    assert "tas" not in names and "orog" not in names


@pytest.mark.parametrize(
    ("options", "chunks", "shards"),
    [
        ({"chunks": "time=2,lat=6"}, (2, 6, 16), None),
        ({"chunking": "map"}, (1, 12, 16), None),
        ({"chunks": "time=2", "shards": {"time": 4}}, (2, 12, 16), (4, 12, 16)),
    ],
    ids=["explicit", "map", "sharded"],
)
def test_chunks_and_shards(
    tmp_path: Path, options: dict[str, Any], chunks: tuple[int, ...], shards: Any
) -> None:
    src, _ = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    result = _convert(_glob(src), "zarr", dest, **options)
    assert result.status == "pass", result.report.reasons
    tas = _zarr_group(dest)["tas"]
    assert tas.metadata.zarr_format == 3
    assert tas.chunks == chunks
    assert tas.shards == shards
    assert check(dest, cluster="threads").status == "pass"


def test_zarr_format_2(tmp_path: Path) -> None:
    src, files = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    result = _convert(_glob(src), "zarr", dest, zarr_format=2)
    assert result.status == "pass", result.report.reasons
    assert (dest / ".zgroup").exists() and not (dest / "zarr.json").exists()
    assert _zarr_group(dest)["tas"].metadata.zarr_format == 2
    with open_product(dest) as ds:
        xr.testing.assert_allclose(
            ds[["tas"]].load(), sources_dataset(files, "time", raw=False)[["tas"]]
        )
    assert check(dest, cluster="threads").status == "pass"


# -- 7. varying attributes are collected ------------------------------------------------------


def test_varying_attributes_are_collected(tmp_path: Path) -> None:
    src, files = _archive(tmp_path, shuffle_names=True)
    result = _convert(_glob(src), "zarr", tmp_path / "out.zarr")
    with result.product.open(raw=True) as ds:
        varying = json.loads(ds.attrs["arcodex_varying_attrs"])
        history = ds.attrs["history"]
    histories = _histories(files)  # in time order
    assert len(set(histories)) == 3
    assert varying["history"] == histories
    assert history == histories[0]


# -- 8. coordinates from a grid file ---------------------------------------------------------


def test_curvilinear_coordinates_from_grid_file(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path, "curvilinear")
    result = _convert(
        _glob(src, "curvilinear"),
        "zarr",
        tmp_path / "out.zarr",
        grid=src / "grid.nc",
        grid_coords={"nav_lon": "glamt", "nav_lat": "gphit"},
    )
    assert result.status == "pass", result.report.reasons
    with xr.open_dataset(src / "grid.nc") as grid, result.product.open(raw=True) as ds:
        np.testing.assert_array_equal(ds["nav_lon"].values, grid["glamt"].values)
        np.testing.assert_array_equal(ds["nav_lat"].values, grid["gphit"].values)
        assert ds["nav_lon"].dtype == np.float64
    assert check(tmp_path / "out.zarr", cluster="threads").status == "pass"


# -- 9. incompatible sources are refused -----------------------------------------------------


def _duplicate(src: Path, files: list[Path]) -> None:
    for f in files:
        shutil.copy(f, src / f"regular_copy_{f.name}")


def _other_grid(src: Path, files: list[Path]) -> None:
    with xr.open_dataset(files[-1], decode_cf=False) as ds:
        narrow = ds.isel(lon=slice(0, 8)).load()
    narrow["time"] = narrow["time"] + 4.0  # the next period, on a narrower grid
    narrow.to_netcdf(src / "regular_003.nc", unlimited_dims=["time"])


def _missing_variable(src: Path, files: list[Path]) -> None:
    with xr.open_dataset(files[-1], decode_cf=False) as ds:
        fewer = ds.drop_vars("pr").load()
    files[-1].unlink()
    fewer.to_netcdf(files[-1], unlimited_dims=["time"])


@pytest.mark.parametrize(
    ("kind", "spoil", "message"),
    [
        ("regular", _duplicate, "overlap"),
        ("regular", _other_grid, "differ along lon"),
        ("multivar", _missing_variable, "lacks pr"),
    ],
    ids=["overlap", "other-grid", "missing-variable"],
)
def test_incompatible_sources_are_refused(
    tmp_path: Path, kind: str, spoil: Any, message: str
) -> None:
    src, files = _archive(tmp_path, kind)
    spoil(src, files)
    dest = tmp_path / "out.zarr"
    with pytest.raises((ConversionError, ValidationError), match=message):
        _convert(_glob(src, kind), "zarr", dest)
    assert not dest.exists()


# -- 10. catalog -------------------------------------------------------------------------------


def _products(cat_root: Path) -> list[str]:
    store = cat_root / "store"
    return (
        sorted(p.name for p in (store / "products").iterdir())
        if (store / "products").exists()
        else []
    )


def test_catalog_records_the_product(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path)
    with Catalog.create(tmp_path / "cat") as cat:
        result = convert(_glob(src), to="zarr", catalog=cat, cluster="threads")
        record = result.record
        assert record is not None and record.kind == "dataset"
        assert Counter(a.role for a in record.artifacts) == {"primary": 1, "source": 3, "report": 1}
        assert record.metadata["convert"]["check"] == "pass"
        assert record.metadata["start_datetime"].startswith("2000-01-01")
        assert record.metadata["end_datetime"].startswith("2000-01-12")
        assert record.metadata["bbox"] == [-168.75, -82.5, 168.75, 82.5]
        assert result.operation_id in [x.operation_id for x in record.lineage]
        [op] = [o for o in cat.operations() if o.id == result.operation_id]
        assert op.action == "convert" and op.status == "succeeded"
        assert cat.get(record.id).id == record.id
        assert check(record.id, catalog=cat).status == "pass"
        with open_product(record.id, catalog=cat) as ds:
            assert ds.sizes["time"] == 12
    assert len(_products(tmp_path / "cat")) == 1


def test_managed_product_is_named_after_its_sources(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path)
    with Catalog.create(tmp_path / "cat") as cat:
        convert(_glob(src), to="zarr", catalog=cat, cluster="threads", check=False)
    assert _products(tmp_path / "cat") == ["regular.zarr"]


def test_catalog_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = _archive(tmp_path)
    with Catalog.create(tmp_path / "cat") as cat:
        monkeypatch.setenv(FAIL_AT_ENV, "artifact_write_succeeded")
        with pytest.raises(InjectedFailure):
            convert(_glob(src), to="zarr", catalog=cat, cluster="threads")
        monkeypatch.delenv(FAIL_AT_ENV)
        assert cat.search(limit=None).records == []
        assert [o.status for o in cat.operations()] == ["failed"]
    assert _products(tmp_path / "cat") == []


# -- 11. killed during a conversion ----------------------------------------------------------

_KILLED = """
import sys
from arcodex.catalog import Catalog
from arcodex.convert import convert
with Catalog.open(sys.argv[1]) as cat:
    convert(sys.argv[2], to="zarr", catalog=cat, cluster="threads", workers=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("state", ["artifact_write_started", "artifact_write_succeeded"])
def test_killed_convert_is_recovered(tmp_path: Path, state: str) -> None:
    src, _ = _archive(tmp_path)
    root = tmp_path / "cat"
    Catalog.create(root).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    env[KILL_AT_ENV] = state
    done = subprocess.run(
        [sys.executable, "-c", _KILLED, str(root), _glob(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    if state == "artifact_write_succeeded":
        assert len(_products(root)) == 1  # written and checked, then killed
    with Catalog.open(root) as cat:
        assert cat.journal.open_operations()
        cat.recover()
        assert cat.journal.open_operations() == []
        assert cat.search(limit=None).records == []
        assert cat.doctor().clean
    assert _products(root) == []


# -- 12. S3 --------------------------------------------------------------------------------


@pytest.fixture
def s3_sources(
    tmp_path: Path, s3_endpoint: str, s3_env: None
) -> tuple[str, dict[str, Any], list[Path]]:
    """A fresh bucket with the regular archive under ``src/``: (bucket, options, local files)."""
    import boto3

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    _, files = _archive(tmp_path)
    for f in files:
        client.upload_file(str(f), bucket, f"src/{f.name}")
    options = {"key": S3_KEY_ID, "secret": S3_SECRET, "endpoint_url": s3_endpoint}
    return bucket, options, files


def test_s3_sources_to_local_zarr(tmp_path: Path, s3_sources: Any) -> None:
    bucket, options, files = s3_sources
    dest = tmp_path / "out.zarr"
    result = _convert(f"s3://{bucket}/src/*.nc", "zarr", dest, storage_options=options)
    assert result.status == "pass", result.report.reasons
    assert [s.url for s in result.plan.sources] == [f"s3://{bucket}/src/{f.name}" for f in files]
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))
    assert check(dest, storage_options=options).status == "pass"


def test_local_sources_to_s3_zarr(tmp_path: Path, s3_sources: Any) -> None:
    bucket, options, files = s3_sources
    dest = f"s3://{bucket}/out.zarr"
    result = convert(
        _glob(tmp_path / "src"), to="zarr", dest=dest, dest_options=options, cluster="threads"
    )
    assert result.status == "pass", result.report.reasons
    with open_product(dest, dest_options=options) as ds:
        xr.testing.assert_allclose(
            ds[["tas"]].load(), sources_dataset(files, "time", raw=False)[["tas"]]
        )
    assert check(dest, dest_options=options).status == "pass"


@pytest.mark.parametrize("target", ["zarr", "icechunk", "virtual-icechunk"])
def test_s3_to_s3_product_is_updated(tmp_path: Path, s3_sources: Any, target: str) -> None:
    import boto3

    from arcodex.convert import update

    bucket, options, files = s3_sources
    more = write_archive(tmp_path / "more", "regular", files=5)[3:]
    endpoint = options["endpoint_url"]
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    for f in more:
        client.upload_file(str(f), bucket, f"new/{f.name}")
    dest = f"s3://{bucket}/products/out{EXT[target]}"
    both = {"dest_options": options, "storage_options": options}
    result = _convert(f"s3://{bucket}/src/*.nc", target, dest, **both)
    assert result.status == "pass", result.report.reasons
    updated = update(dest, f"s3://{bucket}/new/*.nc", cluster="threads", **both)
    assert updated.status == "pass", updated.report.reasons
    assert updated.changes["appended_steps"] == 8
    with updated.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset([*files, *more], "time", raw=True))
    assert check(dest, **both).status == "pass"


def test_s3_sources_to_virtual_icechunk(tmp_path: Path, s3_sources: Any) -> None:
    bucket, options, files = s3_sources
    dest = tmp_path / "out.icechunk"
    result = _convert(f"s3://{bucket}/src/*.nc", "virtual-icechunk", dest, storage_options=options)
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))
    assert check(dest, storage_options=options).status == "pass"


def test_s3_sources_to_kerchunk(tmp_path: Path, s3_sources: Any) -> None:
    bucket, options, files = s3_sources
    dest = tmp_path / "out.json"
    result = _convert(f"s3://{bucket}/src/*.nc", "kerchunk", dest, storage_options=options)
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))


# -- 13. a real process cluster --------------------------------------------------------------


def test_local_process_cluster(tmp_path: Path) -> None:
    src, files = _archive(tmp_path)
    dest = tmp_path / "out.zarr"
    result = convert(_glob(src), to="zarr", dest=dest, cluster="local", workers=2)
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))


# -- the cluster keeps off the default dashboard port -----------------------------------------


@pytest.fixture
def port_8787() -> Iterator[None]:
    """Hold port 8787 (as a running Dask dashboard or another conversion would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    deadline = time.monotonic() + 20
    while True:
        try:
            sock.bind(("127.0.0.1", 8787))
            sock.listen(1)
            break
        except OSError:
            if time.monotonic() > deadline:
                break  # someone else holds it: just as good
            time.sleep(0.2)
    try:
        yield
    finally:
        sock.close()


@pytest.mark.filterwarnings("default")
def test_cluster_does_not_claim_port_8787(port_8787: None) -> None:
    from arcodex.convert._cluster import open_client

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_client("threads", workers=1):
            pass
    assert not [w for w in caught if "8787" in str(w.message)]


# -- a running scheduler, groups, manifests -----------------------------------------------


def test_existing_scheduler_by_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    src, files = _archive(tmp_path)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        result = convert(
            _glob(src), to="zarr", dest=tmp_path / "out.zarr", cluster=cluster.scheduler_address
        )
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))


def test_no_scheduler_at_the_address_is_one_clear_error(tmp_path: Path) -> None:
    src, _ = _archive(tmp_path, files=1)
    with pytest.raises(ConversionError, match="no Dask scheduler answers"):
        convert(_glob(src), to="zarr", dest=tmp_path / "out.zarr", cluster="tcp://127.0.0.1:9")
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("target", ["zarr", "icechunk"])
def test_product_in_a_group(tmp_path: Path, target: str) -> None:
    src, files = _archive(tmp_path)
    dest = tmp_path / f"out{EXT[target]}"
    result = _convert(_glob(src), target, dest, group="ocean/daily")
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(files, "time", raw=True))
    if target == "zarr":
        with xr.open_zarr(dest, group="ocean/daily") as ds:
            assert ds.sizes["time"] == 12
    more = write_archive(tmp_path / "more", "regular", files=4)[-1]
    assert _update_group(dest, more, "ocean/daily").changes["appended_steps"] == 4


def _update_group(dest: Path, new: Path, group: str) -> Any:
    from arcodex.convert import update

    return update(dest, str(new), group=group, cluster="threads")


def test_manifest_sources_in_any_order(tmp_path: Path) -> None:
    _, files = _archive(tmp_path)
    csv = tmp_path / "sources.csv"
    csv.write_text("path\n" + "\n".join(str(f) for f in reversed(files)) + "\n")
    yaml_file = tmp_path / "sources.yaml"
    yaml_file.write_text("sources:\n" + "".join(f"  - {f.name}\n" for f in files))
    (tmp_path / "src" / "sources.yaml").write_text(yaml_file.read_text())
    for manifest in (csv, tmp_path / "src" / "sources.yaml"):
        dest = tmp_path / f"{manifest.stem}-{manifest.suffix[1:]}.zarr"
        result = _convert(str(manifest), "zarr", dest)
        assert result.status == "pass"
        assert [s.url for s in result.plan.sources] == [str(f) for f in files]
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name\nx.nc\n")
    with pytest.raises(ValidationError, match="needs a 'path' or 'url' column"):
        _convert(str(bad), "zarr", tmp_path / "bad.zarr")


@pytest.mark.parametrize("target", ["zarr", "virtual-icechunk"])
def test_s3_profile_secrets_reach_no_record_product_log_or_journal(
    tmp_path: Path, s3_sources: Any, target: str
) -> None:
    """Sources and product through a catalog S3 profile whose credentials come from the
    environment: the secret is in no file of the catalog and no object of the product."""
    import boto3

    from arcodex.catalog import CatalogConfig
    from arcodex.storage import FileProfileConfig, S3ProfileConfig

    bucket, options, _ = s3_sources
    profile = S3ProfileConfig(
        bucket=bucket,
        prefix="managed",
        endpoint_url=options["endpoint_url"],
        region="us-east-1",
        path_style=True,
    )
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "s3": profile})
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        to, fmt = TARGETS[target]
        result = convert(
            f"s3://{bucket}/src/*.nc",
            to=to,
            format=fmt,
            catalog=cat,
            profile="s3",
            source_profile="s3",
            cluster="threads",
        )
        assert result.status == "pass", result.report.reasons
        assert check(result.record.id, catalog=cat).status == "pass"
        assert result.record.metadata["convert"]["url"].startswith(f"s3://{bucket}/managed/")
    for path in (tmp_path / "cat").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert S3_SECRET.encode() not in data, path
            assert S3_KEY_ID.encode() not in data, path
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="managed/"
        )
        for o in page.get("Contents", [])
    ]
    assert keys, "the product is in the profile's bucket"
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert S3_SECRET.encode() not in body, key


def test_cli_convert_needs_a_destination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    src, _ = _archive(tmp_path, files=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCODEX_CATALOG", raising=False)
    done = CliRunner().invoke(app, ["convert", _glob(src), "--cluster", "threads"])
    assert done.exit_code == 1
    assert "say where the product goes: --dest" in done.output


def test_netcdf3_sources_on_threads(tmp_path: Path) -> None:
    """NetCDF3 files go through the netCDF-C library, which is not thread safe: two
    threads convert them without crashing, to Zarr and to virtual references alike."""
    _, files = _archive(tmp_path)
    classic = tmp_path / "classic"
    classic.mkdir()
    for f in files:
        with xr.open_dataset(f) as ds:
            ds.load().to_netcdf(classic / f.name, format="NETCDF3_64BIT", engine="netcdf4")
    result = _convert(str(classic / "*.nc"), "zarr", tmp_path / "out.zarr")
    assert result.status == "pass", result.report.reasons
    with result.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(sorted(classic.glob("*.nc")), "time", raw=True))
    refs = _convert(str(classic / "*.nc"), "kerchunk", tmp_path / "out.json")
    assert refs.status == "pass", refs.report.reasons
    want = sources_dataset(sorted(classic.glob("*.nc")), "time", raw=True)
    with refs.product.open(raw=True) as ds:
        # Zarr 2 references keep NetCDF3's big-endian dtype: the same values.
        np.testing.assert_array_equal(ds["tas"].values, want["tas"].values)
