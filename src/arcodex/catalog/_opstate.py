"""Where a catalog keeps the state of its operations, and how it tells a live one.

Three small seams, each with a file implementation here and a PostgreSQL one in
:mod:`arcodex.backends._postgres_ops` (several hosts share that catalog, so its
journal, events and leases live in the database):

- :class:`JournalStore`: the unit-of-work journal (:class:`~arcodex.catalog._journal.Journal`
  is the file one, under ``state/journal``);
- :class:`EventStore`: where the event log's lines go and are read back
  (:class:`FileEvents`, JSON Lines under ``state/logs``);
- :class:`Leases`: a running operation holds a lease any process sharing the catalog
  can test. The file implementation is the pid and host its journal entries name
  (:class:`ProcessLeases`: one host, so a process of another host counts as gone); the
  PostgreSQL one is a session advisory lock, which a killed process drops at once.

A backend that keeps the state itself offers ``shared_operations()`` returning an
:class:`OperationState`; :func:`operation_state` picks it, or the files.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from arcodex.errors import StorageError

__all__ = [
    "EventStore",
    "FileEvents",
    "JournalStore",
    "Lease",
    "Leases",
    "OperationState",
    "ProcessLeases",
    "process_alive",
]


@runtime_checkable
class JournalStore(Protocol):
    """The journal of a catalog's units of work, one list of entries per operation."""

    def append(self, operation_id: str, entry: dict[str, Any], *, durable: bool = True) -> None:
        """Add one entry; with ``durable`` it and every earlier one survive a power cut
        (or, in a database, are committed) before this returns."""
        ...

    def close(self, operation_id: str) -> None:
        """Mark a finished operation's journal done (out of the way of recovery)."""
        ...

    def read(self, operation_id: str) -> list[dict[str, Any]]:
        """Every entry of an operation, open or done, oldest first."""
        ...

    def done_operations(self) -> list[str]:
        """Operations whose journal reached a final state."""
        ...

    def open_operations(self) -> list[str]:
        """Operations whose journal never reached a final state."""
        ...


class EventStore(Protocol):
    """Where the event log's (already redacted) entries are kept."""

    #: What ``arcodex info`` names as the event log.
    where: str

    def write(self, entry: dict[str, Any], line: str) -> None:
        """Keep one event: ``line`` is ``entry`` as redacted JSON."""
        ...

    def entries(self, lo: datetime | None, hi: datetime | None) -> Iterator[dict[str, Any]]:
        """The events, oldest first; those outside ``lo``..``hi`` may be left out."""
        ...


class Lease(Protocol):
    """What a running unit of work holds until it ends."""

    def guard(self, keys: Sequence[str]) -> None:
        """Hold ``keys`` too, until :meth:`release`: another unit guarding any of them
        waits (an add's duplicate check and its commit, say)."""
        ...

    def release(self) -> None: ...


class Leases(Protocol):
    """Take and test the leases of a catalog's operations."""

    #: Whether a lease is seen from every host (else only from this one).
    shared: bool

    def hold(self, operation_id: str) -> Lease:
        """Take the lease of a unit of work that starts now."""
        ...

    def running(self, operation_id: str | None, entry: Mapping[str, Any]) -> bool:
        """Whether the operation (whose last journal entry, or claim, is ``entry``) is
        still running somewhere, this process included."""
        ...

    def guard(self, keys: Sequence[str]) -> AbstractContextManager[None]:
        """Hold ``keys`` while inside, outside any unit of work (see :meth:`Lease.guard`)."""
        ...


@dataclass(frozen=True)
class OperationState:
    """A catalog's journal, event store and leases."""

    journal: JournalStore
    events: EventStore
    leases: Leases

    def close(self) -> None:
        """Let go of what the state holds open (the leases' connection)."""
        close = getattr(self.leases, "close", None)
        if callable(close):
            close()


class FileEvents:
    """JSON Lines files, one per month (``events-YYYY-MM.jsonl``), appended under an
    exclusive lock so that concurrent processes never interleave lines."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dir = str(directory)
        self.where = str(directory)

    def write(self, entry: dict[str, Any], line: str) -> None:
        # A string path, and the directory made only when it is missing: per event, both
        # were a good part of its cost.
        path = os.path.join(self._dir, f"events-{str(entry['timestamp'])[:7]}.jsonl")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            try:
                fd = os.open(path, flags, 0o640)
            except FileNotFoundError:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write the event log {path}: {exc.strerror or exc}") from exc

    def entries(self, lo: datetime | None, hi: datetime | None) -> Iterator[dict[str, Any]]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("events-*.jsonl")):
            month = path.stem.removeprefix("events-")
            if (lo and month < f"{lo:%Y-%m}") or (hi and month > f"{hi:%Y-%m}"):
                continue
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line:
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            continue  # a line cut by a crash: skip it, keep reading


class _NoLease:
    def guard(self, keys: Sequence[str]) -> None:
        pass

    def release(self) -> None:
        pass


class ProcessLeases:
    """One host's leases: the pid and host a unit's journal entries (or a member's claim)
    name. Nothing to take; a process of another host counts as gone."""

    shared = False

    def hold(self, operation_id: str) -> Lease:
        return _NoLease()

    def running(self, operation_id: str | None, entry: Mapping[str, Any]) -> bool:
        return process_alive(entry.get("pid"), entry.get("host"))

    def guard(self, keys: Sequence[str]) -> AbstractContextManager[None]:
        return nullcontext()


def process_alive(pid: Any, host: Any) -> bool:
    """Whether process ``pid`` of ``host`` is running (this process included); a process
    of another host cannot be seen from here, so it counts as gone."""
    import socket

    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def released(lease: Lease) -> Iterator[Lease]:
    """Hold ``lease`` while inside."""
    try:
        yield lease
    finally:
        lease.release()
