"""The SQLite backend: the shared contract, plus what only SQLite has."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from arcodex.backends import CatalogBackend
from arcodex.backends._sqlite import SQLiteBackend
from arcodex.errors import LockTimeoutError, NotACatalogError, NotFoundError, StorageError
from arcodex.model import Operation, Query, Record
from arcodex.testing import BackendContract, sample_records

pytestmark = pytest.mark.sqlite_only


class TestSQLiteContract(BackendContract):
    def create_backend(self, path: Path) -> CatalogBackend:
        return SQLiteBackend(path / "catalog.sqlite", create=True, busy_timeout=5.0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.sqlite"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SQLiteBackend]:
    backend = SQLiteBackend(db_path, create=True, busy_timeout=0.2)
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock, as another process would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield other
        finally:
            other.execute("ROLLBACK")


def test_wal_mode(backend: SQLiteBackend, db_path: Path) -> None:
    backend.add([Record(id="a")])
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_data_survives_reopening(backend: SQLiteBackend, db_path: Path) -> None:
    records = sample_records()
    backend.add(records)
    backend.close()
    again = SQLiteBackend(db_path)
    try:
        assert again.get("s1") == records[0]
        assert again.count(Query.parse(["site=MHD"])) == 2
    finally:
        again.close()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite"
    with pytest.raises(NotACatalogError, match="missing"):
        SQLiteBackend(path)
    assert not path.exists()


@pytest.mark.parametrize("create", [False, True])
def test_corrupt_file(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "catalog.sqlite"
    junk = random.Random(1234).randbytes(8192)
    path.write_bytes(junk)
    with pytest.raises(StorageError) as info:
        SQLiteBackend(path, create=create)
    message = str(info.value)
    assert str(path) in message
    assert "backup" in message
    assert "\n" not in message
    assert path.read_bytes() == junk


def test_damaged_pages(backend: SQLiteBackend, db_path: Path) -> None:
    backend.add([Record(id=f"r{i}", title="x" * 500, metadata={"i": i}) for i in range(200)])
    backend.close()
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db_path.read_bytes())
    rng = random.Random(99)
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 512] = rng.randbytes(512)
    db_path.write_bytes(bytes(data))

    def open_and_read() -> None:
        damaged = SQLiteBackend(db_path)
        try:
            damaged.search(Query.parse(["i>=0"], limit=None))
            damaged.fields()
        finally:
            damaged.close()

    with pytest.raises(StorageError, match="damaged"):
        open_and_read()


@pytest.mark.parametrize("create", [False, True])
def test_foreign_sqlite_file(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE birds (name TEXT)")
        conn.execute("INSERT INTO birds VALUES ('wren')")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(NotACatalogError, match="not an arcodex catalog"):
        SQLiteBackend(path, create=create)
    assert path.read_bytes() == before, "the foreign file is left as it was (journal mode too)"


def test_newer_schema(backend: SQLiteBackend, db_path: Path) -> None:
    backend.close()
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StorageError, match="upgrade arcodex"):
        SQLiteBackend(db_path)


def test_locked_database(backend: SQLiteBackend, db_path: Path) -> None:
    backend.add([Record(id="kept", title="before", metadata={"k": 1})])
    kept = backend.get("kept")
    changed = kept.model_copy(update={"title": "after", "version": 2})
    writes: list[Any] = [
        lambda: backend.add([Record(id="new")]),
        lambda: backend.update(changed, expected_version=1),
        lambda: backend.delete("kept"),
        lambda: backend.purge("kept"),
        lambda: backend.save_operation(Operation(action="add")),
    ]
    with write_locked(db_path):
        for write in writes:
            with pytest.raises(LockTimeoutError) as info:
                write()
            assert "busy_timeout" in str(info.value)
            assert isinstance(info.value, TimeoutError)
        # WAL: readers are not blocked by a writer.
        assert backend.get("kept") == kept
        assert backend.count(Query()) == 1
    assert backend.get("kept") == kept
    with pytest.raises(NotFoundError):
        backend.get("new")
    assert backend.operations() == []
    backend.add([Record(id="new")])
    assert backend.count(Query()) == 2


def _plan(backend: SQLiteBackend, query: Query) -> list[str]:
    # White-box: the backend's own SQL for the query, planned by SQLite.
    sql, params, order, _ = backend._compile(query)
    rows = backend._conn().execute(
        f"EXPLAIN QUERY PLAN SELECT r.rid {sql} ORDER BY {order}", params
    )
    return [str(row[-1]) for row in rows]


@pytest.mark.parametrize(
    "terms",
    [
        ["site=MHD"],
        ["site=[MHD,TAC]"],
        ["inst.name=NOC", "year>2000"],
        ["year>=2020"],
        ["obs<2021"],
        ["tag=ch4"],
        ["site=MHD", "status=deleted"],
    ],
)
def test_search_uses_indexes(backend: SQLiteBackend, terms: list[str]) -> None:
    backend.add(sample_records())
    backend.add([Record(id=f"x{i}", metadata={"site": f"S{i}", "year": i}) for i in range(300)])
    plan = _plan(backend, Query.parse(terms))
    scans = [line for line in plan if line.startswith(("SCAN r", "SCAN records"))]
    assert not scans, plan


def test_close_closes_every_thread_connection(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections opened by worker threads are closed by close() (Python 3.13 warns otherwise)."""
    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    backend.add([Record(id="a")])

    def work(n: int) -> None:
        backend.get("a")
        # Thread idents can be reused once a thread ends, so ids come from the caller.
        backend.add([Record(id=f"from-{n}")])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.close()
    try:
        assert len(opened) >= 2
        still_open = []
        for conn in opened:
            try:
                conn.execute("SELECT 1")
            except sqlite3.ProgrammingError:
                continue
            still_open.append(conn)
        assert not still_open, f"{len(still_open)} of {len(opened)} connections left open"
    finally:
        for conn in opened:
            conn.close()
