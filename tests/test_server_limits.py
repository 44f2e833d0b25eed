"""The server under hostile and careless requests: never a crash, a stall or a 5xx.

Each class of request that once crashed the process, answered 500 or made
the server fetch data has a case here; every refusal is a 4xx with a STAC
error body. The crash case runs against ``arcodex serve`` in a subprocess, so
that a regression shows as a dead server rather than a dead test run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.testing import http_server, publish_all

pytest.importorskip("stac_fastapi.api")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")

HITS: list[str] = []


class _Counting(BaseHTTPRequestHandler):
    """Counts every request: a record's external URL that the server must never open."""

    def do_GET(self) -> None:
        HITS.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _netcdf(path: Path, lon0: float, start: str) -> Path:
    times = np.array([start, start], dtype="datetime64[ns]") + np.array([0, 1], "timedelta64[D]")
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((2, 2, 2), "f4"))},
        coords={
            "time": times,
            "lat": ("lat", np.array([0.0, 1.0]), {"units": "degrees_north"}),
            "lon": ("lon", np.array([lon0, lon0 + 1]), {"units": "degrees_east"}),
        },
        attrs={"title": path.stem},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def external_url() -> Iterator[str]:
    with http_server(_Counting) as url:
        yield url


@pytest.fixture(scope="module")
def root(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None, external_url: str
) -> Path:
    """A catalog: a group of two files, three files of their own, one external dataset."""
    base = tmp_path_factory.mktemp("limits")
    config = CatalogConfig(
        stac_collections=[{"id": "ocean", "where": ["tags=ocean"], "license": "CC-BY-4.0"}],
        server={"max_limit": 3, "max_list": 50, "max_body_bytes": 20_000},
    )
    with Catalog.create(base / "cat", config=config) as cat:
        cat.add_files(
            [_netcdf(base / f"ocean{i}.nc", 10.0 * i, f"200{i}-01-01") for i in range(2)],
            tags=["ocean"],
        )
        cat.add_files([_netcdf(base / f"own{i}.nc", -50.0 - i, f"201{i}-01-01") for i in range(3)])
        cat.add_external(
            f"{external_url}/remote.nc",
            kind="dataset",
            format="netcdf",
            media_type="application/netcdf",
            title="remote",
            metadata={"bbox": [0, 0, 1, 1], "start_datetime": "2020-01-01T00:00:00Z"},
        )
        publish_all(cat)
    return base / "cat"


@asynccontextmanager
async def _client(root: Path, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    from arcodex.server import create_app

    transport = httpx.ASGITransport(app=create_app(root, **kwargs), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as client:
        yield client


def _requests(root: Path, calls: list[tuple[str, str, Any]], **kwargs: Any) -> list[httpx.Response]:
    import asyncio

    async def run() -> list[httpx.Response]:
        async with _client(root, **kwargs) as client:
            out = []
            for method, path, body in calls:
                if isinstance(body, bytes | str) or body is None:
                    headers = {"content-type": "application/json"} if body is not None else {}
                    out.append(await client.request(method, path, content=body, headers=headers))
                else:
                    out.append(await client.request(method, path, json=body))
            return out

    return asyncio.run(run())


def _nested_not(depth: int) -> dict[str, Any]:
    expr: dict[str, Any] = {"op": "=", "args": [{"property": "title"}, "a"]}
    for _ in range(depth):
        expr = {"op": "not", "args": [expr]}
    return expr


def _cursor(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return base64.urlsafe_b64encode(text.encode()).decode()


TWO_POINTS = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}
FIVE_THOUSAND = "title IN (" + ",".join(f"'{i}'" for i in range(5000)) + ")"
SIXTY_VALUES = "title IN (" + ",".join(str(i) for i in range(60)) + ")"
MALFORMED = [
    # non-object JSON bodies
    ("POST", "/stac/search", "[]", 400),
    ("POST", "/stac/search", "1", 400),
    ("POST", "/stac/search", '"x"', 400),
    ("POST", "/stac/search", "null", 400),
    ("POST", "/stac/search", "{", 400),
    # geometries: two points, numbers no float holds, NaN
    ("POST", "/stac/search", {"intersects": TWO_POINTS}, 400),
    ("GET", "/stac/search?intersects=" + json.dumps(TWO_POINTS), None, 400),
    ("GET", '/stac/search?intersects={"type":"Point"}', None, 400),
    ("GET", "/stac/search?intersects=[1,2]", None, 400),
    ("POST", "/stac/search", '{"bbox": [1e400, 0, 1, 1]}', 400),
    ("POST", "/stac/search", '{"intersects": {"type": "Point", "coordinates": [1e400, 0]}}', 400),
    ("POST", "/stac/search", '{"limit": 1e400}', 400),
    ("POST", "/stac/search", '{"bbox": [NaN, 0, 1, 1]}', 400),
    ("GET", '/stac/search?intersects={"type":"Point","coordinates":[1e400,0]}', None, 400),
    ("GET", "/stac/search?bbox=1e400,0,1,1", None, 400),
    # filters: too long, too many IN values, too deep (text and JSON, GET and POST), malformed
    ("GET", "/stac/search?filter=" + FIVE_THOUSAND, None, 400),
    ("GET", "/stac/search?filter=" + SIXTY_VALUES, None, 400),
    ("POST", "/stac/search", {"filter": _nested_not(500), "filter-lang": "cql2-json"}, 400),
    ("GET", "/stac/search?filter-lang=cql2-json&filter=" + json.dumps(_nested_not(500)), None, 400),
    ("GET", "/stac/search?filter=" + "NOT " * 3000 + "title = 'a'", None, 400),
    ("GET", "/stac/search?filter=title = " + "1 -" * 3000 + "1", None, 400),
    ("POST", "/stac/search", {"filter": {"op": "=", "args": [1, 2, 3]}}, 400),
    ("POST", "/stac/search", {"filter": {"op": "not", "args": []}}, 400),
    ("POST", "/stac/search", {"filter": {"op": "s_intersects", "args": [1, 2]}}, 400),
    ("POST", "/stac/search", {"filter": {"op": "in", "args": [{"property": "t"}, "x"]}}, 400),
    # forged paging tokens
    ("GET", "/stac/search?token=garbage", None, 400),
    ("GET", "/stac/search?token=v1~garbage", None, 400),
    ("GET", "/stac/search?token=u.-5", None, 400),
    ("GET", "/stac/search?token=" + "a" * 5000, None, 400),
    ("GET", "/stac/search?token=" + _cursor('{"r": 1e400, "k": []}'), None, 400),
    ("GET", "/stac/search?token=" + _cursor({"r": 10**30, "k": []}), None, 400),
    ("GET", "/stac/search?sortby=-datetime&token=" + _cursor({"r": 1, "k": [[1]]}), None, 400),
    ("GET", "/stac/search?sortby=-datetime&token=" + _cursor({"r": 1, "k": [10**30]}), None, 400),
    ("GET", "/stac/collections?token=" + _cursor({"r": 1e300, "k": []}), None, 400),
    ("GET", "/stac/collections?token=v2~", None, 400),
    ("POST", "/stac/search", {"token": "u.99999999"}, 400),
    # lists, limits, sorting, unknown collections, body size
    ("POST", "/stac/search", {"ids": [str(i) for i in range(51)]}, 400),
    ("POST", "/stac/search", {"fields": {"include": [f"p{i}" for i in range(51)]}}, 400),
    ("GET", "/stac/search?sortby=" + ",".join(["id"] * 9), None, 400),
    (
        "POST",
        "/stac/search",
        {"filter": {"op": "<", "args": [{"property": "title"}, "z" * 300]}},
        400,
    ),
    ("GET", "/stac/collections?limit=0", None, 400),
    ("GET", "/stac/search?limit=0", None, 400),
    ("GET", "/stac/search?sortby=nope", None, 400),
    ("GET", "/stac/search?sortby=properties.no.such.path", None, 400),
    ("GET", "/stac/collections/nope/queryables", None, 404),
    ("GET", "/stac/search?datetime=2000-13-01", None, 400),
    ("POST", "/stac/search", json.dumps({"ids": ["x" * 30_000]}), 413),
    ("GET", "/stac/nowhere", None, 404),
    ("DELETE", "/stac/search", None, 405),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    MALFORMED,
    ids=[f"{i}-{m} {p[:40]}" for i, (m, p, _, _) in enumerate(MALFORMED)],
)
def test_malformed_requests_are_4xx_with_an_error_body(
    root: Path, method: str, path: str, body: Any, status: int
) -> None:
    (resp,) = _requests(root, [(method, path, body)])
    assert resp.status_code == status, resp.text
    doc = resp.json()
    assert isinstance(doc["code"], str) and doc["code"]
    assert isinstance(doc["description"], str) and doc["description"]


def test_numbers_beyond_sqlite_integers_are_compared_not_refused(root: Path) -> None:
    huge = {"op": "=", "args": [{"property": "file.size"}, 10**30]}
    responses = _requests(
        root,
        [
            ("GET", "/stac/search?filter=file.size = 99999999999999999999999999", None),
            ("POST", "/stac/search", {"filter": huge}),
        ],
    )
    for resp in responses:
        assert resp.status_code == 200, resp.text
        assert resp.json()["features"] == []


def test_the_root_redirects_to_the_stac_landing_page(root: Path) -> None:
    calls = [("GET", "/", None), ("GET", "/?request=x", None), ("GET", "/stac/", None)]
    *roots, stac = _requests(root, calls)
    for resp in roots:
        assert resp.status_code == 307, resp.text
        assert resp.headers["location"] == "http://arcodex/stac/"
    assert stac.status_code == 200 and stac.json()["type"] == "Catalog"


def test_the_root_redirect_keeps_the_proxy_prefix(root: Path) -> None:
    import asyncio

    from arcodex.server import create_app

    async def run() -> httpx.Response:
        # The server's root path, as `uvicorn --root-path` sets it behind a proxy.
        transport = httpx.ASGITransport(app=create_app(root), root_path="/arcodex")
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.get("/arcodex/")

    resp = asyncio.run(run())
    assert resp.status_code == 307
    assert resp.headers["location"] == "http://proxy/arcodex/stac/"


def test_a_streamed_body_is_bounded(root: Path) -> None:
    import asyncio

    async def run() -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" " * 1000

        async with _client(root) as client:
            return await client.post(
                "/stac/search", content=chunks(), headers={"content-type": "application/json"}
            )

    resp = asyncio.run(run())
    assert resp.status_code == 413 and "max_body_bytes" in resp.json()["description"]


def test_searches_make_no_outbound_request(root: Path) -> None:
    """The external record's URL is never opened: documents come from catalog metadata."""
    HITS.clear()
    with Catalog.open(root) as cat:
        remote = cat.search("title=remote").records[0].id
    calls = [
        ("GET", "/stac/search?limit=3", None),
        ("POST", "/stac/search", {"ids": [remote]}),
        ("GET", "/stac/collections", None),
        ("GET", f"/stac/collections/{remote}", None),
        ("GET", f"/stac/collections/{remote}/items", None),
        ("GET", f"/stac/collections/{remote}/items/{remote}", None),
    ]
    responses = _requests(root, calls)
    assert [r.status_code for r in responses] == [200] * len(calls)
    found = responses[1].json()["features"]
    assert [f["id"] for f in found] == [remote]
    assert found[0]["assets"]["data"]["href"].endswith("/remote.nc")
    assert HITS == []


def test_limit_is_cut_to_the_configured_maximum(root: Path) -> None:
    search, collections = _requests(
        root,
        [("GET", "/stac/search?limit=100", None), ("GET", "/stac/collections?limit=100", None)],
    )
    assert search.status_code == 200 and search.json()["numberReturned"] == 3
    assert any(link["rel"] == "next" for link in search.json()["links"])
    assert collections.json()["numberReturned"] == 3


def test_collections_pages_count_collections(root: Path) -> None:
    """Every page holds `limit` Collections (the group first), each Collection once."""
    seen: list[list[str]] = []
    path: str | None = "/stac/collections?limit=2"
    while path:
        (resp,) = _requests(root, [("GET", path, None)])
        assert resp.status_code == 200, resp.text
        seen.append([c["id"] for c in resp.json()["collections"]])
        following = [link["href"] for link in resp.json()["links"] if link["rel"] == "next"]
        path = following[0].removeprefix("http://arcodex") if following else None
        assert len(seen) < 10
    flat = [c for page in seen for c in page]
    with Catalog.open(root) as cat:
        own = sorted(
            r.id for r in cat.search(kind="dataset", limit=None).records if "ocean" not in r.tags
        )
    assert flat[0] == "ocean" and sorted(flat[1:]) == own and len(set(flat)) == len(flat)
    assert [len(page) for page in seen[:-1]] == [2] * (len(seen) - 1)
    assert 1 <= len(seen[-1]) <= 2


def test_queryables_of_a_collection(root: Path) -> None:
    ok, group = _requests(
        root,
        [("GET", "/stac/queryables", None), ("GET", "/stac/collections/ocean/queryables", None)],
    )
    assert ok.status_code == group.status_code == 200
    assert "datetime" in group.json()["properties"]


def test_sort_by_a_metadata_path_records_hold(root: Path) -> None:
    (resp,) = _requests(root, [("GET", "/stac/search?sortby=-netcdf.time.start&limit=3", None)])
    assert resp.status_code == 200, resp.text
    titles = [f["properties"]["title"] for f in resp.json()["features"]]
    assert titles == ["own2", "own1", "own0"]


@pytest.mark.parametrize(
    ("fields", "top", "props"),
    [
        # include only: those (and id, type), nothing else of properties
        ({"include": ["properties.title"]}, {"id", "type", "properties", "collection", "stac_version"}, {"title"}),
        # empty include (or fields=''): the default set
        ({"include": []}, {"id", "type", "geometry", "bbox", "links", "assets", "stac_version", "collection", "properties"}, {"datetime", "start_datetime", "end_datetime"}),
        # exclude only, include missing: everything but those
        ({"exclude": ["geometry", "properties.title"]}, None, None),
        # in both: included
        ({"include": ["properties.title", "geometry"], "exclude": ["geometry"]}, {"id", "type", "properties", "geometry", "collection", "stac_version"}, {"title"}),
        # excluded parent, included child: only that child
        ({"include": ["properties.title"], "exclude": ["properties"]}, {"id", "type", "properties", "collection", "stac_version"}, {"title"}),
        # included parent, excluded child: all but that child
        ({"include": ["properties"], "exclude": ["properties.title"]}, {"id", "type", "properties", "collection", "stac_version"}, "all-but-title"),
    ],
)  # fmt: skip
def test_fields_include_exclude_precedence(
    root: Path, fields: dict[str, Any], top: set[str] | None, props: Any
) -> None:
    whole, resp = _requests(
        root,
        [
            ("POST", "/stac/search", {"limit": 1}),
            ("POST", "/stac/search", {"limit": 1, "fields": fields}),
        ],
    )
    full, item = whole.json()["features"][0], resp.json()["features"][0]
    if top is None:  # exclude only: all the rest
        assert set(item) == set(full) - {"geometry"}
        assert set(item["properties"]) == set(full["properties"]) - {"title"}
        return
    assert set(item) == top
    if props == "all-but-title":
        assert set(item["properties"]) == set(full["properties"]) - {"title"}
    else:
        assert set(item["properties"]) == props & set(full["properties"])


def test_get_fields_follow_the_same_rules(root: Path) -> None:
    empty, only_exclude = _requests(
        root,
        [
            ("GET", "/stac/search?limit=1&fields=", None),
            ("GET", "/stac/search?limit=1&fields=-geometry", None),
        ],
    )
    default = {"id", "type", "geometry", "bbox", "links", "assets", "stac_version", "collection"}
    assert set(empty.json()["features"][0]) - {"properties"} == default
    # GET with excludes only: the default set less those
    assert set(only_exclude.json()["features"][0]) - {"properties"} == default - {"geometry"}


def test_forwarded_headers_count_only_from_trusted_proxies(root: Path) -> None:
    forged = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "host=evil.example;proto=https",
    }
    import asyncio

    async def landing(**kwargs: Any) -> str:
        async with _client(root, **kwargs) as client:
            resp = await client.get("/stac/", headers=forged)
            links = {link["rel"]: link["href"] for link in resp.json()["links"]}
            return links["self"]

    # The test client connects from 127.0.0.1: trusted only when configured so.
    assert asyncio.run(landing()) == "http://arcodex/stac/"
    assert asyncio.run(landing(forwarded_allow_ips=["10.0.0.0/8"])) == "http://arcodex/stac/"
    assert asyncio.run(landing(forwarded_allow_ips=["127.0.0.1"])) == "https://evil.example/stac/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``arcodex serve`` in a subprocess, trusting 127.0.0.1 as its proxy."""
    port = _free_port()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "arcodex.cli",
        "--catalog",
        str(root),
        "serve",
        "--port",
        str(port),
    ]
    cmd += ["--forwarded-allow-ips", "127.0.0.1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            if httpx.get(f"{url}/stac/", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "arcodex serve did not start"
        time.sleep(0.2)
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def test_deeply_nested_filter_does_not_crash_the_server(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """A 12 KB GET of nested parentheses once overflowed the CQL2 parser's stack (SIGSEGV)."""
    url, proc = served
    deep = "(" * 6000 + "title = 'a'" + ")" * 6000
    for params in ({"filter": deep}, {"filter": deep, "filter-lang": "cql2-text"}):
        resp = httpx.get(f"{url}/stac/search", params=params, timeout=30)
        assert resp.status_code == 400 and "max_depth" in resp.json()["description"]
    deep_json = "[" * 6000 + "]" * 6000
    resp = httpx.post(
        f"{url}/stac/search", content=deep_json, headers={"content-type": "application/json"}
    )
    assert resp.status_code in (400, 413)
    assert proc.poll() is None, "the server died"
    assert httpx.get(f"{url}/stac/search", params={"limit": 1}).status_code == 200


def test_serve_trusts_the_proxies_it_is_given(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = served
    resp = httpx.get(f"{url}/stac/", headers={"X-Forwarded-Host": "proxy.example"})
    links = {link["rel"]: link["href"] for link in resp.json()["links"]}
    assert links["self"] == "http://proxy.example/stac/"


def test_filter_nesting_is_measured_before_parsing() -> None:
    """Every construct that nests in the parser counts, whatever the brackets say."""
    from arcodex.server._limits import cql2_text_depth

    assert cql2_text_depth("title = 'a'") == 0
    assert cql2_text_depth("S_INTERSECTS(geometry, POLYGON((-10 -5, -3 -4, -10 -5)))") == 3
    assert cql2_text_depth("x IN (-1, -2) AND y > -1 AND z = 'a - NOT b'") == 1
    for chain in ("NOT " * 100 + "a = 1", "a = " + "-" * 100 + "1", "a = " + "1 - " * 100 + "1"):
        assert cql2_text_depth(chain) >= 100
    assert cql2_text_depth(" = ".join(["1"] * 101)) >= 99  # the first comparison nests nothing
    assert cql2_text_depth("a = 1 AND b = 2 AND c BETWEEN 1 AND 2") == 0


def test_like_matches_in_linear_time_and_exactly() -> None:
    """'%a%a%a%a%a%a%a%a%b' once took seconds per value (regex backtracking)."""
    import fnmatch
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from arcodex.server._cql2 import _like_regex

    pattern = "%a" * 40 + "%b"
    started = time.monotonic()
    assert re.search(f"^{_like_regex(pattern)}$", "a" * 5000) is None
    assert re.search(f"^(?!{_like_regex(pattern)}$)", "a" * 5000) is not None
    assert time.monotonic() - started < 0.5

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.text("ab%_", max_size=8), st.text("ab", max_size=10))
    def agrees(like: str, value: str) -> None:
        glob = like.replace("%", "*").replace("_", "?")
        matched = re.search(f"^{_like_regex(like)}$", value) is not None
        assert matched == fnmatch.fnmatchcase(value, glob)

    agrees()


def test_ordered_text_comparisons_are_bounded(root: Path) -> None:
    """`title < 'zzz…'` built an expression growing as the square of the text (a stall)."""
    started = time.monotonic()
    (long_text, short) = _requests(
        root,
        [
            ("GET", "/stac/search?filter=title < '" + "z" * 15000 + "'", None),
            ("GET", "/stac/search?filter=title < 'own1'&limit=3", None),
        ],
    )
    assert long_text.status_code == 400 and "at most" in long_text.json()["description"]
    assert time.monotonic() - started < 10
    titles = sorted(f["properties"]["title"] for f in short.json()["features"])
    assert titles == ["ocean0", "ocean1", "own0"]


def test_any_filter_within_the_bounds_parses_or_is_refused() -> None:
    """Token soup that passes the scan never reaches the parser deep enough to crash it.

    A regression here is a crash of the test process (the parser's stack overflow),
    so the soup is kept to the constructs that nest.
    """
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from arcodex.catalog._config import ServerConfig
    from arcodex.errors import QueryError
    from arcodex.server._cql2 import branches_for, parse_filter

    tokens = st.sampled_from(
        ["(", ")", "[", "]", ",", " NOT ", "-", "+", "*", " = ", " < ", " AND ", " OR ",
         " IN ", " LIKE ", "1", "-1", "'a'", "title", "POINT", "CASEI"]
    )  # fmt: skip
    limits = ServerConfig()

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.lists(tokens, max_size=600), st.integers(0, 400))
    def parses_or_refuses(soup: list[str], repeat: int) -> None:
        text = "".join(soup) + "(" * repeat + "title = 'a'" + ")" * repeat
        with contextlib.suppress(QueryError):
            branches_for(parse_filter(text, "cql2-text", limits))

    parses_or_refuses()
