"""The STAC API (`arcodex.server`) over real HTTP on loopback.

A small catalog (three converted products, one on a 0–360 grid, and three
NetCDF files, one across the antimeridian) is served by uvicorn in a thread;
pystac-client and stac-api-validator talk to it as to any STAC API. Every test
runs on SQLite and on PostgreSQL; the PostgreSQL catalog is served as a
deployment serves it, by ``arcodex serve --workers 2`` in a child process.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.testing import serve_catalog, serve_workers

pytest.importorskip("stac_fastapi.api")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")

SECRET = "arcodex-stac-test-secret-41b7"
CONFORMANCE = {
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
}


def _netcdf(path: Path, lons: list[float], lats: list[float], start: str) -> Path:
    times = np.array([start, start], dtype="datetime64[ns]") + np.array([0, 1], "timedelta64[D]")
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((2, len(lats), len(lons)), "f4"))},
        coords={
            "time": times,
            "lat": ("lat", np.array(lats), {"units": "degrees_north"}),
            "lon": ("lon", np.array(lons), {"units": "degrees_east"}),
        },
        attrs={"title": path.stem, "institution": "NOC"},
    )
    ds.to_netcdf(path)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ids(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from arcodex.convert import convert

    root = tmp_path_factory.mktemp("stac")
    out: dict[str, Any] = {"root": root / "cat", "backend": request.param}
    if request.param == "postgres":  # the session's database, a schema of this module's own
        config = CatalogConfig(database_url=request.getfixturevalue("postgres").schema_url())
    else:  # named, so that the PostgreSQL run's patches leave it on SQLite
        config = CatalogConfig(database_url=f"sqlite:///{root / 'cat' / 'catalog.sqlite'}")
    with Catalog.create(root / "cat", config=config) as cat:
        for kind, start in (("regular", "2000-01-01"), ("lon360", "2001-06-01")):
            write_archive(root / kind, kind, files=2, steps=4, start=start)
            result = convert(
                str(root / kind / f"{kind}_*.nc"),
                to="zarr",
                catalog=cat,
                cluster="threads",
                storage_options={"key": "AKIAARCODEX", "secret": SECRET},
            )
            assert result.record is not None
            out[kind] = result.record.id
        files = [
            _netcdf(root / "pacific.nc", [170.0, 175, 185, 190], [-10.0, 0, 10], "2003-01-01"),
            _netcdf(root / "atlantic.nc", [-40.0, -30, -20], [20.0, 30, 40], "2004-01-01"),
            _netcdf(root / "japan.nc", [130.0, 135, 140], [30.0, 35, 40], "2005-01-01"),
        ]
        for record in cat.add_files(files):
            out[record.title or record.id] = record.id
        publish_all(cat)
    return out


def publish_all(cat: Catalog) -> None:
    """Publish every dataset (anonymous readers see published public datasets only)."""
    for record in cat.search(kind="dataset", limit=None).records:
        cat.update(record.id, set={"access.published": True, "access.visibility": "public"})


@pytest.fixture(scope="module")
def url(ids: dict[str, Any]) -> Iterator[str]:
    if ids["backend"] == "postgres":
        with serve_workers(ids["root"], workers=2) as served:
            assert len(served.worker_pids()) == 2
            yield served.url
        return
    with serve_catalog(ids["root"]) as base:
        yield base


def _search(url: str, **params: Any) -> list[str]:
    resp = httpx.get(f"{url}/stac/search", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/geo+json")
    return sorted(f["id"] for f in resp.json()["features"])


def _post(url: str, body: dict[str, Any]) -> list[str]:
    resp = httpx.post(f"{url}/stac/search", json={"limit": 100, **body})
    assert resp.status_code == 200, resp.text
    return sorted(f["id"] for f in resp.json()["features"])


def _catalog_ids(ids: dict[str, Any], **kwargs: Any) -> list[str]:
    with Catalog.open(ids["root"]) as cat:
        return sorted(r.id for r in cat.search(kind="dataset", limit=None, **kwargs).records)


def test_landing_page(url: str) -> None:
    body = httpx.get(f"{url}/stac/").json()
    assert set(body["conformsTo"]) >= CONFORMANCE
    links = {link["rel"]: link for link in body["links"]}
    assert links["self"]["href"] == f"{url}/stac/"
    desc = httpx.get(links["service-desc"]["href"])
    assert desc.status_code == 200 and "/stac/search" in desc.json()["paths"]
    queryables = httpx.get(links["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["href"])
    assert "arcodex:check" in queryables.json()["properties"]


def test_collections_items_and_links(url: str, ids: dict[str, Any]) -> None:
    from arcodex.stac import validate_stac

    pid = ids["pacific"]
    collection = httpx.get(f"{url}/stac/collections/{pid}").json()
    assert collection["id"] == pid and collection["type"] == "Collection"
    items = httpx.get(f"{url}/stac/collections/{pid}/items").json()
    assert [f["id"] for f in items["features"]] == [pid]
    item = httpx.get(f"{url}/stac/collections/{pid}/items/{pid}").json()
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["self"] == f"{url}/stac/collections/{pid}/items/{pid}"
    assert links["collection"] == links["parent"] == f"{url}/stac/collections/{pid}"
    assert links["root"] == f"{url}/stac/"
    assert validate_stac([collection, item]).valid
    missing = httpx.get(f"{url}/stac/collections/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["description"]
    assert httpx.get(f"{url}/stac/collections/{pid}/items/other").status_code == 404


def test_no_secrets_in_responses(url: str, ids: dict[str, Any]) -> None:
    rid = ids["regular"]
    for path in ("collections", f"collections/{rid}", f"collections/{rid}/items", "search"):
        assert SECRET not in httpx.get(f"{url}/stac/{path}").text


def test_pystac_client(url: str, ids: dict[str, Any]) -> None:
    from pystac_client import Client

    client = Client.open(f"{url}/stac/")
    assert sorted(c.id for c in client.get_collections()) == _catalog_ids(ids)
    found = client.search(bbox=[-50, 10, -10, 50], datetime="2004-01-01/..", max_items=10)
    want = _catalog_ids(ids, bbox="-50,10,-10,50", time="2004-01-01/..")
    assert sorted(i.id for i in found.items()) == want == [ids["atlantic"]]
    only = client.search(collections=[ids["japan"], ids["regular"]], datetime="../2000-12-31")
    assert [i.id for i in only.items()] == [ids["regular"]]
    filtered = client.search(filter="institution = 'NOC' AND title LIKE 'pac%'", max_items=5)
    assert [i.id for i in filtered.items()] == [ids["pacific"]]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pagination_returns_every_item_once(url: str, ids: dict[str, Any], method: str) -> None:
    from pystac_client import Client

    client = Client.open(f"{url}/stac/")
    pages = list(client.search(limit=1, method=method).pages())
    seen = [item.id for page in pages for item in page.items]
    assert len(pages) == len(seen) == 5
    assert sorted(seen) == _catalog_ids(ids)


def test_or_filter_pages(url: str, ids: dict[str, Any]) -> None:
    from pystac_client import Client

    client = Client.open(f"{url}/stac/")
    text = "title = 'japan' OR title = 'pacific' OR arcodex:check = 'pass'"
    seen = [i.id for page in client.search(filter=text, limit=1).pages() for i in page.items]
    want = [ids["japan"], ids["pacific"], ids["regular"], ids["lon360"]]
    assert sorted(seen) == sorted(want)
    # Sorted, the union pages in the sort's order (newest first), each Item once.
    pages = client.search(filter=text, limit=1, sortby="-properties.datetime").pages()
    newest_first = [i.id for page in pages for i in page.items]
    assert newest_first == [ids["japan"], ids["pacific"], ids["lon360"], ids["regular"]]


def test_bbox_across_antimeridian_and_on_0_360_data(url: str, ids: dict[str, Any]) -> None:
    # The regular grid stops at ±168.75; the 0–360 grid reaches 337.5 (-22.5) across 180.
    across = _search(url, bbox="175,-5,-175,5")
    assert across == sorted([ids["pacific"], ids["lon360"]])
    assert across == _catalog_ids(ids, bbox="175,-5,-175,5")
    # 200..220 east is -160..-140: the global grids hold it, the Pacific box stops at -170.
    assert _search(url, bbox="200,-10,220,10") == sorted([ids["regular"], ids["lon360"]])
    assert _search(url, bbox="172,0,174,1") == [ids["pacific"]]
    # The arcodex client folds a 0–360 box for the API (which takes [-180, 180]).
    from arcodex.client import Client

    folded = Client(f"{url}/stac/").search(bbox=(175, -5, 185, 5))
    assert sorted(i.id for i in folded.items) == across
    geometry = {
        "type": "Polygon",
        "coordinates": [[[131, 31], [139, 31], [135, 39], [131, 31]]],
    }
    hits = _post(url, {"intersects": geometry})
    assert hits == sorted([ids["japan"], ids["regular"], ids["lon360"]])


def test_datetime_ranges(url: str, ids: dict[str, Any]) -> None:
    assert _search(url, datetime="2004-01-01T12:00:00Z") == [ids["atlantic"]]
    assert _search(url, datetime="2004-06-01T00:00:00Z/..") == [ids["japan"]]
    assert _search(url, datetime="../2000-01-02T00:00:00Z") == [ids["regular"]]
    assert _search(url, datetime="2001-01-01T00:00:00Z/2003-12-31T00:00:00Z") == sorted(
        [ids["lon360"], ids["pacific"]]
    )


@pytest.mark.parametrize(
    ("text", "cql2_json"),
    [
        (
            "title LIKE 'pac%' OR title IN ('japan', 'atlantic')",
            {
                "op": "or",
                "args": [
                    {"op": "like", "args": [{"property": "title"}, "pac%"]},
                    {"op": "in", "args": [{"property": "title"}, ["japan", "atlantic"]]},
                ],
            },
        ),
        (
            "S_INTERSECTS(geometry, BBOX(175, -5, -175, 5)) AND NOT arcodex:check = 'pass'",
            {
                "op": "and",
                "args": [
                    {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [175, -5, -175, 5]}]},
                    {"op": "not", "args": [{"op": "=", "args": [{"property": "arcodex:check"}, "pass"]}]},
                ],
            },
        ),
        (
            "T_INTERSECTS(datetime, INTERVAL('2003-01-01', '2004-01-01')) AND properties.institution <> 'x'",
            {
                "op": "and",
                "args": [
                    {"op": "t_intersects", "args": [{"property": "datetime"}, {"interval": ["2003-01-01", "2004-01-01"]}]},
                    {"op": "<>", "args": [{"property": "properties.institution"}, "x"]},
                ],
            },
        ),
        (
            "start_datetime BETWEEN TIMESTAMP('2001-01-01T00:00:00Z') AND TIMESTAMP('2003-06-01T00:00:00Z') AND eo:cloud_cover IS NULL",
            {
                "op": "and",
                "args": [
                    {"op": ">=", "args": [{"property": "start_datetime"}, {"timestamp": "2001-01-01T00:00:00Z"}]},
                    {"op": "<=", "args": [{"property": "start_datetime"}, {"timestamp": "2003-06-01T00:00:00Z"}]},
                    {"op": "isNull", "args": [{"property": "eo:cloud_cover"}]},
                ],
            },
        ),
    ],
)  # fmt: skip
def test_cql2_text_and_json_agree(url: str, text: str, cql2_json: dict[str, Any]) -> None:
    by_text = _search(url, filter=text, **{"filter-lang": "cql2-text"})
    assert by_text
    assert _post(url, {"filter": cql2_json, "filter-lang": "cql2-json"}) == by_text
    assert _search(url, filter=json.dumps(cql2_json), **{"filter-lang": "cql2-json"}) == by_text


def test_cql2_results(url: str, ids: dict[str, Any]) -> None:
    assert _search(url, filter="title LIKE 'pac%'") == [ids["pacific"]]
    assert _search(url, filter="collection < 'a' OR eo:cloud_cover > 3") == _catalog_ids(ids)
    assert _search(url, filter="eo:cloud_cover > 3") == []
    crossing = "S_INTERSECTS(geometry, BBOX(175, -5, -175, 5)) AND NOT arcodex:check = 'pass'"
    assert _search(url, filter=crossing) == [ids["pacific"]]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("S_WITHIN(geometry, POINT(1 2))", "s_within"),
        ("title = ", "not valid CQL2"),
        ("NOT S_INTERSECTS(geometry, POINT(1 2))", "NOT S_INTERSECTS"),
        ("title = other_property", "two properties"),
    ],
)
def test_unsupported_filter_is_400(url: str, text: str, words: str) -> None:
    resp = httpx.get(f"{url}/stac/search", params={"filter": text})
    assert resp.status_code == 400
    assert words in resp.json()["description"]


def test_sort_and_fields(url: str, ids: dict[str, Any]) -> None:
    resp = httpx.get(
        f"{url}/stac/search",
        params={"sortby": "-properties.datetime", "fields": "properties.title,-geometry"},
    )
    features = resp.json()["features"]
    assert [f["id"] for f in features][:2] == [ids["japan"], ids["atlantic"]]
    assert set(features[0]["properties"]) == {"title"} and "geometry" not in features[0]


def _offline_stac_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Core STAC schemas from pystac's bundle: the validator would fetch them from the web.

    Extension schemas are not bundled anywhere, so stac-validator checks core
    STAC only; the extension blocks are checked offline by the arcodex profile
    (``test_collections_items_and_links``).
    """
    import functools

    import stac_api_validator.validations as validations
    import stac_check.lint as lint
    import stac_validator.utilities as utilities
    from pystac.validation.local_validator import get_local_schema_cache

    local = get_local_schema_cache()
    fetch = utilities.fetch_and_parse_file

    def offline(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        if path in local:
            return local[path]
        assert path.startswith("http://127.0.0.1"), f"the validator wants the network: {path}"
        result: dict[str, Any] = fetch(path, headers)
        return result

    monkeypatch.setattr(utilities, "fetch_and_parse_file", offline)
    utilities.fetch_and_parse_schema.cache_clear()  # type: ignore[attr-defined]
    core_only = functools.partial(validations.StacValidate, core=True)
    monkeypatch.setattr(validations, "StacValidate", core_only)
    monkeypatch.setattr(lint, "StacValidate", core_only)


# pystac (walking the catalog for the validator) calls its own deprecated get_all_items.
@pytest.mark.filterwarnings("ignore:get_all_items is deprecated:DeprecationWarning")
def test_stac_api_validator(url: str, ids: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_stac_validator(monkeypatch)
    # Its pagination check pages through one collection, and each collection here
    # holds one item: test_configured_groups_are_collections runs it on a group.
    errors = _validate_api(url, ids["japan"], [131, 31, 139, 39], pagination=False)
    assert not errors, "\n".join(errors)


def _validate_api(url: str, collection: str, box: list[float], *, pagination: bool) -> list[str]:
    """stac-api-validator's errors for the five conformance classes arcodex serves."""
    from stac_api_validator.validations import QueryConfig, validate_api

    west, south, east, north = box
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }
    _, errors = validate_api(
        root_url=f"{url}/stac",
        ccs_to_validate=["core", "collections", "features", "item-search", "filter"],
        collection=collection,
        geometry=json.dumps(geometry),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property=None,
        validate_pagination=pagination,
        query_config=QueryConfig(*[None] * 13),
        transaction_collection=None,
        headers={},
        open_assets_urls=False,
    )
    return list(errors)


@pytest.mark.filterwarnings("ignore:get_all_items is deprecated:DeprecationWarning")
def test_configured_groups_are_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records matching a configured group are Items of that Collection; the rest keep theirs."""
    import asyncio

    from arcodex.catalog import CatalogConfig
    from arcodex.server import create_app
    from arcodex.stac import build_documents, validate_stac

    _offline_stac_validator(monkeypatch)
    config = CatalogConfig(
        stac_collections=[
            {"id": "ocean", "where": ["tags=ocean"], "title": "Ocean", "license": "CC-BY-4.0"}
        ]
    )
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        pacific, atlantic = cat.add_files(
            [
                _netcdf(
                    tmp_path / "pacific.nc", [170.0, 175, 185, 190], [-10.0, 0, 10], "2003-01-01"
                ),
                _netcdf(tmp_path / "atlantic.nc", [-40.0, -30, -20], [20.0, 30, 40], "2004-01-01"),
            ],
            tags=["ocean"],
        )
        (japan,) = cat.add_files(
            [_netcdf(tmp_path / "japan.nc", [130.0, 135, 140], [30.0, 35, 40], "2005-01-01")]
        )
        publish_all(cat)
        docs = build_documents(cat)
        assert validate_stac(list(docs.values())).valid
        collections = {d["id"]: d for d in docs.values() if d["type"] == "Collection"}
        assert set(collections) == {"ocean", japan.id}
        ocean = collections["ocean"]
        assert ocean["license"] == "CC-BY-4.0" and ocean["title"] == "Ocean"
        # The Pacific box crosses the antimeridian: the overall extent spans all longitudes.
        overall = ocean["extent"]["spatial"]["bbox"][0]
        assert overall[0] == -180.0 and overall[2] == 180.0
        assert overall[1] == pytest.approx(-10.0) and overall[3] == pytest.approx(40.0)
        start, end = ocean["extent"]["temporal"]["interval"][0]
        assert start.startswith("2003-01-01") and end.startswith("2004-01-02")
        members = {d["id"]: d["collection"] for d in docs.values() if d["type"] == "Feature"}
        assert members == {pacific.id: "ocean", atlantic.id: "ocean", japan.id: japan.id}

    async def through_the_api() -> None:
        transport = httpx.ASGITransport(app=create_app(tmp_path / "cat"))
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            listed = (await http.get("/stac/collections")).json()["collections"]
            assert sorted(c["id"] for c in listed) == sorted(["ocean", japan.id])
            group = (await http.get("/stac/collections/ocean")).json()
            assert group["extent"]["spatial"]["bbox"][0] == overall
            items = (await http.get("/stac/collections/ocean/items")).json()["features"]
            assert sorted(f["id"] for f in items) == sorted([pacific.id, atlantic.id])
            assert {f["collection"] for f in items} == {"ocean"}
            item = await http.get(f"/stac/collections/ocean/items/{pacific.id}")
            assert item.status_code == 200 and item.json()["collection"] == "ocean"
            # A member is not a Collection of its own, nor an Item of another.
            assert (await http.get(f"/stac/collections/{pacific.id}")).status_code == 404
            assert (
                await http.get(f"/stac/collections/{japan.id}/items/{pacific.id}")
            ).status_code == 404
            found = (await http.get("/stac/search", params={"collections": "ocean"})).json()
            assert sorted(f["id"] for f in found["features"]) == sorted([pacific.id, atlantic.id])
            both = await http.post(
                "/stac/search", json={"collections": ["ocean", japan.id], "bbox": [120, 0, 150, 50]}
            )
            assert [f["id"] for f in both.json()["features"]] == [japan.id]
            mine = (await http.get("/stac/search", params={"collections": pacific.id})).json()
            assert mine["features"] == []

    asyncio.run(through_the_api())
    with serve_catalog(tmp_path / "cat") as url:
        errors = _validate_api(url, "ocean", [-50, 10, -10, 50], pagination=True)
        assert not errors, "\n".join(errors)
    # The client reading the catalog directly sees the same Collections.
    from arcodex.client import Client

    client = Client(tmp_path / "cat")
    assert sorted(c.id for c in client.list_collections()) == sorted(["ocean", japan.id])
    found = client.search(collections="ocean")
    assert sorted(i.id for i in found.items) == sorted([pacific.id, atlantic.id])


def test_bad_group_terms_are_refused_at_load(tmp_path: Path) -> None:
    from arcodex.catalog import load_config
    from arcodex.errors import ValidationError

    (tmp_path / "arcodex.yaml").write_text(
        "stac_collections:\n  - id: ocean\n    where: ['tags']\n", encoding="utf-8"
    )
    with pytest.raises(ValidationError, match=r"stac_collections\.0\.where.*bad query term"):
        load_config(tmp_path)
