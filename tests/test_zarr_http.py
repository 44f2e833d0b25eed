"""Raw Zarr over HTTP (``/zarr/{id}``): every product format opened by plain xarray.

Products are made by ``arcodex.convert`` from NetCDF files the test writes, in a
real SQLite catalog, published, and served by uvicorn on loopback; the client is
``xr.open_zarr(url)`` with no storage options. The HTTP details (ranges, ETags,
caching, CORS, gzip, traversal, hidden datasets) are checked with uvicorn.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex.catalog import Catalog
from arcodex.testing import serve_catalog

xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'fastparquet' engine is deprecated",
    "ignore:.*[Cc]onsolidated metadata.*",
)

PUBLIC = {"access.published": True, "access.visibility": "public"}


def _months(where: Path) -> str:
    where.mkdir(parents=True, exist_ok=True)
    first = pd.Timestamp("2001-01-01")
    lat = np.linspace(-60, 60, 6, dtype="f4")
    lon = np.linspace(0, 350, 8, dtype="f4")
    for i, n in enumerate((31, 28)):
        times = pd.date_range(first, periods=n, freq="D")
        first = times[-1] + pd.Timedelta(days=1)
        values = np.random.default_rng([i, n]).normal(280, 10, (n, 6, 8)).astype("f4")
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={"time": times, "lat": lat, "lon": lon},
        )
        ds.to_netcdf(where / f"m{i:02d}.nc", encoding={"tas": {"chunksizes": (1, 6, 8)}})
    return str(where / "m*.nc")


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None) -> dict[str, Any]:
    from arcodex.convert import convert

    root = tmp_path_factory.mktemp("zarrhttp")
    sources = _months(root / "src")
    out: dict[str, Any] = {"root": root / "cat"}
    kinds: dict[str, dict[str, Any]] = {
        "zarr3.zarr": {"to": "zarr"},
        "zarr2.zarr": {"to": "zarr", "zarr_format": 2},
        "icechunk.icechunk": {"to": "icechunk", "tag": "v1"},
        "kerchunk.json": {"to": "virtual", "format": "kerchunk"},
        "parquet.parq": {"to": "virtual", "format": "kerchunk-parquet"},
        "virtual-icechunk.icechunk": {"to": "virtual", "format": "icechunk"},
    }
    with Catalog.create(root / "cat") as cat:
        for file, kwargs in kinds.items():
            name = file.split(".")[0]
            dest = root / "out" / file
            result = convert(sources, dest=dest, catalog=cat, cluster="threads", **kwargs)
            assert result.record is not None
            cat.update(result.record.id, set=PUBLIC)
            out[name] = result.record.id
        hidden = convert(sources, dest=root / "out" / "h.zarr", catalog=cat, cluster="threads")
        assert hidden.record is not None
        out["unpublished"] = hidden.record.id
        private = convert(sources, dest=root / "out" / "p.zarr", catalog=cat, cluster="threads")
        assert private.record is not None
        cat.update(
            private.record.id, set={"access.published": True, "access.visibility": "private"}
        )
        out["private"] = private.record.id
    return out


@pytest.fixture(scope="module")
def url(ids: dict[str, Any]) -> Iterator[str]:
    with serve_catalog(ids["root"]) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as c:
        yield c


def _local(ids: dict[str, Any], rid: str) -> Any:
    from arcodex.convert import open_product

    return open_product(rid, catalog=ids["root"]).load()


@pytest.mark.parametrize(
    "kind", ["zarr3", "zarr2", "icechunk", "kerchunk", "parquet", "virtual-icechunk"]
)
def test_plain_xarray_opens_every_format(url: str, ids: dict[str, Any], kind: str) -> None:
    rid = ids[kind]
    remote = xr.open_zarr(f"{url}/zarr/{rid}").load()
    local = _local(ids, rid)
    xr.testing.assert_identical(remote.drop_attrs(), local.drop_attrs())
    assert float(remote.tas.mean()) == pytest.approx(float(local.tas.mean()))


def test_icechunk_tag(url: str, ids: dict[str, Any]) -> None:
    rid = ids["icechunk"]
    remote = xr.open_zarr(f"{url}/zarr/{rid}@v1").load()
    xr.testing.assert_identical(remote.drop_attrs(), _local(ids, rid).drop_attrs())
    assert httpx.get(f"{url}/zarr/{rid}@nosuchtag/zarr.json").status_code == 404


def test_hidden_datasets_404_like_missing(client: Any, ids: dict[str, Any]) -> None:
    missing = client.get("/zarr/0000000000000000/zarr.json")
    assert missing.status_code == 404
    for name in ("unpublished", "private"):
        resp = client.get(f"/zarr/{ids[name]}/zarr.json")
        assert resp.status_code == 404
        assert resp.json()["description"].replace(ids[name], "X") == missing.json()[
            "description"
        ].replace("0000000000000000", "X")


def test_missing_chunk_is_404(client: Any, ids: dict[str, Any]) -> None:
    assert client.get(f"/zarr/{ids['zarr3']}/tas/c/999/0/0").status_code == 404
    assert client.get(f"/zarr/{ids['zarr2']}/tas/999.0.0").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "../arcodex.yaml",
        "tas/../../x",
        "%2e%2e/arcodex.yaml",
        "tas%2F..%2F..%2Fx",
        "tas\\..\\x",
        "%5c..%5cx",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "zarr.json%00",
        "./zarr.json",
    ],
)
def test_traversal_is_impossible(url: str, ids: dict[str, Any], path: str) -> None:
    # A raw request: httpx would normalise the dot segments before sending them.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        target = f"/zarr/{ids['zarr3']}/{path}"
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404), (path, answer[:200])
    assert b"arcodex_provenance" not in answer and b"database" not in answer


def _chunk_key(ids: dict[str, Any]) -> str:
    return f"/zarr/{ids['icechunk']}/tas/c/0/0/0"


def test_ranges(client: Any, ids: dict[str, Any]) -> None:
    whole = client.get(_chunk_key(ids))
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data = whole.content
    size = len(data)
    assert size > 10
    part = client.get(_chunk_key(ids), headers={"Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == data[2:6]
    assert part.headers["content-range"] == f"bytes 2-5/{size}"
    suffix = client.get(_chunk_key(ids), headers={"Range": "bytes=-4"})
    assert suffix.status_code == 206 and suffix.content == data[-4:]
    open_ended = client.get(_chunk_key(ids), headers={"Range": "bytes=3-"})
    assert open_ended.content == data[3:]
    bad = client.get(_chunk_key(ids), headers={"Range": f"bytes={size + 5}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    head = client.head(_chunk_key(ids))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)


def test_etag_and_cache_control(client: Any, ids: dict[str, Any]) -> None:
    chunk = client.get(_chunk_key(ids))
    assert "immutable" in chunk.headers["cache-control"]
    again = client.get(_chunk_key(ids), headers={"If-None-Match": chunk.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get(_chunk_key(ids), headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    plain = client.get(f"/zarr/{ids['zarr3']}/tas/c/0/0/0")
    assert plain.status_code == 200
    assert "must-revalidate" in plain.headers["cache-control"]
    assert "immutable" not in plain.headers["cache-control"]
    revalidated = client.get(
        f"/zarr/{ids['zarr3']}/tas/c/0/0/0", headers={"If-None-Match": plain.headers["etag"]}
    )
    assert revalidated.status_code == 304


def test_metadata_gzip(client: Any, ids: dict[str, Any]) -> None:
    import json

    raw = client.get(f"/zarr/{ids['zarr2']}/.zmetadata", headers={"Accept-Encoding": "identity"})
    assert raw.status_code == 200 and "content-encoding" not in raw.headers
    assert "tas/.zarray" in raw.json()["metadata"]
    zipped = client.get(f"/zarr/{ids['zarr2']}/.zmetadata", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(zipped.content) == raw.json()  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(raw.content)
    assert len(gzip.compress(raw.content)) > 0


def test_consolidated_metadata_is_made_for_icechunk(client: Any, ids: dict[str, Any]) -> None:
    root = client.get(f"/zarr/{ids['icechunk']}/zarr.json").json()
    assert "tas" in root["consolidated_metadata"]["metadata"]
    kerchunk = client.get(f"/zarr/{ids['kerchunk']}/.zmetadata").json()
    assert "tas/.zarray" in kerchunk["metadata"]


def test_stac_item_has_zarr_asset(client: httpx.Client, url: str, ids: dict[str, Any]) -> None:
    rid = ids["zarr3"]
    found = client.get("/stac/search", params={"ids": rid}).json()["features"]
    assert len(found) == 1
    asset = found[0]["assets"]["zarr-http"]
    assert asset["href"] == f"{url}/zarr/{rid}" and asset["roles"] == ["data"]
    remote = xr.open_zarr(asset["href"])
    assert "tas" in remote
    hidden = client.get("/stac/search", params={"ids": ids["unpublished"]}).json()["features"]
    assert all("zarr-http" not in f["assets"] for f in hidden)


@pytest.mark.parametrize("encoding", ["br", "gzip", "br, gzip, deflate"])
def test_chunks_are_sent_as_stored_whatever_the_client_accepts(
    client: Any, ids: dict[str, Any], encoding: str
) -> None:
    """No compression on top of a chunk's own codecs: a byte range stays a range of the
    stored bytes, and Content-Length is the stored length."""
    headers = {"Accept-Encoding": encoding}
    with client.stream("GET", _chunk_key(ids), headers=headers) as whole:
        raw = b"".join(whole.iter_raw())
        assert "content-encoding" not in whole.headers
    assert int(whole.headers["content-length"]) == len(raw) > 10
    with client.stream("GET", _chunk_key(ids), headers={**headers, "Range": "bytes=2-9"}) as part:
        assert part.status_code == 206 and "content-encoding" not in part.headers
        assert b"".join(part.iter_raw()) == raw[2:10]


@pytest.mark.parametrize("key", ["tas", "tas/c", "tas/c/0", "tas/c/0/0"])
def test_a_directory_of_a_local_store_is_no_key(client: Any, ids: dict[str, Any], key: str) -> None:
    """A local Zarr v3 store's directories are not values: 404, never their listing or a 500."""
    assert client.get(f"/zarr/{ids['zarr3']}/{key}").status_code == 404
    assert client.get(f"/zarr/{ids['zarr3']}/tas/c/0/0/0").status_code == 200


def test_behind_a_proxy_prefix_keys_answer_with_or_without_it(ids: dict[str, Any]) -> None:
    """Under ``--root-path``, a proxy may pass the prefix on or strip it: /zarr answers
    both (its fast path sees the prefixed path), and a dataset's errors stay documents."""
    rid = ids["zarr3"]
    with serve_catalog(ids["root"], root_path="/arcodex") as base, httpx.Client() as http:
        for path in (f"/arcodex/zarr/{rid}/zarr.json", f"/zarr/{rid}/zarr.json"):
            answer = http.get(base + path)
            assert answer.status_code == 200 and answer.json()["node_type"] == "group", path
        chunk = http.get(f"{base}/arcodex/zarr/{rid}/tas/c/0/0/0", headers={"Range": "bytes=0-9"})
        assert chunk.status_code == 206 and len(chunk.content) == 10
        missing = http.get(f"{base}/arcodex/zarr/{ids['unpublished']}/zarr.json")
        assert missing.status_code == 404 and missing.json()["code"] == "NotFoundError"
        bad = http.get(f"{base}/arcodex/zarr/{rid}/..%2Fsecret")
        assert bad.status_code == 404
