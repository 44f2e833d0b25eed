"""``arcodex serve --workers N``: N server processes on one port over one catalog.

The server runs as a child process (as a user starts it), on SQLite and on
PostgreSQL; concurrent searches must give the answers of the catalog itself,
and SIGTERM or SIGINT (Ctrl-C) must stop the parent and every worker.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.model import BBox, Condition, Query, Record
from arcodex.testing import publish_all, serve_workers

pytest.importorskip("stac_fastapi.api")


def _records(n: int) -> list[Record]:
    return [
        Record(
            id=f"w{i:03d}",
            kind="dataset",
            title=f"record {i}",
            metadata={
                "site": f"S{i % 3}",
                "bbox": [i % 40 - 20, i % 30 - 15, i % 40 - 18, i % 30 - 13],
                "start_datetime": f"{2000 + i % 5}-01-01T00:00:00Z",
                "end_datetime": f"{2000 + i % 5}-12-31T00:00:00Z",
            },
        )
        for i in range(n)
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    config = None
    if request.param == "postgres":
        config = CatalogConfig(database_url=request.getfixturevalue("pg_url"))
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        cat.add_records(_records(120), user="test")
        assert len(publish_all(cat)) == 120
    return tmp_path / "cat"


def _bodies() -> list[dict[str, Any]]:
    return [
        {
            "bbox": [w, -15, w + 12, 15],
            "filter-lang": "cql2-json",
            "filter": {"op": "=", "args": [{"property": "site"}, f"S{w % 3}"]},
            "limit": 100,
        }
        for w in range(-20, 20, 2)
    ]


def _expected(root: Path, body: dict[str, Any]) -> list[str]:
    query = Query(
        conditions=[Condition(field="site", value=body["filter"]["args"][1])],
        bbox=BBox.parse(body["bbox"]),
        limit=None,
    )
    with Catalog.open(root) as cat:
        return sorted(r.id for r in cat.search(query).records)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_workers_answer_concurrent_searches_and_stop(root: Path, stop: int) -> None:
    bodies = _bodies()
    expected = [_expected(root, body) for body in bodies]
    assert sum(map(len, expected)) > 0, "the searches must match records"
    with serve_workers(root, workers=2, stop=stop) as served:
        assert len(served.worker_pids()) == 2

        def search(body: dict[str, Any]) -> list[str]:
            answer = httpx.post(f"{served.url}/stac/search", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            return sorted(f["id"] for f in answer.json()["features"])

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(search, bodies * 3))
        assert answers == expected * 3
    # serve_workers raised unless the parent and both workers ended on the signal.
    assert served.proc.returncode is not None


def test_workers_must_be_positive(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    Catalog.create(tmp_path / "cat").close()
    result = CliRunner().invoke(
        app, ["--catalog", str(tmp_path / "cat"), "serve", "--workers", "0"]
    )
    assert result.exit_code != 0
    assert "--workers" in result.output
