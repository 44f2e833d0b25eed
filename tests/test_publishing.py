"""Publishing datasets: Catalog.publish / unpublish / set_visibility and their commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.catalog._access import ANONYMOUS, Principal
from arcodex.cli import app
from arcodex.convert import convert
from arcodex.errors import ConflictError, NotFoundError, ValidationError
from arcodex.model import Query


def _product(tmp_path: Path, cat: Catalog, to: str = "zarr", **kwargs: object) -> str:
    files = write_archive(tmp_path / f"src-{to}", files=2, steps=3)
    result = convert([str(f) for f in files], to=to, catalog=cat, cluster="threads", **kwargs)  # type: ignore[call-overload]
    assert result.status == "pass", result.report.reasons
    return str(result.record.id)


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    with Catalog.create(tmp_path / "cat") as catalog:
        yield catalog  # type: ignore[misc]


def test_publish_writes_the_access_block(tmp_path: Path, cat: Catalog) -> None:
    rid = _product(tmp_path, cat)
    before = cat.get(rid)
    assert not ANONYMOUS.can_see(before)
    record = cat.publish(rid, user="alice")
    access = record.metadata["access"]
    assert access["published"] is True
    assert access["visibility"] == "public"
    assert access["published_by"] == "alice"
    assert access["published_at"].endswith("Z")
    assert "snapshot" not in access  # a Zarr product has no snapshots
    assert record.version == before.version + 1
    assert record.updated_by == "alice"
    assert ANONYMOUS.can_see(record)
    # The same rule as a query: anonymous conditions now find it.
    found = cat.search(Query(conditions=ANONYMOUS.query_conditions()))
    assert [r.id for r in found.records] == [rid]
    ops = [op for op in cat.operations() if op.action == "update"]
    assert ops and ops[0].user == "alice" and ops[0].inputs == [rid]


def test_icechunk_publication_names_its_checked_snapshot(tmp_path: Path, cat: Catalog) -> None:
    rid = _product(tmp_path, cat, to="icechunk", tag="v1")
    conv = cat.get(rid).metadata["convert"]
    access = cat.publish(rid).metadata["access"]
    assert access["snapshot"] == conv["snapshot"]
    at_tag = cat.publish(rid, tag="v1").metadata["access"]
    assert at_tag["tag"] == "v1"
    assert at_tag["snapshot"] == next(t["snapshot"] for t in conv["tags"] if t["tag"] == "v1")
    with pytest.raises(NotFoundError, match="no tag 'v9'"):
        cat.publish(rid, tag="v9")


def test_unpublish_and_visibility(tmp_path: Path, cat: Catalog) -> None:
    rid = _product(tmp_path, cat)
    with pytest.raises(ConflictError, match="not published"):
        cat.unpublish(rid)
    cat.publish(rid, visibility="project:ch4")
    record = cat.get(rid)
    assert not ANONYMOUS.can_see(record)
    assert Principal(name="r", role="reader", projects=frozenset({"ch4"})).can_see(record)
    assert not Principal(name="o", role="reader", projects=frozenset({"co2"})).can_see(record)
    record = cat.set_visibility(rid, "public", user="bob")
    assert record.metadata["access"]["published"] is True
    assert ANONYMOUS.can_see(record)
    record = cat.unpublish(rid, user="bob")
    assert record.metadata["access"] == {"visibility": "public", "published": False}
    assert not ANONYMOUS.can_see(record)
    with pytest.raises(ValidationError, match="public, private or project:NAME"):
        cat.set_visibility(rid, "project:../x")
    with pytest.raises(ValidationError, match="public, private or project:NAME"):
        cat.publish(rid, visibility="everyone")
    with pytest.raises(ConflictError, match="already public"):
        cat.set_visibility(rid, "public")


def test_only_checked_datasets_are_published(tmp_path: Path, cat: Catalog) -> None:
    data = tmp_path / "x.txt"
    data.write_text("x", encoding="utf-8")
    [plain] = cat.add_files([data], record_ids=["plain"])
    with pytest.raises(ValidationError, match="not a dataset"):
        cat.publish(plain.id)
    with pytest.raises(ValidationError, match="not a dataset"):
        cat.set_visibility(plain.id, "private")
    cat.add_external(
        "https://example.org/bad.zarr",
        record_id="bad",
        kind="dataset",
        metadata={"convert": {"check": "fail", "product": {"format": "zarr"}}},
    )
    with pytest.raises(ConflictError, match="its check is 'fail'"):
        cat.publish("bad")
    cat.add_external("https://example.org/raw.nc", record_id="raw", kind="dataset")
    with pytest.raises(ValidationError, match="no Icechunk product"):
        cat.publish("raw", tag="v1")
    assert "access" not in cat.get("raw").metadata
    rid = _product(tmp_path, cat)
    with pytest.raises(ValidationError, match="--tag is for Icechunk"):
        cat.publish(rid, tag="v1")
    assert "access" not in cat.get("bad").metadata


def test_a_dataset_without_a_product_is_published_as_it_is(tmp_path: Path, cat: Catalog) -> None:
    """Catalogued files and external datasets have no product to check: they publish as they are."""
    cat.add_external("https://example.org/raw.nc", record_id="raw", kind="dataset")
    record = cat.publish("raw", visibility="project:ch4")
    assert record.metadata["access"]["published"] is True
    assert record.metadata["access"]["visibility"] == "project:ch4"
    assert "snapshot" not in record.metadata["access"]


def test_cli_publish_unpublish_visibility(tmp_path: Path, cat: Catalog) -> None:
    rid = _product(tmp_path, cat)
    root = str(cat.root)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["--catalog", root, *args])
        assert result.exit_code == 0, result.stderr
        return result.stdout

    assert f"published {rid} (project:ch4)" in run("publish", rid, "--visibility", "project:ch4")
    data = json.loads(run("visibility", rid, "private", "--json"))
    assert data["metadata"]["access"]["visibility"] == "private"
    assert f"unpublished {rid}" in run("unpublish", rid)
    bad = runner.invoke(app, ["--catalog", root, "visibility", rid, "world"])
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: visibility 'world'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_cli_publishes_several_or_none(tmp_path: Path, cat: Catalog) -> None:
    """`arcodex publish A B` checks every dataset before it publishes any."""
    rid = _product(tmp_path, cat)
    cat.add_external("https://example.org/raw.nc", record_id="raw", kind="dataset")
    cat.add_external(
        "https://example.org/bad.zarr",
        record_id="bad",
        kind="dataset",
        metadata={"convert": {"check": "fail", "product": {"format": "zarr"}}},
    )
    root = str(cat.root)
    runner = CliRunner()
    refused = runner.invoke(app, ["--catalog", root, "publish", rid, "raw", "bad"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: dataset bad cannot be published: its check is 'fail'")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not any("access" in cat.get(i).metadata for i in (rid, "raw", "bad")), "none published"
    done = runner.invoke(app, ["--catalog", root, "publish", rid, "raw", "--json"])
    assert done.exit_code == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == [rid, "raw"]
    assert all(cat.get(i).metadata["access"]["published"] for i in (rid, "raw"))
    text = runner.invoke(app, ["--catalog", root, "publish", "raw", "--visibility", "project:x"])
    assert text.stdout.strip() == "published raw (project:x)"


def test_an_update_moves_the_publication_to_the_newest_checked_snapshot(
    tmp_path: Path, cat: Catalog
) -> None:
    """What is served is the newest version that passed its check, unless pinned to a tag."""
    from arcodex.convert import update

    files = write_archive(tmp_path / "more", files=3, steps=2)
    done = convert([str(f) for f in files[:2]], to="icechunk", catalog=cat, cluster="threads")
    assert done.record is not None
    rid = done.record.id
    first = cat.publish(rid).metadata["access"]["snapshot"]
    update(rid, [str(f) for f in files], catalog=cat, cluster="threads")
    record = cat.get(rid)
    newest = record.metadata["convert"]["snapshot"]
    assert newest != first
    assert record.metadata["access"]["snapshot"] == newest
    assert record.metadata["access"]["published"] is True
