"""Eight processes adding records with managed files into one SQLite catalog at once."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from arcodex.catalog import Catalog
from arcodex.errors import ConflictError

PROCESSES = 8
PER_PROCESS = 1000
BATCH = 100


def _adder(root: str, worker: int, data_dir: str) -> None:
    files = []
    for i in range(PER_PROCESS):
        path = Path(data_dir) / f"w{worker}-{i}.csv"
        path.write_text(f"worker,{worker}\nitem,{i}\n")
        files.append(path)
    with Catalog.open(root) as cat:
        for start in range(0, PER_PROCESS, BATCH):
            cat.add_files(
                files[start : start + BATCH],
                metadata={"worker": worker},
                user=f"worker{worker}",
            )


@pytest.mark.slow
def test_eight_processes_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for worker in range(PROCESSES):
        data_dir = tmp_path / f"data{worker}"
        data_dir.mkdir()
        procs.append(ctx.Process(target=_adder, args=(str(root), worker, str(data_dir))))
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
        assert proc.exitcode == 0
    with Catalog.open(root) as cat:
        records = cat.search(limit=None).records
        assert len(records) == PROCESSES * PER_PROCESS
        assert len({r.id for r in records}) == len(records)
        for worker in range(PROCESSES):
            assert cat.count(worker=worker) == PER_PROCESS
        paths = {cat.path(r.id) for r in records}
        assert len(paths) == len(records), "every record has its own managed file"
        report = cat.doctor(verify_hashes=True)
        assert report.clean, report.to_dict()
        assert cat.journal.open_operations() == []


def test_concurrent_updates_one_wins(tmp_path: Path) -> None:
    with Catalog.create(tmp_path / "cat") as cat:
        cat.add_external("https://example.org/a", record_id="a", metadata={"n": 0})
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def update(value: int) -> None:
        with Catalog.open(tmp_path / "cat") as mine:
            barrier.wait()
            try:
                mine.update("a", set={"n": value}, expected_version=1)
                outcomes.append("won")
            except ConflictError:
                outcomes.append("conflict")

    threads = [threading.Thread(target=update, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]
    with Catalog.open(tmp_path / "cat") as cat:
        rec = cat.get("a")
        assert rec.version == 2 and rec.metadata["n"] in (1, 2)


@pytest.mark.sqlite_only
def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    import os

    from arcodex.backends._sqlite import SQLiteBackend
    from arcodex.errors import LockTimeoutError
    from arcodex.model import Record

    Catalog.create(tmp_path / "cat").close()
    db = tmp_path / "cat" / "catalog.sqlite"
    holder = SQLiteBackend(db)
    waiter = SQLiteBackend(db, busy_timeout=0.2)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder._write():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(LockTimeoutError, match=rf"locked by pid {os.getpid()} of .* on "):
            waiter.add([Record(id="x")])
    finally:
        release.set()
        thread.join()
    waiter.add([Record(id="x")])
    assert waiter.get("x").id == "x"
    assert holder.lock_holder() is None, "the note goes with the lock"
    holder.close()
    waiter.close()


@pytest.mark.sqlite_only
def test_stale_lock_note_is_reported_and_cleared(tmp_path: Path) -> None:
    import json
    import socket

    with Catalog.create(tmp_path / "cat") as cat:
        note = cat.root / "catalog.sqlite.writer"
        note.write_text(
            json.dumps(
                {"pid": 2**22 + 12345, "host": socket.gethostname(), "user": "ghost", "since": "x"}
            )
        )
        report = cat.doctor()
        assert [lock["user"] for lock in report.stale_locks] == ["ghost"]
        assert not report.clean
        cat.recover()
        assert not note.exists()
        assert cat.doctor().clean
