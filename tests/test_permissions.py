"""The permission matrix: every route of the app × role × visibility and publication.

The routes come from ``app.routes``, so a route added later without an entry in
:data:`MATRIX` fails :func:`test_every_route_is_in_the_matrix`. For each route,
principal and record, a record the principal may not see must not show: not its
id nor its title in the body, and a request naming it is answered exactly as one
naming a record that does not exist (same status, same body but for the id).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr

from arcodex.catalog import Catalog

#: The records: visibility and publication (each gets a unique title ``T-<name>``).
RECORDS = {
    "pub-public": ("public", True),
    "draft-public": ("public", False),
    "pub-private": ("private", True),
    "draft-private": ("private", False),
    "pub-proj": ("project:P", True),
    "draft-proj": ("project:P", False),
    "pub-other": ("project:Q", True),
}
#: Who sees which record, written out (not computed by the rule under test).
SEES = {
    "anonymous": {"pub-public"},
    "reader": {"pub-public"},
    "reader-P": {"pub-public", "pub-proj"},
    "writer": set(RECORDS),
    "admin": set(RECORDS),
}
ROLES = {"reader": ("reader", []), "reader-P": ("reader", ["P"]), "writer": ("writer", []),
         "admin": ("admin", [])}  # fmt: skip

Send = Callable[[str, str, dict[str, Any]], httpx.Response]


def _listing(path: str) -> Callable[[Send, str | None], list[httpx.Response]]:
    """A route that names no record: one request, whose body must hold only visible ones."""

    def run(send: Send, record_id: str | None) -> list[httpx.Response]:
        if path == "/stac/search" and record_id:
            return [
                send("GET", path, {"params": {"ids": record_id}}),
                send("POST", path, {"json": {"ids": [record_id]}}),
            ]
        return [send("GET", path, {"params": {"limit": 100}})]

    return run


def _named(
    template: str, method: str = "GET"
) -> Callable[[Send, str | None], list[httpx.Response]]:
    """A route naming a record (``{id}`` in the template)."""

    def run(send: Send, record_id: str | None) -> list[httpx.Response]:
        return [send(method, template.format(id=record_id or "no-such-record"), {})]

    return run


#: An ingestion of a template that does not exist: refused (401, 403, 404), nothing started.
NO_INGESTION = {"template": "none", "extent": "none", "start": "2030-01-01", "end": "2030-01-02"}

#: (path, method) → how to request it. Every route of the app must have an entry.
MATRIX: dict[tuple[str, str], Callable[[Send, str | None], list[httpx.Response]]] = {
    ("/", "GET"): _listing("/"),
    ("/api", "GET"): _listing("/api"),
    ("/api.html", "GET"): _listing("/api.html"),
    ("/docs/oauth2-redirect", "GET"): _listing("/docs/oauth2-redirect"),
    ("/stac/", "GET"): _listing("/stac/"),
    ("/stac/conformance", "GET"): _listing("/stac/conformance"),
    ("/stac/queryables", "GET"): _listing("/stac/queryables"),
    ("/stac/_mgmt/ping", "GET"): _listing("/stac/_mgmt/ping"),
    ("/stac/_mgmt/health", "GET"): _listing("/stac/_mgmt/health"),
    ("/stac/collections", "GET"): _listing("/stac/collections"),
    ("/stac/search", "GET"): _listing("/stac/search"),
    ("/stac/search", "POST"): _listing("/stac/search"),
    ("/stac/collections/{collection_id}", "GET"): _named("/stac/collections/{id}"),
    ("/stac/collections/{collection_id}/items", "GET"): _named("/stac/collections/{id}/items"),
    ("/stac/collections/{collection_id}/items/{item_id}", "GET"): _named(
        "/stac/collections/{id}/items/{id}"
    ),
    ("/stac/collections/{collection_id}/queryables", "GET"): _named(
        "/stac/collections/{id}/queryables"
    ),
    ("/health", "GET"): _listing("/health"),
    ("/ready", "GET"): _listing("/ready"),
    ("/datasets", "GET"): _listing("/datasets"),
    ("/datasets/{dataset_id}", "GET"): _named("/datasets/{id}"),
    ("/datasets/{dataset_id}/download", "GET"): _named("/datasets/{id}/download?format=csv"),
    ("/zarr/{dataset}/{key:path}", "GET"): _named("/zarr/{id}/.zattrs"),
    ("/ogcapi", "GET"): _listing("/ogcapi"),
    ("/ogcapi/", "GET"): _listing("/ogcapi/"),
    ("/ogcapi/conformance", "GET"): _listing("/ogcapi/conformance"),
    ("/ogcapi/openapi", "GET"): _listing("/ogcapi/openapi"),
    ("/ogcapi/collections", "GET"): _listing("/ogcapi/collections"),
    ("/ogcapi/collections/{collection_id}", "GET"): _named("/ogcapi/collections/{id}"),
    ("/templates", "GET"): _listing("/templates"),
    ("/extents", "GET"): _listing("/extents"),
    ("/ingestions", "GET"): _listing("/ingestions"),
    ("/ingestions", "POST"): lambda send, record_id: [
        send("POST", "/ingestions", {"json": NO_INGESTION})
    ],
    ("/sync/{dataset_id}/plan", "GET"): _named("/sync/{id}/plan"),
}
#: Routes whose path names no record (a template, an extent, a job): asked for one that
#: does not exist, each principal gets a 404 (or 401/403) that names no record.
NOT_RECORDS = {
    ("/templates/{template_id}", "GET"): "/templates/no-such-thing",
    ("/extents/{extent_id}", "GET"): "/extents/no-such-thing",
    ("/ingestions/{ingestion_id}", "GET"): "/ingestions/no-such-thing",
}
#: OGC API queries of one collection: hidden must be answered as missing (checked in
#: test_ogc_queries_of_hidden_datasets_are_missing), visible ones need query parameters.
OGC_QUERIES = {
    ("/ogcapi/collections/{collection_id}/area", "GET"),
    ("/ogcapi/collections/{collection_id}/coverage", "GET"),
    ("/ogcapi/collections/{collection_id}/cube", "GET"),
    ("/ogcapi/collections/{collection_id}/position", "GET"),
}
#: Routes that change the catalog (writer and above): (path, method) → the URL template.
#: They are checked without changing anything (the matrix's records stay as they are).
WRITES = {
    ("/datasets/{dataset_id}/publish", "POST"): "/datasets/{id}/publish",
    ("/datasets/{dataset_id}/unpublish", "POST"): "/datasets/{id}/unpublish",
    ("/sync/{dataset_id}", "POST"): "/sync/{id}",
    # A job is no record: every id names a missing job, refused as the others.
    ("/ingestions/{ingestion_id}", "DELETE"): "/ingestions/{id}",
}


def _routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(path, method) of every route, inside included routers and mounts too."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(list(inner.routes))
        elif getattr(route, "methods", None):
            for method in sorted(set(route.methods) - {"HEAD"}):
                yield route.path, method
        else:  # a mounted app (OGC API …): one entry for the mount
            yield getattr(route, "path", repr(route)), "*"


def _netcdf(path: Path, value: float) -> Path:
    xr.Dataset(
        {"t": (("time", "lat", "lon"), np.full((2, 2, 2), value, "f4"))},
        coords={
            "time": np.array(["2030-01-01", "2030-01-02"], dtype="datetime64[ns]"),
            "lat": [0.0, 1.0],
            "lon": [10.0, 11.0],
        },
    ).to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None) -> dict[str, Any]:
    from arcodex.server import create_app

    root = tmp_path_factory.mktemp("perm")
    ids: dict[str, str] = {}
    tokens: dict[str, str] = {}
    with Catalog.create(root / "cat") as cat:
        for n, (name, (visibility, published)) in enumerate(RECORDS.items()):
            (record,) = cat.add_files([_netcdf(root / f"{name}.nc", float(n))])
            cat.update(
                record.id,
                title=f"T-{name}",
                set={"access.visibility": visibility, "access.published": published},
            )
            ids[name] = record.id
        for who, (role, projects) in ROLES.items():
            cat.users.add(who, role, projects)
            tokens[who] = cat.users.create_token(who)[1]
    return {"app": create_app(root / "cat"), "ids": ids, "tokens": tokens}


def _sender(app: Any, token: str | None) -> Send:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def send(method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
                return await http.request(method, url, headers=headers, **kwargs)

        return asyncio.run(go())

    return send


def test_every_route_is_in_the_matrix(world: dict[str, Any]) -> None:
    routes = set(_routes(list(world["app"].routes)))
    missing = sorted(routes - set(MATRIX) - set(WRITES) - set(NOT_RECORDS) - OGC_QUERIES)
    assert not missing, f"routes with no entry in the permission matrix: {missing}"


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_routes_naming_no_record_answer_404(world: dict[str, Any], who: str) -> None:
    send = _sender(world["app"], world["tokens"].get(who))
    for (path, method), url in NOT_RECORDS.items():
        got = send(method, url, {})
        assert got.status_code == 404, (path, who, got.text)
        assert not any(f"T-{name}" in got.text for name in RECORDS), (path, who)


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_matrix(world: dict[str, Any], who: str) -> None:
    send = _sender(world["app"], world["tokens"].get(who))
    ids: dict[str, str] = world["ids"]
    sees = SEES[who]
    for (path, method), run in MATRIX.items():
        if (path, method) not in set(_routes(list(world["app"].routes))):
            continue
        named = "{" in path
        # The answer to a record that does not exist: what every hidden record must get.
        missing = [(r.status_code, r.text) for r in run(send, None)] if named else None
        for name, record_id in ids.items():
            hidden = name not in sees
            answers = run(send, record_id)
            for resp in answers:
                assert resp.status_code < 500, (path, who, name, resp.text)
                # The request's own URL (the self link) echoes what the asker sent.
                body = resp.text.replace(str(resp.request.url), "")
                if hidden and not named:
                    assert record_id not in body and f"T-{name}" not in body, (path, who, name)
                if hidden:
                    assert f"T-{name}" not in body, (path, who, name)
            if named:
                got = [
                    (r.status_code, r.text.replace(record_id, "no-such-record")) for r in answers
                ]
                if hidden:
                    assert got == missing, (path, who, name)
                elif path.startswith("/zarr/") or path == "/ogcapi/collections/{collection_id}":
                    # The matrix's datasets are NetCDF files, which /zarr does not serve as
                    # Zarr (tests/test_zarr_http.py serves every product format): not a 5xx.
                    assert path.startswith("/ogcapi") or all(
                        r.status_code in (200, 404) for r in answers
                    ), (path, who, name)
                else:
                    assert all(r.status_code == 200 for r in answers), (path, who, name)
                    # The answer is of this record (a download names it in its filename).
                    named_in = answers[0].text + answers[0].headers.get("content-disposition", "")
                    assert record_id in named_in, (path, who, name)
            elif path in ("/stac/search", "/stac/collections"):
                assert all(r.status_code == 200 for r in answers), (path, who, name)
                features = {f["id"] for r in answers for f in r.json().get("features", [])}
                listed = {c["id"] for r in answers for c in r.json().get("collections", [])}
                assert (record_id in features | listed) is not hidden, (path, who, name)


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_counts_follow_visibility(world: dict[str, Any], who: str) -> None:
    send = _sender(world["app"], world["tokens"].get(who))
    found = send("GET", "/stac/search", {"params": {"limit": 100}}).json()
    assert found["numberReturned"] == len(SEES[who])
    assert {f["id"] for f in found["features"]} == {world["ids"][n] for n in SEES[who]}
    collections = send("GET", "/stac/collections", {"params": {"limit": 100}}).json()
    assert collections["numberReturned"] == len(SEES[who])
    # A page of one, followed: the pages hold the visible records only, each once.
    seen: list[str] = []
    url, params = "/stac/search", {"limit": 1}
    for _ in range(len(RECORDS) + 2):
        page = send("GET", url, {"params": params}).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        url, params = httpx.URL(nxt[0]["href"]).path, dict(httpx.URL(nxt[0]["href"]).params)
    assert sorted(seen) == sorted(world["ids"][n] for n in SEES[who])


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_writes_need_the_writer_role_and_reveal_nothing(world: dict[str, Any], who: str) -> None:
    send = _sender(world["app"], world["tokens"].get(who))
    expected = {"anonymous": 401, "reader": 403, "reader-P": 403}.get(who)
    for (path, method), template in WRITES.items():
        missing = send(method, template.format(id="no-such-record"), {})
        if expected is None:
            # A writer naming nothing learns only that: 404, and nothing changes.
            assert missing.status_code == 404, (path, who, missing.text)
            continue
        assert missing.status_code == expected, (path, who, missing.text)
        # Refused before the record is looked up: the same answer for every record.
        for name, record_id in world["ids"].items():
            got = send(method, template.format(id=record_id), {})
            assert got.status_code == expected, (path, who, name)
            assert got.text.replace(record_id, "no-such-record") == missing.text, (path, who)


@pytest.mark.parametrize("who", ["anonymous", "reader"])
def test_ogc_queries_of_hidden_datasets_are_missing(world: dict[str, Any], who: str) -> None:
    send = _sender(world["app"], world["tokens"].get(who))
    for path, _ in sorted(OGC_QUERIES):
        url = path.replace("{collection_id}", "{id}")
        missing = send("GET", url.format(id="no-such-record"), {})
        assert missing.status_code == 404, (path, missing.text)
        for name, record_id in world["ids"].items():
            if name in SEES[who]:
                continue
            got = send("GET", url.format(id=record_id), {})
            assert got.status_code == 404, (path, who, name)
            assert f"T-{name}" not in got.text


def _box_netcdf(path: Path, lon: float, year: int, variable: str) -> Path:
    xr.Dataset(
        {variable: (("time", "lat", "lon"), np.zeros((2, 2, 2), "f4"))},
        coords={
            "time": np.array([f"{year}-01-01", f"{year}-01-02"], dtype="datetime64[ns]"),
            "lat": [0.0, 1.0],
            "lon": [lon, lon + 1.0],
        },
    ).to_netcdf(path)
    return path


def test_a_group_collection_is_made_of_the_members_its_asker_sees(tmp_path: Path) -> None:
    """A hidden member widens neither the extent nor the cube nor the keywords of its group."""
    from arcodex.catalog import CatalogConfig
    from arcodex.server import create_app

    config = CatalogConfig(stac_collections=[{"id": "ocean", "where": ["tags=ocean"]}])
    members = {  # name → (lon, year, variable, visibility, published)
        "shown": (10.0, 2030, "sst", "public", True),
        "draft": (100.0, 2040, "draft_var", "public", False),
        "private": (-120.0, 2050, "private_var", "private", True),
    }
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        for name, (lon, year, variable, visibility, published) in members.items():
            path = _box_netcdf(tmp_path / f"{name}.nc", lon, year, variable)
            (record,) = cat.add_files([path], tags=["ocean", f"tag-{name}"])
            cat.update(
                record.id,
                title=f"T-{name}",
                set={"access.visibility": visibility, "access.published": published},
            )
        cat.users.add("admin", "admin", [])
        cat.users.add("reader", "reader", [])
        tokens = {who: cat.users.create_token(who)[1] for who in ("admin", "reader")}
    app = create_app(tmp_path / "cat")

    def group(who: str | None) -> dict[str, Any]:
        send = _sender(app, tokens.get(who or ""))
        one = send("GET", "/stac/collections/ocean", {})
        assert one.status_code == 200, one.text
        listed = send("GET", "/stac/collections", {}).json()["collections"]
        assert [c for c in listed if c["id"] == "ocean"] == [one.json()]
        return dict(one.json())

    # The admin asks first, so that a cached Collection would be the one with every member.
    for who, seen in [("admin", set(members)), (None, {"shown"}), ("reader", {"shown"}),
                      ("admin", set(members))]:  # fmt: skip
        doc = group(who)
        west, _, east, _ = doc["extent"]["spatial"]["bbox"][0]
        start, end = doc["extent"]["temporal"]["interval"][0]
        lons = [members[n][0] for n in seen]
        years = [members[n][1] for n in seen]
        assert (west, east) == (pytest.approx(min(lons)), pytest.approx(max(lons) + 1.0)), who
        assert start.startswith(f"{min(years)}-01-01"), who
        assert end.startswith(f"{max(years)}-01-02"), who
        assert set(doc["cube:variables"]) == {members[n][2] for n in seen}, who
        assert {k for k in doc.get("keywords", []) if k.startswith("tag-")} == {
            f"tag-{n}" for n in seen
        }, who
        for name in set(members) - seen:
            assert f"T-{name}" not in json.dumps(doc) and members[name][2] not in json.dumps(doc)
