"""Units of work and their durable journal.

Every mutating operation runs in a :class:`UnitOfWork`. Each state it passes
is appended to ``state/journal/<operation_id>.jsonl`` before the work of the
next state starts, so after a crash the journal says exactly how far an
operation got. Work that cannot be part of the database transaction (files,
objects) registers a compensating action; on failure they run in reverse
order. They are idempotent and only ever undo what this unit did. A finished
unit's journal moves to ``journal/done/``.

Every entry is written before the work it announces, so a killed process
leaves them all. What must also survive a power cut is fsync'd
(:data:`DURABLE_STATES`): the states written before an artifact write,
move or delete begins (they say how to undo it), the state written before the
catalog commit (recovery then asks the database whether the commit landed),
and the final state. An fsync makes every earlier entry of the file durable
too, so the other states ride along with the next one, and the journal
directory is fsync'd once, when an operation's journal is created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arcodex.catalog._events import EventLog
from arcodex.catalog._opstate import (
    FileEvents,
    JournalStore,
    Lease,
    OperationState,
    ProcessLeases,
    process_alive,
)
from arcodex.errors import ArcodexError, StorageError
from arcodex.model import Operation
from arcodex.storage._local import fsync_dir

__all__ = [
    "DURABLE_STATES",
    "FAIL_AT_ENV",
    "KILL_AT_ENV",
    "STATES",
    "InjectedFailure",
    "Journal",
    "UnitOfWork",
    "process_alive",
]

#: The states an operation passes, in order.
STATES = (
    "started",
    "planned",
    "artifact_write_started",
    "artifact_write_succeeded",
    "catalog_write_started",
    "catalog_write_succeeded",
    "hooks_started",
    "committed",
)
#: States fsync'd when journaled (see the module docstring); the others ride along.
DURABLE_STATES = frozenset(
    {
        "artifact_write_started",
        "artifact_staged",
        "artifact_backup",
        "artifact_undo",
        "artifact_delete_started",
        "record_saved",
        "catalog_write_started",
        "committed",
        "rolled_back",
        "failed",
    }
)
#: Failure injection for tests: raise (or SIGKILL the process) right after
#: journaling this state; ``STATE#N`` waits for its N-th time in the process (the
#: third batch of an ingest, say). Never set in production.
FAIL_AT_ENV = "ARCODEX_FAIL_AT"
KILL_AT_ENV = "ARCODEX_KILL_AT"


class InjectedFailure(ArcodexError, RuntimeError):
    """Raised by the failure-injection point (tests only)."""


class Journal:
    """The journal directory of one catalog (the file :class:`~arcodex.catalog._opstate.JournalStore`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dir = str(directory)
        self.done = directory / "done"
        # Operations whose journal file is known to the directory durably.
        self._linked: set[str] = set()

    def path(self, operation_id: str) -> Path:
        return self.directory / f"{operation_id}.jsonl"

    def append(self, operation_id: str, entry: dict[str, Any], *, durable: bool = True) -> None:
        """Append one entry: written at once (a killed process keeps it), and with ``durable``
        fsync'd with every entry before it (a power cut keeps them)."""
        # A string path: building a Path per entry was a good part of an entry's cost.
        path = os.path.join(self._dir, f"{operation_id}.jsonl")
        line = json.dumps(entry, default=str, ensure_ascii=False) + "\n"
        try:
            fd = self._open(path)
            try:
                os.write(fd, line.encode())
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if durable and operation_id not in self._linked:
                fsync_dir(self.directory)
                self._linked.add(operation_id)
        except OSError as exc:
            raise StorageError(f"cannot write the journal {path}: {exc.strerror or exc}") from exc

    def _open(self, path: str) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            return os.open(path, flags, 0o640)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o640)

    def close(self, operation_id: str) -> None:
        """Move a finished operation's journal out of the way of recovery."""
        self._linked.discard(operation_id)
        try:
            os.replace(self.path(operation_id), self.done / f"{operation_id}.jsonl")
        except FileNotFoundError:
            self.done.mkdir(parents=True, exist_ok=True)
            os.replace(self.path(operation_id), self.done / f"{operation_id}.jsonl")

    def read(self, operation_id: str) -> list[dict[str, Any]]:
        """Every entry of an operation (open or done); a line cut by a crash is skipped."""
        for path in (self.path(operation_id), self.done / f"{operation_id}.jsonl"):
            if path.exists():
                entries = []
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        entries.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
                return entries
        return []

    def done_operations(self) -> list[str]:
        """Operations whose journal reached a final state."""
        if not self.done.is_dir():
            return []
        return sorted(p.stem for p in self.done.glob("*.jsonl"))

    def open_operations(self) -> list[str]:
        """Operations whose journal never reached a final state (after a crash)."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.jsonl"))


@dataclass
class _Undo:
    description: str
    action: Callable[[], Any]
    data: dict[str, Any] = field(default_factory=dict)


class UnitOfWork:
    """One operation's boundary: journaled transitions and compensating actions."""

    def __init__(
        self,
        operation: Operation,
        journal: JournalStore,
        events: EventLog,
        lease: Lease | None = None,
    ) -> None:
        self.operation = operation
        self.journal = journal
        self.events = events
        #: What tells every process sharing the catalog that this unit runs.
        self.lease = lease
        self.state: str | None = None
        self._undo: list[_Undo] = []
        self.after: list[Callable[[], Any]] = []
        #: Set by :meth:`fell_short`: the unit commits, but its operation ends failed.
        self.shortfall: str | None = None

    def fell_short(self, message: str) -> None:
        """Say that the unit did not do all it was asked (an ingestion's periods that
        could not be fetched): what it did still commits, and its operation ends
        ``failed`` with ``message`` as its error, so that nobody takes it for complete."""
        self.shortfall = message

    def after_commit(self, action: Callable[[], Any]) -> None:
        """Run ``action`` once the unit has committed (clean-ups that must not happen before)."""
        self.after.append(action)

    def transition(self, state: str, **data: Any) -> None:
        """Journal ``state`` (fsync'd if recovery depends on it) and log it, then go on."""
        self._journal(state, data)
        self.events.emit(
            f"uow.{state}",
            f"{self.operation.action} {state}",
            level="debug",
            operation_id=self.operation.id,
            user=self.operation.user,
            action=self.operation.action,
        )
        _inject(state)

    def mark(self, state: str, **data: Any) -> None:
        """Journal ``state`` without an event of its own, for a caller that logs the same
        moment itself (a pipeline step logs one event with its time), then go on."""
        self._journal(state, data)
        _inject(state)

    def _journal(self, state: str, data: dict[str, Any]) -> None:
        entry = {
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "operation_id": self.operation.id,
            "action": self.operation.action,
            "state": state,
            "user": self.operation.user,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **data,
        }
        self.journal.append(self.operation.id, entry, durable=state in DURABLE_STATES)
        self.state = state

    def on_rollback(self, description: str, action: Callable[[], Any], **data: Any) -> None:
        """Register a compensating action (run in reverse order if the unit fails)."""
        self._undo.append(_Undo(description, action, data))

    def rollback(self, error: BaseException) -> bool:
        """Run every compensating action in reverse; True if all of them succeeded."""
        self.transition("rollback_started", error_type=type(error).__name__)
        ok = True
        for undo in reversed(self._undo):
            try:
                undo.action()
            except Exception as exc:  # keep undoing the rest; report what failed
                ok = False
                self.events.emit(
                    "uow.compensation_failed",
                    f"could not undo: {undo.description}",
                    level="error",
                    operation_id=self.operation.id,
                    error=exc,
                    **undo.data,
                )
        self.transition("rolled_back" if ok else "failed")
        return ok


#: How often each state was journaled in this process (for ``STATE#N`` injections).
_SEEN: dict[str, int] = {}


def _inject(state: str) -> None:
    kill, fail = os.environ.get(KILL_AT_ENV), os.environ.get(FAIL_AT_ENV)
    if not kill and not fail:
        return
    seen = _SEEN[state] = _SEEN.get(state, 0) + 1
    if kill and _injected(kill, state, seen):
        os.kill(os.getpid(), signal.SIGKILL)
    if fail and _injected(fail, state, seen):
        raise InjectedFailure(f"failure injected after {state} ({FAIL_AT_ENV})")


def _injected(wanted: str, state: str, seen: int) -> bool:
    name, _, nth = wanted.partition("#")
    return name == state and (not nth or (nth.isdigit() and int(nth) == seen))


def operation_state(backend: Any, journal_dir: Path, log_dir: Path) -> OperationState:
    """The backend's own operation state when it keeps one (PostgreSQL), else files."""
    shared = getattr(backend, "shared_operations", None)
    if callable(shared):
        state = shared()
        if isinstance(state, OperationState):
            return state
        return OperationState(state.journal, state.events, state.leases)
    return OperationState(Journal(journal_dir), FileEvents(log_dir), ProcessLeases())
