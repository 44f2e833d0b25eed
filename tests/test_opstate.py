"""The operation-state seams (journal store, event store, leases), one contract for the
files of a SQLite catalog and the tables of a PostgreSQL one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arcodex.backends import open_backend
from arcodex.catalog._journal import operation_state
from arcodex.catalog._opstate import OperationState

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def states(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[OperationState]]:
    """Two views of one catalog's operation state (two processes' worth, for PostgreSQL:
    each backend has a connection of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    first = open_backend(url, create=True)
    second = open_backend(url)
    views = [
        operation_state(backend, tmp_path / "journal", tmp_path / "logs")
        for backend in (first, second)
    ]
    yield views
    for view, backend in zip(views, (first, second), strict=True):
        view.close()
        backend.close()


def test_the_journal_keeps_entries_in_order_and_knows_open_from_done(
    states: list[OperationState],
) -> None:
    mine, other = states
    for i, state in enumerate(("started", "planned", "artifact_written", "committed")):
        mine.journal.append("op1", {"state": state, "i": i}, durable=state == "committed")
    mine.journal.append("op2", {"state": "started"}, durable=True)
    assert [e["state"] for e in other.journal.read("op1")] == [
        "started",
        "planned",
        "artifact_written",
        "committed",
    ]
    assert other.journal.open_operations() == ["op1", "op2"]
    mine.journal.close("op1")
    assert other.journal.open_operations() == ["op2"]
    assert other.journal.done_operations() == ["op1"]
    assert len(other.journal.read("op1")) == 4, "a closed journal is still read"
    assert other.journal.read("nothing") == []


def test_events_are_read_back_in_order_within_their_time_range(
    states: list[OperationState],
) -> None:
    mine, other = states
    for month, level in (("2026-10", "info"), ("2026-11", "debug"), ("2026-12", "error")):
        entry = {"timestamp": f"{month}-02T10:00:00Z", "level": level, "event": month}
        mine.events.write(entry, f'{{"timestamp": "{month}-02T10:00:00Z", "event": "{month}"}}')
    if hasattr(mine.events, "flush"):
        mine.events.flush()  # a debug event waits for the next write (PostgreSQL)
    everything = [e["event"] for e in other.events.entries(None, None)]
    assert everything == ["2026-10", "2026-11", "2026-12"]
    lo = datetime(2026, 11, 1, tzinfo=UTC)
    hi = datetime(2026, 11, 30, tzinfo=UTC)
    assert "2026-11" in [e["event"] for e in other.events.entries(lo, hi)]


def test_a_lease_is_seen_while_held_and_free_once_released(
    states: list[OperationState],
) -> None:
    mine, other = states
    here = {"pid": os.getpid(), "host": socket.gethostname()}
    lease = mine.leases.hold("op1")
    assert other.leases.running("op1", here)
    lease.release()
    if other.leases.shared:
        assert not other.leases.running("op1", here), "a released lease is free everywhere"
        assert not other.leases.running("never-held", here)
    assert not other.leases.running("op1", {"pid": 2**22 + 1, "host": socket.gethostname()})
    assert not mine.leases.running("op1", {"pid": os.getpid(), "host": "another-host"})


_HOLDER = """
import sys, time
from arcodex.backends import open_backend
from arcodex.catalog._journal import operation_state
from pathlib import Path
backend = open_backend(sys.argv[1])
state = operation_state(backend, Path(sys.argv[2]), Path(sys.argv[2]))
state.leases.hold("op-killed")
print("held", flush=True)
time.sleep(120)
"""


def test_a_killed_process_lease_is_free_at_once(pg_url: str, tmp_path: Path) -> None:
    backend = open_backend(pg_url, create=True)
    state = operation_state(backend, tmp_path, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, pg_url, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert state.leases.running("op-killed", {})
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 5
        while state.leases.running("op-killed", {}):
            assert time.monotonic() < deadline, "the dead process's lease is still held"
            time.sleep(0.02)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        state.close()
        backend.close()


def test_guards_make_two_holders_of_one_key_take_turns(pg_url: str, tmp_path: Path) -> None:
    from arcodex.backends import _postgres_ops
    from arcodex.errors import LockTimeoutError

    first, second = open_backend(pg_url, create=True), open_backend(pg_url)
    mine, other = (operation_state(b, tmp_path, tmp_path) for b in (first, second))
    try:
        lease = mine.leases.hold("op1")
        lease.guard(["sha256:abc", "/data/a.nc"])
        patch = pytest.MonkeyPatch()
        patch.setattr(_postgres_ops, "GUARD_TIMEOUT", 0.2)
        try:
            with pytest.raises(LockTimeoutError, match="another add holds"):
                other.leases.hold("op2").guard(["/data/a.nc"])
            with other.leases.guard(["sha256:other"]):
                pass  # another key is free
        finally:
            patch.undo()
        lease.release()
        with other.leases.guard(["/data/a.nc", "sha256:abc"]):
            pass
    finally:
        for state, backend in ((mine, first), (other, second)):
            state.close()
            backend.close()
