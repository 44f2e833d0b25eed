"""schemathesis against the live STAC API: no 5xx, and every response as the OpenAPI document says.

The server runs under uvicorn on loopback over a small catalog (a group and
Collections of their own). Each operation of ``/api`` gets a fixed budget of
generated requests, valid (positive) and invalid (negative), derandomised so a
run is reproducible, plus a few requests naming real Collections and Items
(random ids reach only the 404s). The whole run stays within about a minute.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arcodex.catalog import Catalog, CatalogConfig

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("stac_fastapi.api")
uvicorn = pytest.importorskip("uvicorn")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")

#: Generated requests per operation and mode; fewer once the time budget is spent.
EXAMPLES = 30
BUDGET_S = 60.0


def _netcdf(path: Path, lon0: float, start: str) -> Path:
    times = np.array([start, start], dtype="datetime64[ns]") + np.array([0, 1], "timedelta64[D]")
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((2, 2, 2), "f4"), {"units": "K"})},
        coords={
            "time": times,
            "lat": ("lat", np.array([0.0, 1.0]), {"units": "degrees_north"}),
            "lon": ("lon", np.array([lon0, lon0 + 1]), {"units": "degrees_east"}),
        },
        attrs={"title": path.stem, "institution": "NOC"},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> Iterator[tuple[str, dict[str, str]]]:
    """The live server's URL, and a real Collection and Item id of each kind."""
    from arcodex.server import create_app

    base = tmp_path_factory.mktemp("fuzz")
    config = CatalogConfig(stac_collections=[{"id": "ocean", "where": ["tags=ocean"]}])
    with Catalog.create(base / "cat", config=config) as cat:
        grouped = cat.add_files(
            [_netcdf(base / f"g{i}.nc", 170.0 + 5 * i, f"200{i}-01-01") for i in range(2)],
            tags=["ocean"],
        )
        (own,) = cat.add_files([_netcdf(base / "own.nc", -40.0, "2010-01-01")])
        for record in cat.search(kind="dataset", limit=None).records:
            cat.update(record.id, set={"access.published": True, "access.visibility": "public"})
    ids = {"group": "ocean", "member": grouped[0].id, "own": own.id}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config_ = uvicorn.Config(
        create_app(base / "cat"), host="127.0.0.1", port=port, log_level="critical"
    )
    server = uvicorn.Server(config_)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", ids
    finally:
        server.should_exit = True
        thread.join(10)


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    # Not positive_data_acceptance: a request valid by the document can still name a
    # Collection that does not exist (404) or sort by a field no record has (400).
    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]


def _fuzz(operation: Any, mode: Any, examples: int, failures: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    checks = _checks()

    # No shrinking: each distinct failure is reported as found, and the budget stays fixed.
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(checks=checks)
        # schemathesis raises a FailureGroup (a BaseExceptionGroup) naming each failed check;
        # hypothesis' own control flow (StopTest, a BaseException) must pass through.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} [{mode.value}]: {exc}")

    # Unsatisfiable: the operation has nothing to make invalid (no parameters).
    with contextlib.suppress(Unsatisfiable):
        run()


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    api: tuple[str, dict[str, str]],
) -> None:
    from schemathesis.generation.modes import GenerationMode

    url, ids = api
    schema = schemathesis.openapi.from_url(f"{url}/api")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {
        "GET /stac/search",
        "POST /stac/search",
        "GET /stac/collections/{collection_id}",
    } <= labels
    failures: list[str] = []
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            spent = time.monotonic() - started
            _fuzz(operation, mode, EXAMPLES if spent < BUDGET_S else 5, failures)
    # Requests that reach real documents, checked the same way.
    real = {
        "GET /stac/collections/{collection_id}": [
            {"collection_id": c} for c in (ids["group"], ids["own"])
        ],
        "GET /stac/collections/{collection_id}/items": [
            {"collection_id": c} for c in (ids["group"], ids["own"])
        ],
        "GET /stac/collections/{collection_id}/items/{item_id}": [
            {"collection_id": ids["group"], "item_id": ids["member"]},
            {"collection_id": ids["own"], "item_id": ids["own"]},
        ],
        "GET /stac/collections/{collection_id}/queryables": [{"collection_id": ids["group"]}],
    }
    by_label = {op.label: op for op in operations}
    for label, cases in real.items():
        for params in cases:
            case = by_label[label].Case(path_parameters=params)
            response = case.call_and_validate(checks=_checks())
            assert response.status_code == 200, (label, params, response.text)
    assert not failures, "\n\n".join(dict.fromkeys(failures))
