"""Schemas: registration, policies, validate — through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.cli import app
from arcodex.errors import NotFoundError, ValidationError

OBS = {
    "type": "object",
    "required": ["site", "inlet"],
    "properties": {
        "site": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "inlet": {"type": "number"},
    },
}


class Obs2(BaseModel):
    site: str
    inlet: float
    species: str


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    cat = Catalog.create(tmp_path / "cat", config=CatalogConfig(schema_policy="strict"))
    cat.register_schema("obs@1", OBS)
    return cat


def test_register_and_list(cat: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"type": "object"}))
    cat.register_schema("other@2.1", path)
    cat.register_schema("obs@2", Obs2)
    assert cat.list_schemas() == ["obs@1", "obs@2", "other@2.1"]
    assert cat.info().schemas == ["obs@1", "obs@2", "other@2.1"]
    reopened = Catalog.open(cat.root)
    assert reopened.list_schemas() == ["obs@1", "other@2.1"]  # models live in their process


def test_bad_schemas_are_refused(cat: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        cat.register_schema("bad@1", {"type": "no-such-type"})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValidationError, match="is not JSON"):
        cat.register_schema("bad@1", broken)
    with pytest.raises(ValidationError, match="NAME@VERSION"):
        cat.register_schema("no version", OBS)
    assert cat.list_schemas() == ["obs@1"]


def test_strict_refuses_before_writing(cat: Catalog, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("x\n")
    with pytest.raises(ValidationError, match=r"schema obs@1: site: 'mhd' does not match"):
        cat.add_file(src, metadata={"site": "mhd", "inlet": 10}, schema="obs@1")
    assert cat.count() == 0
    assert not (cat.root / "store").exists() or not any((cat.root / "store").rglob("*"))
    refused = cat.logs(event="validation.failed")
    assert refused and "obs@1" in refused[-1]["message"]
    rec = cat.add_file(src, metadata={"site": "MHD", "inlet": 10}, schema="obs")
    assert (rec.schema_name, rec.schema_version) == ("obs", "1")


def test_warn_writes_and_logs(cat: Catalog) -> None:
    rec = cat.add_external(
        "https://e.org/a", metadata={"site": "MHD"}, schema="obs@1", schema_policy="warn"
    )
    assert cat.get(rec.id).schema_name == "obs"
    (warning,) = cat.logs(event="validation.warning")
    assert warning["record_id"] == rec.id
    assert any("inlet" in e for e in warning["errors"])


def test_off_skips(cat: Catalog) -> None:
    rec = cat.add_external("https://e.org/a", metadata={}, schema="obs@1", schema_policy="off")
    assert rec.schema_name == "obs"
    assert cat.logs(event="validation.*") == []


def test_update_is_checked_too(cat: Catalog) -> None:
    rec = cat.add_external("https://e.org/a", metadata={"site": "MHD", "inlet": 1}, schema="obs@1")
    with pytest.raises(ValidationError, match="inlet"):
        cat.update(rec.id, set={"inlet": "high"})
    assert cat.get(rec.id).metadata["inlet"] == 1
    assert cat.get(rec.id).version == 1


def test_pydantic_model_schema(cat: Catalog) -> None:
    cat.register_schema("obs@2", Obs2)
    with pytest.raises(ValidationError, match="species"):
        cat.add_external("https://e.org/a", metadata={"site": "MHD", "inlet": 1}, schema="obs@2")
    rec = cat.add_external(
        "https://e.org/a", metadata={"site": "MHD", "inlet": 1, "species": "ch4"}, schema="obs"
    )
    assert rec.schema_version == "2"  # the latest version


def test_validate(cat: Catalog) -> None:
    good = cat.add_external("https://e.org/a", metadata={"site": "MHD", "inlet": 1}, schema="obs@1")
    bad = cat.add_external(
        "https://e.org/b", metadata={"site": "x"}, schema="obs@1", schema_policy="warn"
    )
    plain = cat.add_external("https://e.org/c")
    results = {r.record_id: r for r in cat.validate(all=True)}
    assert results[good.id].valid and results[good.id].schema == "obs@1"
    assert not results[bad.id].valid and len(results[bad.id].errors) == 2
    assert results[plain.id].valid and results[plain.id].warnings
    (one,) = cat.validate(plain.id, schema="obs@1")
    assert not one.valid
    (doc,) = cat.validate(
        document={"id": "x", "metadata": {"site": "ABC", "inlet": 2}}, schema="obs@1"
    )
    assert doc.valid
    (broken,) = cat.validate(document={"id": "bad id"})
    assert not broken.valid and "id" in broken.errors[0]
    with pytest.raises(NotFoundError, match="no schema 'nope'"):
        cat.validate(good.id, schema="nope")


def test_cli_validate_and_schema_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCODEX_CATALOG", raising=False)
    runner = CliRunner()
    root = tmp_path / "cat"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    schema = tmp_path / "obs.json"
    schema.write_text(json.dumps(OBS))
    added = runner.invoke(app, ["-C", str(root), "schema-add", "obs@1", str(schema)])
    assert added.exit_code == 0 and "obs@1" in added.stdout
    assert json.loads(runner.invoke(app, ["-C", str(root), "schemas", "--json"]).stdout) == [
        "obs@1"
    ]
    refused = runner.invoke(
        app,
        ["-C", str(root), "add", "--external", "https://e.org/a", "--schema", "obs@1",
         "--schema-policy", "strict", "--meta", "site=mhd"],
    )  # fmt: skip
    assert refused.exit_code == 1 and refused.stderr.startswith("error: record")
    ok = runner.invoke(
        app,
        ["-C", str(root), "add", "--external", "https://e.org/a", "--schema", "obs@1",
         "--meta", "site=MHD", "--meta", "inlet=10", "--ids"],
    )  # fmt: skip
    assert ok.exit_code == 0
    rid = ok.stdout.strip()
    result = runner.invoke(app, ["-C", str(root), "validate", rid, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["valid"] is True
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"id": "x", "schema_name": "obs", "metadata": {"site": "no"}}))
    result = runner.invoke(app, ["-C", str(root), "validate", "--file", str(record), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["valid"] is False
    both = runner.invoke(app, ["-C", str(root), "validate", rid, "--all"])
    assert both.exit_code == 1 and "give one of" in both.stderr
