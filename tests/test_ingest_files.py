"""Batch ingest (`arcodex ingest-files`, `Catalog.ingest_files`): many files registered as
`add` registers them, in batches that each commit as one unit of work; failures set
aside with their reasons; a killed ingest recovered and resumed adds exactly the rest."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, IngestResult
from arcodex.catalog._journal import KILL_AT_ENV
from arcodex.cli import app

SCHEMA = {
    "type": "object",
    "required": ["site"],
    "properties": {"site": {"type": "string", "pattern": "^[A-Z]{3}$"}},
}
#: The volume: small CSV files, every one listed in a CSV manifest with its site.
SMALL = 5_000
BATCH = 500


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(root: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = _env()
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "--catalog", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the catalog directory, byte for byte."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", ".writer"))
    }


def _sources(cat: Catalog) -> list[str]:
    return [r.artifacts[0].metadata["source_path"] for r in cat.search(limit=None).records]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """5,000 small CSV files and 3 NetCDF files in a manifest, with injected failures:
    garbage and truncated NetCDF, a broken link, rows whose site fails the schema, and
    a file whose content is another's."""
    base = tmp_path_factory.mktemp("archive")
    data = base / "data"
    rows: list[dict[str, str]] = []
    bad_site: list[str] = []
    for i in range(SMALL):
        path = data / f"d{i // 1000}" / f"obs{i:05d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"t,ch4\n{i},{1900 + i % 50}\n", encoding="utf-8")
        site = "MHD" if i % 997 else "bad site"  # 6 rows fail the schema
        if site != "MHD":
            bad_site.append(str(path))
        rows.append({"path": str(path.relative_to(base)), "site": site, "tags": "flask;ch4"})
    netcdf = write_archive(data / "nc", "regular", files=3, steps=2)
    rows += [{"path": str(p.relative_to(base)), "site": "JFJ", "tags": ""} for p in netcdf]
    garbage = data / "nc" / "garbage.nc"
    garbage.write_bytes(os.urandom(2048))
    truncated = data / "nc" / "truncated.nc"
    truncated.write_bytes(netcdf[0].read_bytes()[:300])
    broken = data / "nc" / "gone.nc"
    broken.symlink_to(data / "nc" / "never-there.nc")
    twin = data / "twin.csv"
    shutil.copy(data / "d0" / "obs00001.csv", twin)
    for path in (garbage, truncated, broken, twin):
        rows.append({"path": str(path.relative_to(base)), "site": "MHD", "tags": ""})
    manifest = base / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "site", "tags"])
        writer.writeheader()
        writer.writerows(rows)
    failing = {str(garbage), str(truncated), str(broken), str(twin), *bad_site}
    return {
        "base": base,
        "manifest": manifest,
        "netcdf": netcdf,
        "failing": failing,
        "good": SMALL + len(netcdf) - len(bad_site),
    }


def _catalog(root: Path) -> Catalog:
    cat = Catalog.create(root)
    cat.register_schema("obs@1", SCHEMA)
    return cat


INGEST = [
    "ingest-files", "--continue-on-error", "--require-metadata", "--schema", "obs@1",
    "--schema-policy", "strict", "--batch-size", str(BATCH), "--tag", "archive", "--json",
]  # fmt: skip


def test_killed_ingest_recovers_and_resumes_exactly_the_rest(
    archive: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "cat"
    _catalog(root).close()
    manifest = str(archive["manifest"])

    # Killed after the copies of the fifth batch, before its records are written.
    killed = _cli(root, *INGEST, "--manifest", manifest, kill_at="artifact_write_succeeded#5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Catalog.open(root) as cat:
        [interrupted] = cat.doctor().incomplete_operations
        assert interrupted["action"] == "add"
        recovered = cat.recover()
        assert [r.decision for r in recovered] == ["roll_back"]
        assert len(recovered[0].removed) > BATCH - 10, "the killed batch's copies are removed"
        first = cat.count()
        # Four batches of 500 committed, less the files of them that failed.
        assert 4 * BATCH - 10 <= first < 4 * BATCH
        assert cat.doctor().clean
        stored = sum(1 for p in (root / "store").rglob("*") if p.is_file())
        assert stored == first, "no copy of the killed batch is left"

    resumed = _cli(root, *INGEST, "--manifest", manifest)
    assert resumed.returncode == 1, "failures make the exit status 1"
    summary = json.loads(resumed.stdout)
    assert summary["counts"]["skipped"] == first
    assert summary["counts"]["added"] == archive["good"] - first
    assert {f["path"] for f in summary["failed"]} == archive["failing"]
    assert summary["counts"]["pending"] == 0

    with Catalog.open(root) as cat:
        assert cat.count() == archive["good"]
        sources = _sources(cat)
        assert len(sources) == len(set(sources)), "no file was added twice"
        assert cat.doctor().clean
        records = cat.search(limit=None).records
        assert all(r.schema_name == "obs" and r.metadata["site"] in ("MHD", "JFJ") for r in records)
        assert all(r.tags[0] == "archive" for r in records)
        [nc] = [r for r in records if r.artifacts[0].metadata["source_path"] == str(
            archive["netcdf"][0].resolve())]  # fmt: skip
        assert nc.kind == "dataset" and nc.artifacts[0].format == "netcdf"
        assert "tas" in json.dumps(nc.metadata), "NetCDF metadata is extracted"
        failures = {e["path"]: e["reason"] for e in cat.logs(event="ingest.failed")}
        assert archive["failing"] <= set(failures), "every failure is in the event log"
        reasons = {Path(p).name: why for p, why in failures.items()}
        assert "as NetCDF" in reasons["garbage.nc"]
        assert "does not exist" in reasons["gone.nc"]
        assert "does not match schema obs@1" in next(
            why for p, why in failures.items() if p in archive["failing"] and "obs0" in p
        )
        assert (
            "same file as" in reasons["twin.csv"]
            or "already in the catalog" in (reasons["twin.csv"])
        )

    again = _cli(root, *INGEST, "--manifest", manifest)
    summary = json.loads(again.stdout)
    assert summary["counts"] == {
        "added": 0,
        "skipped": archive["good"],
        "failed": len(archive["failing"]),
        "pending": 0,
    }


def test_records_are_the_ones_add_makes(archive: dict[str, Any], tmp_path: Path) -> None:
    files = [*archive["netcdf"], archive["base"] / "data" / "d0" / "obs00002.csv"]
    with Catalog.create(tmp_path / "a") as added, Catalog.create(tmp_path / "b") as ingested:
        made = added.add_files(files, metadata={"site": "MHD"}, tags=["x"])
        result = ingested.ingest_files(files, metadata={"site": "MHD"}, tags=["x"])
        assert result.ok and len(result.added) == len(files)
        got = {r.id: r for r in ingested.search(limit=None).records}

        def shape(record: Any) -> dict[str, Any]:
            data = record.model_dump(mode="json")
            for key in ("id", "created_at", "updated_at", "version"):
                data.pop(key)
            for art in data["artifacts"]:
                art.pop("id")
                art.pop("created_at", None)
                art["locator"].pop("path")
            return data

        for mine, theirs in zip(result.added, made, strict=True):
            ours = shape(got[str(mine.record_id)])
            assert ours == shape(theirs), (mine.path, _differences(ours, shape(theirs)))


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_manifest_rows_give_each_file_its_metadata(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.csv", "b.csv"):
        (data / name).write_text(f"{name}\n", encoding="utf-8")
    manifest = tmp_path / "files.csv"
    manifest.write_text(
        "path,title,kind,tags,site,inlet.height\n"
        "data/a.csv,Flask A,observation,ch4;flask,MHD,10\n"
        "data/b.csv,,,,TAC,\n",
        encoding="utf-8",
    )
    with Catalog.create(tmp_path / "cat") as cat:
        result = cat.ingest_files(manifests=[manifest], tags=["all"], metadata={"site": "XXX"})
        a, b = (cat.get(str(f.record_id)) for f in result.added)
    assert (a.title, a.kind, a.tags) == ("Flask A", "observation", ["all", "ch4", "flask"])
    assert a.metadata["site"] == "MHD" and a.metadata["inlet"] == {"height": 10}
    assert (b.title, b.kind, b.tags, b.metadata["site"]) == ("b.csv", "document", ["all"], "TAC")

    text = tmp_path / "files.txt"
    text.write_text("# two files\ndata/*.csv\n\n", encoding="utf-8")
    with Catalog.open(tmp_path / "cat") as cat:
        again = cat.ingest_files(manifests=[text], by_hash=True)
    assert again.counts == {"added": 0, "skipped": 2, "failed": 0, "pending": 0}


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(30):
        (data / f"f{i:02d}.csv").write_text(f"t\n{i}\n", encoding="utf-8")
    (data / "bad.nc").write_bytes(b"not netcdf at all")
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        cat.ingest_files([str(data / "f0*.csv")])  # ten files in already
        before = _snapshot(root)
        seen: list[tuple[int, int]] = []
        plan = cat.ingest_files(
            [str(data)], dry_run=True, require_metadata=True, batch_size=7,
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        assert _snapshot(root) == before, "catalog, files and event log are as they were"
    assert plan.dry_run and plan.counts == {"added": 20, "skipped": 10, "failed": 1, "pending": 0}
    assert all(f.location and f.location.startswith(str(root)) for f in plan.added)
    assert all("same path, size and mtime" in str(f.reason) for f in plan.skipped)
    assert "bad.nc" in plan.failed[0].path and "NetCDF" in str(plan.failed[0].reason)
    assert seen[0] == (0, 21) and seen[-1] == (21, 21)

    closed = _snapshot(root)  # closing checkpoints the database's write-ahead log
    out = CliRunner().invoke(app, ["--catalog", str(root), "ingest-files", str(data), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "dry run: would add 21, would skip 10, would fail 0" in out.output
    assert f"would skip {data / 'f00.csv'}" in out.output
    assert _snapshot(root) == closed


def test_by_hash_skips_a_renamed_copy(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("t,ch4\n1,1900\n", encoding="utf-8")
    renamed = tmp_path / "renamed.csv"
    shutil.copy(first, renamed)
    with Catalog.create(tmp_path / "cat") as cat:
        [held] = cat.ingest_files([first]).record_ids
        by_hash = cat.ingest_files([renamed], by_hash=True)
        assert by_hash.ok and by_hash.counts["skipped"] == 1
        assert by_hash.skipped[0].record_id == held and "sha256" in str(by_hash.skipped[0].reason)
        plain = cat.ingest_files([renamed])
        assert not plain.ok and "already in the catalog as record " + held in str(
            plain.failed[0].reason
        )
        assert cat.count() == 1


def test_without_continue_on_error_it_stops_at_the_first_failing_batch(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(25):
        (data / f"f{i:02d}.csv").write_text(f"t\n{i}\n", encoding="utf-8")
    bad = data / "f12.nc"
    bad.write_bytes(b"garbage")
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        result = cat.ingest_files([str(data)], batch_size=10, require_metadata=True)
        # Sorted: f00..f11 (batch 1: f00..f09 committed), batch 2 holds f12.nc: nothing of it.
        assert result.counts == {"added": 10, "skipped": 0, "failed": 1, "pending": 15}
        assert cat.count() == 10 and len(result.operation_ids) == 1
        assert cat.doctor().clean
    out = _cli(root, "ingest-files", str(data), "--batch-size", "10", "--require-metadata")
    assert out.returncode == 1
    assert "stopped: 15 files not tried" in out.stdout
    bad.unlink()
    with Catalog.open(root) as cat:
        resumed = cat.ingest_files([str(data)], batch_size=10)
        assert resumed.counts == {"added": 15, "skipped": 10, "failed": 0, "pending": 0}
        assert cat.count() == 25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{data}/missing.csv"], "does not exist; check the path"),
        (["{data}/*.nope"], "no files match"),
        (["--manifest", "{data}/none.txt"], "manifest .* does not exist"),
        (["--manifest", "{bad_header}"], "needs a 'path' column"),
        (["--manifest", "{empty_row}"], "row 3 has no path"),
        (["--manifest", "{bad_column}"], "bad column name"),
        ([], "nothing to ingest"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n", encoding="utf-8")
    manifests = {
        "bad_header": "file,site\na.csv,MHD\n",
        "empty_row": "path,site\na.csv,MHD\n,TAC\n",
        "bad_column": "path,a..b\na.csv,1\n",
    }
    for name, text in manifests.items():
        (data / f"{name}.csv").write_text(text, encoding="utf-8")
    root = tmp_path / "cat"
    Catalog.create(root).close()
    before = {k: v for k, v in _snapshot(root).items() if not k.startswith("state/logs/")}
    argv = [a.format(data=data, **{n: data / f"{n}.csv" for n in manifests}) for a in args]
    out = CliRunner().invoke(app, ["--catalog", str(root), "ingest-files", *argv])
    assert out.exit_code == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    assert re.search(message, out.stderr), out.stderr
    # Records, files and journal as they were; the event log notes the refusal, as for add.
    after = {k: v for k, v in _snapshot(root).items() if not k.startswith("state/logs/")}
    assert after == before


def test_json_shape_and_round_trip(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n", encoding="utf-8")
    (tmp_path / "b.nc").write_bytes(b"garbage")
    root = tmp_path / "cat"
    Catalog.create(root).close()
    out = CliRunner().invoke(
        app,
        ["--catalog", str(root), "ingest-files", str(tmp_path / "a.csv"), str(tmp_path / "b.nc"),
         "--require-metadata", "--continue-on-error", "--json"],
    )  # fmt: skip
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert set(data) == {
        "dry_run", "ok", "counts", "added", "skipped", "failed", "pending", "operation_ids",
        "seconds",
    }  # fmt: skip
    assert data["counts"] == {"added": 1, "skipped": 0, "failed": 1, "pending": 0}
    assert set(data["added"][0]) == {"path", "record_id", "reason", "location"}
    assert data["ok"] is False and len(data["operation_ids"]) == 1
    assert IngestResult.from_dict(data).to_dict() == data
    ids = CliRunner().invoke(
        app, ["--catalog", str(root), "ingest-files", str(tmp_path / "a.csv"), "--ids"]
    )
    assert ids.exit_code == 0 and ids.stdout == "", "nothing added, no id printed"


def test_in_place_ingest_resumes_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(12):
        (data / f"f{i:02d}.csv").write_text(f"t\n{i}\n", encoding="utf-8")
    with Catalog.create(tmp_path / "cat") as cat:
        first = cat.ingest_files([str(data / "*.csv")], in_place=True, batch_size=5)
        assert first.counts["added"] == 12 and len(first.operation_ids) == 3
        assert not (cat.root / "store").exists() or not any((cat.root / "store").rglob("*.csv"))
        os.utime(data / "f03.csv", ns=(1, 1))  # changed since: in place, its path is taken
        again = cat.ingest_files([str(data)], in_place=True, continue_on_error=True)
        assert again.counts == {"added": 0, "skipped": 11, "failed": 1, "pending": 0}
        assert "already in the catalog" in str(again.failed[0].reason)


@pytest.mark.sqlite_only
def test_a_catalog_of_schema_2_learns_where_its_files_came_from(tmp_path: Path) -> None:
    data = tmp_path / "a.csv"
    data.write_text("x\n", encoding="utf-8")
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        cat.add_file(data)
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.executescript(
        "DROP INDEX artifacts_source; ALTER TABLE artifacts DROP COLUMN source;"
        " ALTER TABLE artifacts DROP COLUMN source_mtime_ns; PRAGMA user_version = 2;"
    )
    conn.close()
    with Catalog.open(root) as cat:
        result = cat.ingest_files([data])
    assert result.counts == {"added": 0, "skipped": 1, "failed": 0, "pending": 0}


def test_ingest_runs_as_a_named_pipeline(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n", encoding="utf-8")
    with Catalog.create(tmp_path / "cat") as cat:
        names = {p.name: p.names() for p in cat.pipelines()}
        assert names["ingest-files"] == ["resolve-inputs", "plan-ingest", "ingest-batches"]
        run = cat.run_pipeline("ingest-files", [str(tmp_path / "a.csv")], params={"tags": ["t"]})
        assert run.steps[-1]["ran"] and cat.count() == 1


def test_files_another_ingest_adds_meanwhile_are_skipped_not_failed(tmp_path: Path) -> None:
    """Two ingests of the same files at once: what the other one committed after this
    one's plan is skipped (named as such), and nothing fails or is added twice."""
    from arcodex.catalog import HookContext

    files = tmp_path / "files"
    files.mkdir()
    for i in range(30):
        (files / f"f{i:02d}.csv").write_text(f"row,{i}\n")
    cat = Catalog.create(tmp_path / "cat")
    other: list[IngestResult] = []

    def race(ctx: HookContext) -> None:
        if ctx.step == "ingest-batches" and not other:
            with Catalog.open(tmp_path / "cat") as second:
                other.append(second.ingest_files([str(files / "f0*.csv")]))

    cat.hooks.register("before_step", race, name="race")
    result = cat.ingest_files([str(files)], batch_size=8)
    assert other[0].counts["added"] == 10
    assert result.counts == {"added": 20, "skipped": 10, "failed": 0, "pending": 0}, (
        result.to_dict()
    )
    assert all("added by another ingest" in (f.reason or "") for f in result.skipped)
    assert result.ok
    assert len(cat.search(limit=None).records) == 30
