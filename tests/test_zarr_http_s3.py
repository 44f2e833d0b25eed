"""Raw Zarr over HTTP (``/zarr/{id}``) of products on S3: plain xarray, no credentials.

The sources are NetCDF files on S3 (moto on loopback) and every product format is
converted onto S3 through a catalog profile whose credentials are in its own variables
(not ``AWS_*``), published and served by uvicorn on loopback. The reader is
``xr.open_zarr(url)`` with no storage options, here and in a fresh process that has no
credential of any kind; the HTTP details that depend on where the bytes are (ranges,
ETags and 304, HEAD, 404) are checked on S3 chunks. A virtual product's chunks are read
from its S3 sources, by the server, with the profile whose bucket holds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.storage import FileProfileConfig, S3ProfileConfig
from arcodex.testing import (
    S3_KEY_ID,
    S3_SECRET,
    no_aws_credentials,
    publish_all,
    serve_catalog,
)

xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'fastparquet' engine is deprecated",
    "ignore:.*[Cc]onsolidated metadata.*",
)

KEY_ENV, SECRET_ENV = "ZARR_HTTP_S3_KEY", "ZARR_HTTP_S3_SECRET"
#: How each product format is made (the kinds of tests/test_zarr_http.py), and its key.
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "zarr3": ("zarr3.zarr", {"to": "zarr"}),
    "zarr2": ("zarr2.zarr", {"to": "zarr", "zarr_format": 2}),
    "icechunk": ("icechunk.icechunk", {"to": "icechunk", "tag": "v1"}),
    "kerchunk": ("kerchunk.json", {"to": "virtual", "format": "kerchunk"}),
    "parquet": ("parquet.parq", {"to": "virtual", "format": "kerchunk-parquet"}),
    "virtual-icechunk": ("virtual.icechunk", {"to": "virtual", "format": "icechunk"}),
}
#: A chunk of ``tas`` in each format's own key scheme.
CHUNK = {"zarr3": "tas/c/0/0/0", "zarr2": "tas/0.0.0", "icechunk": "tas/c/0/0/0"}
#: Another chunk of the same product (of ``lat``).
LAT = {"zarr3": "lat/c/0", "zarr2": "lat/0", "icechunk": "lat/c/0"}


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None, s3_endpoint: str
) -> Iterator[dict[str, Any]]:
    """Sources on S3, one product of each format next to them, all published and served."""
    import boto3
    from distributed import Client, LocalCluster

    tmp = tmp_path_factory.mktemp("zarrhttps3")
    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    for f in write_archive(tmp / "src", "regular", files=2, steps=2):
        s3.upload_file(str(f), bucket, f"src/{f.name}")
    profile = S3ProfileConfig(
        bucket=bucket,
        prefix="managed",
        endpoint_url=s3_endpoint,
        region="eu-west-1",
        path_style=True,
        key_env=KEY_ENV,
        secret_env=SECRET_ENV,
    )
    root = tmp / "cat"
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "project": profile})
    # The server reads S3 with the profile's variables for the whole module; no AWS_* at all.
    with pytest.MonkeyPatch.context() as patch, no_aws_credentials(patch):
        patch.setenv(KEY_ENV, S3_KEY_ID)
        patch.setenv(SECRET_ENV, S3_SECRET)
        ids: dict[str, str] = {}
        # One in-process cluster for the six conversions (starting one each costs more).
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
            ) as cluster,
            Client(cluster, set_as_default=False) as dask,
            Catalog.create(root, config=config) as cat,
        ):
            for name, (key, kwargs) in KINDS.items():
                ids[name] = _convert(cat, bucket, key, dask, kwargs)
            publish_all(cat)
        with serve_catalog(root) as url:
            yield {"root": root, "bucket": bucket, "ids": ids, "url": url, "s3": s3}


def _convert(cat: Catalog, bucket: str, key: str, dask: Any, kwargs: dict[str, Any]) -> str:
    from arcodex.convert import convert

    result = convert(
        f"s3://{bucket}/src/*.nc",
        catalog=cat,
        profile="project",
        key=f"products/{key}",
        source_profile="project",
        cluster=dask,
        **kwargs,
    )
    assert result.status == "pass", result.report.reasons if result.report else None
    assert result.record is not None
    primary = next(a for a in result.record.artifacts if a.role == "primary")
    assert cat.locate(primary).startswith(f"s3://{bucket}/managed/products/"), primary
    return result.record.id


@pytest.fixture(scope="module")
def client(world: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world["url"], timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def local(world: dict[str, Any]) -> dict[str, Any]:
    """Each product opened directly (with the profile), as its owner sees it."""
    from arcodex.convert import open_product

    return {
        name: open_product(rid, catalog=world["root"], source_profile="project").load()
        for name, rid in world["ids"].items()
    }


@pytest.mark.parametrize("name", list(KINDS))
def test_plain_xarray_opens_every_s3_format(
    world: dict[str, Any], local: dict[str, Any], name: str
) -> None:
    # No AWS_* here (the world's patch); the profile's variables are the in-process
    # server's. A reader without even those is test_a_reader_with_no_credential_at_all.
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    remote = xr.open_zarr(f"{world['url']}/zarr/{world['ids'][name]}").load()
    xr.testing.assert_identical(remote.drop_attrs(), local[name].drop_attrs())
    assert remote.tas.shape == (4, 12, 16)
    assert float(remote.tas.mean()) == pytest.approx(float(local[name].tas.mean()))


READER = r"""
import json, sys
import numpy as np
import xarray as xr

out = {name: xr.open_zarr(url)["tas"].values for name, url in json.load(open(sys.argv[1])).items()}
np.savez(sys.argv[2], **out)
"""


def test_a_reader_with_no_credential_at_all(
    world: dict[str, Any], local: dict[str, Any], tmp_path: Path
) -> None:
    """A fresh process with neither AWS_* nor the profile's variables reads every format."""
    urls = {name: f"{world['url']}/zarr/{rid}" for name, rid in world["ids"].items()}
    (tmp_path / "urls.json").write_text(json.dumps(urls))
    (tmp_path / "reader.py").write_text(READER)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-I", "reader.py", "urls.json", "tas.npz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "tas.npz") as got:
        for name in KINDS:
            np.testing.assert_array_equal(got[name], local[name].tas.values, err_msg=name)


def test_icechunk_tag_on_s3(
    world: dict[str, Any], local: dict[str, Any], client: httpx.Client
) -> None:
    rid = world["ids"]["icechunk"]
    remote = xr.open_zarr(f"{world['url']}/zarr/{rid}@v1").load()
    xr.testing.assert_identical(remote.drop_attrs(), local["icechunk"].drop_attrs())
    assert client.get(f"/zarr/{rid}@nosuchtag/zarr.json").status_code == 404


def _stored(world: dict[str, Any], name: str) -> bytes:
    """The bytes of the product's chunk ``CHUNK[name]`` as S3 holds them."""
    key = f"managed/products/{KINDS[name][0]}/{CHUNK[name]}"
    body = world["s3"].get_object(Bucket=world["bucket"], Key=key)["Body"].read()
    assert isinstance(body, bytes)
    return body


@pytest.mark.parametrize("name", list(CHUNK))
def test_ranges_and_head_of_an_s3_chunk(
    world: dict[str, Any], client: httpx.Client, name: str
) -> None:
    key = f"/zarr/{world['ids'][name]}/{CHUNK[name]}"
    whole = client.get(key)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data = whole.content
    size = len(data)
    assert size > 10 and int(whole.headers["content-length"]) == size
    if name != "icechunk":  # Icechunk keeps chunks under its own names
        assert data == _stored(world, name)
    part = client.get(key, headers={"Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == data[2:6]
    assert part.headers["content-range"] == f"bytes 2-5/{size}"
    suffix = client.get(key, headers={"Range": "bytes=-4"})
    assert suffix.status_code == 206 and suffix.content == data[-4:]
    open_ended = client.get(key, headers={"Range": "bytes=3-"})
    assert open_ended.status_code == 206 and open_ended.content == data[3:]
    bad = client.get(key, headers={"Range": f"bytes={size + 5}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    head = client.head(key)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == whole.headers["etag"]
    head_part = client.head(key, headers={"Range": "bytes=2-5"})
    assert head_part.status_code == 206 and head_part.headers["content-length"] == "4"


@pytest.mark.parametrize("name", list(CHUNK))
def test_etag_and_304_of_an_s3_chunk(
    world: dict[str, Any], client: httpx.Client, name: str
) -> None:
    key = f"/zarr/{world['ids'][name]}/{CHUNK[name]}"
    chunk = client.get(key)
    etag = chunk.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert client.get(key).headers["etag"] == etag, "an ETag is stable"
    again = client.get(key, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.head(key, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(key, headers={"If-None-Match": '"nope"'}).status_code == 200
    control = chunk.headers["cache-control"]
    if name == "icechunk":
        assert "immutable" in control
    else:
        assert "must-revalidate" in control and "immutable" not in control
    other = client.get(f"/zarr/{world['ids'][name]}/{LAT[name]}")
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_an_s3_chunk_rewritten_gets_a_new_etag(world: dict[str, Any], client: httpx.Client) -> None:
    """A mutable store's ETag follows its bytes: a cache never keeps a changed chunk."""
    key = f"/zarr/{world['ids']['zarr3']}/{CHUNK['zarr3']}"
    before = client.get(key)
    s3_key = f"managed/products/{KINDS['zarr3'][0]}/{CHUNK['zarr3']}"
    original = _stored(world, "zarr3")
    world["s3"].put_object(Bucket=world["bucket"], Key=s3_key, Body=original[::-1])
    try:
        after = client.get(key, headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and after.content == original[::-1]
        assert after.headers["etag"] != before.headers["etag"]
    finally:
        world["s3"].put_object(Bucket=world["bucket"], Key=s3_key, Body=original)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("zarr3", "tas/c/999/0/0"),
        ("zarr2", "tas/999.0.0"),
        ("icechunk", "tas/c/999/0/0"),
        ("kerchunk", "tas/999.0.0"),
        ("parquet", "tas/999.0.0"),
        ("virtual-icechunk", "tas/c/999/0/0"),
        ("zarr3", "nothing/zarr.json"),
        ("zarr2", "nothing/.zarray"),
        ("zarr3", "tas"),  # an S3 "directory" is no key
        ("zarr3", "tas/c/0"),
    ],
)
def test_a_missing_s3_key_is_404(
    world: dict[str, Any], client: httpx.Client, name: str, key: str
) -> None:
    url = f"/zarr/{world['ids'][name]}/{key}"
    assert client.get(url).status_code == 404
    assert client.head(url).status_code == 404


def test_metadata_of_s3_products(world: dict[str, Any], client: httpx.Client) -> None:
    zarr2 = client.get(f"/zarr/{world['ids']['zarr2']}/.zmetadata").json()
    assert "tas/.zarray" in zarr2["metadata"]
    for name in ("zarr3", "icechunk", "virtual-icechunk"):
        root = client.get(f"/zarr/{world['ids'][name]}/zarr.json").json()
        assert "tas" in root["consolidated_metadata"]["metadata"], name
    for name in ("kerchunk", "parquet"):
        refs = client.get(f"/zarr/{world['ids'][name]}/.zmetadata").json()
        assert "tas/.zarray" in refs["metadata"], name


@pytest.mark.parametrize("name", ["kerchunk", "virtual-icechunk"])
def test_a_download_of_a_virtual_s3_product(
    world: dict[str, Any], local: dict[str, Any], client: httpx.Client, tmp_path: Path, name: str
) -> None:
    """The other readers of a served product (``/datasets`` downloads, the OGC API) read a
    virtual product's S3 sources with the profile that holds them too."""
    answer = client.get(f"/datasets/{world['ids'][name]}/download")
    assert answer.status_code == 200, answer.text
    (tmp_path / "got.nc").write_bytes(answer.content)
    with xr.open_dataset(tmp_path / "got.nc") as got:
        np.testing.assert_array_equal(got.tas.values, local[name].tas.values)
