"""The ``arcodex`` command line: every command, its ``--json`` shapes, catalog
discovery, and bad input giving one line on stderr, a non-zero exit and no change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from arcodex.catalog import Catalog, CatalogInfo
from arcodex.cli import EXIT_INTERNAL, app
from arcodex.model import FieldSummary, Record

runner = CliRunner()

RECORD_KEYS = set(Record.model_fields)
INFO_KEYS = set(CatalogInfo.__dataclass_fields__)
FIELD_KEYS = set(FieldSummary.model_fields)
ALL_STATUSES = "status=[active,planned,failed,deprecated,deleted]"


# -- helpers -------------------------------------------------------------------------


def cli(*args: str, catalog: Path | None = None, input: str | None = None) -> Result:
    argv = ["--catalog", str(catalog), *args] if catalog is not None else list(args)
    return runner.invoke(app, argv, input=input)


def ok(*args: str, catalog: Path | None = None, input: str | None = None) -> Result:
    result = cli(*args, catalog=catalog, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def error_line(result: Result, code: int = 1) -> str:
    """The one ``error: …`` line a failed command printed on stderr."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def snapshot(root: Path) -> tuple[list[tuple[str, int, str]], list[str]]:
    """Every record (deleted ones too) with version and status, and every stored file."""
    with Catalog.open(root) as catalog:
        page = catalog.search([ALL_STATUSES], limit=None)
        records = sorted((r.id, r.version, str(r.status)) for r in page.records)
    files = sorted(str(p.relative_to(root)) for p in (root / "store").rglob("*") if p.is_file())
    return records, files


def get(root: Path, record_id: str) -> Record:
    with Catalog.open(root) as catalog:
        return catalog.get(record_id)


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own catalog or settings must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("ARCODEX_"):
            monkeypatch.delenv(name)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n", encoding="utf-8")
    (folder / "b.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    (folder / "c.txt").write_text("third\n", encoding="utf-8")
    return folder


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    return root


@pytest.fixture
def seeded(cat: Path, inputs: Path) -> Path:
    """A catalog with site-a (a.txt), site-b (b.csv) and an external record doi-1."""
    with Catalog.open(cat) as catalog:
        catalog.add_files(
            [inputs / "a.txt"],
            metadata={"site": "MHD", "year": 2019},
            tags=["ch4"],
            title="Hello world",
            record_ids=["site-a"],
        )
        catalog.add_files(
            [inputs / "b.csv"],
            metadata={"site": "TAC", "year": 2021},
            tags=["co2"],
            record_ids=["site-b"],
        )
        catalog.add_external("https://doi.org/10.1000/1", record_id="doi-1", title="A paper")
    return cat


# -- global options ------------------------------------------------------------------


def test_version() -> None:
    from arcodex import __version__

    assert ok("--version").stdout.strip() == f"arcodex {__version__}"


def test_help_lists_every_command() -> None:
    out = ok("--help").stdout
    for name in ("init", "add", "search", "show", "path", "update", "delete", "restore", "purge"):
        assert name in out


def test_usage_error_exits_2(cat: Path) -> None:
    result = cli("search", "--no-such-option", catalog=cat)
    assert result.exit_code == 2


def test_import_is_light() -> None:
    code = (
        "import sys, arcodex.cli; print(sorted({'xarray', 'dask', 'fastapi'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- init ----------------------------------------------------------------------------


def test_init_creates_a_catalog(tmp_path: Path) -> None:
    root = tmp_path / "new"
    out = ok("init", str(root)).stdout
    assert (root / "arcodex.yaml").is_file()
    assert str(root) in out


def test_init_json_is_info(tmp_path: Path) -> None:
    data = as_json(ok("init", str(tmp_path / "new"), "--json"))
    assert set(data) == INFO_KEYS
    assert data["records"] == 0
    assert data["root"] == str((tmp_path / "new").resolve())


def test_init_defaults_to_catalog_option_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("init", catalog=tmp_path / "by-option")
    assert (tmp_path / "by-option" / "arcodex.yaml").is_file()
    monkeypatch.setenv("ARCODEX_CATALOG", str(tmp_path / "by-env"))
    ok("init")
    assert (tmp_path / "by-env" / "arcodex.yaml").is_file()
    monkeypatch.delenv("ARCODEX_CATALOG")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    ok("init")
    assert (here / "arcodex.yaml").is_file()


def test_second_init_fails_and_changes_nothing(seeded: Path) -> None:
    config = (seeded / "arcodex.yaml").read_bytes()
    before = snapshot(seeded)
    line = error_line(cli("init", str(seeded)))
    assert "already holds an arcodex catalog" in line
    assert (seeded / "arcodex.yaml").read_bytes() == config
    assert snapshot(seeded) == before


def test_init_on_a_file_fails(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    assert "is a file" in error_line(cli("init", str(target)))
    assert target.read_text(encoding="utf-8") == "x"


# -- add -----------------------------------------------------------------------------


def test_add_copies_files_into_the_catalog(cat: Path, inputs: Path) -> None:
    out = ok("add", str(inputs / "a.txt"), str(inputs / "b.csv"), catalog=cat).stdout
    assert "a.txt" in out
    assert "b.csv" in out
    records, files = snapshot(cat)
    assert len(records) == 2
    assert len(files) == 2


def test_add_json_shape_and_options(cat: Path, inputs: Path) -> None:
    data = as_json(
        ok(
            "add",
            str(inputs / "a.txt"),
            "--meta", "n=3",
            "--meta", "x=1.5",
            "--meta", "ok=true",
            "--meta", 'code="007"',
            "--meta", "day=2020-01-02",
            "--meta", "box=[1,2,3,4]",
            "-m", "a.b=c",
            "--tag", "t1",
            "-t", "t2",
            "--kind", "dataset",
            "--title", "My title",
            "--description", "Some words",
            "--id", "my-id",
            "--json",
            catalog=cat,
        )
    )  # fmt: skip
    assert set(data) == {"records", "next_cursor"}
    assert data["next_cursor"] is None
    [record] = data["records"]
    assert set(record) == RECORD_KEYS
    assert record["id"] == "my-id"
    assert record["kind"] == "dataset"
    assert record["title"] == "My title"
    assert record["description"] == "Some words"
    assert record["tags"] == ["t1", "t2"]
    meta = record["metadata"]
    assert meta["n"] == 3
    assert meta["x"] == 1.5
    assert meta["ok"] is True
    assert meta["code"] == "007"
    assert meta["day"] == "2020-01-02"
    assert meta["box"] == [1, 2, 3, 4]
    assert meta["a"] == {"b": "c"}
    assert record == get(cat, "my-id").model_dump(mode="json")


def test_add_ids_prints_one_id_per_line(cat: Path, inputs: Path) -> None:
    out = ok("add", str(inputs / "a.txt"), str(inputs / "b.csv"), "--ids", catalog=cat).stdout
    ids = out.split()
    assert len(ids) == 2
    assert sorted(ids) == [r[0] for r in snapshot(cat)[0]]


def test_add_in_place_keeps_the_file_where_it_is(cat: Path, inputs: Path) -> None:
    [rid] = ok("add", str(inputs / "a.txt"), "--in-place", "--ids", catalog=cat).stdout.split()
    assert snapshot(cat)[1] == []
    assert ok("path", rid, catalog=cat).stdout.strip() == str((inputs / "a.txt").resolve())


def test_add_no_extract_and_profile(cat: Path, inputs: Path) -> None:
    data = as_json(
        ok(
            "add",
            str(inputs / "a.txt"),
            "--no-extract",
            "--profile",
            "local",
            "--json",
            catalog=cat,
        )
    )
    [record] = data["records"]
    assert record["artifacts"][0]["metadata"]["extractors"] == []


def test_add_external(cat: Path) -> None:
    data = as_json(
        ok("add", "--external", "https://example.org/x.nc", "doi:10.1000/2", "--tag", "ext",
           "--json", catalog=cat)
    )  # fmt: skip
    assert [r["kind"] for r in data["records"]] == ["external", "external"]
    rid = data["records"][0]["id"]
    assert ok("path", rid, catalog=cat).stdout.strip() == "https://example.org/x.nc"


def test_add_netcdf_extracts_metadata(cat: Path, tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    from arcodex.samples import write_sample_netcdf

    nc = write_sample_netcdf(tmp_path / "sample.nc", days=3, nlat=2, nlon=2)
    [record] = as_json(ok("add", str(nc), "--json", catalog=cat))["records"]
    assert record["kind"] == "dataset"
    assert "bbox" in record["metadata"]
    found = as_json(ok("search", "--bbox", "-20,30,20,70", "--json", catalog=cat))["records"]
    assert [r["id"] for r in found] == [record["id"]]


# -- search --------------------------------------------------------------------------


def test_search_table_and_terms(seeded: Path) -> None:
    out = ok("search", catalog=seeded).stdout
    assert "site-a" in out
    assert "site-b" in out
    assert "doi-1" in out
    out = ok("search", "site=MHD", catalog=seeded).stdout
    assert "site-a" in out
    assert "site-b" not in out


def test_search_json_shape(seeded: Path) -> None:
    data = as_json(ok("search", "year>=2020", "--json", catalog=seeded))
    assert set(data) == {"records", "next_cursor"}
    assert [r["id"] for r in data["records"]] == ["site-b"]
    assert set(data["records"][0]) == RECORD_KEYS


def test_search_ids_count_and_text(seeded: Path) -> None:
    assert ok("search", "tag=ch4", "--ids", catalog=seeded).stdout.split() == ["site-a"]
    assert ok("search", "--count", catalog=seeded).stdout.strip() == "3"
    assert as_json(ok("search", "site:exists", "--count", "--json", catalog=seeded)) == {"count": 2}
    assert ok("search", "--text", "hello", "--ids", catalog=seeded).stdout.split() == ["site-a"]


def test_search_sort_limit_and_cursor(seeded: Path) -> None:
    ids = ok("search", "site:exists", "--sort=-year", "--ids", catalog=seeded).stdout.split()
    assert ids == ["site-b", "site-a"]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        extra = ["--cursor", cursor] if cursor else []
        page = as_json(
            ok("search", "--sort", "id", "--limit", "1", *extra, "--json", catalog=seeded)
        )
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["doi-1", "site-a", "site-b"]


def test_search_bbox_and_time(cat: Path, inputs: Path) -> None:
    ok(
        "add", str(inputs / "a.txt"), "--id", "boxed",
        "--meta", "bbox=[-10,40,5,60]",
        "--meta", "start_datetime=2020-01-01", "--meta", "end_datetime=2020-12-31",
        catalog=cat,
    )  # fmt: skip
    ok("add", str(inputs / "b.csv"), "--id", "plain", catalog=cat)

    def ids(*args: str) -> list[str]:
        return ok("search", *args, "--ids", catalog=cat).stdout.split()

    assert ids("--bbox", "0,45,10,50") == ["boxed"]
    assert ids("--bbox", "100,0,110,10") == []
    assert ids("--time", "2020-06/2020-07") == ["boxed"]
    assert ids("--time", "2022") == []


def test_search_human_output_reports_more_pages(seeded: Path) -> None:
    out = ok("search", "--limit", "1", catalog=seeded).stdout
    assert "--cursor" in out


# -- show, path ----------------------------------------------------------------------


def test_show(seeded: Path) -> None:
    out = ok("show", "site-a", catalog=seeded).stdout
    for expected in ("site-a", "Hello world", "MHD", "ch4", "primary"):
        assert expected in out
    data = as_json(ok("show", "site-a", "--json", catalog=seeded))
    assert data == get(seeded, "site-a").model_dump(mode="json")
    assert ok("show", "doi", catalog=seeded).stdout.startswith("doi-1")  # unique prefix


def test_path(seeded: Path) -> None:
    where = Path(ok("path", "site-a", catalog=seeded).stdout.strip())
    assert where.read_text(encoding="utf-8") == "hello\n"
    data = as_json(ok("path", "site-a", "--role", "primary", "--json", catalog=seeded))
    assert data == {"id": "site-a", "role": "primary", "path": str(where)}


# -- update --------------------------------------------------------------------------


def test_update(seeded: Path) -> None:
    out = ok(
        "update", "site-a",
        "--set", "year=2020", "--set", "inst.name=NOC", "--unset", "site",
        "--tag", "new", "--untag", "ch4",
        "--title", "T", "--description", "D", "--kind", "dataset", "--status", "deprecated",
        catalog=seeded,
    ).stdout  # fmt: skip
    assert "version 2" in out
    record = get(seeded, "site-a")
    assert record.metadata["year"] == 2020
    assert record.metadata["inst"] == {"name": "NOC"}
    assert "site" not in record.metadata
    assert record.tags == ["new"]
    assert (record.title, record.description, record.kind, record.status) == (
        "T",
        "D",
        "dataset",
        "deprecated",
    )


def test_update_json_and_expected_version(seeded: Path) -> None:
    data = as_json(ok("update", "site-b", "--set", "x=1", "--expected-version", "1", "--json",
                      catalog=seeded))  # fmt: skip
    assert set(data) == RECORD_KEYS
    assert data["version"] == 2
    assert data == get(seeded, "site-b").model_dump(mode="json")


# -- delete, restore, purge ----------------------------------------------------------


def test_delete_and_restore(seeded: Path) -> None:
    assert "restore" in ok("delete", "site-a", catalog=seeded).stdout
    assert get(seeded, "site-a").status == "deleted"
    assert "site-a" not in ok("search", "--ids", catalog=seeded).stdout.split()
    data = as_json(ok("restore", "site-a", "--json", catalog=seeded))
    assert set(data) == RECORD_KEYS
    assert data["status"] == "active"
    data = as_json(ok("delete", "site-a", "--json", catalog=seeded))
    assert data["status"] == "deleted"


def test_purge_removes_record_and_stored_file(seeded: Path) -> None:
    stored = Path(ok("path", "site-a", catalog=seeded).stdout.strip())
    data = as_json(ok("purge", "site-a", "--yes", "--json", catalog=seeded))
    assert data["id"] == "site-a"
    assert not stored.exists()
    assert "site-a" not in [r[0] for r in snapshot(seeded)[0]]


def test_delete_purge(seeded: Path) -> None:
    assert "purged site-b" in ok("delete", "site-b", "--purge", "--yes", catalog=seeded).stdout
    assert "site-b" not in [r[0] for r in snapshot(seeded)[0]]


def test_purge_asks_when_interactive(seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("arcodex.cli._app._interactive", lambda: True)
    before = snapshot(seeded)
    result = cli("purge", "site-a", catalog=seeded, input="n\n")
    assert result.exit_code == 1
    assert snapshot(seeded) == before
    ok("purge", "site-a", catalog=seeded, input="y\n")
    assert "site-a" not in [r[0] for r in snapshot(seeded)[0]]


# -- info, fields --------------------------------------------------------------------


def test_info(seeded: Path) -> None:
    out = ok("info", catalog=seeded).stdout
    assert str(seeded) in out
    assert "sqlite" in out or "postgresql" in out
    data = as_json(ok("info", "--json", catalog=seeded))
    assert set(data) == INFO_KEYS
    assert data["records"] == 3
    with Catalog.open(seeded) as catalog:
        assert data == json.loads(json.dumps(catalog.info().to_dict()))


def test_fields(seeded: Path) -> None:
    out = ok("fields", catalog=seeded).stdout
    assert "site" in out
    assert "MHD" in out
    data = as_json(ok("fields", "--json", catalog=seeded))
    assert all(set(item) == FIELD_KEYS for item in data)
    assert {"site", "year"} <= {item["path"] for item in data}
    only = as_json(ok("fields", "file", "--json", catalog=seeded))
    assert only
    assert all(item["path"].startswith("file") for item in only)


# -- catalog discovery ---------------------------------------------------------------


@pytest.fixture
def two_catalogs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    for root, name in ((first, "one"), (second, "two")):
        with Catalog.create(root) as catalog:
            catalog.add_external(f"https://example.org/{name}", record_id=name)
    return first, second


def test_catalog_option_beats_env(
    two_catalogs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_catalogs
    monkeypatch.setenv("ARCODEX_CATALOG", str(second))
    assert ok("search", "--ids", catalog=first).stdout.split() == ["one"]


def test_env_beats_cwd(two_catalogs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = two_catalogs
    monkeypatch.chdir(first)
    monkeypatch.setenv("ARCODEX_CATALOG", str(second))
    assert ok("search", "--ids").stdout.split() == ["two"]


def test_cwd_upwards(two_catalogs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = two_catalogs
    deep = first / "some" / "folder"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert ok("search", "--ids").stdout.split() == ["one"]


def test_relative_catalog_option(
    two_catalogs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = two_catalogs
    monkeypatch.chdir(first.parent)
    assert ok("--catalog", "first", "search", "--ids").stdout.split() == ["one"]


def test_no_catalog_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    line = error_line(cli("search"))
    assert "arcodex init" in line


def test_not_a_catalog_path(tmp_path: Path) -> None:
    line = error_line(cli("info", catalog=tmp_path))
    assert "not an arcodex catalog" in line
    assert not (tmp_path / "arcodex.yaml").exists()
    assert "not an arcodex catalog" in error_line(cli("info", catalog=tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()


# -- bad input: one line, non-zero exit, no change -----------------------------------

BAD_INPUT = [
    (["show", "zzz"], "no record matches 'zzz'"),
    (["show", "site"], "matches several records"),
    (["path", "site-a", "--role", "preview"], "no 'preview' artifact"),
    (["search", "bad term"], "'bad term'"),
    (["search", "site=MHD", "year>>2020"], "'year>>2020'"),
    (["search", "--bbox", "1,2,3"], "bad bbox"),
    (["search", "--time", "2021/2020"], "bad time range"),
    (["search", "--limit", "0"], "bad limit"),
    (["search", "--sort", "-"], "bad sort key"),
    (["search", "--count", "--ids"], "--count"),
    (["search", "--json", "--ids"], "--json and --ids"),
    (["add", "{in}/missing.txt"], "does not exist"),
    (["add", "{in}"], "is a directory"),
    (["add", "{in}/c.txt", "{in}/missing.txt"], "does not exist"),
    (["add", "{in}/c.txt", "--meta", "novalue"], "is not KEY=VALUE"),
    (["add", "{in}/c.txt", "--meta", "a..b=1"], "bad key"),
    (["add", "{in}/c.txt", "--meta", "a=1", "--meta", "a=2"], "twice"),
    (["add", "{in}/c.txt", "--meta", "a=1", "--meta", "a.b=2"], "one is inside the other"),
    (["add", "{in}/c.txt", "--meta", "a="], "has no value"),
    (["add", "{in}/c.txt", "--id", "x", "--id", "y"], "one --id per file"),
    (["add", "{in}/c.txt", "--id", "site-a"], "site-a"),
    (["add", "{in}/c.txt", "--id", "bad id"], "id"),
    (["add", "{in}/c.txt", "--tag", "two words"], "tag"),
    (["add", "{in}/c.txt", "--profile", "nope"], "no storage profile 'nope'"),
    (["add", "--external", "not a uri"], "is not a URI"),
    (["add", "--external", "https://x.org/a", "--in-place"], "--in-place"),
    (["update", "site-a"], "nothing to change"),
    (["update", "site-a", "--set", "novalue"], "is not KEY=VALUE"),
    (["update", "site-a", "--set", "x=1", "--unset", "x"], "both --set and --unset"),
    (["update", "site-a", "--unset", "nope"], "no metadata 'nope'"),
    (["update", "site-a", "--set", "x=1", "--expected-version", "7"], "version"),
    (["update", "site-a", "--status", "deleted"], "delete"),
    (["update", "site-a", "--status", "bogus"], "status"),
    (["update", "zzz", "--set", "x=1"], "no record matches"),
    (["delete", "zzz"], "no record matches"),
    (["restore", "site-a"], "not deleted"),
    (["purge", "site-a"], "--yes"),
    (["delete", "site-a", "--purge"], "--yes"),
    (["purge", "site"], "matches several records"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input(seeded: Path, inputs: Path, args: list[str], expected: str) -> None:
    before = snapshot(seeded)
    line = error_line(cli(*(a.format(**{"in": inputs}) for a in args), catalog=seeded))
    assert expected in line
    assert snapshot(seeded) == before


def test_deleting_a_deleted_record(seeded: Path) -> None:
    ok("delete", "site-a", catalog=seeded)
    before = snapshot(seeded)
    assert "already deleted" in error_line(cli("delete", "site-a", catalog=seeded))
    assert "restore" in error_line(cli("update", "site-a", "--title", "x", catalog=seeded))
    assert snapshot(seeded) == before


# -- errors: --debug, internal errors ------------------------------------------------


def test_debug_shows_the_traceback(seeded: Path) -> None:
    result = cli("--debug", "show", "zzz", catalog=seeded)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no record matches")


@pytest.fixture
def broken_info(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Catalog) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(Catalog, "info", boom)


@pytest.mark.usefixtures("broken_info")
def test_internal_error_is_one_line_exit_70(seeded: Path) -> None:
    result = cli("info", catalog=seeded)
    assert result.exit_code == EXIT_INTERNAL
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("internal error: RuntimeError: boom second line")
    assert "--debug" in lines[0]
    result = cli("--debug", "info", catalog=seeded)
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" in result.stderr


# -- a damaged or busy database ------------------------------------------------------


@pytest.mark.sqlite_only
def test_corrupt_database_is_one_line_and_untouched(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    ok("init", str(root))
    db = root / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    garbage = b"\x00not a database\xff" * 512
    db.write_bytes(garbage)
    line = error_line(cli("search", catalog=root))
    assert "damaged" in line and "backup" in line
    assert db.read_bytes() == garbage


@pytest.mark.sqlite_only
def test_locked_database_names_the_wait_and_changes_nothing(tmp_path: Path) -> None:
    import sqlite3

    root = tmp_path / "cat"
    ok("init", str(root))
    (root / "arcodex.yaml").write_text((root / "arcodex.yaml").read_text() + "busy_timeout: 0.2\n")
    before = snapshot(root)
    holder = sqlite3.connect(root / "catalog.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        line = error_line(cli("add", "--external", "https://example.org/x", catalog=root))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in line and "busy_timeout" in line
    assert snapshot(root) == before
