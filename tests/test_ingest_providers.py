"""Built-in providers (issue 16, section 2): ``files``, ``http``, ``s3`` and ``remote-zarr``.

Each test builds its own daily NetCDF files (0..360 longitudes, descending
latitudes) and checks that a fetched period equals the source cut with plain
xarray selection, that periods are the ones that exist, and that every bad
download or file is a :class:`FetchError` naming its period.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from arcodex.ingest import Extent, FetchError, Provider
from arcodex.ingest._files import FilesProvider
from arcodex.testing import ProviderCase, ProviderTests

DAYS = [f"2020-01-0{d}" for d in range(1, 9)]
#: Crosses the antimeridian, on data whose longitudes run 0..360 and latitudes north to south.
PACIFIC = Extent(id="pacific", bbox=(150.0, -30.0, -150.0, 30.0))


def _day(day: str) -> pd.Period:
    return pd.Period(day, freq="D")


def source(day: str) -> xr.Dataset:
    """The data of one day: four 6-hourly steps on a 10° grid."""
    rng = np.random.default_rng(int(day.replace("-", "")))
    lat = np.arange(85.0, -90.0, -10.0)
    lon = np.arange(5.0, 360.0, 10.0)
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), rng.random((4, lat.size, lon.size)).astype("float32"))},
        coords={
            "time": pd.date_range(day, periods=4, freq="6h"),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )


def expected(day: str, extent: Extent = PACIFIC) -> xr.Dataset:
    """The source cut to ``extent`` by xarray selection (longitudes east from ``west``)."""
    west, south, east, north = extent.bbox
    src = source(day).sel(lat=slice(north, south))
    west, east = west % 360, east % 360
    if west <= east:
        return src.sel(lon=slice(west, east))
    return xr.concat([src.sel(lon=slice(west, 360)), src.sel(lon=slice(0, east))], "lon")


def write_days(directory: Path, days: list[str], name: str = "tas_{day}.nc") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for day in days:
        path = directory / name.format(day=day, compact=day.replace("-", ""))
        source(day).to_netcdf(path)
        out.append(path)
    return out


def assert_same(got: xr.Dataset, want: xr.Dataset) -> None:
    xr.testing.assert_equal(got.reset_coords(drop=True), want.reset_coords(drop=True))


# -- files ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("archive")
    write_days(directory, DAYS[:6])
    return directory


def files_params(directory: Path, pattern: str = "tas_{period}.nc") -> dict[str, Any]:
    return {"path": str(directory), "pattern": pattern, "period": "daily"}


def test_files_is_a_provider() -> None:
    assert isinstance(FilesProvider(catalog=None), Provider)


def test_files_periods_are_the_files_that_exist(archive: Path) -> None:
    provider = FilesProvider()
    found = provider.periods(_day("2020-01-02"), _day("2020-01-31"), files_params(archive))
    assert found == [_day(d) for d in DAYS[1:6]]
    as_glob = {**files_params(archive), "path": str(archive / "tas_*.nc")}
    assert provider.periods(_day("2019-12-01"), _day("2020-01-03"), as_glob) == [
        _day(d) for d in DAYS[:3]
    ]


@pytest.mark.parametrize(
    "extent",
    [
        PACIFIC,
        Extent(id="europe", bbox=(-20.0, 30.0, 40.0, 70.0)),
        Extent(id="east", bbox=(100.0, -60.0, 200.0, -10.0)),
    ],
    ids=["antimeridian", "negative-west", "past-180"],
)
def test_files_fetch_equals_the_source_clipped(archive: Path, extent: Extent) -> None:
    got = FilesProvider().fetch_period(_day("2020-01-03"), extent, files_params(archive))
    assert isinstance(got, xr.Dataset)
    assert_same(got, expected("2020-01-03", extent))


def test_files_patterns_strftime_and_regex(tmp_path: Path) -> None:
    write_days(tmp_path, DAYS[:3], name="tas.{compact}.v1.nc")
    provider = FilesProvider()
    for pattern in ("tas.{period:%Y%m%d}.v1.nc", r"^tas\.(?P<period>\d{8})\.v1\.nc$"):
        params = files_params(tmp_path, pattern)
        assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [
            _day(d) for d in DAYS[:3]
        ]
        assert_same(provider.fetch_period(_day(DAYS[1]), PACIFIC, params), expected(DAYS[1]))


def test_files_probe_reads_the_grid(archive: Path) -> None:
    grid = FilesProvider().probe(PACIFIC, files_params(archive))
    assert grid.dims == {"time": 4, "lat": 6, "lon": 6}
    assert grid.coords["lat"] == (25.0, -25.0)
    assert grid.coords["lon"] == (155.0, 205.0)
    assert grid.dtypes == {"tas": "float32"}


def test_files_refuses_wrong_coverage(tmp_path: Path) -> None:
    write_days(tmp_path, DAYS[:1])
    # The file named for 2020-01-02 holds the steps of 2020-01-01.
    source(DAYS[0]).to_netcdf(tmp_path / "tas_2020-01-02.nc")
    (tmp_path / "tas_2020-01-03.nc").write_bytes(b"<html><body>502 Bad Gateway</body></html>")
    provider, params = FilesProvider(), files_params(tmp_path)
    with pytest.raises(FetchError, match=r"period 2020-01-02 .*4 of 4 time steps lie outside"):
        provider.fetch_period(_day("2020-01-02"), PACIFIC, params)
    with pytest.raises(FetchError, match=r"period 2020-01-03 .*an HTML page"):
        provider.fetch_period(_day("2020-01-03"), PACIFIC, params)
    between_cells = Extent(id="speck", bbox=(1.0, 1.0, 2.0, 2.0))
    with pytest.raises(FetchError, match=r"period 2020-01-01 .*'speck'.* selects no cell"):
        provider.fetch_period(_day("2020-01-01"), between_cells, params)
    with pytest.raises(FetchError, match=r"period 2020-01-04 .*no file"):
        provider.fetch_period(_day("2020-01-04"), PACIFIC, params)


# -- http ----------------------------------------------------------------------------------------

#: What the loopback server does wrong for some days (the others it serves as they are).
FAULTS = {
    "2020-01-01": "503-once",  # a 503 first: the retry gets it
    "2020-01-02": "timeout",
    "2020-01-03": "truncated",
    "2020-01-04": "html",
    "2020-01-05": "stub",
    "2020-01-07": "json",
}
HTTP_TIMEOUT, RETRIES = 0.3, 1
SECRET = "s3cr3t-token"


class Faulty:
    """A loopback HTTP server over a directory, with ``faults`` (by day, default
    :data:`FAULTS`; change them to heal the site), counting requests by method and file.

    Besides the faults of :data:`FAULTS`, ``stall`` holds a day's GET until ``release``
    is set, then serves it as it is.
    """

    def __init__(self, directory: Path, faults: dict[str, str] | None = None) -> None:
        import collections
        import threading

        self.directory = directory
        self.faults = dict(FAULTS if faults is None else faults)
        self.release = threading.Event()
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.lock = threading.Lock()

    def handler(self) -> Any:
        from http.server import BaseHTTPRequestHandler

        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                import time

                name = self.path.split("?", 1)[0].lstrip("/")
                with server.lock:
                    server.requests[(self.command, name)] += 1
                    count = server.requests[(self.command, name)]
                if name == "":
                    links = "".join(
                        f'<a href="{p.name}">{p.name}</a>'
                        for p in sorted(server.directory.iterdir())
                    )
                    links += '<a href="tas_2020-01-07.nc?x=1">json</a><a href="../">up</a>'
                    return self._send(200, f"<html><body>{links}</body></html>".encode(), body)
                fault = next((f for d, f in dict(server.faults).items() if d in name), None)
                path = server.directory / name
                if fault == "stall" and body:
                    server.release.wait(60)
                if fault == "timeout":
                    time.sleep(HTTP_TIMEOUT * 4)
                    return self._send(200, b"late", body)
                if fault == "html":
                    page = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"
                    return self._send(200, page, body, "text/html")
                if fault == "json":
                    return self._send(200, b'{"error": "quota exceeded"}', body, "application/json")
                if fault == "stub":
                    return self._send(200, b"CDF\x01" + bytes(44), body)
                if fault == "503-once" and body and count == 1:
                    return self._send(503, b"busy", body)
                if not path.is_file():
                    return self._send(404, b"not found", body)
                data = path.read_bytes()
                if fault == "truncated" and body:
                    return self._send(200, data[: len(data) // 2], body, length=len(data))
                return self._send(200, data, body)

            def _send(
                self,
                status: int,
                data: bytes,
                body: bool,
                kind: str = "application/x-netcdf",
                length: int | None = None,
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(length or len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout fault)

        return Handler

    def gets(self, day: str) -> int:
        return self.requests[("GET", f"tas_{day}.nc")]


@pytest.fixture(scope="module")
def http_site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from arcodex.testing import http_server

    directory = tmp_path_factory.mktemp("site")
    write_days(directory, DAYS[:6])
    site = Faulty(directory)
    with http_server(site.handler()) as url:
        site.url = url  # type: ignore[attr-defined]
        yield site


def http_params(site: Any, cache: Path, **extra: Any) -> dict[str, Any]:
    return {
        "url": f"{site.url}/tas_{{period}}.nc?token={SECRET}",
        "period": "daily",
        "timeout": HTTP_TIMEOUT,
        "retries": RETRIES,
        "backoff": 0.05,
        "cache": str(cache),
        **extra,
    }


def test_http_is_a_provider() -> None:
    from arcodex.ingest._http import HttpProvider

    assert isinstance(HttpProvider(catalog=None), Provider)


def test_http_periods_are_the_urls_that_are_not_404(http_site: Any, tmp_path: Path) -> None:
    from arcodex.ingest._http import HttpProvider

    found = HttpProvider().periods(
        _day(DAYS[0]), _day("2020-01-10"), http_params(http_site, tmp_path, concurrency=4)
    )
    # 2020-01-08..10 answer 404; the faulty ones exist (fetching them says what is wrong).
    assert found == [_day(d) for d in DAYS[:7]]


def test_http_fetch_retries_checks_and_caches(http_site: Any, tmp_path: Path) -> None:
    from arcodex.ingest._http import HttpProvider

    params = http_params(http_site, tmp_path / "cache")
    provider = HttpProvider()
    for day in ("2020-01-01", "2020-01-06"):
        assert_same(provider.fetch_period(_day(day), PACIFIC, params), expected(day))
    # The 503 was retried once; the good day came in one request.
    assert http_site.gets("2020-01-01") == 2
    assert http_site.gets("2020-01-06") == 1
    # A complete download is never fetched again, by this provider or another on the cache.
    provider.fetch_period(_day("2020-01-06"), PACIFIC, params)
    HttpProvider().fetch_period(_day("2020-01-06"), PACIFIC, params)
    assert http_site.gets("2020-01-06") == 1
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.parametrize(
    ("day", "reason", "attempts"),
    [
        ("2020-01-02", r"timed out", RETRIES + 1),
        ("2020-01-03", r"transfer cut|truncated", RETRIES + 1),
        ("2020-01-04", r"is an HTML page", 1),
        ("2020-01-05", r"\(48 bytes\) holds no data variables", 1),
        ("2020-01-07", r"is a JSON document", 1),
        ("2020-01-08", r"no such file \(HTTP 404\)", 1),
    ],
    ids=["timeout", "truncated", "html", "stub", "json", "missing"],
)
def test_http_bad_downloads_are_refused_naming_the_period(
    http_site: Any, tmp_path: Path, day: str, reason: str, attempts: int
) -> None:
    from arcodex.ingest._http import HttpProvider

    before = http_site.gets(day)
    with pytest.raises(
        FetchError, match=rf"period {day} \(http://127\.0\.0\.1:\d+/tas_{day}\.nc\): .*{reason}"
    ) as caught:
        HttpProvider().fetch_period(_day(day), PACIFIC, http_params(http_site, tmp_path))
    assert SECRET not in str(caught.value)
    assert http_site.gets(day) - before == attempts
    # Nothing of a refused download stays in the cache, not even a partial file.
    assert list(tmp_path.iterdir()) == []


def test_http_listing(http_site: Any, tmp_path: Path) -> None:
    from arcodex.ingest._http import HttpProvider

    params = {
        "listing": f"{http_site.url}/",
        "pattern": "tas_{period}.nc",
        "period": "daily",
        "timeout": HTTP_TIMEOUT,
        "retries": RETRIES,
        "backoff": 0.05,
        "cache": str(tmp_path),
    }
    provider = HttpProvider()
    assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [_day(d) for d in DAYS[:7]]
    assert_same(provider.fetch_period(_day("2020-01-06"), PACIFIC, params), expected("2020-01-06"))
    assert provider.probe(PACIFIC, params).dims == {"time": 4, "lat": 6, "lon": 6}


# -- s3 ------------------------------------------------------------------------------------------

KEY_ENV, SECRET_ENV = "INGEST_S3_KEY", "INGEST_S3_SECRET"


@pytest.fixture(scope="module")
def s3_world(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None, s3_endpoint: str
) -> Any:
    """A bucket with daily objects (one HTML, one cut in half) and a catalog whose profile
    reaches it with credentials from variables of its own."""
    import uuid

    import boto3

    from arcodex.catalog import Catalog, CatalogConfig
    from arcodex.storage import FileProfileConfig, S3ProfileConfig
    from arcodex.testing import S3_KEY_ID, S3_SECRET, no_aws_credentials

    tmp = tmp_path_factory.mktemp("s3")
    bucket = f"ingest-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    for path in write_days(tmp / "src", DAYS[:4]):
        data = path.read_bytes()
        if "2020-01-03" in path.name:
            data = data[: len(data) // 2]
        s3.put_object(Bucket=bucket, Key=f"archive/tas/{path.name}", Body=data)
    s3.put_object(Bucket=bucket, Key="archive/tas/tas_2020-01-04.nc", Body=b"<html>Denied</html>")
    s3.put_object(Bucket=bucket, Key="archive/other/tas_2020-01-05.nc", Body=b"elsewhere")
    profile = S3ProfileConfig(
        bucket=bucket,
        endpoint_url=s3_endpoint,
        path_style=True,
        key_env=KEY_ENV,
        secret_env=SECRET_ENV,
    )
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "archive": profile})
    with pytest.MonkeyPatch.context() as patch, no_aws_credentials(patch):
        patch.setenv(KEY_ENV, S3_KEY_ID)
        patch.setenv(SECRET_ENV, S3_SECRET)
        with Catalog.create(tmp / "cat", config=config) as cat:
            yield {"catalog": cat, "bucket": bucket, "tmp": tmp, "endpoint": s3_endpoint}


def s3_params(world: dict[str, Any], cache: Path) -> dict[str, Any]:
    return {
        "url": f"s3://{world['bucket']}/archive/tas/tas_{{period}}.nc",
        "profile": "archive",
        "period": "daily",
        "cache": str(cache),
    }


def test_s3_lists_fetches_and_checks(s3_world: dict[str, Any], tmp_path: Path) -> None:
    from arcodex.ingest._s3 import S3Provider

    provider = S3Provider(catalog=s3_world["catalog"])
    assert isinstance(provider, Provider)
    params = s3_params(s3_world, tmp_path)
    assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [_day(d) for d in DAYS[:4]]
    for day in DAYS[:2]:
        assert_same(provider.fetch_period(_day(day), PACIFIC, params), expected(day))
    assert provider.probe(PACIFIC, {**params, "url": params["url"]}).dtypes == {"tas": "float32"}
    where = rf"s3://{s3_world['bucket']}/archive/tas/tas_"
    with pytest.raises(
        FetchError,
        match=rf"period 2020-01-03 \({where}2020-01-03\.nc\): .*(truncated|not a readable)",
    ):
        provider.fetch_period(_day("2020-01-03"), PACIFIC, params)
    with pytest.raises(
        FetchError, match=rf"period 2020-01-04 \({where}2020-01-04\.nc\): .*an HTML page"
    ):
        provider.fetch_period(_day("2020-01-04"), PACIFIC, params)
    with pytest.raises(FetchError, match=r"period 2020-01-05: no object"):
        provider.fetch_period(_day("2020-01-05"), PACIFIC, params)
    # Only the two good downloads stay in the cache; a second fetch reads them from there.
    cached = sorted(tmp_path.iterdir())
    assert len(cached) == 2
    stamps = [p.stat().st_mtime_ns for p in cached]
    provider.fetch_period(_day(DAYS[0]), PACIFIC, params)
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())] == stamps


def test_s3_without_credentials_says_what_to_set(
    s3_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.errors import AuthError
    from arcodex.ingest._s3 import S3Provider

    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AuthError, match=rf"profile 'archive' needs credentials: set \${KEY_ENV}"):
        S3Provider(catalog=s3_world["catalog"]).periods(
            _day(DAYS[0]), _day(DAYS[-1]), s3_params(s3_world, tmp_path)
        )


def test_http_probe_of_a_url_template(http_site: Any, tmp_path: Path) -> None:
    from arcodex.errors import ValidationError
    from arcodex.ingest._http import HttpProvider

    params = http_params(http_site, tmp_path, probe="2020-01-06")
    assert HttpProvider().probe(PACIFIC, params).coords["lat"] == (25.0, -25.0)
    # The site's periods are long past: nothing among the last 31 days, so ask for one.
    del params["probe"]
    with pytest.raises(ValidationError, match=r"params\.probe"):
        HttpProvider().probe(PACIFIC, params)


# -- remote-zarr ---------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first six days in a Zarr v3 store and in an Icechunk repository."""
    import icechunk
    from icechunk.xarray import to_icechunk

    root = tmp_path_factory.mktemp("stores")
    whole = xr.concat([source(d) for d in DAYS[:6]], "time")
    whole.to_zarr(root / "tas.zarr", zarr_format=3, consolidated=False)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root / "tas-repo")))
    session = repo.writable_session("main")
    to_icechunk(whole, session)
    session.commit("six days")
    return {"zarr": root / "tas.zarr", "icechunk": root / "tas-repo"}


@pytest.mark.parametrize("kind", ["zarr", "icechunk"])
def test_remote_zarr_reads_in_place(stores: dict[str, Path], kind: str) -> None:
    from arcodex.ingest._remote_zarr import RemoteZarrProvider

    provider = RemoteZarrProvider(catalog=None)
    assert isinstance(provider, Provider)
    params = {"url": str(stores[kind]), "period": "daily"}
    before = _tree(stores[kind].parent)
    assert provider.periods(_day("2020-01-03"), _day("2020-01-31"), params) == [
        _day(d) for d in DAYS[2:6]
    ]
    grid = provider.probe(PACIFIC, params)
    assert grid.dims == {"time": 24, "lat": 6, "lon": 6}
    got = provider.fetch_period(_day("2020-01-04"), PACIFIC, params)
    assert got["tas"].chunks is not None  # lazy: a selection of the store, not a copy
    assert_same(got.compute(), expected("2020-01-04"))
    with pytest.raises(FetchError, match=r"period 2020-01-07 \(store .*\): no time steps"):
        provider.fetch_period(_day("2020-01-07"), PACIFIC, params)
    monthly = provider.periods(
        pd.Period("2019-12", "M"), pd.Period("2020-12", "M"), {**params, "period": "monthly"}
    )
    assert monthly == [pd.Period("2020-01", "M")]
    assert _tree(stores[kind].parent) == before, "reading the store wrote to it"


# -- period names --------------------------------------------------------------------------------

FORMATS = {"hourly": "%Y%m%d%H", "daily": "%Y%m%d", "monthly": "%Y%m", "yearly": "%Y"}


@settings(max_examples=150, deadline=None)
@given(
    period_type=st.sampled_from(sorted(FORMATS)),
    when=st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31)),
    prefix=st.from_regex(r"[a-z][a-z0-9_.-]{0,12}", fullmatch=True),
    strftime=st.booleans(),
)
def test_period_names_round_trip(
    period_type: str, when: dt.datetime, prefix: str, strftime: bool
) -> None:
    """A name written for a period reads back as that period, in either template form."""
    from arcodex.ingest._names import PeriodNames
    from arcodex.ingest._periods import FREQUENCIES

    field = f"{{period:{FORMATS[period_type]}}}" if strftime else "{period}"
    names = PeriodNames(f"{prefix}_{field}.nc", period_type)  # type: ignore[arg-type]
    period = pd.Period(when, freq=FREQUENCIES[period_type])
    name = names.render(period)
    assert names.period_of(name) == period
    assert names.period_of("x" + name) is None
    assert names.period_of(name + ".part") is None


@pytest.mark.parametrize("kind", ["zarr", "icechunk"])
def test_remote_zarr_on_s3_through_a_profile(s3_world: dict[str, Any], kind: str) -> None:
    import icechunk
    from icechunk.xarray import to_icechunk

    from arcodex.ingest._remote_zarr import RemoteZarrProvider
    from arcodex.testing import S3_KEY_ID, S3_SECRET

    bucket, endpoint = s3_world["bucket"], s3_world["endpoint"]
    whole = xr.concat([source(d) for d in DAYS[:3]], "time")
    url = f"s3://{bucket}/stores/tas.{kind}"
    if kind == "zarr":
        options = {
            "endpoint_url": endpoint,
            "key": S3_KEY_ID,
            "secret": S3_SECRET,
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }
        whole.to_zarr(url, zarr_format=3, consolidated=False, storage_options=options)
    else:
        storage = icechunk.s3_storage(
            bucket=bucket,
            prefix="stores/tas.icechunk",
            endpoint_url=endpoint,
            region="us-east-1",
            allow_http=True,
            force_path_style=True,
            access_key_id=S3_KEY_ID,
            secret_access_key=S3_SECRET,
        )
        session = icechunk.Repository.create(storage).writable_session("main")
        to_icechunk(whole, session)
        session.commit("three days")
    provider = RemoteZarrProvider(catalog=s3_world["catalog"])
    params = {"url": url, "profile": "archive", "period": "daily"}
    assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [_day(d) for d in DAYS[:3]]
    assert_same(provider.fetch_period(_day(DAYS[1]), PACIFIC, params).compute(), expected(DAYS[1]))


# -- the provider contract, once per provider ----------------------------------------------------


def _cut(period: pd.Period) -> xr.Dataset:
    return expected(str(period))


class TestFilesContract(ProviderTests):
    @pytest.fixture
    def case(self, archive: Path) -> ProviderCase:
        present = [_day(d) for d in DAYS[:6]]
        return ProviderCase(
            FilesProvider(), files_params(archive), PACIFIC, present, _day(DAYS[6]), _cut
        )


class TestHttpContract(ProviderTests):
    @pytest.fixture
    def case(self, http_site: Any, tmp_path: Path) -> ProviderCase:
        from arcodex.ingest._http import HttpProvider

        params = http_params(http_site, tmp_path, probe="2020-01-06")
        present = [_day("2020-01-01"), _day("2020-01-06")]
        return ProviderCase(HttpProvider(), params, PACIFIC, present, _day("2020-01-08"), _cut)


class TestS3Contract(ProviderTests):
    @pytest.fixture
    def case(self, s3_world: dict[str, Any], tmp_path: Path) -> ProviderCase:
        from arcodex.ingest._s3 import S3Provider

        provider = S3Provider(catalog=s3_world["catalog"])
        present = [_day(d) for d in DAYS[:2]]
        params = s3_params(s3_world, tmp_path)
        return ProviderCase(provider, params, PACIFIC, present, _day("2020-01-05"), _cut)


class TestRemoteZarrContract(ProviderTests):
    @pytest.fixture
    def case(self, stores: dict[str, Path]) -> ProviderCase:
        from arcodex.ingest._remote_zarr import RemoteZarrProvider

        params = {"url": str(stores["icechunk"]), "period": "daily"}
        present = [_day(d) for d in DAYS[:6]]
        return ProviderCase(RemoteZarrProvider(), params, PACIFIC, present, _day(DAYS[6]), _cut)


def test_remote_zarr_sees_what_is_appended(tmp_path: Path) -> None:
    from arcodex.ingest._remote_zarr import RemoteZarrProvider

    store = tmp_path / "growing.zarr"
    xr.concat([source(d) for d in DAYS[:2]], "time").to_zarr(
        store, zarr_format=3, consolidated=False
    )
    provider = RemoteZarrProvider()
    params = {"url": str(store), "period": "daily"}
    assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [_day(d) for d in DAYS[:2]]
    source(DAYS[2]).to_zarr(store, append_dim="time", consolidated=False)
    assert provider.periods(_day(DAYS[0]), _day(DAYS[-1]), params) == [_day(d) for d in DAYS[:3]]
    assert_same(provider.fetch_period(_day(DAYS[2]), PACIFIC, params).compute(), expected(DAYS[2]))
