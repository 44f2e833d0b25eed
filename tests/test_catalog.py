"""The Catalog service on the embedded default (SQLite + local files)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from arcodex.catalog import Catalog, CatalogConfig, open_catalog
from arcodex.errors import (
    CatalogExistsError,
    ConflictError,
    NotACatalogError,
    NotFoundError,
    QueryError,
    StorageError,
    ValidationError,
)
from arcodex.model import Record


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


@pytest.fixture
def datafile(tmp_path: Path) -> Path:
    path = tmp_path / "obs.csv"
    path.write_text("time,ch4\n2020-01-01,1900.1\n")
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_add_file_copies_atomically_with_hash(cat: Catalog, datafile: Path) -> None:
    rec = cat.add_file(datafile, metadata={"site": "MHD", "year": 2020}, tags=["ch4"])
    art = rec.artifact()
    assert art.managed is True
    stored = Path(cat.path(rec.id))
    assert stored.is_file() and stored != datafile
    assert stored.is_relative_to(cat.root / "store")
    assert stored.read_bytes() == datafile.read_bytes()
    assert art.size_bytes == datafile.stat().st_size
    assert art.hashes["sha256"] == hashlib.sha256(datafile.read_bytes()).hexdigest()
    assert not list(stored.parent.glob(".*.tmp"))
    assert rec.kind == "document" and rec.metadata["site"] == "MHD"
    assert cat.get(rec.id) == rec


def test_add_in_place_registers_without_copy(cat: Catalog, datafile: Path) -> None:
    rec = cat.add_file(datafile, in_place=True)
    assert cat.path(rec.id) == str(datafile.resolve())
    assert rec.artifact().managed is False
    assert not (cat.root / "store").exists() or not any((cat.root / "store").rglob("*"))
    cat.purge(rec.id)
    assert datafile.exists(), "purge must never delete a file arcodex did not create"


def test_purge_removes_managed_file(cat: Catalog, datafile: Path) -> None:
    rec = cat.add_file(datafile)
    stored = Path(cat.path(rec.id))
    cat.purge(rec.id)
    assert not stored.exists()
    with pytest.raises(NotFoundError):
        cat.get(rec.id)


def test_add_bytes_and_external(cat: Catalog) -> None:
    rec = cat.add_bytes(b"hello", name="notes.txt", metadata={"topic": "x"})
    assert Path(cat.path(rec.id)).read_bytes() == b"hello"
    assert rec.artifact().hashes["sha256"] == hashlib.sha256(b"hello").hexdigest()
    ext = cat.add_external("https://doi.org/10.5281/zenodo.1", title="A DOI")
    assert cat.path(ext.id) == "https://doi.org/10.5281/zenodo.1"
    assert ext.kind == "external" and ext.artifact().status == "external"
    with pytest.raises(ValidationError, match="password"):
        cat.add_external("https://user:secret@host/x")
    with pytest.raises(ValidationError, match="not a URI"):
        cat.add_external("not a uri")


def test_get_by_prefix_and_ambiguity(cat: Catalog) -> None:
    a = cat.add_external("https://a.example/1", record_id="abc-1")
    cat.add_external("https://a.example/2", record_id="abc-2")
    assert cat.get("abc-1") == a
    with pytest.raises(ConflictError, match="abc-1, abc-2"):
        cat.get("abc")
    with pytest.raises(NotFoundError, match="arcodex search"):
        cat.get("zzz")


def test_update_versions_and_conflicts(cat: Catalog) -> None:
    rec = cat.add_external("https://a.example/1", metadata={"a": {"b": 1}, "draft": True})
    new = cat.update(
        rec.id, set={"a.c": "x", "quality": 3}, unset=["draft"], add_tags=["t"], expected_version=1
    )
    assert new.version == 2
    assert new.metadata == {"a": {"b": 1, "c": "x"}, "quality": 3}
    assert new.tags == ["t"]
    with pytest.raises(ConflictError, match="version 2"):
        cat.update(rec.id, set={"quality": 4}, expected_version=1)
    assert cat.get(rec.id).metadata["quality"] == 3
    with pytest.raises(NotFoundError, match="nope"):
        cat.update(rec.id, unset=["nope"])
    assert cat.get(rec.id).version == 2
    assert [r.id for r in cat.search("quality=3").records] == [rec.id]


def test_delete_restore(cat: Catalog) -> None:
    rec = cat.add_external("https://a.example/1", metadata={"site": "MHD"})
    cat.update(rec.id, status="deprecated")
    cat.delete(rec.id)
    assert cat.search("site=MHD").records == []
    assert [r.id for r in cat.search("site=MHD status=deleted").records] == [rec.id]
    assert cat.get(rec.id).status == "deleted"
    with pytest.raises(ConflictError):
        cat.delete(rec.id)
    restored = cat.restore(rec.id)
    assert restored.status == "deprecated"
    with pytest.raises(ConflictError, match="not deleted"):
        cat.restore(rec.id)


def test_search_keyword_arguments(cat: Catalog) -> None:
    cat.add_external("https://a.example/1", metadata={"site": "MHD", "year": 2020}, tags=["ch4"])
    cat.add_external("https://a.example/2", metadata={"site": "TAC", "year": 2021})
    assert len(cat.search(site="MHD").records) == 1
    assert len(cat.search(tags=["ch4"]).records) == 1
    assert cat.count("year>=2020") == 2
    assert cat.count(site=["MHD", "TAC"]) == 2
    with pytest.raises(QueryError, match="'year>'"):
        cat.search("year>")


def test_fields_and_info(cat: Catalog, datafile: Path) -> None:
    cat.add_file(datafile, metadata={"site": "MHD", "inlet": 10.5})
    fields = {f.path: f for f in cat.fields()}
    assert fields["site"].types == ["string"] and fields["site"].count == 1
    assert fields["site"].examples == ["MHD"]
    assert fields["inlet"].types == ["number"]
    info = cat.info()
    assert info.records == 1 and info.records_by_kind == {"document": 1}
    assert info.artifacts_by_format == {"csv": 1}
    assert info.backend == cat.backend.url
    assert info.backend.partition(":")[0] in ("sqlite", "postgresql")
    d = info.to_dict()
    assert d["profiles"]["local"]["root"] == "store"


def test_failed_operation_is_listed(cat: Catalog) -> None:
    cat.add_external("https://a.example/1", record_id="dup")
    with pytest.raises(ConflictError, match="already exists"):
        cat.add_external("https://a.example/2", record_id="dup")
    failed = cat.info().recent_failed_operations
    assert failed and failed[0]["error"]["type"] == "ConflictError"


def test_batch_add_is_all_or_nothing(cat: Catalog, tmp_path: Path, datafile: Path) -> None:
    cat.add_external("https://a.example/1", record_id="taken")
    other = tmp_path / "other.csv"
    other.write_text("x\n")
    before = _snapshot(cat.root / "store") if (cat.root / "store").exists() else {}
    with pytest.raises(ConflictError):
        cat.add_files([datafile, other], record_ids=["fresh", "taken"])
    with pytest.raises(NotFoundError):
        cat.get("fresh")
    after = _snapshot(cat.root / "store") if (cat.root / "store").exists() else {}
    assert after == before, "files written for a failed add must be removed"


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda d: d / "missing.nc", NotFoundError, "does not exist"),
        (lambda d: d, ValidationError, "is a directory"),
    ],
)
def test_bad_files_change_nothing(cat: Catalog, tmp_path: Path, make, error, words) -> None:  # type: ignore[no-untyped-def]
    before = cat.count(status=None)
    with pytest.raises(error, match=words):
        cat.add_file(make(tmp_path))
    assert cat.count() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(cat: Catalog, datafile: Path) -> None:
    datafile.chmod(0)
    with pytest.raises(StorageError, match="cannot read"):
        cat.add_file(datafile)


def test_create_twice_and_open_errors(tmp_path: Path) -> None:
    Catalog.create(tmp_path / "c")
    config_before = (tmp_path / "c" / "arcodex.yaml").read_text()
    with pytest.raises(CatalogExistsError, match="already holds"):
        Catalog.create(tmp_path / "c")
    assert (tmp_path / "c" / "arcodex.yaml").read_text() == config_before
    with pytest.raises(NotACatalogError, match="arcodex init"):
        Catalog.open(tmp_path)
    with pytest.raises(NotACatalogError):
        open_catalog(tmp_path / "nowhere")


@pytest.mark.sqlite_only
def test_corrupt_database_is_reported(tmp_path: Path) -> None:
    cat = Catalog.create(tmp_path / "c")
    cat.close()
    db = tmp_path / "c" / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError, match="damaged"):
        Catalog.open(tmp_path / "c")
    assert db.read_bytes() == b"this is not sqlite at all" * 100


def test_environment_overrides_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Catalog.create(tmp_path / "c")
    monkeypatch.setenv("ARCODEX_SCHEMA_POLICY", "strict")
    assert Catalog.open(tmp_path / "c").config.schema_policy == "strict"
    monkeypatch.setenv("ARCODEX_SCHEMA_POLICY", "bogus")
    with pytest.raises(ValidationError, match="schema_policy"):
        Catalog.open(tmp_path / "c")


def test_path_template_with_metadata(tmp_path: Path, datafile: Path) -> None:
    from arcodex.catalog import FileProfileConfig

    config = CatalogConfig(
        profiles={"local": FileProfileConfig(path_template="{metadata.site}/{id}{ext}")}
    )
    cat = Catalog.create(tmp_path / "c", config=config)
    rec = cat.add_file(datafile, metadata={"site": "../../etc"})
    stored = Path(cat.path(rec.id))
    assert stored.is_relative_to(cat.root / "store")
    with pytest.raises(ValidationError, match=r"metadata\.site"):
        cat.add_file(datafile)
    assert cat.count() == 1


def test_records_reopen_identically(tmp_path: Path) -> None:
    cat = Catalog.create(tmp_path / "c")
    rec = cat.add_records([Record(title="x", metadata={"a": [1, 2.5, "z", None, {"b": True}]})])[0]
    cat.close()
    assert Catalog.open(tmp_path / "c").get(rec.id) == rec
