"""The /datasets API over a real catalog of converted products, as each principal sees it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2, which is not installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.catalog._access import Principal
from arcodex.convert import convert
from arcodex.server import create_app


def _product(tmp_path: Path, cat: Catalog, name: str, to: str = "zarr", **kw: Any) -> str:
    files = write_archive(tmp_path / f"src-{name}", files=2, steps=3)
    result = convert(
        [str(f) for f in files],
        to=to,  # type: ignore[arg-type]
        catalog=cat,
        cluster="threads",
        dest=tmp_path / "products" / f"{name}.{to}",
        title=f"Methane {name}",
        **kw,
    )
    assert result.status == "pass"
    assert result.record is not None
    return str(result.record.id)


@pytest.fixture
def catalog_ids(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        ids = {
            "public": _product(tmp_path, cat, "public", to="icechunk", tag="v1"),
            "draft": _product(tmp_path, cat, "draft"),
            "project": _product(tmp_path, cat, "project"),
            "private": _product(tmp_path, cat, "private"),
        }
        cat.publish(ids["public"], user="alice")
        cat.publish(ids["project"], visibility="project:ch4")
        cat.publish(ids["private"], visibility="private")
    return root, ids


def _client(root: Path, principal: Principal | None = None) -> TestClient:
    """A client of the app, as ``principal`` (a real user of the catalog with a token)."""
    headers = {}
    if principal is not None:
        assert principal.name is not None
        with Catalog.open(root) as cat:
            if principal.name not in {u.name for u in cat.users.list()}:
                cat.users.add(principal.name, principal.role, sorted(principal.projects))
            headers["Authorization"] = f"Bearer {cat.users.create_token(principal.name)[1]}"
    return TestClient(create_app(root), headers=headers)


WRITER = Principal(name="w", role="writer")
READER = Principal(name="r", role="reader", projects=frozenset({"ch4"}))


def _ids(body: dict[str, Any]) -> set[str]:
    return {item["id"] for item in body["items"]}


def test_anonymous_sees_only_published_public(catalog_ids: tuple[Path, dict[str, str]]) -> None:
    root, ids = catalog_ids
    with _client(root) as client:
        body = client.get("/datasets").json()
        assert body["kind"] == "datasets"
        assert _ids(body) == {ids["public"]}
        assert body["next"] is None
        # Filters never widen it: the hidden ones are not counted under any filter.
        assert _ids(client.get("/datasets", params={"published": "false"}).json()) == set()
        assert _ids(client.get("/datasets", params={"q": "project"}).json()) == set()
        # Hidden is answered exactly as missing.
        hidden = client.get(f"/datasets/{ids['draft']}")
        missing = client.get("/datasets/no-such-dataset")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["description"].replace(ids["draft"], "X") == missing.json()[
            "description"
        ].replace("no-such-dataset", "X")
        assert client.get(f"/datasets/{ids['public'][:6]}").status_code == 404  # no prefixes
        item = client.get(f"/datasets/{ids['public']}").json()
    assert item["publication"]["published"] is True
    assert item["publication"]["visibility"] == "public"
    assert item["publication"]["published_by"] == "alice"
    assert item["publication"]["snapshot"]
    assert item["check"] == "pass"
    assert item["format"] == "icechunk"
    assert [v["name"] for v in item["versions"] if v["kind"] == "snapshot"] == ["v1"]
    assert set(item["variables"])
    assert item["extent"]["start"] and item["extent"]["end"]
    rels = {link["rel"]: link["href"] for link in item["links"]}
    pid = ids["public"]
    assert rels["zarr"].endswith(f"/zarr/{pid}")
    assert rels["stac-item"].endswith(f"/stac/collections/{pid}/items/{pid}")
    assert rels["ogcapi-collection"].endswith(f"/ogcapi/collections/{pid}")
    assert rels["download"].endswith(f"/datasets/{pid}/download")


def test_readers_and_writers(catalog_ids: tuple[Path, dict[str, str]]) -> None:
    root, ids = catalog_ids
    with _client(root, READER) as client:
        assert _ids(client.get("/datasets").json()) == {ids["public"], ids["project"]}
        assert client.get(f"/datasets/{ids['private']}").status_code == 404
    with _client(root, WRITER) as client:
        assert _ids(client.get("/datasets").json()) == set(ids.values())
        assert _ids(client.get("/datasets", params={"published": "false"}).json()) == {ids["draft"]}
        assert _ids(client.get("/datasets", params={"format": "icechunk"}).json()) == {
            ids["public"]
        }
        assert _ids(client.get("/datasets", params={"q": "draft"}).json()) == {ids["draft"]}
        far = client.get("/datasets", params={"bbox": "100,-10,110,0"}).json()
        near = client.get("/datasets", params={"bbox": "-180,-90,180,90"}).json()
        assert _ids(near) == set(ids.values())
        assert _ids(far) <= _ids(near)
        assert (
            client.get("/datasets", params={"datetime": "1900-01-01/1900-12-31"}).json()["items"]
            == []
        )
        # Paging: two pages of two, by the `next` token, cover everything once.
        first = client.get("/datasets", params={"limit": 2}).json()
        assert len(first["items"]) == 2 and first["next"]
        assert any(link["rel"] == "next" for link in first["links"])
        second = client.get("/datasets", params={"limit": 2, "token": first["next"]}).json()
        assert len(_ids(first) | _ids(second)) == 4
        assert second["next"] is None
        for params in ({"bbox": "1,2"}, {"datetime": "nope"}, {"published": "maybe"}):
            bad = client.get("/datasets", params=params)
            assert bad.status_code == 400, params
            assert "\n" not in bad.json()["description"]


def test_no_paths_or_artifacts_leak(catalog_ids: tuple[Path, dict[str, str]]) -> None:
    root, ids = catalog_ids
    with Catalog.open(root) as cat:
        artifact_ids = {a.id for rid in ids.values() for a in cat.get(rid).artifacts}
    with _client(root, WRITER) as client:
        texts = [client.get("/datasets").text]
        texts += [client.get(f"/datasets/{rid}").text for rid in ids.values()]
    for text in texts:
        assert str(root) not in text
        assert str(root.parent) not in text
        assert "source_options" not in text and "storage_options" not in text
        assert "artifacts" not in text
        assert not any(a in text for a in artifact_ids)


def test_publish_over_http_needs_a_writer(catalog_ids: tuple[Path, dict[str, str]]) -> None:
    root, ids = catalog_ids
    draft = ids["draft"]
    with _client(root) as client:
        answer = client.post(f"/datasets/{draft}/publish")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    with _client(root, READER) as client:
        assert client.post(f"/datasets/{draft}/publish").status_code == 403
        assert client.post(f"/datasets/{ids['public']}/unpublish").status_code == 403
    with _client(root, WRITER) as client:
        done = client.post(f"/datasets/{draft}/publish", params={"visibility": "public"})
        assert done.status_code == 200, done.text
        assert done.json()["publication"]["published_by"] == "w"
        assert (
            client.post(f"/datasets/{draft}/publish", params={"visibility": "x"}).status_code == 400
        )
        assert client.post("/datasets/nope/publish").status_code == 404
    with _client(root) as client:
        assert draft in _ids(client.get("/datasets").json())
    with _client(root, WRITER) as client:
        assert client.post(f"/datasets/{draft}/unpublish").status_code == 200
        assert client.post(f"/datasets/{draft}/unpublish").status_code == 409
    with _client(root) as client:
        assert draft not in _ids(client.get("/datasets").json())
    with Catalog.open(root) as cat:
        record = cat.get(draft)
        assert record.updated_by == "w"


def test_openapi_documents_the_models(catalog_ids: tuple[Path, dict[str, str]]) -> None:
    root, _ = catalog_ids
    with _client(root) as client:
        spec = client.get("/api").json()
    answer = spec["paths"]["/datasets"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/DatasetList")
    assert "DatasetDetail" in json.dumps(spec["paths"]["/datasets/{dataset_id}"])
