"""Crash safety: `arcodex` killed with SIGKILL at every journal state, then `recover`.

After recovery the catalog is in the old or the new state, never in between,
and `doctor` reports it clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from arcodex.catalog import Catalog
from arcodex.catalog._journal import KILL_AT_ENV

ADD_STATES = [
    "started",
    "planned",
    "artifact_write_started",
    "artifact_written",
    "artifact_write_succeeded",
    "catalog_write_started",
    "catalog_write_succeeded",
    "hooks_started",
    "committed",
]
WRITTEN = {"catalog_write_succeeded", "hooks_started", "committed"}
CHANGE_STATES = [
    "started",
    "planned",
    "catalog_write_started",
    "catalog_write_succeeded",
    "committed",
]


def _killed(root: Path, state: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    env[KILL_AT_ENV] = state
    done = subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "--catalog", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)


def _files(cat: Catalog) -> list[str]:
    store = cat.root / "store"
    return (
        sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
        if store.exists()
        else []
    )


@pytest.mark.slow
@pytest.mark.parametrize("state", ADD_STATES)
def test_add_killed_then_recovered(tmp_path: Path, state: str) -> None:
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        cat.add_external("https://example.org/kept", record_id="kept")
    src = tmp_path / "obs.csv"
    src.write_text("t,ch4\n1,1900\n")
    _killed(root, state, "add", str(src), "--id", "new")
    with Catalog.open(root) as cat:
        assert cat.doctor().incomplete_operations, "the killed add is visible to doctor"
        cat.recover()
        ids = sorted(r.id for r in cat.search(limit=None).records)
        if state in WRITTEN:
            assert ids == ["kept", "new"]
            assert Path(cat.path("new")).read_bytes() == src.read_bytes()
            assert len(_files(cat)) == 1
        else:
            assert ids == ["kept"]
            assert _files(cat) == []
        report = cat.doctor(verify_hashes=True)
        assert report.clean, report.to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("state", CHANGE_STATES)
@pytest.mark.parametrize("command", ["update", "delete"])
def test_update_and_delete_killed_then_recovered(tmp_path: Path, state: str, command: str) -> None:
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        cat.add_external("https://example.org/a", record_id="a", metadata={"q": 1})
    args = ["update", "a", "--set", "q=2"] if command == "update" else ["delete", "a"]
    _killed(root, state, *args)
    with Catalog.open(root) as cat:
        cat.recover()
        rec = cat.get("a")
        old = rec.metadata["q"] == 1 and rec.status == "active"
        new = (rec.metadata["q"] == 2) if command == "update" else rec.status == "deleted"
        assert old != new, rec
        assert new == (state in {"catalog_write_succeeded", "committed"})
        assert cat.doctor().clean


def test_recover_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    src = tmp_path / "obs.csv"
    src.write_text("x\n")
    _killed(root, "artifact_write_succeeded", "add", str(src))
    with Catalog.open(root) as cat:
        before = _files(cat)
        (plan,) = cat.recover(dry_run=True)
        assert plan.decision == "roll_back" and len(plan.removed) == 1
        assert _files(cat) == before
        assert cat.journal.open_operations()
        cat.recover()
        assert _files(cat) == []
        assert cat.journal.open_operations() == []
        (op,) = cat.operations(status="rolled_back")
        assert op.error is not None and "interrupted" in op.error.message


def test_doctor_finds_orphans_missing_and_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    src = tmp_path / "obs.csv"
    src.write_text("t,ch4\n1,1900\n")
    with Catalog.create(root) as cat:
        gone = cat.add_file(src, record_id="gone")
        changed = cat.add_file(src, record_id="changed")
        kept = cat.add_file(src, record_id="kept")
        assert cat.doctor(verify_hashes=True).clean
        Path(cat.path(gone.id)).unlink()
        Path(cat.path(changed.id)).write_text("t,ch4\n1,1999\n")  # same size, other bytes
        stray = root / "store" / "dataset" / "stray.nc"
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"x")
        quick = cat.doctor()
        assert [m["record_id"] for m in quick.missing_artifacts] == ["gone"]
        assert quick.mismatched_artifacts == []  # same size: only hashes tell
        assert [o["key"] for o in quick.orphaned_files] == ["dataset/stray.nc"]
        full = cat.doctor(verify_hashes=True)
        assert [m["record_id"] for m in full.mismatched_artifacts] == ["changed"]
        assert full.mismatched_artifacts[0]["sha256_matches"] is False
        assert not full.clean
        assert Path(cat.path(kept.id)).exists()
