"""The datacube of served STAC Items is the data's, stored when the record was written.

The server never opens data to answer a request (issue 10, section 4), so what
``cube:dimensions``/``cube:variables`` say must come from the record. These tests
serve catalogs through the STAC API (uvicorn on loopback) and compare the Items
with what :func:`arcodex.stac.item_for` makes by opening the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.extract._datacube import DATACUBE
from arcodex.model import Record
from arcodex.testing import publish_all, serve_catalog

pytest.importorskip("stac_fastapi.api")
xr = pytest.importorskip("xarray")

CUBE = ("cube:dimensions", "cube:variables", "start_datetime", "end_datetime", "proj:code")


def _items(url: str, record_id: str) -> dict[str, dict[str, Any]]:
    resp = httpx.get(f"{url}/collections/{record_id}/items", params={"limit": 100}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {f["id"]: f for f in resp.json()["features"]}


def _opened(record: Record, cat: Catalog) -> dict[str, Any]:
    """The Item made by opening the data (the record as an older arcodex wrote it)."""
    from arcodex.stac import item_for

    meta = {k: v for k, v in record.metadata.items() if k != DATACUBE}
    old = record.model_copy(update={"metadata": meta})
    return item_for(old, cat, open_data=True).to_dict()["properties"]


def _times(files: list[Path]) -> tuple[str, str]:
    with xr.open_mfdataset(files, combine="by_coords") as ds:
        values = ds["time"].values
    return (
        str(values[0].astype("datetime64[s]")) + "Z",
        str(values[-1].astype("datetime64[s]")) + "Z",
    )


def test_served_items_carry_the_datacube_of_the_data(tmp_path: Path) -> None:
    from arcodex.convert import convert

    files = write_archive(tmp_path / "src", "regular", files=2, steps=3)
    ids: dict[str, str] = {}
    with Catalog.create(tmp_path / "cat") as cat:
        for to in ("zarr", "icechunk"):
            done = convert(
                str(tmp_path / "src" / "*.nc"),
                to=to,  # type: ignore[arg-type]
                catalog=cat,
                dest=str(tmp_path / f"out.{to}"),
                cluster="threads",
            )
            assert done.record is not None
            ids[to] = done.record.id
        ids["netcdf"] = cat.add_file(files[0]).id
        publish_all(cat)
        want = {name: _opened(cat.get(rid), cat) for name, rid in ids.items()}
        stored = cat.get(ids["zarr"]).metadata[DATACUBE]
    assert len(str(stored)) < 2000  # extents and steps, never coordinate values
    with serve_catalog(tmp_path / "cat") as base:
        url = f"{base}/stac"
        served = {name: _items(url, rid)[rid]["properties"] for name, rid in ids.items()}
    start, end = _times(files)
    for name, props in served.items():
        for key in CUBE:
            assert props.get(key) == want[name].get(key), (name, key)
        dims = props["cube:dimensions"]
        assert dims["lon"]["extent"] == [-168.75, 168.75] and dims["lon"]["step"] == 22.5
        assert dims["lat"]["type"] == "spatial" and dims["lat"]["reference_system"] == 4326
        assert dims["time"]["type"] == "temporal" and dims["time"]["step"] == "P1D"
        assert props["cube:variables"]["tas"]["unit"] == "K"
        assert props["proj:code"] == "EPSG:4326"
    for name in ("zarr", "icechunk"):
        assert served[name]["cube:dimensions"]["time"]["extent"] == [start, end]
    assert served["netcdf"]["cube:dimensions"]["time"]["extent"] == list(_times(files[:1]))


def test_curvilinear_grid_stores_no_coordinate_values(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "curvilinear", files=1, steps=2)
    with Catalog.create(tmp_path / "cat") as cat:
        record = cat.add_file(files[0])
        want = _opened(record, cat)
        publish_all(cat)
    cube = record.metadata[DATACUBE]
    assert len(str(cube)) < 2000
    names = {v["name"]: v for v in cube["variables"]}
    assert names["nav_lat"]["type"] == "auxiliary" and "values" not in names["nav_lat"]
    with serve_catalog(tmp_path / "cat") as base:
        url = f"{base}/stac"
        props = _items(url, record.id)[record.id]["properties"]
    for key in CUBE:
        assert props.get(key) == want.get(key), key
    assert props["cube:dimensions"]["time_counter"]["type"] == "temporal"


def test_update_and_tags_are_served_without_opening(tmp_path: Path) -> None:
    """An update refreshes the stored cube; each tag keeps its own (from the record only)."""
    import shutil

    from arcodex.convert import convert, update

    files = write_archive(tmp_path / "src", "regular", files=3, steps=4)
    with Catalog.create(tmp_path / "cat") as cat:
        done = convert(
            [str(f) for f in files[:2]],
            to="icechunk",
            catalog=cat,
            dest=str(tmp_path / "out.icechunk"),
            cluster="threads",
            tag="v1",
        )
        assert done.record is not None
        rid = done.record.id
        publish_all(cat)
        with serve_catalog(tmp_path / "cat") as base:
            url = f"{base}/stac"
            before = _items(url, rid)
            update(rid, [str(f) for f in files], catalog=cat, cluster="threads", tag="v2")
            after = _items(url, rid)
        record = cat.get(rid)
        want = _opened(record, cat)
    assert sorted(before) == [rid, f"{rid}@v1"]
    assert sorted(after) == [rid, f"{rid}@v1", f"{rid}@v2"]
    end2, end3 = _times(files[:2])[1], _times(files)[1]
    assert before[rid]["properties"]["end_datetime"] == end2
    latest = after[rid]["properties"]
    assert latest["end_datetime"] == end3
    assert latest["cube:dimensions"]["time"]["extent"][1] == end3
    for key in CUBE:
        assert latest.get(key) == want.get(key), key
    assert after[f"{rid}@v1"]["properties"]["end_datetime"] == end2
    assert after[f"{rid}@v1"]["properties"]["cube:dimensions"]["time"]["extent"][1] == end2
    assert after[f"{rid}@v2"]["properties"]["end_datetime"] == end3
    tags = {t["tag"]: t for t in record.metadata["convert"]["tags"]}
    assert tags["v1"]["snapshot"] == after[f"{rid}@v1"]["properties"]["arcodex:snapshot"]
    # The server reads the record only: with the repository gone, the documents stay whole.
    shutil.rmtree(tmp_path / "out.icechunk")
    with serve_catalog(tmp_path / "cat") as base:
        url = f"{base}/stac"
        gone = _items(url, rid)
    assert sorted(gone) == sorted(after)
    assert gone[f"{rid}@v1"]["properties"]["end_datetime"] == end2
    assert gone[rid]["properties"]["cube:dimensions"] == latest["cube:dimensions"]


def test_s3_icechunk_versions_are_served_without_credentials(
    tmp_path: Path, s3_endpoint: str, s3_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tagged versions of a product on S3 are listed by a server that cannot reach S3."""
    import uuid

    import boto3

    from arcodex.convert import convert, update
    from arcodex.storage import FileProfileConfig, S3ProfileConfig
    from arcodex.testing import S3_KEY_ID, S3_SECRET

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    profile = S3ProfileConfig(bucket=bucket, endpoint_url=s3_endpoint, path_style=True)
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "s3": profile})
    files = write_archive(tmp_path / "src", "regular", files=3, steps=2)
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        done = convert(
            [str(f) for f in files[:2]],
            to="icechunk",
            catalog=cat,
            profile="s3",
            key="p/out.icechunk",
            cluster="threads",
            tag="v1",
        )
        assert done.record is not None
        rid = done.record.id
        update(rid, [str(f) for f in files], catalog=cat, cluster="threads", tag="v2")
        publish_all(cat)
    assert str(cat.get(rid).metadata["convert"]["url"]).startswith("s3://")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with serve_catalog(tmp_path / "cat") as base:
        url = f"{base}/stac"
        items = _items(url, rid)
    assert sorted(items) == [rid, f"{rid}@v1", f"{rid}@v2"]
    end2, end3 = _times(files[:2])[1], _times(files)[1]
    assert items[f"{rid}@v1"]["properties"]["end_datetime"] == end2
    assert items[f"{rid}@v2"]["properties"]["end_datetime"] == end3
    assert items[rid]["properties"]["cube:dimensions"]["time"]["extent"][1] == end3
    assert items[f"{rid}@v1"]["assets"]["data"]["icechunk:tag"] == "v1"


def test_non_finite_coordinates_are_indexes_not_nan_extents() -> None:
    """A record cannot hold NaN: such a coordinate is described as an index."""
    import json

    import numpy as np

    from arcodex.extract._datacube import cube_fields, datacube

    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((2, 3)))},
        coords={"lat": [np.nan, np.nan], "lon": [0.0, 1.0, np.inf]},
    )
    cube = datacube(ds)
    json.dumps(cube, allow_nan=False)
    dims, variables = cube_fields(cube)
    assert dims == {
        "lat": {"type": "index", "extent": [0, 1]},
        "lon": {"type": "index", "extent": [0, 2]},
    }
    assert variables["v"]["dimensions"] == ["lat", "lon"] and cube["regular_grid"] is False
