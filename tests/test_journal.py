"""Units of work: journaled states, compensation on failure at every phase."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcodex.catalog import Catalog
from arcodex.catalog._journal import FAIL_AT_ENV, InjectedFailure

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


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "obs.csv"
    path.write_text("t,ch4\n1,1900\n")
    return path


def _stored(cat: Catalog) -> list[Path]:
    store = cat.root / "store"
    return sorted(p for p in store.rglob("*") if p.is_file()) if store.exists() else []


def _states(entries: list[dict[str, object]]) -> list[object]:
    """The operation's states, without the pipeline's step marks between them."""
    return [e["state"] for e in entries if not str(e["state"]).startswith("step_")]


def test_add_journals_every_state(cat: Catalog, src: Path) -> None:
    rec = cat.add_file(src)
    (op,) = cat.operations(limit=1)
    entries = cat.journal.read(op.id)
    assert _states(entries) == ADD_STATES
    # The steps that ran inside the unit of work, each started and finished.
    marks = [(e["state"], e["step"]) for e in entries if str(e["state"]).startswith("step_")]
    assert marks == [
        (state, step)
        for step in ("plan-path", "write-artifact", "commit-record")
        for state in ("step_started", "step_finished")
    ]
    written = next(e for e in entries if e["state"] == "artifact_written")
    assert cat.path(rec.id).endswith(written["key"])
    assert next(e for e in entries if e["state"] == "planned")["records"] == [rec.id]
    assert cat.journal.open_operations() == []
    assert cat.journal.done_operations() == [op.id]


@pytest.mark.parametrize("state", ADD_STATES[:-1])
def test_add_failing_at_any_state_leaves_the_old_catalog(
    cat: Catalog, src: Path, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat.add_external("https://example.org/kept", record_id="kept")
    monkeypatch.setenv(FAIL_AT_ENV, state)
    with pytest.raises(InjectedFailure):
        cat.add_file(src, record_id="new")
    monkeypatch.delenv(FAIL_AT_ENV)
    assert [r.id for r in cat.search(limit=None).records] == ["kept"]
    assert _stored(cat) == []
    (op,) = cat.operations(status="failed")
    states = [e["state"] for e in cat.journal.read(op.id)]
    assert states[-2:] == ["rollback_started", "rolled_back"]
    assert cat.journal.open_operations() == []
    assert src.exists(), "the source file is never touched"


def test_add_failing_after_commit_keeps_the_new_state(
    cat: Catalog, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAIL_AT_ENV, "committed")
    with pytest.raises(InjectedFailure):
        cat.add_file(src, record_id="new")
    monkeypatch.delenv(FAIL_AT_ENV)
    assert cat.get("new").artifact().size_bytes == src.stat().st_size
    assert len(_stored(cat)) == 1
    assert cat.operations(limit=1)[0].status == "succeeded"


@pytest.mark.parametrize("state", ["planned", "catalog_write_started", "catalog_write_succeeded"])
def test_update_delete_restore_roll_back(
    cat: Catalog, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat.add_external("https://example.org/a", record_id="a", metadata={"q": 1})
    cat.add_external("https://example.org/b", record_id="b")
    cat.delete("b")
    before = {r.id: (r.metadata, r.status) for r in cat.search("status=[active,deleted]").records}
    monkeypatch.setenv(FAIL_AT_ENV, state)
    with pytest.raises(InjectedFailure):
        cat.update("a", set={"q": 2})
    with pytest.raises(InjectedFailure):
        cat.delete("a")
    with pytest.raises(InjectedFailure):
        cat.restore("b")
    monkeypatch.delenv(FAIL_AT_ENV)
    after = {r.id: (r.metadata, r.status) for r in cat.search("status=[active,deleted]").records}
    assert after == before
    assert cat.search("q=1").records[0].id == "a"
    assert cat.journal.open_operations() == []


def test_custom_unit_of_work(cat: Catalog) -> None:
    undone: list[str] = []

    def ingest() -> None:
        with cat.unit_of_work("ingest", user="dan") as uow:
            uow.transition("planned", items=2)
            uow.on_rollback("first", lambda: undone.append("first"))
            uow.on_rollback("second", lambda: undone.append("second"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ingest()
    assert undone == ["second", "first"]
    (op,) = cat.operations(status="failed")
    assert op.action == "ingest" and op.user == "dan"
    assert op.error is not None and op.error.type == "RuntimeError"


def test_failed_compensation_is_reported(cat: Catalog) -> None:
    def broken() -> None:
        raise OSError("disk gone")

    def ingest() -> None:
        with cat.unit_of_work("ingest") as uow:
            uow.on_rollback("cannot undo", broken)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        ingest()
    (op,) = cat.operations(status="failed")
    assert cat.journal.read(op.id)[-1]["state"] == "failed"
    (event,) = cat.logs(event="uow.compensation_failed")
    assert event["exc_type"] == "OSError"


@pytest.mark.sqlite_only  # the journal's files; on PostgreSQL a durable state is a synced commit
def test_only_the_states_recovery_depends_on_are_fsynced(
    cat: Catalog, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each state reaches the file at once (a killed process keeps it); the fsyncs that make it
    survive a power cut come before an artifact write, before the catalog commit and at the end,
    and the journal directory is synced once."""
    import os

    from arcodex.catalog._journal import DURABLE_STATES

    synced: list[tuple[str, list[str]]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if target.parent == cat.journal.directory and target.suffix == ".jsonl":
            states = [
                line.split('"state": "')[1].split('"')[0]
                for line in target.read_text().splitlines()
            ]
            synced.append(("file", states))
        elif target == cat.journal.directory:
            synced.append(("dir", []))
        real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced files")
    monkeypatch.setattr(os, "fsync", fsync)
    record = cat.add_file(src)
    journal = cat.journal.read(cat.backend.operations(limit=1)[0].id)
    assert _states(journal) == ADD_STATES
    last_states = [states[-1] for kind, states in synced if kind == "file"]
    assert last_states == ["artifact_write_started", "catalog_write_started", "committed"]
    assert set(last_states) <= DURABLE_STATES
    assert [kind for kind, _ in synced].count("dir") == 1
    assert cat.get(record.id).id == record.id
