"""schemathesis against the live OGC API (``/ogcapi``, pygeoapi): no 5xx, and responses as
pygeoapi's own OpenAPI document says where that document says it.

The server runs under uvicorn on loopback over a small catalog of two published gridded
datasets (a regular grid, and one with 0–360 longitudes). pygeoapi writes one path per
collection (``/collections/<id>/position``, …), so generated requests name the real ids.
Each operation of ``/ogcapi/openapi`` gets a fixed budget of generated requests, valid
(positive) and invalid (negative), derandomised so a run is reproducible, plus
valid-looking coverage and EDR position/area/cube requests that must answer 200, and
some that must be refused with a 400 (they were 500s or wrong answers).

What of pygeoapi's document is changed, which checks are off, and why:

* Its parameters and responses ``$ref`` files on schemas.opengis.net and GitHub, which a
  test may not fetch (schemathesis cannot load the document without them). Each is
  replaced by a local stand-in (:data:`REMOTE`): the parameters as the OGC files define
  them (``coords`` a required string; ``datetime``, ``z`` and ``parameter-name``
  strings; ``subset`` a form array of strings); the Features and Processes exception
  schemas as the OGC files have them; CoverageJSON as the OGC file has its top level, its ranges ndArray.yaml less a
  oneOf no integer array can pass; the Features responses InvalidParameter, ServerError
  and NotFound as the OGC file has them, and LandingPage, Collection and Features by a
  description alone: pygeoapi names them for answers they do not describe (the
  conformance and collections lists are documented as the landing page, the coverage,
  CoverageJSON or NetCDF, as a GeoJSON FeatureCollection).
* ``not_a_server_error`` and ``response_schema_conformance`` run on every operation.
* ``status_code_conformance`` is off for the EDR queries (position, area, cube):
  pygeoapi documents only their 200, not the 400 and 404 every EDR server answers.
* ``content_type_conformance`` is off for the coverage and EDR queries: their refusals
  come as ``application/ld+json`` for ``f=jsonld`` (documented: JSON or HTML), and EDR
  answers as HTML for ``f=html``, which pygeoapi documents as a format but not as a
  response.
* ``negative_data_rejection`` is off: pygeoapi ignores values it does not use, such as
  ``lang`` and ``ui`` outside their enums, as OGC API servers may.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arcodex.catalog import Catalog

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("pygeoapi")
uvicorn = pytest.importorskip("uvicorn")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")
httpx = pytest.importorskip("httpx")

#: Generated requests per operation and mode; fewer once the time budget is spent.
EXAMPLES = 15
BUDGET_S = 40.0

_EDR = "https://schemas.opengis.net/ogcapi/edr/1.0/openapi/"
_FEATURES = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
_COVERAGES = (
    "https://raw.githubusercontent.com/opengeospatial/ogcapi-coverages/refs/heads/master/"
    "standard/openapi/ogcapi-coverages-1.yaml"
)
_EXCEPTION = {
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_ERROR = {
    "content": {
        "application/json": {"schema": _EXCEPTION},
        "text/html": {"schema": {"type": "string"}},
    }
}


#: The OGC's covjson/ndArray.yaml less its oneOf (every integer value matches both its
#: number and integer branches, so no integer array could pass it).
_NDARRAY = {
    "type": "object",
    "required": ["type", "dataType", "values"],
    "properties": {
        "type": {"type": "string", "enum": ["NdArray"]},
        "dataType": {"enum": ["float", "integer", "string"]},
        "shape": {"type": "array", "items": {"type": "number"}},
        "axisNames": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "values": {"type": "array", "items": {"nullable": True}, "minItems": 1},
    },
}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "style": "form",
        "explode": False,
        "schema": schema,
    }


#: Local stand-ins of the remote references in pygeoapi's document (see the docstring).
REMOTE: dict[str, dict[str, Any]] = {
    f"{_EDR}parameters/positionCoords.yaml": _query("coords", {"type": "string"}, required=True),
    f"{_EDR}parameters/areaCoords.yaml": _query("coords", {"type": "string"}, required=True),
    f"{_EDR}parameters/parameter-name.yaml": _query("parameter-name", {"type": "string"}),
    f"{_EDR}parameters/z.yaml": _query("z", {"type": "string"}),
    f"{_FEATURES}#/components/parameters/datetime": _query("datetime", {"type": "string"}),
    f"{_COVERAGES}#/components/parameters/subset": _query(
        "subset", {"type": "array", "items": {"type": "string"}}
    ),
    f"{_EDR}schemas/coverageJSON.yaml": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["Coverage", "CoverageCollection", "Domain"]},
            "domainType": {"type": "string"},
            "parameters": {"type": "object"},
            "ranges": {"type": "object", "additionalProperties": _NDARRAY},
            "referencing": {"type": "array", "items": {"type": "object"}, "minItems": 1},
        },
    },
    "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/schemas/exception.yaml": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "additionalProperties": True,
    },
    # Only the unused tiles schemas name it.
    "https://schemas.opengis.net/ogcapi/tiles/part1/1.0/openapi/ogcapi-tiles-1.yaml"
    "#/components/schemas/link": {
        "type": "object",
        "required": ["href"],
        "properties": {"href": {"type": "string"}, "rel": {"type": "string"}},
    },
    f"{_FEATURES}#/components/responses/InvalidParameter": {
        "description": "A query parameter has an invalid value.",
        **_ERROR,
    },
    f"{_FEATURES}#/components/responses/ServerError": {
        "description": "A server error occurred.",
        **_ERROR,
    },
    f"{_FEATURES}#/components/responses/NotFound": {"description": "Not found."},
    f"{_FEATURES}#/components/responses/LandingPage": {"description": "A landing page."},
    f"{_FEATURES}#/components/responses/Collection": {"description": "A collection."},
    f"{_FEATURES}#/components/responses/Features": {"description": "Features."},
}


def _local(node: Any, missing: set[str]) -> Any:
    """``node`` with each remote ``$ref`` replaced by its stand-in (``missing`` gathers
    the ones without one)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            if ref not in REMOTE:
                missing.add(ref)
                return node
            return copy.deepcopy(REMOTE[ref])
        return {k: _local(v, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_local(v, missing) for v in node]
    return node


def _netcdf(path: Path, lons: list[float]) -> Path:
    times = np.datetime64("2000-01-01", "ns") + np.arange(4).astype("timedelta64[D]")
    lats = np.array([-20.0, -10.0, 0.0, 10.0, 20.0])
    shape = (len(times), len(lats), len(lons))
    ds = xr.Dataset(
        {
            "tas": (
                ("time", "lat", "lon"),
                np.arange(np.prod(shape), dtype="f4").reshape(shape),
                {"units": "K"},
            )
        },
        coords={
            "time": times,
            "lat": ("lat", lats, {"units": "degrees_north"}),
            "lon": ("lon", np.array(lons), {"units": "degrees_east"}),
        },
        attrs={"title": path.stem, "institution": "NOC"},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> Iterator[tuple[str, dict[str, str]]]:
    """The live server's URL, and the collection id of each dataset."""
    from arcodex.server import create_app

    base = tmp_path_factory.mktemp("ogcfuzz")
    with Catalog.create(base / "cat") as cat:
        regular, lon360 = cat.add_files(
            [
                _netcdf(base / "regular.nc", [-40.0, -20.0, 0.0, 20.0, 40.0]),
                _netcdf(base / "lon360.nc", [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]),
            ]
        )
        cat.publish(regular.id)
        cat.publish(lon360.id)
    ids = {"regular": regular.id, "lon360": lon360.id}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(base / "cat"), host="127.0.0.1", port=port, log_level="critical"
    )
    server = uvicorn.Server(config)
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


def _checks(path: str) -> list[Any]:
    """The checks of an operation at ``path`` (the docstring says why some are off)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    tail = path.rsplit("/", 1)[-1]
    query = path.startswith("/collections/") and tail in ("coverage", "position", "area", "cube")
    checks: list[Any] = [not_a_server_error, response_schema_conformance]
    if not query or tail == "coverage":
        checks.append(status_code_conformance)
    if not query:
        checks.append(content_type_conformance)
    return checks


def _fuzz(operation: Any, mode: Any, examples: int, failures: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    checks = _checks(operation.path)

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


def _schema(url: str) -> Any:
    """pygeoapi's document, its remote references made local."""
    document = httpx.get(f"{url}/ogcapi/openapi", params={"f": "json"}, timeout=60).json()
    missing: set[str] = set()
    local = _local(document, missing)
    assert not missing, f"remote references without a stand-in: {sorted(missing)}"
    assert local["servers"][0]["url"] == f"{url}/ogcapi"
    schema = schemathesis.openapi.from_dict(local)
    schema.config.update(base_url=f"{url}/ogcapi")
    return schema


def test_schemathesis_finds_no_server_error_in_the_ogc_api(
    api: tuple[str, dict[str, str]],
) -> None:
    from schemathesis.generation.modes import GenerationMode

    url, ids = api
    schema = _schema(url)
    operations = [result.ok() for result in schema.get_all_operations()]
    by_path = {op.path: op for op in operations}
    queries = ("coverage", "position", "area", "cube")
    expected = {f"/collections/{rid}/{q}" for rid in ids.values() for q in queries}
    assert expected <= set(by_path)
    failures: list[str] = []
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            spent = time.monotonic() - started
            _fuzz(operation, mode, EXAMPLES if spent < BUDGET_S else 5, failures)
    # Valid-looking queries of each dataset, across the 0-360 grid's seam too.
    real = {
        "coverage": [
            {},
            {"bbox": "-30,-15,30,15"},
            {"bbox": "-30,-15,30,15", "datetime": "2000-01-02/2000-01-03"},
            {"subset": "lat(-10:10),lon(-60:60)", "properties": "tas"},
            {"f": "netcdf", "bbox": "-90,-90,90,90"},
        ],
        "position": [
            {"coords": "POINT(10 5)"},
            {"coords": "POINT(-170 0)", "datetime": "2000-01-02/..", "parameter-name": "tas"},
        ],
        "area": [{"coords": "POLYGON((-50 -20,50 -20,50 20,-50 20,-50 -20))"}],
        "cube": [
            {"bbox": "-50,-20,50,20"},
            {"bbox": "-50,-20,50,20", "datetime": "2000-01-03", "parameter-name": "tas"},
        ],
    }
    # Valid-looking but refused: each a 4xx saying why (these were 500s or wrong answers).
    refused = {
        "coverage": [{"bbox": "0,10,1,0"}, {"bbox": "0,0,5,1,1,1"}, {"bbox": "-inf,-90,inf,90"}],
        "position": [{"coords": "POINT EMPTY"}, {"coords": "POINT(nan nan)"}],
        "area": [{"coords": "POLYGON EMPTY"}, {"coords": "POLYGON((300 80,301 80,301 81,300 80))"}],
        "cube": [{"bbox": "0,0,5,1,1,1"}, {"bbox": "nan,0,1,1"}],
    }
    for rid in ids.values():
        for cases, status in ((real, 200), (refused, 400)):
            for query, params_list in cases.items():
                operation = by_path[f"/collections/{rid}/{query}"]
                for params in params_list:
                    case = operation.Case(query=params)
                    response = case.call_and_validate(checks=_checks(operation.path))
                    assert response.status_code == status, (query, params, response.text)
    assert not failures, "\n\n".join(dict.fromkeys(failures))
