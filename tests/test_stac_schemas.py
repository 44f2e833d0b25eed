"""The offline cache of STAC extension schemas: fetch (from a loopback mirror), list, and
validation against what is cached, never the network."""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.cli import app
from arcodex.errors import ValidationError
from arcodex.stac import (
    EXTENSIONS,
    build_documents,
    cached_schemas,
    fetch_schemas,
    schema_cache_dir,
    validate_stac,
)
from arcodex.stac._schemas import ENV_SCHEMAS, OFFICIAL_SCHEMAS, cache_path
from arcodex.stac._validate import NOT_CACHED

pytest.importorskip("pystac")
pytest.importorskip("xarray")

DATACUBE = EXTENSIONS["datacube"]
#: Fetched last: when it fails, the others have been downloaded already.
VERSION = EXTENSIONS["version"]
#: An extension arcodex does not write, so never in the cache the tests fill.
EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
runner = CliRunner()


def datacube_schema(dimension: dict[str, Any] | None = None) -> dict[str, Any]:
    """A small stand-in for the datacube schema: every dimension needs a ``type``."""
    cube = {
        "type": "object",
        "properties": {
            "cube:dimensions": {
                "type": "object",
                "additionalProperties": dimension or {"type": "object", "required": ["type"]},
            }
        },
    }
    return {
        "$schema": DRAFT7,
        "$id": DATACUBE,
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "properties"],
                "properties": {"type": {"const": "Feature"}, "properties": cube},
            },
            {
                "type": "object",
                "required": ["type", "cube:dimensions"],
                "properties": {"type": {"const": "Collection"}},
                "allOf": [cube],
            },
        ],
    }


# -- a mirror of stac-extensions.github.io on loopback ---------------------------------------------


@dataclass
class Mirror:
    """A directory served over HTTP, and the paths requested from it."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)

    def put(self, uri: str, content: dict[str, Any] | str) -> None:
        """Serve ``content`` where the mirror keeps the official schema ``uri``."""
        path = self.root / uri.removeprefix(OFFICIAL_SCHEMAS)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))

    def remove(self, uri: str) -> None:
        (self.root / uri.removeprefix(OFFICIAL_SCHEMAS)).unlink()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    """Every extension schema arcodex writes: the strict datacube one, the others permissive."""
    served = Mirror("", tmp_path / "mirror")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served.root))
    )
    served.url = f"http://127.0.0.1:{server.server_address[1]}/"
    for uri in EXTENSIONS.values():
        served.put(uri, {"$schema": DRAFT7, "$id": uri})
    served.put(DATACUBE, datacube_schema())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty schema cache of this test's own, named the way users name one."""
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)  # the mirror is on loopback, not behind one
    path = tmp_path / "cache"
    monkeypatch.setenv(ENV_SCHEMAS, str(path))
    return path


@pytest.fixture(scope="module")
def catalog(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> tuple[Path, list[dict[str, Any]]]:
    """A catalog with one NetCDF dataset, and its STAC (a Catalog, a Collection, an Item)."""
    root = tmp_path_factory.mktemp("schemas")
    with Catalog.create(root / "cat") as cat:
        cat.add_files(write_archive(root / "archive", "regular", files=1, steps=2))
        docs = list(build_documents(cat).values())
    return root / "cat", docs


def item_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in docs if d["type"] == "Feature"))


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def files_in(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# -- fetch and list ---------------------------------------------------------------------------------


def test_fetch_from_a_mirror_fills_the_cache_and_validation_uses_it(
    mirror: Mirror, cache: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, _ = catalog
    listed = json.loads(cli("stac", "schemas", "list", "--json").stdout)
    assert listed["cache"] == str(cache)
    assert {s["uri"] for s in listed["schemas"]} == set(EXTENSIONS.values())
    assert not any(s["cached"] for s in listed["schemas"])
    before = json.loads(cli("--catalog", str(root), "stac", "validate", "--json").stdout)
    assert before["valid"] and DATACUBE in {n["schema"] for n in before["notices"]}

    done = cli("stac", "schemas", "fetch", "--mirror", mirror.url, "--json")
    assert done.exit_code == 0, done.stderr
    fetched = json.loads(done.stdout)["fetched"]
    assert {f["uri"] for f in fetched} == set(EXTENSIONS.values())
    assert f"{mirror.url}datacube/v2.2.0/schema.json" in {f["source"] for f in fetched}
    assert "/datacube/v2.2.0/schema.json" in mirror.requests
    stored = cache / "stac-extensions.github.io" / "datacube" / "v2.2.0" / "schema.json"
    assert json.loads(stored.read_text()) == datacube_schema()
    assert len(files_in(cache)) == len(EXTENSIONS), "no temporary file is left behind"

    listed = json.loads(cli("stac", "schemas", "list", "--json").stdout)
    assert all(s["cached"] for s in listed["schemas"])
    assert {s["path"] for s in listed["schemas"]} == {str(p) for p in files_in(cache)}
    after = json.loads(cli("--catalog", str(root), "stac", "validate", "--json").stdout)
    assert after == {"valid": True, "checked": 3, "problems": [], "notices": []}


def test_a_datacube_block_breaking_the_cached_schema_is_a_problem_of_that_schema(
    mirror: Mirror, cache: Path, tmp_path: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, docs = catalog
    bad = item_of(docs)
    bad["properties"]["cube:dimensions"]["time"]["type"] = "calendar"
    fetch_schemas(mirror=mirror.url)
    assert validate_stac([bad]).valid
    # The mirror's schema changes: dimensions of two kinds only (the profile allows any).
    strict = {"type": "object", "properties": {"type": {"enum": ["spatial", "temporal"]}}}
    mirror.put(DATACUBE, datacube_schema(strict))
    fetch_schemas(mirror=mirror.url)

    report = validate_stac([bad])
    assert not report.valid
    [problem] = report.problems
    assert problem.schema == DATACUBE
    assert problem.path == "properties/cube:dimensions/time/type"
    assert "calendar" in problem.message
    assert validate_stac([bad], schema_cache=tmp_path / "empty").valid, "only the schema objects"
    assert validate_stac(docs).valid


def test_an_uncached_extension_is_a_notice_unless_strict(
    mirror: Mirror, cache: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, docs = catalog
    fetch_schemas(mirror=mirror.url)
    item = item_of(docs)
    item["stac_extensions"].append(EO)

    report = validate_stac([item, item])
    assert report.valid
    assert [n.to_dict() for n in report.notices] == [{"schema": EO, "message": NOT_CACHED}]
    strict = validate_stac([item], strict_extensions=True)
    assert [(p.schema, p.path) for p in strict.problems] == [(EO, "stac_extensions")]


def test_the_cli_prints_a_notice_once_and_strict_extensions_fails(
    cache: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, _ = catalog
    done = cli("--catalog", str(root), "stac", "validate")
    assert done.exit_code == 0, done.stderr
    text = " ".join(done.stdout.split())  # the console wraps long lines
    # The Collection and the Item both declare the datacube extension: one line says so.
    assert text.count("extension schema not cached") == 1
    assert "datacube/v2.2.0" in text
    done = cli("--catalog", str(root), "stac", "validate", "--strict-extensions", "--json")
    assert done.exit_code == 1
    problems = json.loads(done.stdout)["problems"]
    assert {p["schema"] for p in problems} >= {DATACUBE} and len(problems) >= 2


@pytest.mark.parametrize(
    ("served", "says"),
    [
        (None, "HTTP 404"),
        ("<html>Not here</html>", "did not return a JSON object"),
        ({"title": "a page"}, "not a JSON Schema"),
        (
            {"$schema": DRAFT7, "$id": VERSION.replace("v1.2.0", "v1.1.0")},
            "returned the schema https://stac-extensions.github.io/version/v1.1.0",
        ),
        ({"$schema": DRAFT7, "type": 12}, "not a valid Draft 7 schema"),
    ],
    ids=["404", "html", "not-a-schema", "other-version", "invalid-schema"],
)
def test_a_failed_fetch_says_what_to_do_and_writes_nothing(
    mirror: Mirror, cache: Path, served: dict[str, Any] | str | None, says: str
) -> None:
    assert list(EXTENSIONS.values())[-1] == VERSION
    if served is None:
        mirror.remove(VERSION)
    else:
        mirror.put(VERSION, served)
    line = error_line(cli("stac", "schemas", "fetch", "--mirror", mirror.url))
    assert says in line and "version/v1.2.0/schema.json" in line
    assert "/datacube/v2.2.0/schema.json" in mirror.requests
    assert "nothing was written" in line and "--mirror" in line
    assert files_in(cache) == [], "the other schemas downloaded fine, but none is written"


def test_an_unreachable_mirror_and_a_bad_one_are_one_line_errors(cache: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = error_line(cli("stac", "schemas", "fetch", "--mirror", f"http://127.0.0.1:{port}/"))
    assert "cannot fetch" in line and "nothing was written" in line
    assert "not an http(s) URL" in error_line(cli("stac", "schemas", "fetch", "--mirror", "x/"))
    assert files_in(cache) == []


# -- never the network ------------------------------------------------------------------------------


def test_validation_refuses_to_download_what_a_schema_refers_to(
    mirror: Mirror, cache: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, docs = catalog
    elsewhere = f"{mirror.url}elsewhere/schema.json"
    mirror.put(elsewhere.removeprefix(mirror.url), {"$schema": DRAFT7, "$id": elsewhere})
    mirror.put(DATACUBE, datacube_schema({"$ref": elsewhere}))
    fetch_schemas(mirror=mirror.url)
    asked = len(mirror.requests)

    report = validate_stac(docs)
    assert not report.valid
    assert {p.schema for p in report.problems} == {DATACUBE}
    assert all(elsewhere in p.message and "not cached" in p.message for p in report.problems)
    assert len(mirror.requests) == asked, "validation asked the server for something"

    # The problem names the command that fixes it: fetch the URI it refers to.
    done = cli("stac", "schemas", "fetch", elsewhere, "--mirror", mirror.url)
    assert done.exit_code == 0, done.stderr
    assert "/elsewhere/schema.json" in mirror.requests
    asked = len(mirror.requests)
    assert validate_stac(docs).valid
    assert len(mirror.requests) == asked


# -- where the cache is -----------------------------------------------------------------------------


def test_the_cache_is_the_variable_the_config_key_or_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_SCHEMAS, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert schema_cache_dir() == tmp_path / "xdg" / "arcodex" / "stac-schemas"
    with Catalog.create(tmp_path / "cat", config=CatalogConfig(stac_schemas="schemas")):
        pass
    listed = cli("--catalog", str(tmp_path / "cat"), "stac", "schemas", "list", "--json")
    assert json.loads(listed.stdout)["cache"] == str(tmp_path / "cat" / "schemas")
    monkeypatch.setenv(ENV_SCHEMAS, str(tmp_path / "env"))
    assert schema_cache_dir() == tmp_path / "env"
    listed = cli("--catalog", str(tmp_path / "cat"), "stac", "schemas", "list", "--json")
    assert json.loads(listed.stdout)["cache"] == str(tmp_path / "env"), "ARCODEX_* wins"


def test_the_layout_mirrors_the_url_and_other_cached_schemas_are_listed(tmp_path: Path) -> None:
    assert cache_path(DATACUBE, tmp_path) == (
        tmp_path / "stac-extensions.github.io" / "datacube" / "v2.2.0" / "schema.json"
    )
    other = cache_path("https://example.org/ext/v1/schema.json", tmp_path)
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    listed = {s.uri: s for s in cached_schemas(cache=tmp_path)}
    assert listed["https://example.org/ext/v1/schema.json"].cached
    assert not listed[DATACUBE].cached and set(EXTENSIONS.values()) <= set(listed)
    for bad in ("datacube", "ftp://h/x.json", "https://h/a/../x.json", "https://h/dir/"):
        with pytest.raises(ValidationError, match="not a schema URL"):
            cache_path(bad, tmp_path)


@given(segments=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4))
def test_a_cached_schema_never_lands_outside_the_cache(segments: list[str]) -> None:
    root = Path("/cache-root")
    uri = "https://stac-extensions.github.io/" + "/".join(segments)
    try:
        path = cache_path(uri, root)
    except ValidationError:
        return
    assert path.is_relative_to(root / "stac-extensions.github.io")
    assert ".." not in path.parts


def test_a_broken_cache_is_an_error_and_a_bad_extension_uri_a_notice(
    cache: Path, catalog: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, docs = catalog
    item = item_of(docs)
    item["stac_extensions"].append("datacube")
    report = validate_stac([item])
    assert report.valid and any(
        n.schema == "datacube" and "not a schema URL" in n.message for n in report.notices
    )
    stored = cache_path(DATACUBE, cache)
    stored.parent.mkdir(parents=True)
    stored.write_text('{"$schema": "http://json-schema.org/draft-07/schema#", "type": 12}')
    with pytest.raises(ValidationError, match=r"not a valid Draft 7 schema.*delete it"):
        validate_stac(docs)
    stored.write_text("<html>")
    with pytest.raises(ValidationError, match=r"not a JSON object.*delete it"):
        validate_stac(docs)
