"""The STAC client (`arcodex.client`): search catalogs, open every product kind, subset.

The products are converted from archives written by
:func:`arcodex._archives.write_archive`; the catalog is a third-party-style
static STAC catalog built here with plain pystac, so a test fails when the
client cannot open what the xarray-assets and Icechunk conventions describe,
or opens something else than the product itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcodex._archives import write_archive
from arcodex.client import Client, SearchResults, open_dataset, subset
from arcodex.convert import convert  # before icechunk: it quiets icechunk's log
from arcodex.errors import NotFoundError, ValidationError
from arcodex.testing import http_directory, http_server

xr = pytest.importorskip("xarray")
pystac = pytest.importorskip("pystac")
pytest.importorskip("icechunk")
da = pytest.importorskip("dask.array")

#: (to, format, extension) of each product kind.
TARGETS = {
    "zarr": ("zarr", "icechunk", ".zarr"),
    "icechunk": ("icechunk", "icechunk", ".icechunk"),
    "virtual-icechunk": ("virtual", "icechunk", ".icechunk"),
    "kerchunk": ("virtual", "kerchunk", ".json"),
}
#: The conversion writes consolidated metadata into Zarr 3 stores on purpose.
CONSOLIDATED = ".*[Cc]onsolidated metadata.*"


# -- products and a third-party-style static catalog --------------------------------------------


def _convert(src: str, to: str, fmt: str, dest: Path) -> Any:
    return convert(src, to=to, format=fmt, dest=dest, cluster="threads", workers=2).product


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Products of every kind, and a static catalog describing them, under one directory."""
    base = tmp_path_factory.mktemp("site")
    products: dict[str, Any] = {}
    write_archive(base / "src" / "regular", "regular", files=3, steps=4)
    for name, (to, fmt, ext) in TARGETS.items():
        glob = str(base / "src" / "regular" / "regular_*.nc")
        products[name] = _convert(glob, to, fmt, base / "products" / f"regular-{name}{ext}")
    write_archive(base / "src" / "curvilinear", "curvilinear", files=2, steps=3)
    glob = str(base / "src" / "curvilinear" / "curvilinear_*.nc")
    products["nemo"] = _convert(glob, "zarr", "icechunk", base / "products" / "nemo.zarr")

    root = base / "stac"
    catalog = pystac.Catalog("site", "A third-party catalog of ARCO products")
    arco = _collection("arco", [-180.0, -90.0, 180.0, 90.0])
    other = _collection("other", [-60.0, 20.0, -10.0, 70.0])
    catalog.add_children([arco, other])
    for name, product in products.items():
        if name == "nemo":
            continue
        arco.add_item(_item(f"regular-{name}", name, product, [-180.0, -90.0, 180.0, 90.0], "tas"))
    other.add_item(_item("nemo", "zarr", products["nemo"], [-45.0, 25.0, -10.0, 60.0], "tos"))
    pacific = pystac.Item(
        "pacific",
        geometry=_geometry([160.0, -20.0, -160.0, 20.0]),
        bbox=[160.0, -20.0, -160.0, 20.0],
        datetime=datetime(1990, 6, 1, tzinfo=UTC),
        properties={},
    )
    pacific.add_asset(
        "thumbnail", pystac.Asset("thumb.png", media_type="image/png", roles=["thumbnail"])
    )
    other.add_item(pacific)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return {"base": base, "root": root, "products": products}


def _collection(cid: str, bbox: list[float]) -> Any:
    extent = pystac.Extent(
        pystac.SpatialExtent([bbox]),
        pystac.TemporalExtent([[datetime(1990, 1, 1, tzinfo=UTC), None]]),
    )
    return pystac.Collection(cid, f"collection {cid}", extent)


def _item(item_id: str, kind: str, product: Any, bbox: list[float], variable: str) -> Any:
    item = pystac.Item(
        item_id,
        geometry=_geometry(bbox),
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": "2000-01-01T00:00:00Z",
            "end_datetime": "2000-01-12T00:00:00Z",
            "cube:variables": {variable: {"type": "data", "dimensions": []}},
        },
    )
    # A thumbnail first: the client must pick the data asset, not the first one.
    item.add_asset(
        "thumbnail", pystac.Asset("thumb.png", media_type="image/png", roles=["thumbnail"])
    )
    href = product.target.url
    if kind == "zarr":
        asset = pystac.Asset(
            href,
            media_type="application/vnd+zarr",
            roles=["data"],
            extra_fields={"xarray:open_kwargs": {"consolidated": True}},
        )
    elif kind in ("icechunk", "virtual-icechunk"):
        fields: dict[str, Any] = {"icechunk:branch": "main"}
        if kind == "virtual-icechunk":
            fields["icechunk:virtual_chunk_containers"] = list(product.containers)
        asset = pystac.Asset(
            href, media_type="application/vnd.icechunk", roles=["data"], extra_fields=fields
        )
    else:
        asset = pystac.Asset(
            href,
            media_type="application/json",
            roles=["data", "references"],
            # Four days a task, not one task per HDF5 chunk (one day).
            extra_fields={"xarray:open_kwargs": {"chunks": {"time": 4}}},
        )
    item.add_asset("data", asset)
    return item


def _geometry(bbox: list[float]) -> dict[str, Any]:
    """The GeoJSON of a box, split in two across the antimeridian (pystac drops a bbox without one)."""
    west, south, east, north = bbox

    def ring(w: float, e: float) -> list[list[list[float]]]:
        return [[[w, south], [e, south], [e, north], [w, north], [w, south]]]

    if west <= east:
        return {"type": "Polygon", "coordinates": ring(west, east)}
    return {"type": "MultiPolygon", "coordinates": [ring(west, 180.0), ring(-180.0, east)]}


def _direct(product: Any) -> Any:
    """The product as arcodex's conversion engine opens it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CONSOLIDATED)
        return product.open(chunks={})


# -- opening every product kind through the catalog ---------------------------------------------


@pytest.mark.parametrize("kind", list(TARGETS))
def test_catalog_item_opens_as_the_product(site: dict[str, Any], kind: str) -> None:
    client = Client(site["root"] / "catalog.json")
    results = client.search(ids=[f"regular-{kind}"])
    assert results.ids() == [f"regular-{kind}"]
    got = results.open_dataset()
    assert isinstance(got.tas.data, da.Array)  # lazy
    xr.testing.assert_identical(got.load(), _direct(site["products"][kind]).load())


def test_relative_asset_hrefs_resolve_against_the_item(site: dict[str, Any]) -> None:
    path = site["root"] / "arco" / "regular-zarr" / "regular-zarr.json"
    href = json.loads(path.read_text())["assets"]["data"]["href"]
    assert href.startswith("../"), href  # a third-party catalog moves with its products
    item = pystac.Item.from_file(str(path))
    xr.testing.assert_identical(
        open_dataset(item.to_dict()).load(), _direct(site["products"]["zarr"]).load()
    )
    xr.testing.assert_identical(
        open_dataset(item.assets["data"]).load(), _direct(site["products"]["zarr"]).load()
    )


def test_default_chunks_follow_the_store_or_the_asset(site: dict[str, Any]) -> None:
    client = Client(site["root"])
    zarr_ds = client.open_dataset("regular-zarr")
    assert zarr_ds.tas.data.chunksize == tuple(zarr_ds.tas.encoding["chunks"])
    refs = client.open_dataset("regular-kerchunk")
    assert refs.tas.chunks[0] == (4, 4, 4)  # xarray:open_kwargs.chunks, not one day a task
    assert client.open_dataset("regular-kerchunk", chunks={"time": 6}).tas.chunks[0] == (6, 6)


@pytest.mark.filterwarnings(
    # kerchunk/fsspec ask pandas for the fastparquet engine, which pandas 3 deprecates.
    "ignore:The 'fastparquet' engine is deprecated:DeprecationWarning",
    "ignore:The 'fastparquet' engine is deprecated",
)
def test_kerchunk_parquet_asset(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "regular", files=2, steps=3)
    product = _convert(
        str(tmp_path / "src" / "regular_*.nc"), "virtual", "kerchunk-parquet", tmp_path / "r.parq"
    )
    asset = {
        "href": str(tmp_path / "r.parq"),
        "type": "application/vnd.apache.parquet",
        "roles": ["references"],
    }
    xr.testing.assert_identical(open_dataset(asset).load(), _direct(product).load())


# -- virtual products: chunks read by arcodex, values as plain xarray's -------------------------


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Virtual products of packed int16 ``tas`` (scale, offset, _FillValue) and NaN ``sst``."""
    base = tmp_path_factory.mktemp("packed")
    write_archive(base / "src", "packed", files=3, steps=4)
    glob = str(base / "src" / "packed_*.nc")
    return {
        "kerchunk": _convert(glob, "virtual", "kerchunk", base / "p.json"),
        "virtual-icechunk": _convert(glob, "virtual", "icechunk", base / "p.icechunk"),
    }


def _virtual_asset(kind: str, product: Any, **open_kwargs: Any) -> dict[str, Any]:
    if kind == "kerchunk":
        return {
            "href": product.target.url,
            "type": "application/json",
            "roles": ["data", "references"],
            "xarray:open_kwargs": {"engine": "kerchunk", **open_kwargs},
        }
    return {
        "href": product.target.url,
        "type": "application/vnd.icechunk",
        "roles": ["data"],
        "icechunk:virtual_chunk_containers": list(product.containers),
        "xarray:open_kwargs": open_kwargs,
    }


def _plain(kind: str, product: Any) -> Any:
    """The product read the plain way: xarray's kerchunk engine, or zarr on the Icechunk store."""
    if kind == "kerchunk":
        return xr.open_dataset(product.target.url, engine="kerchunk")
    return _direct(product)


def _read_by_arcodex(ds: Any, name: str) -> bool:
    return any("arcodex-read" in str(key) for key in dict(ds[name].data.__dask_graph__()))


# Splitting stored chunks on purpose, to read parts of them: xarray warns that it is slow.
@pytest.mark.filterwarnings("ignore:The specified chunks separate the stored chunks:UserWarning")
@pytest.mark.parametrize("kind", ["kerchunk", "virtual-icechunk"])
@pytest.mark.parametrize(
    "chunks",
    [{"time": 4}, {"time": 3, "lat": 5}, {}],
    ids=["a-file-a-task", "partial-chunks", "store-chunks"],
)
def test_virtual_reads_equal_plain_xarray(
    packed: dict[str, Any], kind: str, chunks: dict[str, int]
) -> None:
    product = packed[kind]
    got = open_dataset(_virtual_asset(kind, product, chunks=chunks))
    plain = _plain(kind, product)
    assert _read_by_arcodex(got, "tas") and _read_by_arcodex(got, "sst")
    assert got.tas.encoding["scale_factor"] == pytest.approx(0.01)  # decoded as xarray does
    assert got.tas.dtype == plain.tas.dtype and bool(got.tas.isnull().any())
    assert bool(got.sst.isnull().any())
    xr.testing.assert_identical(got.compute(), plain.compute())
    window = {"time": slice(1, 10), "lat": slice(2, 9), "lon": slice(3, 11)}
    xr.testing.assert_identical(got.isel(window).compute(), plain.isel(window).compute())
    # The same reduction tree over the same blocks: the same bits.
    same_blocks = plain.chunk(dict(got.chunks))
    for name in ("tas", "sst"):
        assert float(got[name].mean()) == float(same_blocks[name].mean())
    assert float(got.tas.mean()) == pytest.approx(float(plain.tas.compute().mean()), rel=1e-6)


def test_virtual_reads_keep_decode_options_and_missing_chunks(
    packed: dict[str, Any], tmp_path: Path
) -> None:
    refs = json.loads(Path(packed["kerchunk"].target.url).read_text())
    assert json.loads(refs["refs"]["tas/.zarray"])["chunks"][0] == 1
    del refs["refs"]["tas/1.0.0"]  # a chunk never written: zarr fills it with the fill value
    path = tmp_path / "holes.json"
    path.write_text(json.dumps(refs))
    asset = {
        "href": str(path),
        "type": "application/json",
        "roles": ["references"],
        "xarray:open_kwargs": {"chunks": {"time": 4}, "decode_times": False},
    }
    got = open_dataset(asset)
    plain = xr.open_dataset(str(path), engine="kerchunk", decode_times=False)
    assert _read_by_arcodex(got, "tas")
    assert got.time.dtype == plain.time.dtype and not np.issubdtype(got.time.dtype, np.datetime64)
    xr.testing.assert_identical(got.load(), plain.load())
    assert bool(got.tas.isel(time=1).isnull().all())
    # Without Dask (the asset says ``chunks: null``) nothing reads in parallel: zarr's own path.
    lazy = open_dataset({**asset, "xarray:open_kwargs": {"chunks": None, "decode_times": False}})
    assert not isinstance(lazy.tas.data, da.Array)
    xr.testing.assert_identical(lazy.load(), plain.load())


def test_virtual_reads_of_remote_references_go_through_the_store(
    packed: dict[str, Any], tmp_path: Path
) -> None:
    """References to non-local files (here fsspec's memory filesystem) are fetched by the store."""
    import fsspec

    memory = fsspec.filesystem("memory")
    refs = json.loads(Path(packed["kerchunk"].target.url).read_text())
    for key, ref in refs["refs"].items():
        if isinstance(ref, list) and ref and not ref[0].startswith("memory://"):
            name = f"memory://arcodex-test-packed/{Path(ref[0]).name}"
            if not memory.exists(name):
                memory.pipe(name, Path(ref[0]).read_bytes())
            refs["refs"][key] = [name, *ref[1:]]
    path = tmp_path / "remote.json"
    path.write_text(json.dumps(refs))
    try:
        asset = {
            "href": str(path),
            "type": "application/json",
            "roles": ["references"],
            "xarray:open_kwargs": {"chunks": {"time": 4}},
            "xarray:storage_options": {"remote_protocol": "memory"},
        }
        got = open_dataset(asset)
        assert _read_by_arcodex(got, "tas")
        plain = _plain("kerchunk", packed["kerchunk"])
        xr.testing.assert_identical(got.compute(), plain.compute())
    finally:
        memory.rm("memory://arcodex-test-packed", recursive=True)


@pytest.mark.parametrize("layout", ["v2-C", "v2-F", "v3-big-endian"])
def test_chunk_reader_reads_any_region_as_zarr_does(layout: str) -> None:
    import numcodecs
    import zarr
    from zarr.codecs import BytesCodec
    from zarr.codecs.numcodecs import Shuffle, Zlib

    from arcodex.client._chunks import ChunkReader

    store = zarr.storage.MemoryStore()
    if layout.startswith("v2"):
        array = zarr.create_array(
            store, name="g/v", shape=(7, 10, 5), chunks=(3, 4, 5), dtype="i2", zarr_format=2,
            filters=[numcodecs.Shuffle(elementsize=2)], compressors=numcodecs.Zlib(level=1),
            fill_value=-5, order=layout[-1],
        )  # fmt: skip
    else:
        array = zarr.create_array(
            store, name="g/v", shape=(7, 10, 5), chunks=(3, 4, 5), dtype="f4", zarr_format=3,
            serializer=BytesCodec(endian="big"), compressors=[Shuffle(elementsize=4), Zlib(level=1)],
            fill_value=np.nan,
        )  # fmt: skip
    values = np.arange(350).reshape(7, 10, 5).astype(array.dtype)
    array[:6, 4:] = values[:6, 4:]  # the chunks of rows 6 and columns 0-3 stay missing
    reader = ChunkReader.for_array(array)
    assert reader is not None
    regions = [
        (slice(None),) * 3,
        (slice(2, 7), slice(3, 9), slice(1, 4)),
        (slice(6, 7), slice(0, 10), slice(0, 5)),
        (slice(0, 0), slice(None), slice(None)),
        (slice(None, None, 2), slice(9, 0, -3), slice(None)),
    ]
    whole = array[...]
    assert np.isnan(whole[6]).all() if layout.startswith("v3") else (whole[6] == -5).all()
    for region in regions:
        np.testing.assert_array_equal(reader[region], whole[region])  # NaN equals NaN here
        assert reader[region].dtype == whole.dtype


def test_zarr_over_http(site: dict[str, Any]) -> None:
    with http_directory(site["base"]) as url:
        asset = {"href": f"{url}/products/regular-zarr.zarr", "type": "application/vnd+zarr"}
        over_http = open_dataset(asset)
        xr.testing.assert_identical(over_http.load(), _direct(site["products"]["zarr"]).load())
        # A static catalog read over HTTP resolves its relative hrefs to HTTP too.
        client = Client(f"{url}/stac/catalog.json")
        item = client.search(ids=["regular-zarr"])[0]
        assert item.assets["data"].get_absolute_href().startswith(url)
        ds = client.open_dataset(item, variables=["tas"], time=("2000-01-03", "2000-01-04"))
        assert ds.sizes["time"] == 2


def test_stac_api_search_and_open(site: dict[str, Any]) -> None:
    static = pystac.Catalog.from_file(str(site["root"] / "catalog.json"))
    items = []
    for item in static.get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        for asset in item.assets.values():  # a bare /path would resolve against the API's host
            asset.href = Path(asset.href).as_uri()
        items.append({**item.to_dict(transform_hrefs=False), "links": []})
    with _serve_api(items) as url:
        client = Client(url)
        assert client.is_api
        assert {c.id for c in client.list_collections()} == {"arco", "other"}
        assert set(client.search(collections=["other"]).ids()) == {"nemo", "pacific"}
        assert set(client.search(variables=["tos"]).ids()) == {"nemo"}  # filtered client-side
        got = client.open_dataset("regular-icechunk")
        xr.testing.assert_identical(got.load(), _direct(site["products"]["icechunk"]).load())


@pytest.fixture
def nothing_to_open() -> Any:
    item = pystac.Item("bare", None, None, datetime(2000, 1, 1, tzinfo=UTC), {})
    item.add_asset("thumbnail", pystac.Asset("t.png", media_type="image/png"))
    item.add_asset("table", pystac.Asset("t.csv", media_type="text/csv", roles=["data"]))
    return item


def test_refusals(site: dict[str, Any], nothing_to_open: Any, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"thumbnail \(image/png\).*table \(text/csv\)"):
        open_dataset(nothing_to_open)
    with pytest.raises(ValidationError, match="not Zarr"):
        open_dataset({"href": "x.csv", "type": "text/csv"})
    with pytest.raises(NotFoundError, match="no Zarr store"):
        open_dataset({"href": str(tmp_path / "none.zarr"), "type": "application/vnd+zarr"})
    with pytest.raises(NotFoundError, match="no Icechunk repository"):
        open_dataset({"href": str(tmp_path / "none"), "type": "application/vnd.icechunk"})
    client = Client(site["root"])
    with pytest.raises(NotFoundError, match="run `arcodex find --source"):
        client.open_dataset("no-such-item")
    with pytest.raises(ValidationError, match="STAC API"):
        client.search(filter={"op": "=", "args": [{"property": "id"}, "x"]})
    with pytest.raises(NotFoundError):
        Client(tmp_path)
    with pytest.raises(NotFoundError):
        client.search(ids=["regular-zarr"]).open_dataset(3)


# -- searching a static catalog -----------------------------------------------------------------


def test_static_search(site: dict[str, Any]) -> None:
    client = Client(site["root"])
    assert {c.id for c in client.list_collections()} == {"arco", "other"}
    regular = {f"regular-{k}" for k in TARGETS}

    def ids(**kwargs: Any) -> set[str]:
        return set(client.search(**kwargs).ids())

    assert ids() == regular | {"nemo", "pacific"}
    assert ids(collections="other") == {"nemo", "pacific"}
    assert ids(bbox=(170, -10, -170, 10)) == regular | {"pacific"}  # across the antimeridian
    assert ids(bbox=(-175, 0, -170, 5)) == regular | {"pacific"}
    assert ids(bbox=(0, 0, 10, 10)) == regular
    assert ids(bbox=(-20, 50, -15, 55)) == regular | {"nemo"}
    assert ids(datetime="1990") == {"pacific"}
    assert ids(datetime=("1980-01-01", "1995-01-01")) == {"pacific"}
    assert ids(datetime="2000-01-05/..") == regular | {"nemo"}
    assert ids(datetime="../1999-12-31T23:59:59Z") == {"pacific"}
    assert ids(variables=["tos"]) == {"nemo"}
    assert ids(variables=["tas", "tos"]) == set()
    assert ids(collections=["arco"], ids=["nemo", "regular-zarr"]) == {"regular-zarr"}
    assert len(client.search(max_items=2)) == 2


def test_search_results(site: dict[str, Any]) -> None:
    results = Client(site["root"]).search()
    groups = results.groups()
    assert {k: sorted(i.id for i in v) for k, v in groups.items()} == {
        "arco": sorted(f"regular-{k}" for k in TARGETS),
        "other": ["nemo"],  # pacific has no asset to open
    }
    page = results._repr_html_()
    assert all(f"<td><code>{item.id}</code></td>" in page for item in results)
    assert "application/vnd.icechunk" in page and "1990-06-01T00:00:00Z" in page
    assert repr(results).startswith(f"SearchResults({len(results)} item(s)")
    again = SearchResults.from_dict(json.loads(json.dumps(results.to_dict())))
    assert again.to_dict() == results.to_dict()
    assert [i.id for i in results[1:3]] == results.ids()[1:3]


def test_curvilinear_item_with_subset(site: dict[str, Any]) -> None:
    box = (-40.0, 30.0, -20.0, 45.0)
    got = Client(site["root"]).open_dataset("nemo", variables=["tos"], bbox=box)
    want = subset(_direct(site["products"]["nemo"]), bbox=box)
    xr.testing.assert_identical(got.load(), want.load())
    assert {"nav_lat", "nav_lon"} <= set(got.coords)
    assert not np.isnan(got.nav_lat.values).any()  # coordinates are never masked
    inside = _inside(got.nav_lat.values, got.nav_lon.values, box)
    assert inside.any() and not inside.all()
    assert np.isnan(got.tos.values[:, ~inside]).all()


# -- subset -------------------------------------------------------------------------------------


def test_time_subset_on_a_noleap_calendar(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "noleap", files=3, steps=4)  # 2001-02-26, 12 days
    product = _convert(
        str(tmp_path / "src" / "noleap_*.nc"), "zarr", "icechunk", tmp_path / "n.zarr"
    )
    asset = {"href": product.target.url, "type": "application/vnd+zarr"}

    def days(time: Any) -> list[str]:
        ds = open_dataset(asset, time=time)
        return [t.strftime("%m-%d") for t in ds.time.values]

    # No 29 February in a noleap calendar.
    assert days(("2001-02-27", "2001-03-01")) == ["02-27", "02-28", "03-01"]
    assert days("2001-02") == ["02-26", "02-27", "02-28"]
    assert days((None, "2001-02-27")) == ["02-26", "02-27"]
    assert days(("2001-03-08", None)) == ["03-08", "03-09"]
    assert type(open_dataset(asset).time.values[0]).__name__ == "DatetimeNoLeap"


def test_variables_keep_coordinates_and_bounds() -> None:
    ds = _regular(np.arange(-180.0, 180.0, 30.0)).assign(
        pr=lambda d: d.v * 2.0,
        time_bnds=(("time", "nv"), np.zeros((2, 2))),
    )
    ds.time.attrs["bounds"] = "time_bnds"
    out = subset(ds, variables=["pr"])
    assert set(out.data_vars) == {"pr", "time_bnds"}
    assert set(out.coords) == set(ds.coords)
    assert set(subset(ds, variables="v").data_vars) == {"v", "time_bnds"}
    with pytest.raises(ValidationError, match="choose from v, pr, time_bnds"):
        subset(ds, variables=["tas"])
    with pytest.raises(ValidationError, match="south > north"):
        subset(ds, bbox=(0, 10, 20, -10))
    with pytest.raises(ValidationError):
        subset(ds, time=("2000-01-01", "2000-01-02", "2000-01-03"))


def _regular(lon: Any) -> Any:
    lat = np.arange(-85.0, 90.0, 10.0)
    j, i = np.meshgrid(np.arange(lat.size), np.arange(lon.size), indexing="ij")
    values = np.broadcast_to(1000.0 * j + i, (2, lat.size, lon.size))
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), values.copy())},
        coords={
            "time": np.array(["2000-01-01", "2000-01-02"], dtype="datetime64[ns]"),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )
    return ds.chunk({"time": 1, "lat": 6, "lon": 8})


LON180 = np.arange(-180.0, 180.0, 7.5)
LON360 = np.arange(0.0, 360.0, 7.5)
GRIDS = {
    "lon180": _regular(LON180),
    "lon360": _regular(LON360),
    "lat-descending": _regular(LON180).isel(lat=slice(None, None, -1)),
}


def _inside_lon(lon: Any, west: float, east: float) -> Any:
    """Brute force: a longitude is inside if some turn of it lies in [west, east(+360)]."""
    reach = east if west <= east else east + 360.0
    lon = np.asarray(lon, dtype="float64")
    return np.any([(west <= lon + k) & (lon + k <= reach) for k in (-360.0, 0.0, 360.0)], axis=0)


def _inside(lat: Any, lon: Any, box: tuple[float, float, float, float]) -> Any:
    west, south, east, north = box
    return (lat >= south) & (lat <= north) & _inside_lon(lon, west, east)


LONS = st.one_of(
    st.floats(-180.0, 180.0, allow_nan=False),
    st.sampled_from([float(x) for x in np.concatenate([LON180, [180.0]])]),
)

LATS = st.one_of(st.floats(-90.0, 90.0, allow_nan=False), st.sampled_from([-85.0, -5.0, 5.0, 85.0]))


@st.composite
def boxes(draw: Any) -> tuple[float, float, float, float]:
    west, east = draw(LONS), draw(LONS)
    south, north = sorted((draw(LATS), draw(LATS)))
    return west, south, east, north


PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(box=boxes(), grid=st.sampled_from(sorted(GRIDS)))
def test_bbox_on_1d_grids_keeps_exactly_the_cells_inside(
    box: tuple[float, float, float, float], grid: str
) -> None:
    ds = GRIDS[grid]
    out = subset(ds, bbox=box)
    assert isinstance(out.v.data, da.Array)  # still lazy
    lat2, lon2 = np.meshgrid(ds.lat.values, ds.lon.values, indexing="ij")
    inside = _inside(lat2, lon2, box)
    want = set(zip(lat2[inside].tolist(), lon2[inside].tolist(), strict=True))
    got = {(a, o) for a in out.lat.values.tolist() for o in out.lon.values.tolist()}
    assert got == want
    # The data follows its coordinates, and the pieces come in longitude order from west.
    j = np.asarray([int(ds.v.sel(lat=a).values[0, 0]) // 1000 for a in out.lat.values])
    i = np.searchsorted(ds.lon.values, out.lon.values)
    np.testing.assert_array_equal(out.v.values[0], 1000.0 * j[:, None] + i[None, :])
    assert list(out.lat.values) == [a for a in ds.lat.values if a in set(out.lat.values)]
    east_of_west = np.mod(out.lon.values - box[0], 360.0)
    assert (np.diff(east_of_west) > 0).all()


def _curvilinear() -> Any:
    j, i = np.meshgrid(np.arange(15), np.arange(20), indexing="ij")
    angle = np.deg2rad(25.0)
    # A rotated, bent grid straddling the antimeridian.
    raw = 150.0 + 4.0 * (i * np.cos(angle) - j * np.sin(angle)) + 0.1 * j**2
    lon = np.mod(raw + 180.0, 360.0) - 180.0
    lat = -30.0 + 4.0 * (i * np.sin(angle) + j * np.cos(angle)) - 0.05 * (i - 10) ** 2
    ds = xr.Dataset(
        {"v": (("t", "y", "x"), np.broadcast_to(1000.0 * j + i, (2, 15, 20)).copy())},
        coords={
            "nav_lat": (("y", "x"), lat, {"standard_name": "latitude"}),
            "nav_lon": (("y", "x"), lon, {"standard_name": "longitude"}),
        },
    )
    return ds.chunk({"y": 5, "x": 5})


CURVILINEAR = _curvilinear()


@st.composite
def curvilinear_boxes(draw: Any) -> tuple[float, float, float, float]:
    cells = CURVILINEAR.nav_lon.values.ravel().tolist()
    lons = st.one_of(st.floats(-180.0, 180.0, allow_nan=False), st.sampled_from(cells))
    lats = st.one_of(
        st.floats(-40.0, 90.0, allow_nan=False),
        st.sampled_from(CURVILINEAR.nav_lat.values.ravel().tolist()),
    )
    south, north = sorted((draw(lats), draw(lats)))
    return draw(lons), south, draw(lons), north


@PROPERTY
@given(box=curvilinear_boxes())
def test_bbox_on_a_curvilinear_grid_masks_the_cells_outside(
    box: tuple[float, float, float, float],
) -> None:
    ds = CURVILINEAR
    out = subset(ds, bbox=box)
    assert isinstance(out.v.data, da.Array)
    inside = _inside(ds.nav_lat.values, ds.nav_lon.values, box)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        assert out.sizes["y"] == 0 and out.sizes["x"] == 0
        return
    # The smallest window holding every cell inside ...
    assert out.sizes == {"t": 2, "y": rows[-1] - rows[0] + 1, "x": cols[-1] - cols[0] + 1}
    # ... with exactly those cells left unmasked, and no coordinate masked.
    values = out.v.values[0]
    got = set(values[~np.isnan(values)].tolist())
    assert got == set(ds.v.values[0][inside].tolist())
    assert not np.isnan(out.nav_lat.values).any() and not np.isnan(out.nav_lon.values).any()


# -- the package --------------------------------------------------------------------------------


def test_public_names_and_a_light_import() -> None:
    import arcodex.client

    assert arcodex.client.__all__ == ["Client", "SearchResults", "open_dataset", "subset"]
    code = (
        "import sys, arcodex.client; "
        "heavy = [m for m in ('xarray', 'pystac', 'pystac_client', 'zarr', 'icechunk', 'fsspec',"
        " 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


# -- helpers ------------------------------------------------------------------------------------


@contextmanager
def _serve_api(items: list[dict[str, Any]]) -> Iterator[str]:
    """A minimal STAC API (landing page, collections, GET item search by ids/collections)."""
    conformance = [
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.0.0/collections",
    ]

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.do_GET(json.loads(self.rfile.read(length) or b"{}"))

        def do_GET(self, params: dict[str, Any] | None = None) -> None:
            from urllib.parse import parse_qs, urlparse

            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            url = urlparse(self.path)
            if params is None:
                params = {k: v[0].split(",") for k, v in parse_qs(url.query).items()}
            if url.path in ("", "/"):
                body: dict[str, Any] = {
                    "type": "Catalog",
                    "id": "api",
                    "description": "a test API: item search by ids and collections",
                    "stac_version": "1.1.0",
                    "conformsTo": conformance,
                    "links": [
                        {"rel": "self", "href": base},
                        {"rel": "root", "href": base},
                        {"rel": "data", "href": f"{base}/collections"},
                        *(
                            {
                                "rel": "search",
                                "href": f"{base}/search",
                                "type": "application/geo+json",
                                "method": method,
                            }
                            for method in ("GET", "POST")
                        ),
                    ],
                }
            elif url.path == "/collections":
                body = {
                    "collections": [
                        _collection(c, [-180.0, -90.0, 180.0, 90.0]).to_dict()
                        for c in ("arco", "other")
                    ],
                    "links": [],
                }
            elif url.path == "/search":
                found = [
                    {**i, "links": [{"rel": "self", "href": f"{base}/items/{i['id']}"}]}
                    for i in items
                    if ("ids" not in params or i["id"] in params["ids"])
                    and ("collections" not in params or i["collection"] in params["collections"])
                ]
                body = {"type": "FeatureCollection", "features": found, "links": []}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with http_server(Handler) as url:
        yield url
