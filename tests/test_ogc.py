"""The OGC API under ``/ogcapi`` (pygeoapi in-process): collections of the published datasets,
Coverages and EDR answers equal to the same selection done with xarray on the product.

Products are converted by arcodex from archives the module writes (Zarr and Icechunk,
regular, 0–360 and curvilinear grids, one with missing values) and served by a real
uvicorn on loopback; the test publishes and hides them through the catalog's API.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.testing import serve_catalog

pytest.importorskip("pygeoapi")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")

#: name → (archive kind, product format, access block or None for unpublished).
PUBLIC = {"published": True, "visibility": "public"}
PRODUCTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "regular-zarr": ("regular", "zarr", PUBLIC),
    "regular-icechunk": ("regular", "icechunk", PUBLIC),
    "lon360": ("lon360", "icechunk", PUBLIC),
    "curvilinear": ("curvilinear", "zarr", PUBLIC),
    "packed": ("packed", "zarr", PUBLIC),
    "unpublished": ("noleap", "zarr", None),
    "private": ("multivar", "zarr", {"published": True, "visibility": "private"}),
}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> Iterator[dict[str, Any]]:
    from arcodex.convert import convert

    root = tmp_path_factory.mktemp("ogc")
    ids: dict[str, str] = {}
    with Catalog.create(root / "cat") as cat:
        for name, (kind, fmt, access) in PRODUCTS.items():
            files = write_archive(root / "src" / name, kind)  # type: ignore[arg-type]
            result = convert(
                [str(f) for f in files],
                to="zarr" if fmt == "zarr" else "icechunk",
                catalog=cat,
                cluster="threads",
                title=name,
            )
            assert result.record is not None
            ids[name] = result.record.id
            if access is not None:
                cat.update(ids[name], set={f"access.{k}": v for k, v in access.items()})
    with serve_catalog(root / "cat") as url, httpx.Client(base_url=url, timeout=60) as client:
        yield {"root": root, "ids": ids, "client": client}


def test_the_served_catalog_is_on_the_backend_of_this_run(site: dict[str, Any]) -> None:
    # A module-scoped fixture's catalog is made outside the per-test patch of conftest; in
    # the PostgreSQL run it must still be on PostgreSQL (module_catalog_backend).
    expected = "postgresql" if os.environ.get("ARCODEX_TEST_BACKEND") == "postgres" else "sqlite"
    with Catalog.open(site["root"] / "cat") as cat:
        assert cat.backend.url.partition(":")[0] == expected
        assert (cat.config.database_url or "sqlite:").partition(":")[0] == expected


def _get(site: dict[str, Any], path: str, **params: Any) -> httpx.Response:
    response: httpx.Response = site["client"].get(path, params=params)
    return response


def _json(response: httpx.Response) -> Any:
    """The body as JSON, refusing NaN and Infinity (which JSON does not have)."""
    assert response.status_code == 200, response.text

    def refuse(token: str) -> Any:
        raise AssertionError(f"invalid JSON token {token}")

    return json.loads(response.text, parse_constant=refuse)


def _product(site: dict[str, Any], name: str) -> Any:
    from arcodex.convert import open_product

    return open_product(site["ids"][name], catalog=site["root"] / "cat").load()


def _range(body: dict[str, Any], name: str) -> Any:
    """A CoverageJSON range as a float array (null → NaN) of its own shape."""
    rng = body["ranges"][name]
    values = [np.nan if v is None else v for v in rng["values"]]
    return np.array(values, dtype="float64").reshape(rng["shape"])


def _same(got: Any, expected: Any) -> None:
    np.testing.assert_array_equal(got, np.asarray(expected, dtype="float64"))


# -- collections and who sees them -----------------------------------------------------


def test_collections_are_the_published_public_datasets(site: dict[str, Any]) -> None:
    ids = site["ids"]
    body = _json(_get(site, "/ogcapi/collections"))
    listed = {c["id"] for c in body["collections"]}
    expected = {ids[n] for n, (_, _, a) in PRODUCTS.items() if a == PUBLIC}
    assert listed == expected
    one = _json(_get(site, f"/ogcapi/collections/{ids['regular-zarr']}"))
    assert one["title"] == "regular-zarr"
    assert {"position", "area", "cube"} <= set(one["data_queries"])
    assert "tas" in one["parameter_names"]


@pytest.mark.parametrize("name", ["unpublished", "private"])
@pytest.mark.parametrize(
    "tail", ["", "/coverage", "/position?coords=POINT(0 0)", "/cube?bbox=0,0,10,10", "/area"]
)
def test_hidden_datasets_are_missing_ones(site: dict[str, Any], name: str, tail: str) -> None:
    hidden = site["ids"][name]
    missing = "0" * len(hidden)
    got = _get(site, f"/ogcapi/collections/{hidden}{tail}")
    absent = _get(site, f"/ogcapi/collections/{missing}{tail}")
    assert got.status_code == absent.status_code == 404
    assert got.json()["description"].replace(hidden, "ID") == absent.json()["description"].replace(
        missing, "ID"
    )


def test_publishing_and_unpublishing_show_without_restart(site: dict[str, Any]) -> None:
    rid = site["ids"]["unpublished"]
    with Catalog.open(site["root"] / "cat") as cat:
        cat.update(rid, set={"access.published": True, "access.visibility": "public"})
        try:
            listed = {c["id"] for c in _json(_get(site, "/ogcapi/collections"))["collections"]}
            assert rid in listed
            body = _json(_get(site, f"/ogcapi/collections/{rid}/position", coords="POINT(0 0)"))
            assert body["domain"]["domainType"] == "PointSeries"
        finally:
            cat.update(rid, set={"access.published": False})
    listed = {c["id"] for c in _json(_get(site, "/ogcapi/collections"))["collections"]}
    assert rid not in listed
    assert _get(site, f"/ogcapi/collections/{rid}/coverage").status_code == 404


def test_no_paths_in_answers(site: dict[str, Any]) -> None:
    rid = site["ids"]["regular-zarr"]
    root = str(site["root"])
    for path in (
        "/ogcapi",
        "/ogcapi/collections",
        f"/ogcapi/collections/{rid}",
        "/ogcapi/openapi",
        f"/ogcapi/collections/{rid}/coverage?bbox=-30,-30,30,30",
    ):
        response = _get(site, path)
        assert response.status_code == 200 and root not in response.text, path
    ds = xr.open_dataset(
        io.BytesIO(_get(site, f"/ogcapi/collections/{rid}/coverage", f="netcdf").content)
    )
    assert not [k for k in ds.attrs if k.startswith("arcodex")]
    assert root not in json.dumps({k: str(v) for k, v in ds.attrs.items()})


def test_conformance_and_openapi(site: dict[str, Any]) -> None:
    conforms = set(_json(_get(site, "/ogcapi/conformance"))["conformsTo"])
    assert "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/core" in conforms
    assert "http://www.opengis.net/spec/ogcapi-edr-1/1.0/conf/core" in conforms
    landing = _json(_get(site, "/ogcapi/"))
    assert {"service-desc", "conformance", "data"} <= {link["rel"] for link in landing["links"]}
    document = _get(site, "/ogcapi/openapi")
    assert document.status_code == 200
    paths = document.json()["paths"]
    rid = site["ids"]["regular-zarr"]
    assert f"/collections/{rid}/coverage" in paths
    assert f"/collections/{rid}/position" in paths
    assert _get(site, "/ogcapi/openapi", f="html").status_code == 200


# -- OGC API – Coverages ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["regular-zarr", "regular-icechunk"])
def test_coverage_equals_xarray(site: dict[str, Any], name: str) -> None:
    rid = site["ids"][name]
    body = _json(
        _get(
            site,
            f"/ogcapi/collections/{rid}/coverage",
            bbox="-60,-40,50,35",
            datetime="2000-01-03/2000-01-07",
            properties="tas",
        )
    )
    expected = _product(site, name).tas.sel(
        lon=slice(-60, 50), lat=slice(-40, 35), time=slice("2000-01-03", "2000-01-07")
    )
    assert body["ranges"]["tas"]["axisNames"] == ["t", "y", "x"]
    _same(_range(body, "tas"), expected.values)
    axes = body["domain"]["axes"]
    _same(axes["x"]["values"], expected.lon.values)
    _same(axes["y"]["values"], expected.lat.values)
    assert axes["t"]["values"][0] == "2000-01-03T00:00:00Z" and len(axes["t"]["values"]) == 5


@pytest.mark.parametrize("query", ["coverage", "cube"])
def test_six_number_bbox_is_the_four_number_one(site: dict[str, Any], query: str) -> None:
    """minx,miny,minz,maxx,maxy,maxz: its horizontal box is numbers 0, 1, 3 and 4."""
    rid = site["ids"]["regular-zarr"]
    flat = _json(_get(site, f"/ogcapi/collections/{rid}/{query}", bbox="-60,-40,50,35"))
    deep = _json(_get(site, f"/ogcapi/collections/{rid}/{query}", bbox="-60,-40,0,50,35,10"))
    assert deep["domain"]["axes"] == flat["domain"]["axes"]
    assert deep["ranges"] == flat["ranges"]


def test_coverage_subset_and_range_subset(site: dict[str, Any]) -> None:
    rid = site["ids"]["packed"]
    body = _json(
        _get(
            site,
            f"/ogcapi/collections/{rid}/coverage",
            subset='lat(-50:50),lon(-100:0),time("2000-01-02":"2000-01-04")',
            rangeSubset="sst",
        )
    )
    assert set(body["ranges"]) == {"sst"}
    expected = _product(site, "packed").sst.sel(
        lat=slice(-50, 50), lon=slice(-100, 0), time=slice("2000-01-02", "2000-01-04")
    )
    got = _range(body, "sst")
    _same(got, expected.values)
    # Land is missing: NaN in xarray, null in the answer.
    assert np.isnan(expected.values).any()
    assert None in body["ranges"]["sst"]["values"]


def test_coverage_instant_and_whole(site: dict[str, Any]) -> None:
    rid = site["ids"]["packed"]
    body = _json(_get(site, f"/ogcapi/collections/{rid}/coverage", datetime="2000-01-05"))
    ds = _product(site, "packed")
    assert set(body["ranges"]) == {"sst", "tas"}
    for name in ("sst", "tas"):
        _same(_range(body, name), ds[name].sel(time=slice("2000-01-05", "2000-01-05")).values)


def test_coverage_netcdf_equals_xarray(site: dict[str, Any]) -> None:
    rid = site["ids"]["regular-icechunk"]
    response = _get(site, f"/ogcapi/collections/{rid}/coverage", f="netcdf", bbox="-100,-20,100,60")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-netcdf")
    got = xr.open_dataset(io.BytesIO(response.content)).load()
    expected = _product(site, "regular-icechunk").sel(lon=slice(-100, 100), lat=slice(-20, 60))
    xr.testing.assert_equal(got.tas, expected.tas)


def test_lon360_coverage_reads_longitudes_modulo_360(site: dict[str, Any]) -> None:
    rid = site["ids"]["lon360"]
    ds = _product(site, "lon360")
    assert float(ds.lon.max()) > 180
    # Across the grid's seam, in the frame of the request (-180..180).
    body = _json(_get(site, f"/ogcapi/collections/{rid}/coverage", bbox="-50,-30,50,30"))
    shifted = ds.assign_coords(lon=((ds.lon + 180) % 360) - 180).sortby("lon")
    expected = shifted.tas.sel(lon=slice(-50, 50), lat=slice(-30, 30))
    _same(body["domain"]["axes"]["x"]["values"], expected.lon.values)
    _same(_range(body, "tas"), expected.values)
    # Within the grid's own frame, as it is.
    body = _json(_get(site, f"/ogcapi/collections/{rid}/coverage", bbox="200,-30,300,30"))
    _same(_range(body, "tas"), ds.tas.sel(lon=slice(200, 300), lat=slice(-30, 30)).values)


# -- OGC API – EDR ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["regular-zarr", "regular-icechunk", "packed"])
def test_position_equals_xarray(site: dict[str, Any], name: str) -> None:
    rid = site["ids"][name]
    var = "sst" if name == "packed" else "tas"
    body = _json(
        _get(
            site,
            f"/ogcapi/collections/{rid}/position",
            coords="POINT(-77.3 41.1)",
            datetime="2000-01-02/2000-01-10",
            **{"parameter-name": var},
        )
    )
    expected = (
        _product(site, name)[var]
        .sel(lon=-77.3, lat=41.1, method="nearest")
        .sel(time=slice("2000-01-02", "2000-01-10"))
    )
    assert body["domain"]["domainType"] == "PointSeries"
    assert body["ranges"][var]["axisNames"] == ["t"]
    _same(_range(body, var), expected.values)
    assert body["domain"]["axes"]["x"]["values"] == [float(expected.lon)]
    assert body["domain"]["axes"]["y"]["values"] == [float(expected.lat)]


def test_lon360_position(site: dict[str, Any]) -> None:
    rid = site["ids"]["lon360"]
    ds = _product(site, "lon360")
    body = _json(_get(site, f"/ogcapi/collections/{rid}/position", coords="POINT(-44 10)"))
    _same(_range(body, "tas"), ds.tas.sel(lon=316, lat=10, method="nearest").values)
    # Near the seam the nearest cell is across it (359 is 1 degree from 0).
    body = _json(_get(site, f"/ogcapi/collections/{rid}/position", coords="POINT(359 10)"))
    _same(_range(body, "tas"), ds.tas.sel(lon=0, lat=10, method="nearest").values)


def test_cube_and_area_equal_xarray(site: dict[str, Any]) -> None:
    rid = site["ids"]["regular-zarr"]
    ds = _product(site, "regular-zarr")
    body = _json(
        _get(site, f"/ogcapi/collections/{rid}/cube", bbox="-60,-40,50,35", datetime="2000-01-04")
    )
    box = ds.tas.sel(lon=slice(-60, 50), lat=slice(-40, 35), time=slice("2000-01-04", "2000-01-04"))
    _same(_range(body, "tas"), box.values)
    # A triangle: the cells of its bounding box, null outside it.
    polygon = "POLYGON((-60 -40,50 -40,-60 35,-60 -40))"
    body = _json(_get(site, f"/ogcapi/collections/{rid}/area", coords=polygon))
    import shapely

    box = ds.tas.sel(lon=slice(-60, 50), lat=slice(-40, 35))
    lon, lat = np.meshgrid(box.lon.values, box.lat.values)
    shape = shapely.from_wkt(polygon)
    inside = shapely.contains_xy(shape, lon, lat) | shapely.touches(shape, shapely.points(lon, lat))
    assert inside.any() and not inside.all()
    _same(_range(body, "tas"), box.where(xr.DataArray(inside, dims=("lat", "lon"))).values)


def test_curvilinear_position_and_refusals(site: dict[str, Any]) -> None:
    rid = site["ids"]["curvilinear"]
    ds = _product(site, "curvilinear")
    j, i = 4, 7
    x, y = float(ds.nav_lon[j, i]), float(ds.nav_lat[j, i])
    body = _json(_get(site, f"/ogcapi/collections/{rid}/position", coords=f"POINT({x} {y})"))
    _same(_range(body, "tos"), ds.tos.isel(y=j, x=i).values)
    assert body["domain"]["axes"]["x"]["values"] == [x]
    for path, params in (
        ("coverage", {}),
        ("coverage", {"bbox": "-40,30,-20,50"}),
        ("cube", {"bbox": "-40,30,-20,50"}),
        ("area", {"coords": "POLYGON((-40 30,-20 30,-20 50,-40 30))"}),
    ):
        response = _get(site, f"/ogcapi/collections/{rid}/{path}", **params)
        assert response.status_code == 400, (path, response.text)
        assert "curvilinear" in response.json()["description"]


@pytest.mark.parametrize(
    ("tail", "params", "words"),
    [
        ("coverage", {"bbox": "1,2,3"}, "bbox"),
        ("coverage", {"bbox": "a,b,c,d"}, "bbox"),
        # pygeoapi's coverages answered 500 for these (schemathesis found them).
        ("coverage", {"bbox": "0,10,1,0"}, "miny is greater than maxy"),
        ("coverage", {"bbox": "0,0,5,1,1,1"}, "minz is greater than maxz"),
        # Longitudes modulo 360 were NaN there (a RuntimeWarning, so a 500 under pytest).
        ("coverage", {"bbox": "-inf,-90,inf,90"}, "finite"),
        ("coverage", {"subset": "lon(-inf:0)"}, "finite"),
        ("cube", {"bbox": "-inf,-90,inf,90"}, "finite"),
        ("coverage", {"properties": "nope"}, "field"),
        ("coverage", {"datetime": "1990-01-01/1990-02-01"}, ""),
        ("coverage", {"subset": "depth(1:2)"}, "axis"),
        ("position", {}, "coords"),
        ("position", {"coords": "POLYGON((0 0,1 0,1 1,0 0))"}, "POINT"),
        ("position", {"coords": "POINT(oops)"}, "coords"),
        # An empty point was a 500 (shapely has no x for it), a NaN one the first cell.
        ("position", {"coords": "POINT EMPTY"}, "POINT(lon lat)"),
        ("position", {"coords": "POINT(nan nan)"}, "finite"),
        ("position", {"coords": "POINT(inf 0)"}, "finite"),
        ("position", {"coords": "POINT(0 0)", "f": "netcdf"}, "CoverageJSON"),
        ("cube", {}, "bbox"),
        ("area", {"coords": "POINT(0 0)"}, "POLYGON"),
        ("area", {"coords": "POLYGON EMPTY"}, "POLYGON"),
    ],
)
def test_bad_requests_are_400(
    site: dict[str, Any], tail: str, params: dict[str, str], words: str
) -> None:
    rid = site["ids"]["regular-zarr"]
    response = _get(site, f"/ogcapi/collections/{rid}/{tail}", **params)
    assert response.status_code == 400, response.text
    assert words in response.json()["description"]


@pytest.mark.parametrize(
    "path",
    [
        "/ogcapi/collections/..%2F..%2Fetc%2Fpasswd/coverage",
        "/ogcapi/collections/%2e%2e/position?coords=POINT(0 0)",
        "/ogcapi/collections/nope",
    ],
)
def test_odd_ids_are_404(site: dict[str, Any], path: str) -> None:
    assert site["client"].get(path).status_code == 404


def test_catalogued_files_by_coordinate_names_and_without_a_grid(tmp_path: Any) -> None:
    """A catalogued file whose lat/lon carry no units is served (found by name, as the
    catalog's datacube finds them); one without a horizontal grid is not an OGC collection
    and its collection answers 404 saying where to read it instead."""
    import asyncio

    from arcodex.server import create_app

    values = np.arange(8, dtype="f4").reshape(2, 2, 2)
    xr.Dataset(
        {"t": (("time", "lat", "lon"), values)},
        coords={
            "time": np.array(["2030-01-01", "2030-01-02"], dtype="datetime64[ns]"),
            "lat": [0.0, 1.0],
            "lon": [10.0, 11.0],
        },
    ).to_netcdf(tmp_path / "grid.nc")
    times = np.array(["2030-01-01", "2030-01-02", "2030-01-03"], dtype="datetime64[ns]")
    xr.Dataset({"ch4": (("time",), np.array([1.9, 2.0, 2.1]))}, coords={"time": times}).to_netcdf(
        tmp_path / "station.nc"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        grid, station = cat.add_files([tmp_path / "grid.nc", tmp_path / "station.nc"])
        cat.publish(grid.id)
        cat.publish(station.id)
    app = create_app(tmp_path / "cat")

    async def ask(*paths: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            return [await http.get(p) for p in paths]

    listed, one, point, missing, station_point = asyncio.run(
        ask(
            "/ogcapi/collections?f=json",
            f"/ogcapi/collections/{grid.id}?f=json",
            f"/ogcapi/collections/{grid.id}/position?coords=POINT(11 1)&f=json",
            f"/ogcapi/collections/{station.id}?f=json",
            f"/ogcapi/collections/{station.id}/position?coords=POINT(11 1)&f=json",
        )
    )
    assert [c["id"] for c in _json(listed)["collections"]] == [grid.id]
    assert _json(one)["id"] == grid.id
    _same(_range(_json(point), "t").ravel(), values[:, 1, 1])
    for answer in (missing, station_point):
        assert answer.status_code == 404, answer.text
        assert f"/zarr/{station.id}" in answer.json()["description"]


def test_opened_datasets_are_closed_when_dropped_and_when_the_server_stops(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OGC API keeps a bounded number of datasets open: one it drops (more datasets
    than the bound, or a record updated) and every one at shutdown has its file closed."""
    import asyncio
    import contextlib
    import os
    from pathlib import Path

    from arcodex.server import _ogc_provider, create_app

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts open files through /proc")
    monkeypatch.setattr(_ogc_provider, "OPENED_SIZE", 2)
    files = []
    for i in range(4):
        path = tmp_path / f"grid{i}.nc"
        xr.Dataset(
            {"t": (("time", "lat", "lon"), np.full((2, 2, 2), i, "f4"))},
            coords={
                "time": np.array(["2030-01-01", "2030-01-02"], dtype="datetime64[ns]"),
                "lat": [0.0, 1.0],
                "lon": [10.0, 11.0],
            },
        ).to_netcdf(path)
        files.append(path)
    with Catalog.create(tmp_path / "cat") as cat:
        records = cat.add_files(files)
        for record in records:
            cat.publish(record.id)
    served = {str(Path(cat.path(r.id)).resolve()) for r in records}

    def open_files() -> int:
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed since it was listed
                found += os.readlink(f"/proc/self/fd/{fd}") in served
        return found

    before = open_files()
    app = create_app(tmp_path / "cat")

    async def serve() -> None:
        transport = httpx.ASGITransport(app=app)
        # The app's lifespan, as a server runs it: its end is the server stopping.
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http,
        ):
            with Catalog.open(tmp_path / "cat") as cat:
                for round_ in range(3):
                    for record in records:
                        got = await http.get(
                            f"/ogcapi/collections/{record.id}/position?coords=POINT(11 1)"
                        )
                        assert got.status_code == 200, got.text
                        assert open_files() - before <= 2, (round_, record.id)
                    cat.update(records[0].id, set={"round": round_})  # a new version

    asyncio.run(serve())
    assert open_files() == before, "a dataset the OGC API opened was left open"


def test_html_pages_follow_the_datasets_published_since(tmp_path: Any) -> None:
    """pygeoapi caches its configuration translated once per process: a collection
    published after a first HTML page was a 500 on its own HTML page (schemathesis found it
    when another test's server had rendered first)."""
    import asyncio

    from arcodex.server import create_app

    for offset, name in enumerate(("first", "second")):
        values = np.arange(8, dtype="f4").reshape(2, 2, 2) + offset
        xr.Dataset(
            {"t": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={
                "time": np.array(["2030-01-01", "2030-01-02"], dtype="datetime64[ns]"),
                "lat": ("lat", [0.0, 1.0], {"units": "degrees_north"}),
                "lon": ("lon", [10.0, 11.0], {"units": "degrees_east"}),
            },
        ).to_netcdf(tmp_path / f"{name}.nc")
    with Catalog.create(tmp_path / "cat") as cat:
        first, second = cat.add_files([tmp_path / "first.nc", tmp_path / "second.nc"])
        cat.publish(first.id)
    app = create_app(tmp_path / "cat", reload_interval=0.0)

    async def ask(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            return await http.get(path)

    before = asyncio.run(ask(f"/ogcapi/collections/{first.id}?f=html&lang=en-US"))
    assert before.status_code == 200 and first.id in before.text
    with Catalog.open(tmp_path / "cat") as cat:
        cat.publish(second.id)
    for lang in ("en-US", "fr"):
        after = asyncio.run(ask(f"/ogcapi/collections/{second.id}?f=html&lang={lang}"))
        assert after.status_code == 200, after.text
        assert second.id in after.text
