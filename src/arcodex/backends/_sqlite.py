"""The embedded default backend: one SQLite file in WAL mode.

Layout: ``records`` holds each record's structural columns and exact
extent (kept narrow, so that checking candidates is cheap), ``docs`` its JSON
document; metadata is indexed in two clustered tables (``meta_txt`` for text,
``meta_num`` for numbers, booleans, dates and structure), each also indexed
by record for cheap per-record checks; ``fts`` (FTS5) holds free text;
``extent`` (an R*Tree over longitude, latitude and time) holds extents.
``arcodex_schema`` lists the schema migrations applied (``PRAGMA user_version``
is kept in step with it; see :data:`MIGRATIONS`) and ``schemas`` the catalog's
registered JSON Schemas.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arcodex import __version__
from arcodex.backends._base import BackendStats, Page
from arcodex.backends._index import (
    IndexRows,
    Prepared,
    count_fields,
    index_rows,
    prepare,
    prepare_many,
)
from arcodex.backends._migrations import (
    AppliedMigration,
    Migration,
    SchemaInfo,
    admin_opening,
    newer_schema,
    pending,
)
from arcodex.backends._sqlite_query import compile_query, encode_cursor, query_paths, regexp
from arcodex.backends._users_sql import USERS_DDL, UserTables
from arcodex.errors import (
    ConflictError,
    LockTimeoutError,
    NotACatalogError,
    NotFoundError,
    StorageError,
)
from arcodex.model import (
    TRUSTED,
    FieldSummary,
    Operation,
    Query,
    Record,
    to_epoch,
    utcnow,
)

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION = 5
_TRUSTED = {TRUSTED: True}
_PAGE_SIZE = 16384
#: Records written per batch inside one add (sorted together for locality).
_BATCH = 5_000

_SCHEMA = """
CREATE TABLE records (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    prior_status TEXT,
    version INTEGER NOT NULL,
    title TEXT,
    description TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    schema_name TEXT,
    schema_version TEXT,
    bw REAL, be REAL, bw2 REAL, be2 REAL, bs REAL, bn REAL,
    t0 REAL, t1 REAL
);
CREATE TABLE docs (rid INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE INDEX records_kind ON records(kind, status);
CREATE INDEX records_status ON records(status);
CREATE TABLE paths (pid INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE meta_txt (
    pid INTEGER NOT NULL, txt TEXT NOT NULL, rid INTEGER NOT NULL,
    PRIMARY KEY (pid, txt, rid)
) WITHOUT ROWID;
CREATE TABLE meta_num (
    pid INTEGER NOT NULL, typ TEXT NOT NULL, num REAL NOT NULL, rid INTEGER NOT NULL,
    PRIMARY KEY (pid, typ, num, rid)
) WITHOUT ROWID;
CREATE TABLE field_stats (
    pid INTEGER NOT NULL, typ TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (pid, typ)
) WITHOUT ROWID;
CREATE TABLE tags (tag TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tag, rid)) WITHOUT ROWID;
CREATE INDEX tags_rid ON tags(rid);
CREATE TABLE artifacts (
    aid TEXT PRIMARY KEY, rid INTEGER NOT NULL, role TEXT, format TEXT, media_type TEXT,
    status TEXT, size_bytes INTEGER, managed INTEGER NOT NULL, locator_type TEXT, location TEXT,
    sha256 TEXT, source TEXT, source_mtime_ns INTEGER
) WITHOUT ROWID;
CREATE INDEX artifacts_rid ON artifacts(rid);
CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE extent USING rtree(
    id, minx, maxx, miny, maxy, tmin, tmax, +w REAL, +e REAL, +s REAL, +n REAL, +t0 REAL, +t1 REAL
);
CREATE TABLE operations (
    id TEXT PRIMARY KEY, action TEXT NOT NULL, status TEXT NOT NULL, user TEXT,
    started_at REAL NOT NULL, doc TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX operations_status ON operations(status, started_at);
"""
#: Who already holds a file (the duplicate check of an add): the content of a record's
#: primary artifact, and where it is (a path registered in place, a URI). Partial: other
#: roles (a product's sources), and artifacts without a hash or location, cost nothing.
_HOLDERS = """
CREATE INDEX artifacts_sha256 ON artifacts(sha256)
    WHERE role = 'primary' AND sha256 IS NOT NULL;
CREATE INDEX artifacts_location ON artifacts(location)
    WHERE role = 'primary' AND location IS NOT NULL;
"""
#: Which file a record was made from (the resume check of a batch ingest): the source
#: path of a primary artifact (the file copied, or registered in place) and its mtime.
_SOURCES = """
CREATE INDEX artifacts_source ON artifacts(source)
    WHERE role = 'primary' AND source IS NOT NULL;
"""
_SCHEMA += _HOLDERS + _SOURCES
#: Schema 1 to 2: the artifacts' sha256, filled from the documents, and its indexes.
_MIGRATE_1 = (
    """
ALTER TABLE artifacts ADD COLUMN sha256 TEXT;
UPDATE artifacts SET sha256 = (
    SELECT json_extract(a.value, '$.hashes.sha256')
    FROM docs d, json_each(d.doc, '$.artifacts') a
    WHERE d.rid = artifacts.rid AND json_extract(a.value, '$.id') = artifacts.aid
);
"""
    + _HOLDERS
)
#: Schema 2 to 3: the artifacts' source path and mtime, filled from the documents.
_MIGRATE_2 = (
    """
ALTER TABLE artifacts ADD COLUMN source TEXT;
ALTER TABLE artifacts ADD COLUMN source_mtime_ns INTEGER;
UPDATE artifacts SET
    source = (
        SELECT json_extract(a.value, '$.metadata.source_path')
        FROM docs d, json_each(d.doc, '$.artifacts') a
        WHERE d.rid = artifacts.rid AND json_extract(a.value, '$.id') = artifacts.aid
    ),
    source_mtime_ns = (
        SELECT json_extract(a.value, '$.metadata.source_mtime_ns')
        FROM docs d, json_each(d.doc, '$.artifacts') a
        WHERE d.rid = artifacts.rid AND json_extract(a.value, '$.id') = artifacts.aid
    );
"""
    + _SOURCES
)
#: Schema 3 to 4: the schema version table and the schema registry. IF NOT EXISTS:
#: a file whose user_version was set back by hand may have them already.
_ADMIN = """
CREATE TABLE IF NOT EXISTS arcodex_schema (
    version INTEGER PRIMARY KEY, applied_at TEXT, arcodex_version TEXT, description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schemas (
    key TEXT PRIMARY KEY, text TEXT NOT NULL, updated_at TEXT NOT NULL
) WITHOUT ROWID;
"""
_SCHEMA += _ADMIN
#: Schema 4 to 5: users and their API tokens (hashed).
_SCHEMA += ";" + USERS_DDL
#: Every schema version and how a file of the one before gets there; a new file gets
#: ``_SCHEMA`` (the newest) at once.
MIGRATIONS: list[Migration] = [
    Migration(1, "records, documents, metadata and full-text indexes, extents, operations"),
    Migration(2, "artifacts' sha256, indexed to find who holds a file", _MIGRATE_1),
    Migration(3, "artifacts' source path and mtime, indexed for batch ingest", _MIGRATE_2),
    Migration(4, "the schema version table and the schema registry", _ADMIN),
    Migration(5, "users and their API tokens (hashed)", USERS_DDL),
]
assert MIGRATIONS[-1].version == SCHEMA_VERSION


class SQLiteBackend(UserTables):
    """Records in one SQLite file (WAL, busy timeout, real transactions)."""

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = False, busy_timeout: float = 30.0
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        # Every thread gets its own connection; close() must reach all of them.
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._generation = 0
        self._paths: dict[str, int] = {}
        self._paths_lock = threading.Lock()
        if not create and not self.path.exists():
            raise NotACatalogError(
                f"catalog database {self.path} is missing; restore it from a backup or create a new catalog"
            )
        try:
            # Look before touching: setting WAL mode would already change a foreign file.
            probe = sqlite3.connect(self.path, timeout=self.busy_timeout)
            try:
                version = probe.execute("PRAGMA user_version").fetchone()[0]
                tables = probe.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if version == 0 and not tables:
                    # Larger pages suit wide index B-trees; fixed once the file has content.
                    probe.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
                    probe.execute("PRAGMA journal_mode = WAL")
            finally:
                probe.close()
            if version == 0 and tables:
                raise NotACatalogError(
                    f"{self.path} is a SQLite file but not an arcodex catalog database;"
                    " choose another path"
                )
            if version > SCHEMA_VERSION:
                raise newer_schema(str(self.path), version, SCHEMA_VERSION)
            if version == 0:
                with self._write() as conn:
                    _run(conn, _SCHEMA)
                    _note_versions(conn, MIGRATIONS, before=0)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version < SCHEMA_VERSION and not admin_opening():
                # One file, one user: an older schema is brought up to date as it opens.
                self.upgrade()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._translate(exc) from exc

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # A connection from before close() belongs to an older generation: open anew.
        if conn is not None and getattr(self._local, "generation", None) == self._generation:
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only a power cut can lose the last commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA cache_size=-524288")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA mmap_size=2147483648")
            conn.create_function("regexp", 2, regexp, deterministic=True)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc
        self._local.conn = conn
        self._local.generation = self._generation
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _translate(self, exc: sqlite3.Error) -> Exception:
        text = str(exc)
        if "locked" in text or "busy" in text:
            holder = self.lock_holder()
            who = (
                f" by pid {holder.get('pid')} of {holder.get('user')} on {holder.get('host')}"
                f" since {holder.get('since')}"
                if holder
                else " by another process"
            )
            return LockTimeoutError(
                f"catalog database {self.path} stayed locked{who} for {self.busy_timeout:g}s; "
                "retry, or raise busy_timeout in arcodex.yaml"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StorageError(
                f"catalog database {self.path} is damaged ({text}); restore it from a backup"
            )
        if "unable to open" in text or "readonly" in text:
            return StorageError(
                f"cannot open catalog database {self.path} ({text}); check the path and permissions"
            )
        return StorageError(f"catalog database {self.path} failed: {text}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        pending: dict[str, int] = {}
        self._local.pending_paths = pending
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        self._claim()
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from exc
            raise
        finally:
            self._local.pending_paths = None
            self._release()
        # Path ids become shared knowledge only once they are committed.
        with self._paths_lock:
            self._paths.update(pending)

    @property
    def holder_path(self) -> Path:
        """Who holds the write lock, written by the holder (SQLite cannot say)."""
        return self.path.with_name(self.path.name + ".writer")

    def _claim(self) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": _user(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):
            self.holder_path.write_text(json.dumps(info), encoding="utf-8")

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self.holder_path.unlink()

    def lock_holder(self) -> dict[str, Any] | None:
        """The last writer's note (pid, host, user, since), if one is there."""
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _auth_run(
        self, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        if not write:
            return [tuple(r) for r in self._read(sql, params)]
        with self._write() as conn:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._generation += 1
        for conn in conns:
            conn.close()
        self._local.conn = None

    # -- path ids -----------------------------------------------------------------------

    def _pid(self, conn: sqlite3.Connection, path: str) -> int:
        pid = self._paths.get(path)
        if pid is not None:
            return pid
        pending: dict[str, int] = self._local.pending_paths
        pid = pending.get(path)
        if pid is not None:
            return pid
        row = conn.execute("SELECT pid FROM paths WHERE path = ?", (path,)).fetchone()
        if row is None:
            pid = conn.execute("INSERT INTO paths(path) VALUES (?)", (path,)).lastrowid
            assert pid is not None
            pending[path] = pid
        else:
            pid = row[0]
            with self._paths_lock:
                self._paths[path] = pid
        return pid

    def _lookup_pids(self, paths: Sequence[str]) -> dict[str, int]:
        missing = [p for p in paths if p not in self._paths]
        if missing:
            marks = ",".join("?" * len(missing))
            rows = self._read(f"SELECT path, pid FROM paths WHERE path IN ({marks})", missing)
            with self._paths_lock:
                self._paths.update(dict(rows))
        return {p: self._paths[p] for p in paths if p in self._paths}

    # -- writing ------------------------------------------------------------------------

    def add(self, records: Sequence[Record]) -> None:
        if not records:
            return
        with self._write() as conn:
            self._add_in(conn, records)

    def _add_in(self, conn: sqlite3.Connection, records: Sequence[Record]) -> None:
        docs = [record.model_dump_json() for record in records]
        ids = [record.id for record in records]
        rid = conn.execute("SELECT coalesce(max(rid), 0) + 1 FROM records").fetchone()[0]
        done = 0
        for batch in self._prepared(docs):
            try:
                self._insert(conn, rid, batch)
            except sqlite3.IntegrityError as exc:
                if "artifacts" in str(exc):
                    raise ConflictError(
                        "an artifact id is used twice; give each artifact its own id"
                    ) from None
                taken = self._taken(conn, ids, ids[done : done + len(batch)])
                raise ConflictError(
                    f"record id {taken} already exists; choose another id or update the existing record"
                ) from None
            rid += len(batch)
            done += len(batch)

    @staticmethod
    def _prepared(docs: list[str]) -> Iterator[list[Prepared]]:
        """Prepared records in batches (each batch's index rows are sorted together)."""
        for i in range(0, len(docs), _BATCH):
            yield prepare_many(docs[i : i + _BATCH])

    def _taken(self, conn: sqlite3.Connection, ids: list[str], failed: list[str]) -> str:
        """The id that broke an add: repeated within ``ids``, else one of ``failed`` stored before."""
        seen: set[str] = set()
        for rid in ids:
            if rid in seen:
                return rid
            seen.add(rid)
        for chunk_start in range(0, len(failed), 500):
            chunk = failed[chunk_start : chunk_start + 500]
            row = conn.execute(
                f"SELECT id FROM records WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk
            ).fetchone()
            if row:
                return str(row[0])
        return "?"

    def _pids_for(self, conn: sqlite3.Connection, paths: set[str]) -> dict[str, int]:
        return {path: self._pid(conn, path) for path in paths}

    def _insert(self, conn: sqlite3.Connection, first_rid: int, batch: list[Prepared]) -> None:
        """Write prepared records with rids from ``first_rid`` on, into every table."""
        rows: list[tuple[Any, ...]] = []
        docs: list[tuple[int, str]] = []
        txt_rows: list[tuple[int, str, int]] = []
        num_rows: list[tuple[int, str, float, int]] = []
        tag_rows: list[tuple[str, int]] = []
        fts_rows: list[tuple[int, str]] = []
        extent_rows: list[tuple[Any, ...]] = []
        art_rows: list[tuple[Any, ...]] = []
        stats: Counter[tuple[str, str]] = Counter()
        paths: set[str] = set()
        for item in batch:
            paths.update(p for p, _ in item[3].stats)
        pid = self._pids_for(conn, paths)
        for rid, (columns, doc, tags, idx, artifacts) in enumerate(batch, first_rid):
            rows.append(_record_row(rid, columns, idx))
            docs.append((rid, doc))
            txt_rows.extend([(pid[p], v, rid) for p, v in idx.txt])
            num_rows.extend([(pid[p], t, v, rid) for p, t, v in idx.num])
            if columns[2] != "deleted":
                count_fields(stats, idx, +1)
            tag_rows.extend([(tag, rid) for tag in tags])
            fts_rows.append((rid, idx.text))
            extent_rows.extend(_extent_rows(rid, idx))
            art_rows.extend([(art[0], rid, *art[1:]) for art in artifacts])
        conn.executemany(_INSERT_RECORD, rows)
        conn.executemany("INSERT INTO docs(rid, doc) VALUES (?, ?)", docs)
        # In key order, B-tree inserts touch each page once instead of at random.
        txt_rows.sort()
        num_rows.sort()
        conn.executemany("INSERT INTO meta_txt(pid, txt, rid) VALUES (?,?,?)", txt_rows)
        conn.executemany("INSERT INTO meta_num(pid, typ, num, rid) VALUES (?,?,?,?)", num_rows)
        conn.executemany("INSERT INTO tags(tag, rid) VALUES (?,?)", tag_rows)
        conn.executemany("INSERT INTO fts(rowid, body) VALUES (?,?)", fts_rows)
        conn.executemany("INSERT INTO extent VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", extent_rows)
        conn.executemany("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", art_rows)
        self._apply_stats(conn, stats, pid)

    def _apply_stats(
        self, conn: sqlite3.Connection, stats: Counter[tuple[str, str]], pid: dict[str, int]
    ) -> None:
        conn.executemany(
            "INSERT INTO field_stats(pid, typ, n) VALUES (?,?,?)"
            " ON CONFLICT(pid, typ) DO UPDATE SET n = n + excluded.n",
            [(pid[path], typ, n) for (path, typ), n in stats.items() if n],
        )

    def _remove_index(
        self, conn: sqlite3.Connection, rid: int, record: Record, counted: bool
    ) -> None:
        idx = index_rows(record)
        pid = self._pid
        conn.executemany(
            "DELETE FROM meta_txt WHERE pid = ? AND txt = ? AND rid = ?",
            [(pid(conn, p), v, rid) for p, v in idx.txt],
        )
        conn.executemany(
            "DELETE FROM meta_num WHERE pid = ? AND typ = ? AND num = ? AND rid = ?",
            [(pid(conn, p), t, v, rid) for p, t, v in idx.num],
        )
        conn.execute("DELETE FROM tags WHERE rid = ?", (rid,))
        conn.execute("DELETE FROM fts WHERE rowid = ?", (rid,))
        conn.execute("DELETE FROM extent WHERE id IN (?, ?)", (rid * 2, rid * 2 + 1))
        conn.execute("DELETE FROM artifacts WHERE rid = ?", (rid,))
        if counted:
            stats: Counter[tuple[str, str]] = Counter()
            count_fields(stats, idx, -1)
            self._apply_stats(conn, stats, self._pids_for(conn, {p for p, _ in idx.stats}))

    def _current(self, conn: sqlite3.Connection, record_id: str) -> tuple[int, Record, str | None]:
        row = conn.execute(
            "SELECT r.rid, d.doc, r.prior_status FROM records r JOIN docs d ON d.rid = r.rid"
            " WHERE r.id = ?",
            (record_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no record {record_id!r}; run `arcodex search` to list ids")
        return row[0], Record.model_validate_json(row[1], context=_TRUSTED), row[2]

    def update(self, record: Record, expected_version: int) -> None:
        with self._write() as conn:
            rid, old, prior = self._current(conn, record.id)
            if old.version != expected_version:
                raise ConflictError(
                    f"record {record.id} is at version {old.version}, not {expected_version}: "
                    "someone changed it; reload it and apply your change again"
                )
            self._remove_index(conn, rid, old, counted=old.status != "deleted")
            conn.execute("DELETE FROM records WHERE rid = ?", (rid,))
            conn.execute("DELETE FROM docs WHERE rid = ?", (rid,))
            self._insert(conn, rid, [prepare(record.model_dump_json())])
            conn.execute("UPDATE records SET prior_status = ? WHERE rid = ?", (prior, rid))

    def _set_status(self, record_id: str, user: str | None, restoring: bool) -> Record:
        with self._write() as conn:
            rid, old, prior = self._current(conn, record_id)
            if restoring and old.status != "deleted":
                raise ConflictError(f"record {record_id} is not deleted; nothing to restore")
            if not restoring and old.status == "deleted":
                raise ConflictError(f"record {record_id} is already deleted")
            status = (prior or "active") if restoring else "deleted"
            new = old.model_copy(
                update={
                    "status": status,
                    "version": old.version + 1,
                    "updated_at": utcnow(),
                    "updated_by": user,
                }
            )
            conn.execute(
                "UPDATE records SET status = ?, prior_status = ?, version = ?, updated_at = ?,"
                " updated_by = ? WHERE rid = ?",
                (
                    new.status,
                    None if restoring else old.status,
                    new.version,
                    to_epoch(new.updated_at),
                    user,
                    rid,
                ),
            )
            conn.execute("UPDATE docs SET doc = ? WHERE rid = ?", (new.model_dump_json(), rid))
            stats: Counter[tuple[str, str]] = Counter()
            idx = index_rows(old)
            count_fields(stats, idx, +1 if restoring else -1)
            self._apply_stats(conn, stats, self._pids_for(conn, {p for p, _ in idx.stats}))
            return new

    def delete(self, record_id: str, *, user: str | None = None) -> Record:
        return self._set_status(record_id, user, restoring=False)

    def restore(self, record_id: str, *, user: str | None = None) -> Record:
        return self._set_status(record_id, user, restoring=True)

    def purge(self, record_id: str) -> Record:
        with self._write() as conn:
            rid, old, _ = self._current(conn, record_id)
            self._remove_index(conn, rid, old, counted=old.status != "deleted")
            conn.execute("DELETE FROM records WHERE rid = ?", (rid,))
            conn.execute("DELETE FROM docs WHERE rid = ?", (rid,))
            return old

    # -- reading ------------------------------------------------------------------------

    def holders(
        self, *, sha256: Sequence[str] = (), locations: Sequence[str] = ()
    ) -> list[tuple[str, str, str]]:
        sha256, locations = list(dict.fromkeys(sha256)), list(dict.fromkeys(locations))
        out: list[tuple[str, str, str]] = []
        # Bounded chunks stay under SQLite's variable limit; one indexed query each.
        for start in range(0, max(len(sha256), len(locations)), 400):
            hashes, places = sha256[start : start + 400], locations[start : start + 400]
            rows = self._read(
                "SELECT a.sha256, a.location, r.id, r.status"
                " FROM artifacts a JOIN records r ON r.rid = a.rid"
                # Each side repeats the role, so that each uses its partial index.
                f" WHERE (a.role = 'primary' AND a.sha256 IN ({','.join('?' * len(hashes))}))"
                f" OR (a.role = 'primary' AND a.location IN ({','.join('?' * len(places))}))"
                " ORDER BY r.id",
                [*hashes, *places],
            )
            wanted = {*hashes, *places}
            for digest, location, rid, status in rows:
                for value in (digest, location):
                    if value in wanted:
                        out.append((str(value), str(rid), str(status)))
        return out

    def sources(self, paths: Sequence[str]) -> list[tuple[str, str, str, int | None, int | None]]:
        paths = list(dict.fromkeys(paths))
        out: list[tuple[str, str, str, int | None, int | None]] = []
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            rows = self._read(
                "SELECT a.source, r.id, r.status, a.size_bytes, a.source_mtime_ns"
                " FROM artifacts a JOIN records r ON r.rid = a.rid"
                f" WHERE a.role = 'primary' AND a.source IN ({','.join('?' * len(chunk))})"
                " ORDER BY r.id",
                chunk,
            )
            out.extend((str(s), str(i), str(st), size, mtime) for s, i, st, size, mtime in rows)
        return out

    def get(self, record_id: str) -> Record:
        rows = self._read(
            "SELECT d.doc FROM records r JOIN docs d ON d.rid = r.rid WHERE r.id = ?", (record_id,)
        )
        if not rows:
            raise NotFoundError(f"no record {record_id!r}; run `arcodex search` to list ids")
        return Record.model_validate_json(rows[0][0], context=_TRUSTED)

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        rows = self._read(
            "SELECT id FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    def _compile(self, query: Query) -> tuple[str, list[Any], str, list[tuple[str, bool]]]:
        return compile_query(query, self._lookup_pids(query_paths(query)), self._estimate)

    def _estimate(self, select: str, params: Sequence[Any]) -> int:
        """How many rows ``select`` (which has a LIMIT) returns."""
        rows = self._read(f"SELECT count(*) FROM ({select})", params)
        return int(rows[0][0])

    def search(self, query: Query) -> Page:
        sql, params, order, sort_exprs = self._compile(query)
        limit = query.limit
        select_keys = "".join(f", {expr}" for expr, _ in sort_exprs)
        text = f"SELECT r.rid{select_keys} {sql} ORDER BY {order}"
        if limit is not None:
            text += f" LIMIT {int(limit) + 1}"
        rows = self._read(text, params)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        if not rows:
            return Page([], None)
        rids = [r[0] for r in rows]
        docs: dict[int, str] = {}
        for start in range(0, len(rids), 500):
            chunk = rids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            docs.update(self._read(f"SELECT rid, doc FROM docs WHERE rid IN ({marks})", chunk))
        records = [
            Record.model_validate_json(docs[rid], context=_TRUSTED) for rid in rids if rid in docs
        ]
        cursor = encode_cursor(rows[-1]) if more else None
        return Page(records, cursor)

    def ids(self, query: Query) -> list[str]:
        sql, params, order, _ = self._compile(query)
        text = f"SELECT r.id {sql} ORDER BY {order}"
        if query.limit is not None:
            text += f" LIMIT {int(query.limit)}"
        return [row[0] for row in self._read(text, params)]

    def count(self, query: Query) -> int:
        sql, params, _, _ = self._compile(query.model_copy(update={"cursor": None, "sort": []}))
        return int(self._read(f"SELECT count(*) {sql}", params)[0][0])

    # -- fields, stats, operations ---------------------------------------------------------

    def fields(self, prefix: str | None = None) -> list[FieldSummary]:
        sql = "SELECT p.path, p.pid, s.typ, s.n FROM field_stats s JOIN paths p ON p.pid = s.pid WHERE s.n > 0"
        params: list[Any] = []
        if prefix:
            sql += " AND (p.path = ? OR (p.path >= ? AND p.path < ?))"
            params += [prefix, prefix + ".", prefix + ".\U0010ffff"]
        grouped: dict[str, dict[str, Any]] = {}
        for path, pid, typ, n in self._read(sql + " ORDER BY p.path", params):
            entry = grouped.setdefault(path, {"pid": pid, "types": [], "count": 0})
            if typ == "*":
                entry["count"] = n
            else:
                entry["types"].append(typ)
        out = []
        for path, entry in grouped.items():
            out.append(
                FieldSummary(
                    path=path,
                    types=sorted(entry["types"]),
                    count=entry["count"],
                    examples=self._examples(entry["pid"], entry["types"]),
                )
            )
        return out

    def _examples(self, pid: int, types: list[str]) -> list[Any]:
        examples: list[Any] = []
        if {"string", "date"} & set(types):
            rows = self._read(
                "SELECT DISTINCT m.txt FROM meta_txt m JOIN records r ON r.rid = m.rid"
                " WHERE m.pid = ? AND r.status != 'deleted' LIMIT 5",
                (pid,),
            )
            examples += [r[0] for r in rows]
        if {"integer", "number", "boolean"} & set(types) and len(examples) < 5:
            rows = self._read(
                "SELECT DISTINCT m.typ, m.num FROM meta_num m JOIN records r ON r.rid = m.rid"
                " WHERE m.pid = ? AND m.typ IN ('n','b') AND r.status != 'deleted' LIMIT ?",
                (pid, 5 - len(examples)),
            )
            for typ, num in rows:
                if typ == "b":
                    examples.append(bool(num))
                else:
                    examples.append(
                        int(num) if float(num).is_integer() and "number" not in types else num
                    )
        return examples

    def stats(self) -> BackendStats:
        by_kind: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        for kind, status, n in self._read(
            "SELECT kind, status, count(*) FROM records GROUP BY kind, status"
        ):
            by_status[status] += n
            if status != "deleted":
                by_kind[kind] += n
        art_format: Counter[str] = Counter()
        art_status: Counter[str] = Counter()
        for fmt, status, n in self._read(
            "SELECT a.format, a.status, count(*) FROM artifacts a JOIN records r ON r.rid = a.rid"
            " WHERE r.status != 'deleted' GROUP BY a.format, a.status"
        ):
            art_format[fmt or "unknown"] += n
            art_status[status] += n
        return BackendStats(dict(by_kind), dict(by_status), dict(art_format), dict(art_status))

    def save_operation(self, operation: Operation) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO operations(id, action, status, user, started_at, doc) VALUES (?,?,?,?,?,?)",
                (
                    operation.id,
                    operation.action,
                    operation.status,
                    operation.user,
                    to_epoch(operation.started_at),
                    operation.model_dump_json(),
                ),
            )

    def operations(self, status: str | None = None, limit: int = 20) -> list[Operation]:
        if status:
            rows = self._read(
                "SELECT doc FROM operations WHERE status = ? ORDER BY started_at DESC LIMIT ?",
                (status, limit),
            )
        else:
            rows = self._read(
                "SELECT doc FROM operations ORDER BY started_at DESC LIMIT ?", (limit,)
            )
        return [Operation.model_validate_json(r[0]) for r in rows]

    # -- schema versions, whole-catalog copies, the schema registry ------------------------

    def _version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def _has_table(self, name: str) -> bool:
        rows = self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return bool(rows)

    def schema_info(self) -> SchemaInfo:
        version = self._version()
        applied: list[AppliedMigration] = []
        if self._has_table("arcodex_schema"):
            applied = [
                AppliedMigration(int(v), str(d), at, by)
                for v, at, by, d in self._read(
                    "SELECT version, applied_at, arcodex_version, description"
                    " FROM arcodex_schema ORDER BY version"
                )
            ]
        steps = [f"{m.version}: {m.description}" for m in pending(MIGRATIONS, version)]
        return SchemaInfo(version, SCHEMA_VERSION, applied, steps)

    def upgrade(self, dry_run: bool = False) -> list[str]:
        if dry_run:
            return [f"{m.version}: {m.description}" for m in pending(MIGRATIONS, self._version())]
        with self._write() as conn:
            # Read again under the write lock: another process may have upgraded meanwhile.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise newer_schema(str(self.path), version, SCHEMA_VERSION)
            steps = pending(MIGRATIONS, version)
            for step in steps:
                if isinstance(step.apply, str):
                    _run(conn, step.apply)
                elif step.apply is not None:
                    step.apply(conn)
            _note_versions(conn, steps, before=version)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return [f"{m.version}: {m.description}" for m in steps]

    def is_empty(self) -> bool:
        if self._read("SELECT 1 FROM records LIMIT 1"):
            return False
        if self._read("SELECT 1 FROM operations LIMIT 1"):
            return False
        for table in ("schemas", "users", "tokens"):  # tables of later schema versions
            if self._has_table(table) and self._read(f"SELECT 1 FROM {table} LIMIT 1"):
                return False
        return True

    def export_records(self, batch: int = 1000) -> Iterator[list[tuple[Record, str | None]]]:
        after = ""
        first = True
        while True:
            # Keyset paging: each page is one indexed range read, whatever came before.
            rows = self._read(
                "SELECT r.id, d.doc, r.prior_status FROM records r JOIN docs d ON d.rid = r.rid"
                f" WHERE {'1' if first else 'r.id > ?'} ORDER BY r.id LIMIT ?",
                (batch,) if first else (after, batch),
            )
            if not rows:
                return
            first = False
            after = rows[-1][0]
            yield [
                (Record.model_validate_json(doc, context=_TRUSTED), prior) for _, doc, prior in rows
            ]

    def import_records(self, rows: Sequence[tuple[Record, str | None]]) -> None:
        if not rows:
            return
        with self._write() as conn:
            self._add_in(conn, [record for record, _ in rows])
            conn.executemany(
                "UPDATE records SET prior_status = ? WHERE id = ?",
                [(prior, record.id) for record, prior in rows if prior is not None],
            )

    def all_operations(self) -> Iterator[Operation]:
        after: tuple[float, str] | None = None
        while True:
            rows = self._read(
                "SELECT started_at, id, doc FROM operations"
                + (" WHERE (started_at, id) > (?, ?)" if after else "")
                + " ORDER BY started_at, id LIMIT 1000",
                after or (),
            )
            if not rows:
                return
            after = (rows[-1][0], rows[-1][1])
            for _, _, doc in rows:
                yield Operation.model_validate_json(doc)

    def put_schema(self, key: str, text: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO schemas(key, text, updated_at) VALUES (?, ?, ?)",
                (key, text, _now()),
            )

    def schema_text(self, key: str) -> str | None:
        rows = self._read("SELECT text FROM schemas WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def schema_keys(self) -> list[str]:
        return [str(r[0]) for r in self._read("SELECT key FROM schemas ORDER BY key")]


_INSERT_RECORD = (
    "INSERT INTO records(rid, id, kind, status, prior_status, version, title, description,"
    " created_at, updated_at, created_by, updated_by, schema_name, schema_version,"
    " bw, be, bw2, be2, bs, bn, t0, t1) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Run SQL statements one by one inside the open transaction (``executescript``
    would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _note_versions(conn: sqlite3.Connection, applied: Sequence[Migration], *, before: int) -> None:
    """Rows of ``arcodex_schema``: the migrations just applied, and those from before the
    table was kept (when and by whom unknown) if they have none yet."""
    conn.executemany(
        "INSERT OR IGNORE INTO arcodex_schema(version, description) VALUES (?, ?)",
        [(m.version, m.description) for m in MIGRATIONS if m.version <= before],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO arcodex_schema(version, applied_at, arcodex_version, description)"
        " VALUES (?, ?, ?, ?)",
        [(m.version, _now(), __version__, m.description) for m in applied],
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _record_row(rid: int, columns: tuple[Any, ...], idx: IndexRows) -> tuple[Any, ...]:
    """The ``records`` row: structural columns (prior_status NULL) and the exact extent."""
    boxes = idx.boxes
    first = boxes[0] if boxes else (None, None, None, None)
    second = boxes[1] if len(boxes) > 1 else (None, None, None, None)
    t0, t1 = idx.time if idx.time is not None else (None, None)
    record_id, kind, status, *rest = columns
    return (
        rid,
        record_id,
        kind,
        status,
        None,
        *rest,
        first[0],
        first[2],
        second[0],
        second[2],
        first[1],
        first[3],
        t0,
        t1,
    )


# Records without a bbox or a time range sit far outside real values in the
# R*Tree; their exact columns are NULL, so no search matches them on that axis.
_NO_X, _NO_T = 1.0e6, -1.0e18


def _extent_rows(rid: int, idx: IndexRows) -> list[tuple[Any, ...]]:
    if not idx.boxes and idx.time is None:
        return []
    t0, t1 = idx.time if idx.time is not None else (None, None)
    tlo, thi = idx.time if idx.time is not None else (_NO_T, _NO_T)
    boxes: list[tuple[Any, Any, Any, Any]] = list(idx.boxes) or [(None, None, None, None)]
    rows = []
    for part, (w, s, e, n) in enumerate(boxes):
        if w is None:
            rows.append(
                (rid * 2, _NO_X, _NO_X, _NO_X, _NO_X, tlo, thi, None, None, None, None, t0, t1)
            )
        else:
            rows.append((rid * 2 + part, w, e, s, n, tlo, thi, w, e, s, n, t0, t1))
    return rows
