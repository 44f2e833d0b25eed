"""Crash safety: `arcodex` killed with SIGKILL at every journal state, then `recover`.

After recovery the catalog is in the old or the new state, never in between,
and `doctor` reports it clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from arcodex.catalog import Catalog
from arcodex.catalog._journal import FAIL_AT_ENV, KILL_AT_ENV, InjectedFailure

WRITTEN = {"catalog_write_succeeded", "artifact_delete_started", "hooks_started", "committed"}
CHANGES = ("update", "delete", "restore", "purge")


def _reference_states(action: str) -> list[str]:
    """The states a real run of ``action`` journals, read from its journal (never a list
    written by hand: a state added to the code is then attacked too)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cat"
        src = Path(tmp) / "obs.csv"
        src.write_text("t,ch4\n1,1900\n")
        with Catalog.create(root) as cat:
            _prepare(cat, action, src)
            before = set(cat.journal.done_operations())
            _run(cat, action, src)
            (op_id,) = set(cat.journal.done_operations()) - before
            states = [str(e["state"]) for e in cat.journal.read(op_id)]
    assert states[-1] == "committed", states
    return states


def _prepare(cat: Catalog, action: str, src: Path) -> None:
    if action in CHANGES:
        cat.add_file(src, record_id="a", metadata={"q": 1})
    if action == "restore":
        cat.delete("a")


def _run(cat: Catalog, action: str, src: Path) -> None:
    if action == "add":
        cat.add_file(src, record_id="new")
    elif action == "update":
        cat.update("a", set={"q": 2})
    elif action == "delete":
        cat.delete("a")
    elif action == "restore":
        cat.restore("a")
    else:
        cat.purge("a")


_CLI = {
    "update": ["update", "a", "--set", "q=2"],
    "delete": ["delete", "a"],
    "restore": ["restore", "a"],
    "purge": ["purge", "a", "--yes"],
}
ADD_STATES = _reference_states("add")
CHANGE_CASES = [(action, state) for action in CHANGES for state in _reference_states(action)]


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


def test_matrices_come_from_real_journals() -> None:
    assert "hooks_started" in ADD_STATES and "artifact_written" in ADD_STATES
    assert ("purge", "artifact_delete_started") in CHANGE_CASES
    assert ("update", "hooks_started") in CHANGE_CASES


def _state_of(cat: Catalog, src: Path) -> tuple[str, ...]:
    """What the record "a" is: absent, or its status, metadata and whether its file is there."""
    try:
        rec = cat.get("a")
    except LookupError:
        return ("absent", str(_files(cat)))
    return (rec.status, str(rec.metadata.get("q")), str(_files(cat)))


def _expected(cat_root: Path, action: str, src: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The state before and after ``action``, from a run that is not interrupted."""
    with Catalog.create(cat_root) as cat:
        _prepare(cat, action, src)
        old = _state_of(cat, src)
        _run(cat, action, src)
        new = _state_of(cat, src)
    return old, new


@pytest.mark.slow
@pytest.mark.parametrize(("command", "state"), CHANGE_CASES)
def test_changes_killed_then_recovered(tmp_path: Path, command: str, state: str) -> None:
    src = tmp_path / "obs.csv"
    src.write_text("t,ch4\n1,1900\n")
    old, new = _expected(tmp_path / "reference", command, src)
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        _prepare(cat, command, src)
    _killed(root, state, *_CLI[command])
    with Catalog.open(root) as cat:
        cat.recover()
        now = _state_of(cat, src)
        assert now == (new if state in WRITTEN else old), (now, old, new)
        report = cat.doctor()
        assert report.clean, report.to_dict()


@pytest.mark.parametrize(("command", "state"), CHANGE_CASES)
def test_changes_failing_are_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, state: str
) -> None:
    """A failure at any state leaves exactly the old state (or, after the commit, the new
    one), a journal that says so, and nothing for `doctor` to find."""
    src = tmp_path / "obs.csv"
    src.write_text("t,ch4\n1,1900\n")
    old, new = _expected(tmp_path / "reference", command, src)
    with Catalog.create(tmp_path / "cat") as cat:
        _prepare(cat, command, src)
        before = set(cat.journal.done_operations())
        monkeypatch.setenv(FAIL_AT_ENV, state)
        with pytest.raises(InjectedFailure):
            _run(cat, command, src)
        monkeypatch.delenv(FAIL_AT_ENV)
        (op_id,) = set(cat.journal.done_operations()) - before
        last = cat.journal.read(op_id)[-1]["state"]
        now = _state_of(cat, src)
        if state == "committed":
            assert (now, last) == (new, "committed")
        else:
            assert (now, last) == (old, "rolled_back"), (now, old, last)
        report = cat.doctor()
        assert report.clean, report.to_dict()


def test_recover_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    src = tmp_path / "obs.csv"
    src.write_text("x\n")
    _killed(root, "artifact_write_succeeded", "add", str(src))
    with Catalog.open(root) as cat:
        before = _files(cat)
        (plan,) = cat.recover(dry_run=True)
        assert plan.decision == "roll_back" and len(plan.would_remove) == 1
        assert plan.removed == []
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
        changed = cat.add_file(src, record_id="changed", allow_duplicate=True)
        kept = cat.add_file(src, record_id="kept", allow_duplicate=True)
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
