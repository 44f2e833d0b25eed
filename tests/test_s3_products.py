"""S3 products that others can open (issue 10, section 5).

Every product type is written to S3 (moto on loopback) through a catalog
profile that sets ``region`` and names its own credential variables (not
``AWS_*``), then opened (a) by the client and ``arcodex open`` through the
STAC API served on loopback, and (b) by plain xarray/icechunk/kerchunk in a
fresh process given only the published asset and the standard AWS variables.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.cli import app
from arcodex.client import Client, open_dataset
from arcodex.convert import convert, update
from arcodex.errors import AuthError
from arcodex.storage import FileProfileConfig, S3ProfileConfig
from arcodex.testing import (
    S3_KEY_ID,
    S3_SECRET,
    assert_same_values,
    no_aws_credentials,
    publish_all,
    serve_catalog,
    sources_dataset,
)

KEY_ENV, SECRET_ENV = "PROJECT_S3_KEY", "PROJECT_S3_SECRET"
REGION = "eu-west-1"
#: (to, format, how the destination is chosen) for each product type.
PRODUCTS = {
    "zarr": ("zarr", "icechunk", "profile"),
    "icechunk": ("icechunk", "icechunk", "bucket"),
    "virtual-icechunk": ("virtual", "icechunk", "dest-profile"),
    "kerchunk": ("virtual", "kerchunk", "profile"),
}
EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None, s3_endpoint: str
) -> Iterator[dict[str, Any]]:
    """A bucket holding the sources, a catalog whose profile writes there, one product per type."""
    import boto3

    tmp = tmp_path_factory.mktemp("s3products")
    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    files = write_archive(tmp / "src", "regular", files=3, steps=2)
    for f in files[:2]:
        s3.upload_file(str(f), bucket, f"src/{f.name}")
    s3.upload_file(str(files[2]), bucket, f"new/{files[2].name}")
    profile = S3ProfileConfig(
        bucket=bucket,
        prefix="managed",
        endpoint_url=s3_endpoint,
        region=REGION,
        path_style=True,
        key_env=KEY_ENV,
        secret_env=SECRET_ENV,
    )
    root = tmp / "cat"
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "project": profile})
    with pytest.MonkeyPatch.context() as patch, no_aws_credentials(patch):
        patch.setenv(KEY_ENV, S3_KEY_ID)
        patch.setenv(SECRET_ENV, S3_SECRET)
        ids: dict[str, str] = {}
        with Catalog.create(root, config=config) as cat:
            for name, (to, fmt, how) in PRODUCTS.items():
                where: dict[str, Any] = {"profile": "project", "key": f"products/{name}{EXT[name]}"}
                if how == "bucket":  # outside the profile's prefix: matched by its bucket
                    where = {"dest": f"s3://{bucket}/elsewhere/{name}{EXT[name]}"}
                elif how == "dest-profile":
                    where = {"dest": f"s3://{bucket}/named/{name}{EXT[name]}"}
                    where["dest_profile"] = "project"
                result = convert(
                    f"s3://{bucket}/src/*.nc",
                    to=to,  # type: ignore[arg-type]
                    format=fmt,  # type: ignore[arg-type]
                    catalog=cat,
                    source_profile="project",
                    cluster="threads",
                    **where,
                )
                assert result.status == "pass", result.report.reasons if result.report else None
                assert result.record is not None
                ids[name] = result.record.id
            publish_all(cat)
        with serve_catalog(root) as url:
            yield {
                "root": root,
                "bucket": bucket,
                "endpoint": s3_endpoint,
                "ids": ids,
                "files": files,
                "url": f"{url}/stac",
            }


def _item(world: dict[str, Any], name: str) -> dict[str, Any]:
    resp = httpx.get(f"{world['url']}/search", params={"ids": world["ids"][name]}, timeout=30)
    assert resp.status_code == 200, resp.text
    (feature,) = resp.json()["features"]
    assert isinstance(feature, dict)
    return feature


def _want(world: dict[str, Any], *, raw: bool) -> Any:
    return sources_dataset(world["files"][:2], "time", raw=raw)


# -- what is published ---------------------------------------------------------------------


def test_published_options_are_each_librarys_own_form(world: dict[str, Any]) -> None:
    endpoint = world["endpoint"]
    s3fs = {
        "anon": False,
        "endpoint_url": endpoint,
        "client_kwargs": {"region_name": REGION},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    zarr = _item(world, "zarr")["assets"]["data"]
    assert zarr["xarray:storage_options"] == s3fs
    kerchunk = _item(world, "kerchunk")["assets"]["data"]
    assert kerchunk["xarray:storage_options"] == {
        "remote_protocol": "s3",
        "remote_options": s3fs,
        "target_protocol": "s3",
        "target_options": s3fs,
    }
    for name, prefix in (("icechunk", "elsewhere"), ("virtual-icechunk", "named")):
        asset = _item(world, name)["assets"]["data"]
        assert asset["href"] == f"s3://{world['bucket']}/{prefix}/{name}.icechunk"
        assert asset["icechunk:storage"] == {
            "bucket": world["bucket"],
            "prefix": f"{prefix}/{name}.icechunk",
            "region": REGION,
            "endpoint_url": endpoint,
            "allow_http": True,
            "force_path_style": True,
        }
        assert "xarray:storage_options" not in asset


def test_no_secret_in_records_stac_logs_or_objects(world: dict[str, Any]) -> None:
    import boto3

    for path in world["root"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert S3_SECRET.encode() not in data, path
            assert S3_KEY_ID.encode() not in data, path
    for name in PRODUCTS:
        text = json.dumps(_item(world, name))
        assert S3_SECRET not in text and S3_KEY_ID not in text
    s3 = boto3.client(
        "s3",
        endpoint_url=world["endpoint"],
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=world["bucket"])
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert len([k for k in keys if not k.startswith(("src/", "new/"))]) > 10
    for key in keys:
        if not key.startswith(("src/", "new/")):
            body = s3.get_object(Bucket=world["bucket"], Key=key)["Body"].read()
            assert S3_SECRET.encode() not in body, key


# -- (a) the client and `arcodex open` through the STAC API -----------------------------------


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_client_opens_through_the_stac_api_with_a_named_profile(
    world: dict[str, Any], name: str
) -> None:
    client = Client(world["url"], profile="project", catalog=world["root"])
    with client.open_dataset(world["ids"][name]) as ds:
        assert_same_values(ds.load(), _want(world, raw=False))


# aiobotocore leaves the HTTP session of a client whose credentials could not be found
# unclosed; it is collected (and warns) once the failed s3fs instance is gone.
@pytest.mark.filterwarnings("ignore:Unclosed client session:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_arcodex_open_takes_a_profile_or_the_aws_variables(world: dict[str, Any]) -> None:
    for name in PRODUCTS:
        argv = ["--catalog", str(world["root"]), "open", world["ids"][name]]
        argv += ["--source", world["url"], "--json"]
        done = runner.invoke(app, [*argv, "--profile", "project"])
        assert done.exit_code == 0, (name, done.stdout, done.stderr)
        assert json.loads(done.stdout)["dims"] == {"time": 4, "lat": 12, "lon": 16}
        # Without a profile, and without AWS_*, the one line says what to set.
        failed = runner.invoke(app, argv)
        gc.collect()  # the failed s3fs client's session warns here, where it is ignored
        assert failed.exit_code == 1, (name, failed.stdout, failed.stderr)
        line = failed.stderr.strip()
        assert line.startswith("error: no S3 credentials for s3://"), line
        assert "AWS_ACCESS_KEY_ID" in line and "--profile NAME" in line, line
        assert len(line.splitlines()) == 1
        with pytest.MonkeyPatch.context() as aws:
            aws.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            aws.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            done = runner.invoke(app, argv)
        assert done.exit_code == 0, (name, done.stdout, done.stderr)


def test_a_profile_without_its_variables_is_one_line(world: dict[str, Any]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(SECRET_ENV)
        with pytest.raises(AuthError, match=rf"set \${KEY_ENV} and \${SECRET_ENV}") as caught:
            Client(world["url"], profile="project", catalog=world["root"]).open_dataset(
                world["ids"]["zarr"]
            )
    assert S3_KEY_ID not in str(caught.value)


# -- (b) plain libraries, only the published options and AWS_* ---------------------------------

PLAIN = r"""
import json, sys
import numpy as np
import icechunk
import xarray as xr

out = {}
for name, item in json.load(open(sys.argv[1])).items():
    asset = item["assets"]["data"]
    href, kind = asset["href"], asset["type"]
    if kind == "application/vnd+zarr":
        ds = xr.open_zarr(href, storage_options=asset["xarray:storage_options"], decode_cf=False)
    elif kind == "application/vnd.icechunk":
        storage = icechunk.s3_storage(**asset["icechunk:storage"], from_env=True)
        prefixes = asset.get("icechunk:virtual_chunk_containers", [])
        creds = icechunk.containers_credentials(
            {p: icechunk.s3_credentials(from_env=True) for p in prefixes}
        )
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=creds or None)
        session = repo.readonly_session(snapshot_id=asset["icechunk:snapshot"])
        ds = xr.open_zarr(session.store, consolidated=False, decode_cf=False)
    else:
        ds = xr.open_dataset(
            href,
            engine="kerchunk",
            storage_options=asset["xarray:storage_options"],
            open_dataset_options={"decode_cf": False},
        )
    for var in ("tas", "time", "lat", "lon"):
        out[f"{name}/{var}"] = ds[var].values
np.savez(sys.argv[2], **out)
"""


def _run_plain(tmp_path: Path, out: str) -> None:
    """Run ``plain.py items.json OUT`` in a fresh process that has only the AWS variables."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "plain.py"), "items.json", out],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_plain_libraries_open_with_only_the_published_options(
    world: dict[str, Any], tmp_path: Path
) -> None:
    items = {name: _item(world, name) for name in PRODUCTS}
    (tmp_path / "items.json").write_text(json.dumps(items))
    (tmp_path / "plain.py").write_text(PLAIN)
    _run_plain(tmp_path, "values.npz")
    want = _want(world, raw=True)
    with np.load(tmp_path / "values.npz") as got:
        for name in PRODUCTS:
            for var in ("tas", "time", "lat", "lon"):
                np.testing.assert_array_equal(
                    got[f"{name}/{var}"], want[var].values, err_msg=f"{name}/{var}"
                )


# -- convert and update with profiles ---------------------------------------------------------


def test_dest_without_credentials_is_one_line_naming_what_to_set(
    world: dict[str, Any], tmp_path: Path
) -> None:
    dest = f"s3://{world['bucket']}/nowhere/out.zarr"
    argv = ["convert", str(world["files"][0]), "--to", "zarr", "--dest", dest]
    argv += ["--cluster", "threads", "--no-catalog"]
    done = runner.invoke(app, argv)
    assert done.exit_code == 1, (done.stdout, done.stderr)
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert line == (
        f"error: no S3 credentials for {dest}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or AWS_PROFILE), or pass --dest-profile NAME (an s3 storage profile)"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(KEY_ENV)
        argv = ["--catalog", str(world["root"]), "convert", str(world["files"][0])]
        argv += ["--to", "zarr", "--dest", dest, "--cluster", "threads"]
        done = runner.invoke(app, argv)
    assert done.exit_code == 1, (done.stdout, done.stderr)
    line = done.stderr.strip()
    assert line.startswith(
        "error: storage profile 'project' needs credentials: set $PROJECT_S3_KEY"
    )
    assert S3_SECRET not in done.stderr + done.stdout


def test_cli_convert_and_update_with_dest_profile(world: dict[str, Any]) -> None:
    """A --dest outside any profile's bucket match, reached by --dest-profile, then updated."""
    bucket = world["bucket"]
    dest = f"s3://{bucket}/cli/out.zarr"
    base = ["--catalog", str(world["root"])]
    flags = ["--dest-profile", "project", "--cluster", "threads", "--json"]
    done = runner.invoke(
        app,
        [*base, "convert", f"s3://{bucket}/src/*.nc", "--to", "zarr", "--dest", dest,
         "--source-profile", "project", *flags],
    )  # fmt: skip
    assert done.exit_code == 0, (done.stdout, done.stderr)
    record = json.loads(done.stdout)["record"]
    assert runner.invoke(app, [*base, "publish", record]).exit_code == 0
    done = runner.invoke(app, [*base, "update", dest, f"s3://{bucket}/new/*.nc", *flags])
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["changes"]["appended_steps"] == 2
    with Catalog.open(world["root"]) as cat:
        params = cat.get(record).metadata["convert"]
        assert params["url"] == dest
        found = update(dest, f"s3://{bucket}/new/*.nc", catalog=cat, cluster="threads")
        assert found.changes.get("unchanged"), found.changes
    ds = open_dataset(_item_of(world, record), profile="project", catalog=world["root"])
    with ds:
        want = sources_dataset(world["files"], "time", raw=False)
        assert_same_values(ds.load(), want)


def _item_of(world: dict[str, Any], record_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{world['url']}/search", params={"ids": record_id}, timeout=30)
    (feature,) = resp.json()["features"]
    assert isinstance(feature, dict)
    return feature


# -- the STAC API on loopback -------------------------------------------------------------------


@pytest.fixture
def strict_s3(tmp_path: Path) -> Iterator[str]:
    """moto's S3 server in its own process, checking credentials (it knows none)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as p:
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and p.poll() is None, "moto did not start"
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            p.terminate()
            p.wait(10)


def test_refused_credentials_are_one_line_without_the_secret(
    world: dict[str, Any], strict_s3: str, tmp_path: Path
) -> None:
    profile = S3ProfileConfig(
        bucket="refused",
        endpoint_url=strict_s3,
        region=REGION,
        key_env=KEY_ENV,
        secret_env=SECRET_ENV,
    )
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "strict": profile})
    Catalog.create(tmp_path / "cat", config=config).close()
    argv = ["--catalog", str(tmp_path / "cat"), "convert", str(world["files"][0]), "--to", "zarr"]
    argv += ["--dest", "s3://refused/out.zarr", "--cluster", "threads"]
    done = runner.invoke(app, argv)
    assert done.exit_code == 1, (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "error: S3 refused the credentials of storage profile 'strict' for s3://refused/out.zarr; "
        f"check ${KEY_ENV} and ${SECRET_ENV}"
    )
    assert S3_SECRET not in done.stderr and S3_KEY_ID not in done.stderr


PLAIN_LEVEL = r"""
import json, sys
import numpy as np
import icechunk
import xarray as xr

out = {}
for name, item in json.load(open(sys.argv[1])).items():
    asset = item["assets"]["level-1"]
    group = asset["xarray:open_kwargs"]["group"]
    if asset["type"] == "application/vnd+zarr":
        ds = xr.open_zarr(asset["href"], group=group,
                          storage_options=asset["xarray:storage_options"])
    else:
        storage = icechunk.s3_storage(**asset["icechunk:storage"], from_env=True)
        session = icechunk.Repository.open(storage).readonly_session(
            snapshot_id=asset["icechunk:snapshot"])
        ds = xr.open_zarr(session.store, group=group, consolidated=False)
    out[name] = ds["tas"].values
np.savez(sys.argv[2], **out)
"""


def test_a_pyramid_on_s3_opens_by_level_with_only_what_was_published(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """Each level of a multi-level product on S3 is an asset a consumer opens with the
    published options alone (plain xarray/icechunk, the AWS variables, nothing else)."""
    ids = {}
    with pytest.MonkeyPatch.context() as patch, no_aws_credentials(patch):
        patch.setenv(KEY_ENV, S3_KEY_ID)
        patch.setenv(SECRET_ENV, S3_SECRET)
        with Catalog.open(world["root"]) as cat:
            for to in ("zarr", "icechunk"):
                result = convert(
                    f"s3://{world['bucket']}/src/*.nc",
                    to=to,  # type: ignore[arg-type]
                    catalog=cat,
                    profile="project",
                    key=f"products/pyramid.{to}",
                    source_profile="project",
                    cluster="threads",
                    pyramid=2,
                )
                assert result.status == "pass", result.report.reasons if result.report else None
                assert result.record is not None
                ids[to] = result.record.id
            assert sorted(publish_all(cat)) == sorted(ids.values())
    items = {}
    for to, rid in ids.items():
        resp = httpx.get(f"{world['url']}/search", params={"ids": rid}, timeout=30)
        (items[to],) = resp.json()["features"]
    (tmp_path / "items.json").write_text(json.dumps(items))
    (tmp_path / "plain.py").write_text(PLAIN_LEVEL)
    _run_plain(tmp_path, "levels.npz")
    want = _want(world, raw=False)["tas"].coarsen(lat=2, lon=2).mean().values
    with np.load(tmp_path / "levels.npz") as got:
        for to in ids:
            assert got[to].shape == (4, 6, 8)
            np.testing.assert_allclose(got[to], want, rtol=1e-6, err_msg=to)
