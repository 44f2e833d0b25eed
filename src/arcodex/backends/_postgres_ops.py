"""Operation state shared by every host of a PostgreSQL catalog: journal, events, leases.

A mixin of :class:`~arcodex.backends._postgres.PostgresBackend`: it reaches the
database through the backend's ``_tx()`` and ``schema``, and for the leases and the
writes through one connection of its own per process (``conninfo`` and
``_connect_kwargs()``).

- **Journal** (``op_journal``, ``op_units``): one row per entry, one per operation,
  written at once through this process's own connection, so a killed process leaves
  every entry it wrote. That connection commits asynchronously
  (``synchronous_commit = off``: the server has the row, only a crash of the server
  could lose the last ones, as a power cut loses the unsynced lines of the file
  journal); a durable entry (:data:`~arcodex.catalog._journal.DURABLE_STATES`) is a
  commit that waits for the WAL flush, which makes every earlier one durable too.
  Closing an operation marks its unit row, durably. A pipeline's step marks
  (:data:`RIDING`) ride along with the operation's next entry.
- **Events** (``op_events``): one row per event, the redacted JSON as written, indexed
  by time; committed asynchronously (the file event log is not fsync'd either). A
  debug event rides along with the next write (see :class:`PostgresEvents`).
- **Leases**: a running unit holds the session advisory lock
  ``hashtextextended('arcodex:op:<schema>:<operation id>', 0)`` on the lease connection
  until it ends. A killed process drops its connection, and with it the lock, at once.
  Any host tests a lease by trying the lock for one transaction
  (``pg_try_advisory_xact_lock``): got it, the owner is gone (and it is let go at the
  commit right after); refused, the operation runs. An add's duplicate check holds
  ``arcodex:key:<schema>:<sha256 or location>`` the same way until its unit ends, so two
  hosts adding one file take turns, and the second sees the first's record.

psycopg is imported lazily: ``import arcodex`` never loads it.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime
from typing import Any

from arcodex.errors import LockTimeoutError, StorageError

__all__ = ["PostgresOperations"]

_TABLES = """
CREATE TABLE IF NOT EXISTS op_units (
    operation_id text PRIMARY KEY,
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS op_units_open ON op_units (operation_id) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS op_journal (
    seq bigserial PRIMARY KEY,
    operation_id text NOT NULL,
    entry jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS op_journal_operation ON op_journal (operation_id, seq);
CREATE TABLE IF NOT EXISTS op_events (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    entry text NOT NULL
);
CREATE INDEX IF NOT EXISTS op_events_at ON op_events (at);
"""
#: Journal states that wait for the next entry of their operation: a pipeline's step
#: marks say where it was, nothing recovery needs.
RIDING = frozenset({"step_started", "step_finished"})
#: How many debug events wait for the next write at most.
EVENT_BATCH = 200
#: How long an add waits for another holding the same file (seconds).
GUARD_TIMEOUT = 120.0


class PostgresOperations:
    """The journal, event log and operation leases of a PostgreSQL catalog."""

    schema: str
    conninfo: str
    _tx: Any
    _connect_kwargs: Any
    _shared_state: Any = None

    def _ops_create(self, conn: Any) -> None:
        """Create the shared operation tables of a new catalog (inside its creating transaction)."""
        conn.execute(_TABLES)

    def shared_operations(self) -> Any:
        """The :class:`~arcodex.catalog._opstate.OperationState` kept in this database."""
        from arcodex.catalog._opstate import OperationState

        if self._shared_state is None:
            channel = _Channel(self)
            events = PostgresEvents(self, channel)
            self._shared_state = OperationState(
                PostgresJournal(self, channel, events), events, PostgresLeases(self, channel)
            )
            # The debug events still waiting are written when the process ends.
            atexit.register(_flush_at_exit, weakref.ref(events))
        return self._shared_state

    def _ops_close(self) -> None:
        """Let go of the lease connection (the backend's ``close``)."""
        state = self._shared_state
        if state is not None:
            state.leases.close()


def _close_connection(conn: Any, pid: int) -> None:
    """Close a forgotten connection in the process that opened it (a forked child's copy
    would end the parent's session, and its leases with it)."""
    if os.getpid() == pid and not conn.closed:
        conn.close()


def _flush_at_exit(ref: weakref.ref[PostgresEvents]) -> None:
    events = ref()
    if events is not None:
        with suppress(Exception):  # the database may be gone first: nothing to tell
            events.flush()


def _errors(what: str) -> Any:
    """Translate psycopg's errors into one line that says what could not be done."""

    @contextmanager
    def translating() -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"cannot {what} in the catalog database: {first}; check that it is reachable"
            ) from exc

    return translating()


#: The guard's retry jitter: a generator of its own (the global one is the program's).
_JITTER = random.Random()
#: Connections a forked process inherited (see :meth:`_Channel._connection`).
_INHERITED: list[Any] = []


def _sql(backend: PostgresOperations, text: str) -> str:
    """``text`` with ``{s}`` as the catalog's schema, quoted."""
    return text.replace("{s}", '"' + backend.schema.replace('"', '""') + '"')


class _Channel:
    """This process's own connection to the catalog database, in autocommit: it holds the
    session advisory locks of the leases (a pooled connection would pass them on), and
    carries the journal's and events' writes, one statement each. A forked child opens
    its own."""

    def __init__(self, backend: PostgresOperations) -> None:
        self.backend = backend
        self._conn: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def execute(
        self, sql: str, params: Sequence[Any], what: str, *, durable: bool = False
    ) -> list[Any]:
        """Run one statement, committed at once; ``durable``: the commit waits for the WAL
        flush (else it is asynchronous, see the module docstring)."""
        with _errors(what), self._lock:
            conn = self._connection()
            if not durable:
                cur = conn.execute(_sql(self.backend, sql), params)
                return list(cur.fetchall()) if cur.description else []
            # One round trip for the four statements.
            with conn.pipeline(), conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                cur = conn.execute(_sql(self.backend, sql), params)
            return list(cur.fetchall()) if cur.description else []

    def _connection(self) -> Any:
        import psycopg

        if self._conn is not None and self._pid != os.getpid():
            # A forked child: closing (or collecting) the parent's connection would end
            # the parent's session, and its leases with it. Kept, never used.
            _INHERITED.append(self._conn)
            self._conn = None
        if self._conn is None or self._conn.closed:
            kwargs = dict(self.backend._connect_kwargs())
            kwargs["autocommit"] = True
            self._conn = psycopg.connect(self.backend.conninfo, **kwargs)
            self._conn.execute("SET synchronous_commit = off")
            self._pid = os.getpid()
            # A catalog nobody closed must not leave its lease connection to be collected.
            weakref.finalize(self, _close_connection, self._conn, self._pid)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class PostgresJournal:
    """The unit-of-work journal as rows (a :class:`~arcodex.catalog._opstate.JournalStore`)."""

    def __init__(
        self, backend: PostgresOperations, channel: _Channel, events: PostgresEvents
    ) -> None:
        self.backend = backend
        self.channel = channel
        self.events = events
        # The operations of this process whose unit row is written.
        self._opened: set[str] = set()
        # Step marks waiting for the next entry of their operation.
        self._riding: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def append(self, operation_id: str, entry: dict[str, Any], *, durable: bool = True) -> None:
        line = json.dumps(entry, default=str, ensure_ascii=False)
        with self._lock:
            lines = [*self._riding.pop(operation_id, []), line]
            if entry.get("state") in RIDING and not durable:
                self._riding[operation_id] = lines
                return
        unit = "INSERT INTO {s}.op_units (operation_id) VALUES (%s) ON CONFLICT DO NOTHING"
        try:
            self._write(operation_id, unit, lines, durable=durable, what="write the journal")
        except BaseException:
            with self._lock:
                self._riding[operation_id] = lines[:-1] + self._riding.get(operation_id, [])
            raise
        self._opened.add(operation_id)

    def close(self, operation_id: str) -> None:
        with self._lock:
            lines = self._riding.pop(operation_id, [])
        unit = (
            "INSERT INTO {s}.op_units (operation_id, closed_at) VALUES (%s, now())"
            " ON CONFLICT (operation_id) DO UPDATE SET closed_at = now()"
        )
        self._opened.discard(operation_id)
        self._write(operation_id, unit, lines, durable=True, what="close the journal")

    def _write(
        self, operation_id: str, unit: str | None, lines: list[str], *, durable: bool, what: str
    ) -> None:
        """Entries, the unit's row (when new, or closing) and the events waiting: one
        statement, one commit."""
        if operation_id in self._opened:
            unit = None
        stamps, events = self.events.take()
        parts: list[str] = []
        params: list[Any] = []
        if unit is not None:
            parts.append(f"u AS ({unit})")
            params.append(operation_id)
        if events:
            parts.append(
                "e AS (INSERT INTO {s}.op_events (at, entry) SELECT a, x"
                " FROM unnest(%s::timestamptz[], %s::text[]) WITH ORDINALITY AS t(a, x, n)"
                " ORDER BY n)"
            )
            params += [stamps, events]
        if lines:
            tail = (
                "INSERT INTO {s}.op_journal (operation_id, entry)"
                " SELECT %s, x::jsonb FROM unnest(%s::text[]) WITH ORDINALITY AS t(x, n)"
                " ORDER BY n"
            )
            params += [operation_id, lines]
        else:
            tail = "SELECT 1"
        sql = ("WITH " + ", ".join(parts) + " " if parts else "") + tail
        try:
            self.channel.execute(sql, params, what, durable=durable)
        except BaseException:
            self.events.put_back(stamps, events)
            raise

    def read(self, operation_id: str) -> list[dict[str, Any]]:
        with _errors("read the journal"), self.backend._tx() as conn:
            rows = conn.execute(
                _sql(
                    self.backend,
                    "SELECT entry FROM {s}.op_journal WHERE operation_id = %s ORDER BY seq",
                ),
                (operation_id,),
            ).fetchall()
        return [_json(row[0]) for row in rows]

    def done_operations(self) -> list[str]:
        return self._units("closed_at IS NOT NULL")

    def open_operations(self) -> list[str]:
        return self._units("closed_at IS NULL")

    def _units(self, where: str) -> list[str]:
        with _errors("read the journal"), self.backend._tx() as conn:
            rows = conn.execute(
                _sql(
                    self.backend,
                    f"SELECT operation_id FROM {{s}}.op_units WHERE {where} ORDER BY operation_id",
                )
            ).fetchall()
        return [str(row[0]) for row in rows]


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


class PostgresEvents:
    """The event log as rows (a :class:`~arcodex.catalog._opstate.EventStore`).

    A debug event (a unit's state, say: its journal entry says the same) waits for the
    next write, of the journal or of an event of another level, or for the catalog to
    close (at most :data:`EVENT_BATCH` of them): it rides along, at no cost of its own.
    """

    def __init__(self, backend: PostgresOperations, channel: _Channel) -> None:
        self.backend = backend
        self.channel = channel
        self.where = f"table {backend.schema}.op_events"
        self._stamps: list[str] = []
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any], line: str) -> None:
        with self._lock:
            self._stamps.append(str(entry["timestamp"]))
            self._lines.append(line)
            if entry.get("level") == "debug" and len(self._lines) < EVENT_BATCH:
                return
        self.flush()

    def take(self) -> tuple[list[str], list[str]]:
        """The events waiting, now the caller's to write."""
        with self._lock:
            stamps, lines = self._stamps, self._lines
            self._stamps, self._lines = [], []
        return stamps, lines

    def put_back(self, stamps: list[str], lines: list[str]) -> None:
        with self._lock:
            self._stamps[:0], self._lines[:0] = stamps, lines

    def flush(self) -> None:
        """Write the events waiting."""
        stamps, lines = self.take()
        if not lines:
            return
        try:
            self.channel.execute(
                "INSERT INTO {s}.op_events (at, entry) SELECT a, x"
                " FROM unnest(%s::timestamptz[], %s::text[]) WITH ORDINALITY AS t(a, x, n)"
                " ORDER BY n",
                (stamps, lines),
                "write the event log",
            )
        except BaseException:
            self.put_back(stamps, lines)
            raise

    def entries(self, lo: datetime | None, hi: datetime | None) -> Iterator[dict[str, Any]]:
        self.flush()
        where, params = [], []
        if lo is not None:
            where.append("at >= %s")
            params.append(lo)
        if hi is not None:
            where.append("at <= %s")
            params.append(hi)
        sql = "SELECT entry FROM {s}.op_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with _errors("read the event log"), self.backend._tx() as conn:
            rows = conn.execute(_sql(self.backend, sql + " ORDER BY seq"), params).fetchall()
        for (line,) in rows:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


class _Lease:
    def __init__(self, leases: PostgresLeases, operation_id: str) -> None:
        self.leases = leases
        self.operation_id = operation_id
        self.keys: list[str] = []
        self.released = False

    def guard(self, keys: Sequence[str]) -> None:
        new = sorted(set(keys) - set(self.keys))
        if new:
            self.leases._take(new)
            self.keys += new

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.leases._unlock([self.leases._op_key(self.operation_id)], self.keys)


class PostgresLeases:
    """Advisory-lock leases (a :class:`~arcodex.catalog._opstate.Leases`)."""

    def close(self) -> None:
        """Let go of this process's connection, and so of every lease it holds (the
        events waiting written first)."""
        state = self.backend._shared_state
        try:
            if state is not None:
                state.events.flush()
        finally:
            self.channel.close()

    shared = True

    def __init__(self, backend: PostgresOperations, channel: _Channel) -> None:
        self.backend = backend
        self.channel = channel
        # The guard keys this process holds (the lease connection's locks are reentrant:
        # two threads of one process must still take turns).
        self._held: set[str] = set()
        self._free = threading.Condition()

    def _op_key(self, operation_id: str) -> str:
        return f"arcodex:op:{self.backend.schema}:{operation_id}"

    def _guard_key(self, key: str) -> str:
        return f"arcodex:key:{self.backend.schema}:{key}"

    def _execute(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self.channel.execute(sql, params, "hold an operation's lease")

    def hold(self, operation_id: str) -> _Lease:
        self._execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self._op_key(operation_id),)
        )
        return _Lease(self, operation_id)

    def running(self, operation_id: str | None, entry: Mapping[str, Any]) -> bool:
        if not operation_id:
            from arcodex.catalog._opstate import process_alive

            return process_alive(entry.get("pid"), entry.get("host"))
        with _errors("test an operation's lease"), self.backend._tx() as conn:
            (free,) = conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                (self._op_key(operation_id),),
            ).fetchone()
        return not free

    def guard(self, keys: Sequence[str]) -> AbstractContextManager[None]:
        @contextmanager
        def guarding() -> Iterator[None]:
            wanted = sorted(set(keys))
            self._take(wanted)
            try:
                yield
            finally:
                self._unlock([], wanted)

        return guarding()

    def _take(self, keys: list[str]) -> None:
        """Hold every key, here and in the database, waiting while anyone holds one."""
        deadline = time.monotonic() + GUARD_TIMEOUT
        with self._free:
            while self._held & set(keys):
                if not self._free.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise LockTimeoutError(_busy(keys))
            self._held |= set(keys)
        try:
            locks = [self._guard_key(k) for k in keys]
            # All or none, never waiting inside the database: two processes wanting
            # keys in another order must not wait for each other on one connection.
            while True:
                got = self._execute(
                    "SELECT x, pg_try_advisory_lock(hashtextextended(x, 0))"
                    " FROM unnest(%s::text[]) x",
                    (locks,),
                )
                taken = [str(x) for x, ok in got if ok]
                if len(taken) == len(locks):
                    return
                if taken:
                    self._execute(
                        "SELECT count(pg_advisory_unlock(hashtextextended(x, 0)))"
                        " FROM unnest(%s::text[]) x",
                        (taken,),
                    )
                if time.monotonic() > deadline:
                    raise LockTimeoutError(_busy(keys))
                time.sleep(0.005 + _JITTER.random() * 0.02)
        except BaseException:
            self._let_go(keys)
            raise

    def _unlock(self, op_keys: list[str], keys: list[str]) -> None:
        locks = op_keys + [self._guard_key(k) for k in keys]
        try:
            if locks:
                self._execute(
                    "SELECT count(pg_advisory_unlock(hashtextextended(x, 0)))"
                    " FROM unnest(%s::text[]) x",
                    (locks,),
                )
        finally:
            self._let_go(keys)

    def _let_go(self, keys: list[str]) -> None:
        with self._free:
            self._held -= set(keys)
            self._free.notify_all()


def _busy(keys: Sequence[str]) -> str:
    return (
        f"another add holds {len(keys)} of the same files or places for over "
        f"{GUARD_TIMEOUT:.0f} s; try again when it has finished"
    )
