"""The multi-user backend: records in a PostgreSQL schema, shared by every host and process.

Layout (:mod:`arcodex.backends._postgres_schema`): ``records`` holds each
record's structural columns, its JSON document, its extent (two ``box``
columns for records crossing the antimeridian, a ``float8range`` for time,
each under a GiST index) and its words (a ``tsvector`` under GIN); metadata is
indexed in typed side tables (``meta_txt``, ``meta_num``) exactly as on SQLite,
flattened by :mod:`arcodex.backends._index`, so both backends index
identically. Bulk adds write every table with ``COPY`` in one transaction.

Writers lock only the rows they change (``SELECT … FOR UPDATE``); versions
are checked optimistically (``expected_version``); ids are unique by
constraint, so concurrent adds from many processes never lose or duplicate
a record. Connections, the password and errors are
:mod:`arcodex.backends._postgres_connection`'s.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import wait
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from arcodex.backends._base import BackendStats, Page
from arcodex.backends._index import (
    IndexRows,
    Prepared,
    count_fields,
    index_rows,
    prepare,
    prepare_many,
)
from arcodex.backends._postgres_admin import PostgresAdmin
from arcodex.backends._postgres_connection import PostgresConnection, parse_postgres_url
from arcodex.backends._postgres_ops import PostgresOperations
from arcodex.backends._postgres_query import (
    Compiled,
    compile_query,
    encode_cursor,
    key_of,
    query_paths,
    safe_text,
    tsvector_literal,
)
from arcodex.backends._postgres_schema import (
    ARCODEX_TABLES,
    EXTENT_COLUMNS,
    KEY_CHARS,
    schema_ddl,
)
from arcodex.errors import (
    ArcodexError,
    ConflictError,
    LockTimeoutError,
    NotACatalogError,
    NotFoundError,
    StorageError,
)
from arcodex.model import TRUSTED, FieldSummary, Operation, Query, Record, to_epoch, utcnow

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresBackend", "parse_postgres_url"]

_TRUSTED = {TRUSTED: True}
_log = logging.getLogger("arcodex.backends")
#: How often an add is retried when PostgreSQL chose it as a deadlock victim.
_RETRIES = 3
#: A bulk add of this many records or more refreshes the planner's statistics.
_ANALYZE_AFTER = 10_000
#: A bulk add is prepared and copied in chunks of this many records (see ``_copy_in``).
_CHUNK = 2_000


class PostgresBackend(PostgresConnection, PostgresAdmin, PostgresOperations):
    """Records in one PostgreSQL schema (``postgresql://USER@HOST:PORT/DB?schema=NAME``)."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        password: str | None = None,
        busy_timeout: float = 30.0,
        pool_size: int = 8,
    ) -> None:
        super().__init__(url, password=password, busy_timeout=busy_timeout, pool_size=pool_size)
        self._paths: dict[str, int] = {}
        self._paths_lock = threading.Lock()
        self._open(create)

    # -- opening and creating --------------------------------------------------------------

    def _open(self, create: bool) -> None:
        import psycopg

        conn = self._connect()
        try:
            tables = self._tables(conn)
            if not tables.issuperset(ARCODEX_TABLES):
                if tables & set(ARCODEX_TABLES):
                    raise StorageError(
                        f"schema {self.schema} of {self.url} holds part of an arcodex catalog"
                        f" (tables {', '.join(sorted(tables & set(ARCODEX_TABLES)))}); restore it"
                        " from a backup or choose another schema"
                    )
                if tables:
                    raise NotACatalogError(
                        f"schema {self.schema} of database {self.database} on {self._where()}"
                        " holds other tables but not an arcodex catalog;"
                        " not an arcodex catalog; choose another schema (?schema=NAME)"
                    )
                if not create:
                    raise NotACatalogError(
                        f"no arcodex catalog in schema {self.schema} of database"
                        f" {self.database} on {self._where()}; create one with"
                        " `arcodex init --database URL`, or fix schema= in the URL"
                    )
                self._create(conn)
            self._admin_check(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            conn.close()

    def _tables(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            [self.schema],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Two processes creating one catalog: the second waits, then finds it made.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"arcodex-create:{self.schema}"],
            )
            if self._tables(conn).issuperset(ARCODEX_TABLES):
                return
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
            for statement in schema_ddl():
                conn.execute(statement)
            self._admin_create(conn)
            self._ops_create(conn)

    # -- path ids ----------------------------------------------------------------------

    def _pids(
        self, conn: psycopg.Connection[Any], paths: Sequence[str], pending: dict[str, int]
    ) -> dict[str, int]:
        """Path ids for ``paths``, created when new (new ones go to ``pending`` until commit)."""
        out = {p: self._paths[p] for p in paths if p in self._paths}
        missing = sorted({safe_text(p) for p in paths if p not in out})
        if missing:
            # Sorted, so that concurrent adds take the unique-index locks in one order.
            conn.execute(
                "INSERT INTO paths(path) SELECT p FROM unnest(%s::text[]) AS p ORDER BY p"
                " ON CONFLICT (path) DO NOTHING",
                [missing],
            )
            rows = conn.execute(
                "SELECT path, pid FROM paths WHERE path = ANY(%s)", [missing]
            ).fetchall()
            found = dict(rows)
            for p in paths:
                if p not in out:
                    out[p] = found[safe_text(p)]
                    pending[p] = out[p]
        return out

    def _lookup_pids(self, paths: Sequence[str]) -> dict[str, int]:
        missing = [p for p in paths if p not in self._paths]
        if missing:
            rows = self._q(
                "SELECT path, pid FROM paths WHERE path = ANY(%s)",
                [[safe_text(p) for p in missing]],
            )
            found = dict(rows)
            with self._paths_lock:
                for p in missing:
                    if safe_text(p) in found:
                        self._paths[p] = found[safe_text(p)]
        return {p: self._paths[p] for p in paths if p in self._paths}

    @contextmanager
    def _write(self) -> Iterator[tuple[psycopg.Connection[Any], dict[str, int]]]:
        """A write transaction and the path ids it creates (shared once committed)."""
        pending: dict[str, int] = {}
        with self._tx() as conn:
            yield conn, pending
        with self._paths_lock:
            self._paths.update(pending)

    # -- writing ------------------------------------------------------------------------

    def add(self, records: Sequence[Record]) -> None:
        if not records:
            return
        ids = [record.id for record in records]
        seen: set[str] = set()
        for record_id in ids:
            if record_id in seen:
                raise ConflictError(
                    f"record id {record_id} is given twice; give each record its own id"
                )
            seen.add(record_id)
        docs = [record.model_dump_json() for record in records]
        for attempt in range(_RETRIES):
            try:
                with self._write() as (conn, pending):
                    taken = conn.execute(
                        "SELECT id FROM records WHERE id = ANY(%s) ORDER BY id LIMIT 5", [ids]
                    ).fetchall()
                    if taken:
                        raise ConflictError(
                            f"record id {', '.join(str(t[0]) for t in taken)} already exists;"
                            " choose another id or update the existing record"
                        )
                    rids = [
                        int(r[0])
                        for r in conn.execute(
                            "SELECT nextval('rid_seq') FROM generate_series(1, %s) ORDER BY 1",
                            [len(docs)],
                        ).fetchall()
                    ]
                    self._copy_in(conn, pending, rids, docs)
                self._refresh_statistics(len(docs))
                return
            except LockTimeoutError as exc:
                from psycopg import errors as pe

                if attempt + 1 < _RETRIES and isinstance(exc.__cause__, pe.DeadlockDetected):
                    continue
                raise

    def _refresh_statistics(self, added: int) -> None:
        """After a bulk add (of at least ``_ANALYZE_AFTER`` records) that, with the adds
        before it since the last VACUUM, grew the catalog by a tenth or more, gather the
        planner's statistics and mark the new pages all-visible now: until autovacuum
        comes round, the planner would judge the new rows from statistics of a catalog a
        fraction of the size, or from none (the first searches of a fresh load were 10x
        slower). VACUUM (ANALYZE) takes no lock that blocks readers or writers."""
        import psycopg

        if added < _ANALYZE_AFTER:
            return
        try:
            # Growth since the last VACUUM (by anyone, autovacuum too), not this add's alone:
            # a catalog loaded in batches of a few percent each must be refreshed as well.
            rows = self._q(
                "SELECT c.reltuples, coalesce(s.n_ins_since_vacuum, 0) FROM pg_class c"
                " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
                " WHERE c.oid = to_regclass('records')"
            )
            known = float(rows[0][0]) if rows and rows[0][0] is not None else -1.0
            grown = max(added, int(rows[0][1])) if rows else added
            if known > 0 and grown < known / 10:
                return
            # VACUUM too: it marks the new pages all-visible, without which an index-only
            # scan (the metadata index carries each row's extent) still reads every row.
            self._q("VACUUM (ANALYZE) records, meta_txt, meta_num, tags")
        except (ArcodexError, psycopg.Error) as exc:
            # The records are committed: a failed ANALYZE leaves it to autovacuum.
            _log.warning("statistics not refreshed after adding %d records: %s", added, exc)

    def _copy_in(
        self,
        conn: psycopg.Connection[Any],
        pending: dict[str, int],
        rids: list[int],
        docs: list[str],
    ) -> None:
        """Prepare and COPY new records, a chunk at a time: while one thread prepares the
        next chunk (Python), another streams the current one and waits for the server to
        index it, so that the client's and the server's work overlap instead of adding up."""
        stats: Counter[tuple[str, str]] = Counter()
        pids: dict[str, int] = {}

        def write(start: int, prepared: list[Prepared]) -> None:
            paths = sorted({p for item in prepared for p, _ in item[3].stats} - pids.keys())
            if paths:
                pids.update(self._pids(conn, paths, pending))
            chunk = zip(rids[start : start + len(prepared)], prepared, strict=True)
            self._insert(conn, [(rid, item, None) for rid, item in chunk], pids, stats=stats)

        if len(docs) <= _CHUNK:
            write(0, prepare_many(docs))
        else:
            from concurrent.futures import Future, ThreadPoolExecutor

            with ThreadPoolExecutor(1, thread_name_prefix="arcodex-copy") as writer:
                running: Future[None] | None = None
                try:
                    for start in range(0, len(docs), _CHUNK):
                        prepared = prepare_many(docs[start : start + _CHUNK])
                        if running is not None:
                            running.result()
                        running = writer.submit(write, start, prepared)
                    running, last = None, running
                    if last is not None:
                        last.result()
                finally:
                    # The connection is the writer's until it stops: never roll back under it.
                    if running is not None:
                        wait([running])
        # Last, so that the rows every add shares stay locked as briefly as possible.
        self._apply_stats(conn, stats, pids)

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        items: list[tuple[int, Prepared, str | None]],
        pid: dict[str, int],
        *,
        replace: bool = False,
        stats: Counter[tuple[str, str]] | None = None,
    ) -> None:
        """Write prepared records (rid, prepared, prior status) into every table with COPY;
        with ``replace``, their ``records`` rows exist and are updated in place (so that a
        writer waiting on the row's lock reads the new version, not a deleted row). Field
        counts go to ``stats`` when given (the caller applies them), else are applied here."""
        rows: list[tuple[Any, ...]] = []
        txt_rows: list[tuple[int, str, int, str, str]] = []
        num_rows: list[tuple[int, str, float, int]] = []
        tag_rows: list[tuple[str, int]] = []
        art_rows: list[tuple[Any, ...]] = []
        counts: Counter[tuple[str, str]] = Counter() if stats is None else stats
        for rid, (columns, doc, tags, idx, artifacts), prior in items:
            # Only a document with an escaped NUL holds text PostgreSQL must be spared.
            clean = "\\u0000" not in doc
            rows.append(_record_row(rid, columns, prior, idx, doc, clean))
            ext = _extent_fields(idx)
            if clean:
                txt_rows.extend([(pid[p], v[:KEY_CHARS], rid, v, ext) for p, v in idx.txt])
                tag_rows.extend([(tag, rid) for tag in dict.fromkeys(tags)])
            else:
                for p, v in idx.txt:
                    text = safe_text(v)
                    txt_rows.append((pid[p], key_of(text), rid, text, ext))
                tag_rows.extend([(safe_text(tag), rid) for tag in dict.fromkeys(tags)])
            num_rows.extend([(pid[p], t, v, rid) for p, t, v in idx.num])
            if columns[2] != "deleted":
                count_fields(counts, idx, +1)
            for art in artifacts:
                if clean:
                    art_rows.append((art[0], rid, *art[1:6], bool(art[6]), *art[7:]))
                else:
                    art_rows.append(
                        (
                            _text(art[0]),
                            rid,
                            *(_text(v) for v in art[1:6]),
                            bool(art[6]),
                            *(_text(v) for v in art[7:]),
                        )
                    )
        # In key order, B-tree inserts touch each page once instead of at random.
        txt_rows.sort()
        num_rows.sort()
        tag_rows.sort()
        with conn.cursor() as cur:
            if replace:
                assignments = ", ".join(f'"{c}" = %s' for c in _RECORD_COLUMNS[1:])
                for row in rows:
                    cur.execute(
                        f"UPDATE records SET {assignments} WHERE rid = %s", [*row[1:], row[0]]
                    )
            else:
                _copy(cur, "records", _RECORD_COLUMNS, rows)
            _copy_lines(
                cur,
                "meta_txt",
                ("pid", "k", "rid", "txt", *EXTENT_COLUMNS),
                [f"{p}\t{_field(k)}\t{r}\t{_field(v)}\t{x}\n" for p, k, r, v, x in txt_rows],
            )
            _copy_lines(
                cur,
                "meta_num",
                ("pid", "typ", "num", "rid"),
                [f"{p}\t{t}\t{v!r}\t{r}\n" for p, t, v, r in num_rows],
            )
            _copy_lines(cur, "tags", ("tag", "rid"), [f"{_field(t)}\t{r}\n" for t, r in tag_rows])
            _copy(cur, "artifacts", _ARTIFACT_COLUMNS, art_rows)
        if stats is None:
            # Last, so that the rows every add shares stay locked as briefly as possible.
            self._apply_stats(conn, counts, pid)

    def _apply_stats(
        self, conn: psycopg.Connection[Any], stats: Counter[tuple[str, str]], pid: dict[str, int]
    ) -> None:
        rows = sorted((pid[path], typ, n) for (path, typ), n in stats.items() if n)
        if not rows:
            return
        # Sorted, so that concurrent writers lock the shared counters in one order.
        conn.execute(
            "INSERT INTO field_stats(pid, typ, n)"
            " SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[]) ORDER BY 1, 2"
            " ON CONFLICT (pid, typ) DO UPDATE SET n = field_stats.n + excluded.n",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
        )

    def _remove_index(
        self,
        conn: psycopg.Connection[Any],
        rid: int,
        record: Record,
        counted: bool,
        pending: dict[str, int],
    ) -> None:
        idx = index_rows(record)
        pid = self._pids(conn, sorted({p for p, _ in idx.stats}), pending)
        if idx.txt:
            texts = [(pid[p], safe_text(v)) for p, v in idx.txt]
            conn.execute(
                "DELETE FROM meta_txt m USING unnest(%s::int[], %s::text[], %s::text[]) AS x(pid, k, txt)"
                " WHERE m.pid = x.pid AND m.k = x.k AND m.txt = x.txt AND m.rid = %s",
                [[t[0] for t in texts], [key_of(t[1]) for t in texts], [t[1] for t in texts], rid],
            )
        if idx.num:
            nums = list(idx.num)
            conn.execute(
                "DELETE FROM meta_num m USING unnest(%s::int[], %s::text[], %s::float8[]) AS x(pid, typ, num)"
                ' WHERE m.pid = x.pid AND m.typ = x.typ::"char" AND m.num = x.num AND m.rid = %s',
                [
                    [pid[p] for p, _, _ in nums],
                    [t for _, t, _ in nums],
                    [v for _, _, v in nums],
                    rid,
                ],
            )
        conn.execute("DELETE FROM tags WHERE rid = %s", [rid])
        conn.execute("DELETE FROM artifacts WHERE rid = %s", [rid])
        if counted:
            stats: Counter[tuple[str, str]] = Counter()
            count_fields(stats, idx, -1)
            self._apply_stats(conn, stats, pid)

    def _current(
        self, conn: psycopg.Connection[Any], record_id: str
    ) -> tuple[int, Record, str | None]:
        row = conn.execute(
            "SELECT rid, doc, prior_status FROM records WHERE id = %s FOR UPDATE",
            [safe_text(record_id)],
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no record {record_id!r}; run `arcodex search` to list ids")
        return int(row[0]), Record.model_validate_json(row[1], context=_TRUSTED), row[2]

    def update(self, record: Record, expected_version: int) -> None:
        prepared = prepare(record.model_dump_json())
        with self._write() as (conn, pending):
            rid, old, prior = self._current(conn, record.id)
            if old.version != expected_version:
                raise ConflictError(
                    f"record {record.id} is at version {old.version}, not {expected_version}: "
                    "someone changed it; reload it and apply your change again"
                )
            self._remove_index(conn, rid, old, old.status != "deleted", pending)
            pid = self._pids(conn, sorted({p for p, _ in prepared[3].stats}), pending)
            self._insert(conn, [(rid, prepared, prior)], pid, replace=True)

    def _set_status(self, record_id: str, user: str | None, restoring: bool) -> Record:
        with self._write() as (conn, pending):
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
                "UPDATE records SET status = %s, prior_status = %s, version = %s, updated_at = %s,"
                " updated_by = %s, doc = %s WHERE rid = %s",
                [
                    new.status,
                    None if restoring else old.status,
                    new.version,
                    to_epoch(new.updated_at),
                    _text(user),
                    new.model_dump_json(),
                    rid,
                ],
            )
            idx = index_rows(old)
            stats: Counter[tuple[str, str]] = Counter()
            count_fields(stats, idx, +1 if restoring else -1)
            self._apply_stats(
                conn, stats, self._pids(conn, sorted({p for p, _ in idx.stats}), pending)
            )
            return new

    def delete(self, record_id: str, *, user: str | None = None) -> Record:
        return self._set_status(record_id, user, restoring=False)

    def restore(self, record_id: str, *, user: str | None = None) -> Record:
        return self._set_status(record_id, user, restoring=True)

    def purge(self, record_id: str) -> Record:
        with self._write() as (conn, pending):
            rid, old, _ = self._current(conn, record_id)
            self._remove_index(conn, rid, old, old.status != "deleted", pending)
            conn.execute("DELETE FROM records WHERE rid = %s", [rid])
            return old

    # -- reading ------------------------------------------------------------------------

    def holders(
        self, *, sha256: Sequence[str] = (), locations: Sequence[str] = ()
    ) -> list[tuple[str, str, str]]:
        hashes = [safe_text(s) for s in dict.fromkeys(sha256)]
        places = [safe_text(s) for s in dict.fromkeys(locations)]
        if not hashes and not places:
            return []
        rows = self._q(HOLDERS_SQL, [hashes, places])
        wanted = {*hashes, *places}
        out: list[tuple[str, str, str]] = []
        for digest, location, rid, status in rows:
            for value in (digest, location):
                if value in wanted:
                    out.append((str(value), str(rid), str(status)))
        return out

    def sources(self, paths: Sequence[str]) -> list[tuple[str, str, str, int | None, int | None]]:
        wanted = [safe_text(p) for p in dict.fromkeys(paths)]
        if not wanted:
            return []
        rows = self._q(SOURCES_SQL, [wanted])
        return [(str(s), str(i), str(st), size, mtime) for s, i, st, size, mtime in rows]

    def get(self, record_id: str) -> Record:
        rows = self._q("SELECT doc FROM records WHERE id = %s", [safe_text(record_id)])
        if not rows:
            raise NotFoundError(f"no record {record_id!r}; run `arcodex search` to list ids")
        return Record.model_validate_json(rows[0][0], context=_TRUSTED)

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        prefix = safe_text(prefix)
        rows = self._q(PREFIX_SQL, [prefix, prefix + "\U0010ffff", int(limit)])
        return [str(r[0]) for r in rows]

    def _compile(self, query: Query) -> Compiled:
        return compile_query(query, self._lookup_pids(query_paths(query)))

    def search(self, query: Query) -> Page:
        compiled = self._compile(query)
        limit = query.limit
        keys = "".join(f", {expr}" for expr, _ in compiled.sort_exprs)
        sql = f"SELECT r.rid{keys}, r.doc {compiled.source} ORDER BY {compiled.order}"
        if limit is not None:
            sql += f" LIMIT {int(limit) + 1}"
        rows = self._q(sql, compiled.params)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        records = [Record.model_validate_json(row[-1], context=_TRUSTED) for row in rows]
        cursor = encode_cursor(rows[-1][:-1]) if more and rows else None
        return Page(records, cursor)

    def ids(self, query: Query) -> list[str]:
        compiled = self._compile(query)
        sql = f"SELECT r.id {compiled.source} ORDER BY {compiled.order}"
        if query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        return [str(row[0]) for row in self._q(sql, compiled.params)]

    def count(self, query: Query) -> int:
        compiled = self._compile(query.model_copy(update={"cursor": None, "sort": []}))
        return int(self._q(f"SELECT count(*) {compiled.source}", compiled.params)[0][0])

    # -- fields, stats, operations -----------------------------------------------------------

    def fields(self, prefix: str | None = None) -> list[FieldSummary]:
        sql = (
            "SELECT p.path, p.pid, s.typ, s.n FROM field_stats s JOIN paths p ON p.pid = s.pid"
            " WHERE s.n > 0"
        )
        params: list[Any] = []
        if prefix:
            prefix = safe_text(prefix)
            sql += " AND (p.path = %s OR (p.path >= %s AND p.path < %s))"
            params += [prefix, prefix + ".", prefix + ".\U0010ffff"]
        grouped: dict[str, dict[str, Any]] = {}
        for path, pid, typ, n in self._q(sql + " ORDER BY p.path", params):
            entry = grouped.setdefault(path, {"pid": pid, "types": [], "count": 0})
            if typ == "*":
                entry["count"] = int(n)
            else:
                entry["types"].append(typ)
        return [
            FieldSummary(
                path=path,
                types=sorted(entry["types"]),
                count=entry["count"],
                examples=self._examples(entry["pid"], entry["types"]),
            )
            for path, entry in grouped.items()
        ]

    def _examples(self, pid: int, types: list[str]) -> list[Any]:
        examples: list[Any] = []
        if {"string", "date"} & set(types):
            rows = self._q(
                "SELECT DISTINCT m.txt FROM meta_txt m JOIN records r ON r.rid = m.rid"
                " WHERE m.pid = %s AND r.status <> 'deleted' LIMIT 5",
                [pid],
            )
            examples += [r[0] for r in rows]
        if {"integer", "number", "boolean"} & set(types) and len(examples) < 5:
            rows = self._q(
                "SELECT DISTINCT m.typ, m.num FROM meta_num m JOIN records r ON r.rid = m.rid"
                " WHERE m.pid = %s AND m.typ IN ('n', 'b') AND r.status <> 'deleted' LIMIT %s",
                [pid, 5 - len(examples)],
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
        for kind, status, n in self._q(
            "SELECT kind, status, count(*) FROM records GROUP BY kind, status"
        ):
            by_status[status] += n
            if status != "deleted":
                by_kind[kind] += n
        art_format: Counter[str] = Counter()
        art_status: Counter[str] = Counter()
        for fmt, status, n in self._q(
            "SELECT a.format, a.status, count(*) FROM artifacts a JOIN records r ON r.rid = a.rid"
            " WHERE r.status <> 'deleted' GROUP BY a.format, a.status"
        ):
            art_format[fmt or "unknown"] += n
            art_status[status] += n
        return BackendStats(dict(by_kind), dict(by_status), dict(art_format), dict(art_status))

    def save_operation(self, operation: Operation) -> None:
        with self._tx() as conn:
            conn.execute(
                'INSERT INTO operations(id, action, status, "user", started_at, doc)'
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                ' action = excluded.action, status = excluded.status, "user" = excluded."user",'
                " started_at = excluded.started_at, doc = excluded.doc",
                [
                    safe_text(operation.id),
                    safe_text(operation.action),
                    safe_text(operation.status),
                    _text(operation.user),
                    to_epoch(operation.started_at),
                    operation.model_dump_json(),
                ],
            )

    def operations(self, status: str | None = None, limit: int = 20) -> list[Operation]:
        if status:
            rows = self._q(
                "SELECT doc FROM operations WHERE status = %s ORDER BY started_at DESC LIMIT %s",
                [safe_text(status), int(limit)],
            )
        else:
            rows = self._q(
                "SELECT doc FROM operations ORDER BY started_at DESC LIMIT %s", [int(limit)]
            )
        return [Operation.model_validate_json(r[0]) for r in rows]


#: Who holds these files (each side repeats the role, so that each uses its partial index).
HOLDERS_SQL = (
    "SELECT a.sha256, a.location, r.id, r.status FROM artifacts a JOIN records r ON r.rid = a.rid"
    " WHERE (a.role = 'primary' AND a.sha256 = ANY(%s))"
    " OR (a.role = 'primary' AND a.location = ANY(%s)) ORDER BY r.id"
)
#: Which records were made from these files.
SOURCES_SQL = (
    "SELECT a.source, r.id, r.status, a.size_bytes, a.source_mtime_ns"
    " FROM artifacts a JOIN records r ON r.rid = a.rid"
    " WHERE a.role = 'primary' AND a.source = ANY(%s) ORDER BY r.id"
)
#: Ids in a range (``COLLATE "C"``: byte order, as SQLite's).
PREFIX_SQL = "SELECT id FROM records WHERE id >= %s AND id < %s ORDER BY id LIMIT %s"

_RECORD_COLUMNS = (
    "rid",
    "id",
    "kind",
    "status",
    "prior_status",
    "version",
    "title",
    "description",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "schema_name",
    "schema_version",
    "b1",
    "b2",
    "tr",
    "tsv",
    "doc",
)
_ARTIFACT_COLUMNS = (
    "aid",
    "rid",
    "role",
    "format",
    "media_type",
    "status",
    "size_bytes",
    "managed",
    "locator_type",
    "location",
    "sha256",
    "source",
    "source_mtime_ns",
)


def _text(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def _box(box: tuple[float, float, float, float] | None) -> str | None:
    if box is None:
        return None
    w, s, e, n = box
    return f"({float(w)!r},{float(s)!r}),({float(e)!r},{float(n)!r})"


#: The extent fields of a record without time or box (COPY's NULLs).
_NO_EXTENT = "\t".join(["\\N"] * 6)
#: Beyond float4's range: stored as infinity (still a bound in the right direction).
_FLOAT4_MAX = 3.4e38


def _float4(value: float) -> str:
    """A float for a float4 column: PostgreSQL rounds it to nearest, which keeps order."""
    if value > _FLOAT4_MAX:
        return "Infinity"
    if value < -_FLOAT4_MAX:
        return "-Infinity"
    return repr(float(value))


def _extent_fields(idx: IndexRows) -> str:
    """``t0 t1 w s e n`` of a record's text rows, in COPY's text format: its time range and
    the envelope of its boxes (see ``_postgres_schema``)."""
    if idx.time is None and not idx.boxes:
        return _NO_EXTENT
    fields = ["\\N", "\\N"]
    if idx.time is not None:
        fields = [_float4(idx.time[0]), _float4(idx.time[1])]
    if idx.boxes:
        west = min(b[0] for b in idx.boxes)
        south = min(b[1] for b in idx.boxes)
        east = max(b[2] for b in idx.boxes)
        north = max(b[3] for b in idx.boxes)
        fields += [_float4(west), _float4(south), _float4(east), _float4(north)]
    else:
        fields += ["\\N"] * 4
    return "\t".join(fields)


def _record_row(
    rid: int, columns: tuple[Any, ...], prior: str | None, idx: IndexRows, doc: str, clean: bool
) -> tuple[Any, ...]:
    record_id, kind, status, *rest = columns if clean else tuple(_text(c) for c in columns)
    boxes = idx.boxes
    first = _box(boxes[0]) if boxes else None
    second = _box(boxes[1]) if len(boxes) > 1 else None
    time = f"[{float(idx.time[0])!r},{float(idx.time[1])!r}]" if idx.time is not None else None
    return (
        rid,
        record_id,
        kind,
        status,
        prior,
        *rest,
        first,
        second,
        time,
        tsvector_literal(idx.text),
        doc,
    )


def _field(text: str) -> str:
    """A text value in COPY's text format (it holds no NUL: see ``safe_text``)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


#: Text sent to the server in pieces of about this many lines.
_LINES_A_WRITE = 20_000


def _copy_lines(cur: Any, table: str, columns: Sequence[str], lines: list[str]) -> None:
    """COPY rows already in COPY's text format: the tables a record adds many rows to
    (metadata, tags) are formatted here in one pass, as ``write_row`` per row spent more
    of a bulk add's client time than everything else together."""
    if not lines:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for start in range(0, len(lines), _LINES_A_WRITE):
            copy.write("".join(lines[start : start + _LINES_A_WRITE]))


def _copy(cur: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
