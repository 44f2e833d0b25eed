"""Adding a file the catalog holds already is refused, naming the record; nothing is written."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcodex.backends._sqlite import SCHEMA_VERSION
from arcodex.catalog import Catalog
from arcodex.cli import app
from arcodex.errors import ConflictError
from arcodex.model import Artifact, LocalPath, Record


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


def _file(path: Path, text: str = "some data\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _stored(cat: Catalog) -> list[Path]:
    return sorted(p for p in (cat.root / "store").rglob("*") if p.is_file())


def _operations(cat: Catalog) -> int:
    return len(cat.operations(limit=1000))


def test_the_same_file_again_is_refused_with_the_record_id(cat: Catalog, tmp_path: Path) -> None:
    data = _file(tmp_path / "data" / "a.txt")
    first = cat.add_file(data)
    stored = _stored(cat)
    with pytest.raises(ConflictError) as info:
        cat.add_file(data)
    message = str(info.value)
    assert first.id in message and "--allow-duplicate" in message and "\n" not in message
    assert cat.count() == 1
    assert _stored(cat) == stored, "the copy made before the content was known is removed"
    again = cat.add_file(data, allow_duplicate=True)
    assert again.id != first.id and cat.count() == 2


def test_the_same_content_under_another_name_is_the_same_file(cat: Catalog, tmp_path: Path) -> None:
    first = cat.add_file(_file(tmp_path / "a.txt"))
    copy = shutil.copy(tmp_path / "a.txt", tmp_path / "elsewhere.txt")
    with pytest.raises(ConflictError, match=first.id):
        cat.add_file(copy, in_place=True)
    other = cat.add_file(_file(tmp_path / "b.txt", "other data\n"))
    assert cat.count() == 2 and other.id != first.id


def test_a_path_registered_in_place_is_the_same_file_even_when_changed(
    cat: Catalog, tmp_path: Path
) -> None:
    data = _file(tmp_path / "a.txt")
    first = cat.add_file(data, in_place=True)
    data.write_text("changed since\n")
    with pytest.raises(ConflictError, match=first.id):
        cat.add_file(data, in_place=True)
    # A managed copy of the changed file is new content: another record.
    assert cat.add_file(data).id != first.id


def test_a_file_given_twice_in_one_add_adds_nothing(cat: Catalog, tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a.txt"), _file(tmp_path / "b.txt", "b\n")
    with pytest.raises(ConflictError, match="given twice"):
        cat.add_files([a, b, a])
    twin = shutil.copy(a, tmp_path / "twin.txt")
    with pytest.raises(ConflictError, match="the same file as"):
        cat.add_files([a, twin])
    assert cat.count() == 0 and _stored(cat) == []
    assert len(cat.add_files([a, a], allow_duplicate=True)) == 2


def test_an_external_uri_added_twice(cat: Catalog) -> None:
    first = cat.add_external("https://example.org/a.nc")
    operations = _operations(cat)
    with pytest.raises(ConflictError, match=first.id):
        cat.add_external("https://example.org/a.nc")
    with pytest.raises(ConflictError, match="given twice"):
        cat.add_externals(["https://example.org/b.nc", "https://example.org/b.nc"])
    assert cat.count() == 1
    assert _operations(cat) == operations, "a refusal is no operation"
    cat.add_external("https://example.org/a.nc", allow_duplicate=True)
    assert cat.count() == 2


def test_a_deleted_record_is_named_with_how_to_restore_it(cat: Catalog, tmp_path: Path) -> None:
    data = _file(tmp_path / "a.txt")
    first = cat.add_file(data)
    cat.delete(first.id)
    with pytest.raises(ConflictError, match=f"arcodex restore {first.id}"):
        cat.add_file(data)
    cat.purge(first.id)
    assert cat.add_file(data).id != first.id, "a purged record holds nothing"


def test_prepared_records_are_not_checked(cat: Catalog) -> None:
    art = Artifact(locator=LocalPath(path="/data/a.nc"), hashes={"sha256": "ab" * 32})
    cat.add_records([Record(artifacts=[art])])
    cat.add_records([Record(artifacts=[art.model_copy(update={"id": "another"})])])
    assert cat.count() == 2


def test_cli_refuses_in_one_line_and_adds_with_allow_duplicate(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "cat"
    data = _file(tmp_path / "a.txt")
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    first = runner.invoke(app, ["-C", str(root), "add", str(data), "--ids"])
    assert first.exit_code == 0, first.output
    record_id = first.output.strip()
    again = runner.invoke(app, ["-C", str(root), "add", str(data)])
    assert again.exit_code == 1
    [line] = again.output.strip().splitlines()
    assert line.startswith("error: ") and record_id in line and "--allow-duplicate" in line
    forced = runner.invoke(app, ["-C", str(root), "add", str(data), "--allow-duplicate", "--ids"])
    assert forced.exit_code == 0 and forced.output.strip() != record_id
    uri = ["-C", str(root), "add", "--external", "https://example.org/x.nc"]
    assert runner.invoke(app, uri).exit_code == 0
    assert runner.invoke(app, uri).exit_code == 1
    assert runner.invoke(app, [*uri, "--allow-duplicate"]).exit_code == 0


@pytest.mark.sqlite_only
def test_the_check_is_one_indexed_query(cat: Catalog) -> None:
    conn = sqlite3.connect(cat.root / "catalog.sqlite")
    plan = " ".join(
        str(row[3])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT r.id FROM artifacts a JOIN records r ON r.rid = a.rid"
            " WHERE (a.role = 'primary' AND a.sha256 IN (?))"
            " OR (a.role = 'primary' AND a.location IN (?))",
            ["x", "y"],
        )
    )
    conn.close()
    assert "artifacts_sha256" in plan and "artifacts_location" in plan, plan


@pytest.mark.sqlite_only
def test_a_catalog_of_schema_1_is_upgraded_with_its_hashes(cat: Catalog, tmp_path: Path) -> None:
    data = _file(tmp_path / "a.txt")
    first = cat.add_file(data)
    path = cat.root / "catalog.sqlite"
    cat.close()
    conn = sqlite3.connect(path)
    # What arcodex 0.1 wrote: no sha256 column, no index of it.
    conn.executescript(
        "DROP INDEX artifacts_sha256; DROP INDEX artifacts_location; DROP INDEX artifacts_source;"
        " ALTER TABLE artifacts DROP COLUMN sha256; ALTER TABLE artifacts DROP COLUMN source;"
        " ALTER TABLE artifacts DROP COLUMN source_mtime_ns; PRAGMA user_version = 1;"
    )
    conn.close()
    with Catalog.open(cat.root) as reopened, pytest.raises(ConflictError, match=first.id):
        reopened.add_file(data)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_product_holds_its_store_not_its_sources(cat: Catalog, tmp_path: Path) -> None:
    """A converted product's sources are still free to add; its own store is not."""
    from arcodex._archives import write_archive
    from arcodex.convert import convert

    [source] = write_archive(tmp_path / "src", "regular", files=1, steps=2)
    product = convert([str(source)], to="zarr", catalog=cat, cluster="threads").record
    added = cat.add_file(source, in_place=True)
    assert added.id != product.id
    store = cat.locate(product.artifacts[0])
    with pytest.raises(ConflictError, match=product.id):
        cat.add_file(store, in_place=True)
