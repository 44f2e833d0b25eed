"""``arcodex serve`` as a service: probes, logs, shutdown, a proxy's prefix, live reload."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.cli import app as cli
from arcodex.model import Record
from arcodex.storage import FileProfileConfig, S3ProfileConfig
from arcodex.testing import S3_KEY_ID, S3_SECRET, LocalPostgres, serve_catalog, serve_workers

pytest.importorskip("stac_fastapi.api")


def _dataset(i: int) -> Record:
    return Record(
        id=f"d{i}",
        kind="dataset",
        title=f"dataset {i}",
        metadata={
            "site": "north" if i % 2 else "south",
            "bbox": [0, 0, 1, 1],
            # Published (anonymous readers see published public datasets only).
            "access": {"visibility": "public", "published": True},
        },
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with Catalog.create(tmp_path / "cat") as cat:
        cat.add_records([_dataset(i) for i in range(4)], user="test")
    return tmp_path / "cat"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- /health and /ready ----------------------------------------------------------------------


def test_health_and_ready_when_all_is_well(root: Path) -> None:
    with serve_catalog(root) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert set(ready.json()["checks"]) >= {"database", "storage:local"}
        assert set(ready.json()["checks"].values()) == {"ok"}


def test_ready_fails_when_a_storage_directory_is_gone(tmp_path: Path) -> None:
    archive = tmp_path / "archive-of-the-lab"
    archive.mkdir()
    config = CatalogConfig(profiles={"archive": FileProfileConfig(root=str(archive))})
    Catalog.create(tmp_path / "cat", config=config).close()
    with serve_catalog(tmp_path / "cat") as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/ready").status_code == 200
        archive.rmdir()
        import arcodex.server._health as health

        # The answer is kept for a moment; the next one after it sees the change.
        health.KEEP, kept = 0.0, health.KEEP
        try:
            ready = client.get("/ready")
        finally:
            health.KEEP = kept
        assert client.get("/health").status_code == 200  # alive, though not ready
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["checks"]["storage:archive"].startswith("not found")
    assert body["checks"]["database"] == "ok"
    assert "archive-of-the-lab" not in ready.text  # no path in a public answer


def test_ready_fails_when_the_bucket_does_not_answer(tmp_path: Path) -> None:
    # An S3 endpoint on a loopback port nothing listens on.
    profile = S3ProfileConfig(
        bucket="nowhere",
        endpoint_url=f"http://127.0.0.1:{_free_port()}",
        region="us-east-1",
        anonymous=True,
    )
    config = CatalogConfig(profiles={"bucket": profile})
    Catalog.create(tmp_path / "cat", config=config).close()
    with serve_catalog(tmp_path / "cat") as url, httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage:bucket"] != "ok"
    assert "127.0.0.1" not in ready.text


def test_ready_with_a_real_bucket(tmp_path: Path, s3_endpoint: str, s3_env: None) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    s3.create_bucket(Bucket="ready-bucket")
    profile = S3ProfileConfig(
        bucket="ready-bucket", prefix="p", endpoint_url=s3_endpoint, region="us-east-1"
    )
    config = CatalogConfig(profiles={"bucket": profile})
    Catalog.create(tmp_path / "cat", config=config).close()
    with serve_catalog(tmp_path / "cat") as url, httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["storage:bucket"] == "ok"


def test_ready_fails_when_the_database_is_gone(
    tmp_path: Path, pg_url: str, postgres: LocalPostgres
) -> None:
    Catalog.create(tmp_path / "cat", config=CatalogConfig(database_url=pg_url)).close()
    with serve_catalog(tmp_path / "cat") as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/ready").status_code == 200
        schema = pg_url.rsplit("schema=", 1)[-1]
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        import arcodex.server._health as health

        health.KEEP, kept = 0.0, health.KEEP
        try:
            ready = client.get("/ready")
        finally:
            health.KEEP = kept
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] != "ok"


# -- live reload of groups and STAC settings ---------------------------------------------------


def _collection_ids(client: httpx.Client) -> set[str]:
    response = client.get("/stac/collections")
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["collections"]}


def _set_config(root: Path, **settings: object) -> None:
    """Change settings of the catalog's arcodex.yaml, keeping the rest (its database)."""
    path = root / "arcodex.yaml"
    config = yaml.safe_load(path.read_text()) if path.exists() else None
    path.write_text(yaml.safe_dump({**(config or {}), **settings}))


def test_groups_reload_without_a_restart(root: Path) -> None:
    with (
        serve_catalog(root, reload_interval=0) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert _collection_ids(client) == {"d0", "d1", "d2", "d3"}
        # A group in arcodex.yaml gathers the northern datasets.
        _set_config(root, stac_collections=[{"id": "north", "where": ["site=north"]}])
        assert _collection_ids(client) == {"north", "d0", "d2"}
        # A collection record defines one too.
        with Catalog.open(root) as cat:
            cat.add_records(
                [
                    Record(
                        id="southern",
                        kind="collection",
                        title="the south",
                        metadata={"stac": {"id": "south", "where": ["site=south"]}},
                    )
                ],
                user="test",
            )
        assert _collection_ids(client) == {"north", "south"}
        # A half-saved file is ignored: the service keeps what it had.
        (root / "arcodex.yaml").write_text("stac_collections: [\n")
        assert _collection_ids(client) == {"north", "south"}
        assert client.get("/ready").status_code == 200


def test_reload_waits_for_its_interval(root: Path) -> None:
    with (
        serve_catalog(root, reload_interval=3600) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert _collection_ids(client) == {"d0", "d1", "d2", "d3"}
        _set_config(root, stac_collections=[{"id": "north", "where": ["site=north"]}])
        assert _collection_ids(client) == {"d0", "d1", "d2", "d3"}


# -- the process: JSON logs, a proxy's prefix, SIGTERM ------------------------------------------


def test_json_access_log_root_path_and_graceful_stop(root: Path) -> None:
    args = ["--access-log", "json", "--root-path", "/arcodex", "--graceful-timeout", "5"]
    with serve_workers(root, workers=1, args=args, stop=signal.SIGTERM) as served:
        found = httpx.get(
            f"{served.url}/stac/collections", params={"limit": 2, "api_key": "sEcReT-query-4567"}
        )
        assert found.status_code == 200
        # A token the catalog does not know: refused, and not written to the log either.
        headers = {"Authorization": "Bearer sEcReT-bearer-0123"}
        assert httpx.get(f"{served.url}/stac/", headers=headers).status_code == 401
        # Behind a proxy that strips /arcodex, links carry it.
        links = [link["href"] for link in found.json()["links"]]
        assert links and all("/arcodex/stac/" in href for href in links), links
        assert httpx.get(f"{served.url}/stac/no-such-thing").status_code == 404
    output = served.output()
    # uvicorn finishes the shutdown, then ends by the signal it got (as systemd expects).
    assert served.proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "sEcReT" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [line for line in lines if "method" in line]
    listed = [r for r in requests if r["path"].endswith("/stac/collections")]
    assert listed, output
    assert listed[0]["status"] == 200 and listed[0]["query"] == "limit=2&api_key=%2A%2A%2A"
    assert listed[0]["bytes"] > 0 and listed[0]["duration_ms"] >= 0
    assert any(r["status"] == 404 for r in requests)
    assert any(r["status"] == 401 for r in requests)
    # uvicorn's own lines are JSON objects too, and its text access lines are off.
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines), output
    assert '" 200' not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--access-log", "xml"], "--access-log 'xml'"),
        (["--log-level", "loud"], "--log-level 'loud'"),
        (["--root-path", "arcodex/"], "--root-path 'arcodex/'"),
    ],
)
def test_bad_serve_options_say_what_to_give(root: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["--catalog", str(root), "serve", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


# -- CORS ------------------------------------------------------------------------------------


def _cors_answers(root: Path, origin: str) -> list[httpx.Response]:
    import asyncio

    from arcodex.server import create_app

    app = create_app(root)

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            headers = {"Origin": origin}
            preflight = {
                **headers,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "range",
            }
            return [
                await http.get("/stac/", headers=headers),
                await http.get("/datasets", headers=headers),
                await http.get("/zarr/d1/.zmetadata", headers=headers),
                await http.options("/zarr/d1/.zmetadata", headers=preflight),
            ]

    return asyncio.run(ask())


def test_cors_is_off_unless_origins_are_configured(root: Path) -> None:
    for answer in _cors_answers(root, "https://viewer.example"):
        assert "access-control-allow-origin" not in answer.headers, answer.request.url


def test_cors_allows_the_configured_origins_on_every_route(root: Path) -> None:
    with (root / "arcodex.yaml").open("a", encoding="utf-8") as fh:
        fh.write("\nserver:\n  cors_origins: [https://viewer.example]\n")
    stac, datasets, zarr, preflight = _cors_answers(root, "https://viewer.example")
    assert (stac.status_code, datasets.status_code, preflight.status_code) == (200, 200, 200)
    for answer in (stac, datasets, zarr, preflight):
        assert answer.headers["access-control-allow-origin"] == "https://viewer.example"
    assert "ETag" in zarr.headers["access-control-expose-headers"]
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    for answer in _cors_answers(root, "https://other.example"):
        assert "access-control-allow-origin" not in answer.headers, answer.request.url
