"""STAC built from catalog records: extents, the datacube, assets, validation and export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.stac import (
    bbox_geometry,
    build_documents,
    export_stac,
    load_profile,
    normalise_bbox,
    rfc3339,
    stac_for,
    validate_stac,
)

pystac = pytest.importorskip("pystac")
xr = pytest.importorskip("xarray")


# -- extents ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    west=st.floats(-180, 540, allow_nan=False),
    width=st.floats(0.1, 359.9, allow_nan=False),
    south=st.floats(-90, 89, allow_nan=False),
    height=st.floats(0.1, 90, allow_nan=False),
)
def test_bbox_is_normalised_and_its_geometry_covers_the_same_longitudes(
    west: float, width: float, south: float, height: float
) -> None:
    north = min(90.0, south + height)
    east = west + width
    w, s, e, n = normalise_bbox([west, south, east, north])
    assert -180 <= w <= 180 and -180 <= e <= 180 and (s, n) == (south, north)

    def inside(lon: float, box_w: float, box_e: float) -> bool:
        return box_w <= lon <= box_e if box_w <= box_e else (lon >= box_w or lon <= box_e)

    geometry = bbox_geometry([w, s, e, n])
    assert geometry["type"] == ("Polygon" if w <= e else "MultiPolygon")
    # A longitude well inside the original (0–360 or not) box is inside the normalised one.
    probe = west + width / 2
    folded = ((probe + 180) % 360) - 180
    if min(width / 2, 1.0) > 1e-6:
        assert inside(folded, w, e), (west, east, w, e, folded)


def test_whole_world_and_bad_boxes() -> None:
    assert normalise_bbox([0, -90, 360, 90]) == [-180.0, -90.0, 180.0, 90.0]
    assert normalise_bbox([170, -10, 190, 10]) == [170.0, -10.0, -170.0, 10.0]
    assert normalise_bbox([350, 0, 370, 5]) == [-10.0, 0.0, 10.0, 5.0]
    with pytest.raises(ValueError, match="south"):
        normalise_bbox([0, 10, 5, 0])
    with pytest.raises(ValueError, match="4 numbers"):
        normalise_bbox([0, 1, 2])


def test_rfc3339() -> None:
    assert rfc3339("2000-01-01") == "2000-01-01T00:00:00Z"
    assert rfc3339("2000-01-01T06:00:00+02:00") == "2000-01-01T04:00:00Z"
    import cftime

    assert rfc3339(cftime.DatetimeNoLeap(2001, 2, 28)) == "2001-02-28T00:00:00Z"
    assert rfc3339(None) is None
    with pytest.raises(ValueError, match="ISO 8601"):
        rfc3339("yesterday")


# -- built from converted products --------------------------------------------------------------


@pytest.fixture(scope="module")
def products(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> tuple[Path, dict[str, str]]:
    """A catalog with a product of several archive kinds and formats (record ids by label)."""
    from arcodex.convert import convert

    root = tmp_path_factory.mktemp("stac")
    ids: dict[str, str] = {}
    with Catalog.create(root / "cat") as cat:
        for kind, to, fmt in (
            ("regular", "zarr", "icechunk"),
            ("lon360", "icechunk", "icechunk"),
            ("curvilinear", "virtual", "kerchunk"),
            ("noleap", "virtual", "icechunk"),
            ("depth", "zarr", "icechunk"),
        ):
            files = write_archive(root / kind, kind, files=2, steps=3)
            result = convert(
                [str(f) for f in files], to=to, format=fmt, catalog=cat, cluster="threads"
            )
            ids[kind] = result.record.id
        [added] = cat.add_files([write_archive(root / "plain", "packed", files=1)[0]])
        ids["netcdf"] = added.id
    return root / "cat", ids


def _docs(cat: Catalog, record_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    collection, item = stac_for(cat.get(record_id), cat)
    collection.normalize_hrefs(f"/stac/{record_id}")
    return (
        collection.to_dict(include_self_link=False, transform_hrefs=False),
        item.to_dict(include_self_link=False, transform_hrefs=False),
    )


def test_every_record_gives_valid_stac(products: tuple[Path, dict[str, str]]) -> None:
    root, ids = products
    with Catalog.open(root) as cat:
        docs = [doc for record_id in ids.values() for doc in _docs(cat, record_id)]
    report = validate_stac(docs)
    assert report.valid, [p.to_dict() for p in report.problems]
    assert report.checked == 2 * len(ids)


def test_datacube_and_assets(products: tuple[Path, dict[str, str]]) -> None:
    root, ids = products
    with Catalog.open(root) as cat:
        collection, item = _docs(cat, ids["regular"])
        dims = item["properties"]["cube:dimensions"]
        assert dims["time"]["type"] == "temporal" and dims["time"]["step"] == "P1D"
        assert dims["time"]["extent"] == ["2000-01-01T00:00:00Z", "2000-01-06T00:00:00Z"]
        assert dims["lon"]["axis"] == "x" and dims["lat"]["axis"] == "y"
        assert dims["lat"]["reference_system"] == 4326
        assert item["properties"]["cube:variables"]["tas"]["unit"] == "K"
        assert item["properties"]["proj:code"] == "EPSG:4326"
        asset = item["assets"]["data"]
        assert asset["type"] == "application/vnd+zarr" and "data" in asset["roles"]
        assert asset["xarray:open_kwargs"]["engine"] == "zarr"
        opened = xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"])
        assert opened.sizes["time"] == 6
        assert collection["extent"]["temporal"]["interval"] == [
            ["2000-01-01T00:00:00Z", "2000-01-06T00:00:00Z"]
        ]
        assert collection["providers"][0]["name"]

        _, depth = _docs(cat, ids["depth"])
        assert depth["properties"]["cube:dimensions"]["depth"]["axis"] == "z"

        _, lon360 = _docs(cat, ids["lon360"])
        west, _, east, _ = lon360["bbox"]
        assert -180 <= west <= 180 and -180 <= east <= 180
        assert lon360["assets"]["data"]["type"] == "application/vnd.icechunk"

        _, refs = _docs(cat, ids["curvilinear"])
        assert refs["assets"]["data"]["roles"] == ["data", "references"]
        assert "proj:code" not in refs["properties"], "a curvilinear grid is not EPSG:4326"

        _, virtual = _docs(cat, ids["noleap"])
        containers = virtual["assets"]["data"]["icechunk:virtual_chunk_containers"]
        assert containers and all(c.startswith("file://") for c in containers)
        assert virtual["properties"]["start_datetime"] == "2001-02-26T00:00:00Z"


def test_profile_and_core_problems_are_reported() -> None:
    item = pystac.Item(
        "x",
        geometry={"type": "Point", "coordinates": [0, 0]},
        bbox=[0, 0, 0, 0],
        datetime=None,
        properties={
            "start_datetime": "2000-01-01T00:00:00Z",
            "end_datetime": "2000-01-02T00:00:00Z",
        },
    ).to_dict(include_self_link=False)
    report = validate_stac([item])
    assert not report.valid
    assert {p.schema for p in report.problems} == {"profile"}, "core STAC is fine, the profile not"
    assert any("cube:dimensions" in p.message or "assets" in p.message for p in report.problems)
    broken = dict(item, bbox=[0, 0, 0])
    assert any(p.schema == "core" for p in validate_stac([broken]).problems)


def test_a_replaced_profile_is_used(tmp_path: Path, products: tuple[Path, dict[str, str]]) -> None:
    root, ids = products
    profile = {"type": "object", "required": ["needs-this"]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    with Catalog.open(root) as cat:
        docs = list(_docs(cat, ids["regular"]))
    assert validate_stac(docs).valid
    report = validate_stac(docs, profile=load_profile(path))
    assert not report.valid and "needs-this" in report.problems[0].message


# -- static export ---------------------------------------------------------------------------------


def test_export_is_self_contained_incremental_and_checkable(
    tmp_path: Path,
    products: tuple[Path, dict[str, str]],
    copy_catalog: Callable[[Path, Path], Path],
) -> None:
    source, ids = products
    # This test changes and deletes records: it works on its own copy of the catalog.
    root = copy_catalog(source, tmp_path / "catalog-copy")
    dest = tmp_path / "published"
    with Catalog.open(root) as cat:
        first = export_stac(cat, dest)
        assert first.report.valid and first.written and not first.removed
        again = export_stac(cat, dest)
        assert again.written == [] and again.unchanged == len(first.written)
        assert export_stac(cat, dest, check=True).ok
        cat.update(ids["regular"], title="A new title")
        stale = export_stac(cat, dest, check=True)
        assert not stale.ok and stale.written, "the changed record makes the export stale"
        assert all(ids["regular"] in rel for rel in stale.written if rel != "catalog.json")
        updated = export_stac(cat, dest)
        assert sorted(updated.written) == sorted(stale.written)
        cat.delete(ids["depth"])
        gone = export_stac(cat, dest)
        assert gone.removed and all(ids["depth"] in rel for rel in gone.removed)
        assert not (dest / ids["depth"] / "collection.json").exists()
    # Anyone can read it with plain pystac; links are relative, so it can move.
    moved = tmp_path / "moved"
    dest.rename(moved)
    published = pystac.Catalog.from_file(str(moved / "catalog.json"))
    items = list(published.get_items(recursive=True))
    assert {i.id for i in items} == set(ids.values()) - {ids["depth"]}
    regular = next(i for i in items if i.id == ids["regular"])
    assert regular.properties["title"] == "A new title"
    for path in moved.rglob("*.json"):
        text = path.read_text()
        assert str(tmp_path / "published") not in text, f"{path} links by absolute path"


def test_build_documents_links_are_relative(products: tuple[Path, dict[str, str]]) -> None:
    root, _ = products
    with Catalog.open(root) as cat:
        docs = build_documents(cat, open_data=False)
    assert "catalog.json" in docs
    for rel, doc in docs.items():
        for link in doc["links"]:
            if link["rel"] in ("root", "parent", "child", "item", "collection"):
                assert link["href"].startswith("."), (rel, link)


def test_cli_validate_and_export(tmp_path: Path, products: tuple[Path, dict[str, str]]) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    root, ids = products
    runner = CliRunner()
    done = runner.invoke(app, ["--catalog", str(root), "stac", "validate", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["valid"] is True
    done = runner.invoke(app, ["--catalog", str(root), "stac", "validate", ids["regular"]])
    assert done.exit_code == 0 and "valid" in done.output
    dest = tmp_path / "out"
    done = runner.invoke(app, ["--catalog", str(root), "stac", "export", str(dest)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["--catalog", str(root), "stac", "export", str(dest), "--check"])
    assert done.exit_code == 0, done.output
    (dest / "catalog.json").write_text("{}")
    done = runner.invoke(app, ["--catalog", str(root), "stac", "export", str(dest), "--check"])
    assert done.exit_code == 1, "a tampered catalog is stale"
    done = runner.invoke(app, ["stac", "validate", str(dest)])
    assert done.exit_code != 0


def test_cli_find_and_open_in_the_catalog(products: tuple[Path, dict[str, str]]) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    root, ids = products
    runner = CliRunner()
    done = runner.invoke(app, ["--catalog", str(root), "find", "--variables", "thetao", "--json"])
    assert done.exit_code == 0, done.output
    found = [f["id"] for f in json.loads(done.output)["features"]]
    assert found == [ids["depth"]]
    done = runner.invoke(
        app,
        ["--catalog", str(root), "open", ids["regular"], "--variables", "tas",
         "--bbox", "-30,-20,30,20", "--time", "2000-01-02/2000-01-03", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    opened = json.loads(done.output)
    assert opened["variables"] == ["tas"] and opened["dims"]["time"] == 2
    done = runner.invoke(app, ["--catalog", str(root), "find", "--bbox", "1,2,3"])
    assert done.exit_code == 1 and "west,south,east,north" in done.output


def test_client_opens_every_product_of_the_catalog(products: tuple[Path, dict[str, str]]) -> None:
    """Through the STAC the catalog describes: NetCDF, Zarr, Icechunk, kerchunk, virtual Icechunk."""
    import numpy as np

    from arcodex.client import Client
    from arcodex.convert import open_product

    root, ids = products
    client = Client(str(root))
    with Catalog.open(root) as cat:
        for label, record_id in ids.items():
            with client.open_dataset(record_id) as ds:
                if label == "netcdf":
                    want = xr.open_dataset(cat.path(record_id))
                else:
                    want = open_product(record_id, catalog=cat)
                with want:
                    for name in want.data_vars:
                        np.testing.assert_array_equal(
                            ds[name].values, want[name].values, err_msg=f"{label}: {name}"
                        )


def test_export_to_s3_is_incremental(
    products: tuple[Path, dict[str, str]], s3_endpoint: str, s3_env: None
) -> None:
    """The static catalog published to an S3 endpoint (moto on loopback)."""
    import boto3
    import s3fs

    from arcodex.testing import S3_KEY_ID, S3_SECRET

    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket="published-stac")
    options = {"endpoint_url": s3_endpoint, "skip_instance_cache": True}
    root, ids = products
    with Catalog.open(root) as cat:
        first = export_stac(cat, "s3://published-stac/stac", storage_options=options)
        assert first.written and first.report.valid
        again = export_stac(cat, "s3://published-stac/stac", storage_options=options)
        assert again.written == [] and again.unchanged == len(first.written)
        assert export_stac(cat, "s3://published-stac/stac", storage_options=options, check=True).ok
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    catalog = json.loads(fs.cat_file("published-stac/stac/catalog.json"))
    children = [link["href"] for link in catalog["links"] if link["rel"] == "child"]
    assert len(children) == len(ids)
    assert all(href.startswith("./") for href in children)


def test_icechunk_tags_are_versions(tmp_path: Path) -> None:
    """Each tag of an Icechunk product is an Item of its own, opened at that snapshot."""
    import asyncio

    import httpx

    from arcodex.client import open_dataset
    from arcodex.convert import convert, update
    from arcodex.server import create_app
    from arcodex.stac import version_items

    files = write_archive(tmp_path / "all", "regular", files=3, steps=2)
    with Catalog.create(tmp_path / "cat") as cat:
        made = convert(
            [str(f) for f in files[:2]], to="icechunk", catalog=cat, tag="v1", cluster="threads"
        )
        update(made.record.id, str(files[2]), catalog=cat, tag="v2", cluster="threads")
        record = cat.get(made.record.id)
        _, item = stac_for(record, cat)
        versions = version_items(record, item, cat)
        assert [v.id for v in versions] == [f"{record.id}@v2", f"{record.id}@v1"]
        assert [v.properties["version"] for v in versions] == ["v2", "v1"]
        # Each version describes its own snapshot: v1 ends where the first two files end.
        assert versions[1].properties["end_datetime"] < item.properties["end_datetime"]
        assert versions[0].properties["end_datetime"] == item.properties["end_datetime"]
        assert (
            versions[1].properties["cube:dimensions"]["time"]["extent"][1]
            == (versions[1].properties["end_datetime"])
        )
        with open_dataset(versions[1]) as v1, open_dataset(item) as latest:
            assert v1.sizes["time"] == 4 and latest.sizes["time"] == 6
        docs = build_documents(cat)
        exported = {d["id"]: d for d in docs.values() if d.get("type") == "Feature"}
        assert set(exported) == {record.id, f"{record.id}@v1", f"{record.id}@v2"}
        assert any(link["rel"] == "predecessor-version" for link in exported[record.id]["links"])
        assert validate_stac(list(docs.values())).valid
        cat.publish(record.id)  # anonymous readers of the API see published datasets only

    async def through_the_api() -> None:
        transport = httpx.ASGITransport(app=create_app(tmp_path / "cat"))
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            base = f"/stac/collections/{record.id}/items"
            answer = await http.get(f"{base}/{record.id}@v1")
            assert answer.status_code == 200, answer.text
            assert answer.json()["properties"]["version"] == "v1"
            latest_doc = (await http.get(f"{base}/{record.id}")).json()
            assert any(link["rel"] == "predecessor-version" for link in latest_doc["links"])
            assert (await http.get(f"{base}/{record.id}@v9")).status_code == 404
            every = [record.id, f"{record.id}@v2", f"{record.id}@v1"]
            listed = (await http.get(base)).json()
            assert [f["id"] for f in listed["features"]] == every
            # Pages count Items: a record's versions may span pages, each sent once.
            seen: list[str] = []
            body: dict[str, Any] = {"collections": [record.id], "limit": 2}
            while True:
                page = (await http.post("/stac/search", json=body)).json()
                seen += [f["id"] for f in page["features"]]
                assert len(page["features"]) <= 2
                following = [link for link in page["links"] if link["rel"] == "next"]
                if not following:
                    break
                body = following[0]["body"]
            assert seen == every
            by_id = (await http.get("/stac/search", params={"ids": f"{record.id}@v1"})).json()
            assert [f["id"] for f in by_id["features"]] == [f"{record.id}@v1"]
            assert by_id["features"][0]["properties"]["version"] == "v1"

    asyncio.run(through_the_api())


def test_published_asset_hrefs(tmp_path: Path) -> None:
    """Configured prefixes turn local product paths into the public URLs serving them."""
    from arcodex.catalog import CatalogConfig
    from arcodex.client import Client
    from arcodex.convert import convert
    from arcodex.stac import public_href
    from arcodex.testing import http_directory

    assert public_href("file:///srv/data/a.zarr", {"/srv/data": "https://x.org/d/"}) == (
        "https://x.org/d/a.zarr"
    )
    # Whole path segments only, the longest prefix first.
    prefixes = {"/srv/data": "https://x.org/d", "/srv/data/ocean/": "https://ocean.x.org"}
    assert public_href("file:///srv/database/a.nc", prefixes) == "file:///srv/database/a.nc"
    assert public_href("file:///srv/data/ocean/b.zarr", prefixes) == "https://ocean.x.org/b.zarr"
    assert public_href("s3://bucket/p/c.zarr", {"s3://bucket": "https://b.example"}) == (
        "https://b.example/p/c.zarr"
    )

    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    with http_directory(tmp_path) as url:
        config = CatalogConfig(stac_asset_hrefs={str(tmp_path / "cat"): f"{url}/cat"})
        with Catalog.create(tmp_path / "cat", config=config) as cat:
            made = convert([str(f) for f in files], to="zarr", catalog=cat, cluster="threads")
            assert made.record is not None
            docs = build_documents(cat)
        item = next(d for d in docs.values() if d["id"] == made.record.id and "assets" in d)
        assert item["assets"]["data"]["href"].startswith(f"{url}/cat/")
        # Anyone can open the published Item over HTTP.
        published = pystac.Item.from_dict(item)
        opened = Client(tmp_path / "cat").open_dataset(published, variables=["tas"])
        with made.product.open() as direct:
            xr.testing.assert_identical(opened.load(), direct[["tas"]].load())
