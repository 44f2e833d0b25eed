"""Schema versions, migrations, the schema registry and whole-catalog export on PostgreSQL.

A mixin of :class:`~arcodex.backends._postgres.PostgresBackend`: it reaches the
database through the backend's ``_tx()`` and ``_q()`` (and, to import records
through the same bulk path as ``add``, its ``_write()``, ``_pids()`` and
``_insert()``).

A PostgreSQL catalog's schema starts at version 1. The tables of
:mod:`arcodex.backends._postgres_schema` are that version's and stay as they
are; every later change is a :class:`~arcodex.backends._migrations.Migration`
appended to :data:`MIGRATIONS`, which a new catalog runs as it is created
(inside its creating transaction) and an existing one runs with ``arcodex db
upgrade``: many processes share the database, so none upgrades it on its own,
and opening one whose schema is older than the code is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from arcodex.backends._migrations import (
    AppliedMigration,
    Migration,
    SchemaInfo,
    admin_opening,
    newer_schema,
    older_schema,
    pending,
)
from arcodex.backends._postgres_schema import EXTENT_DDL
from arcodex.backends._users_sql import USERS_DDL, UserTables
from arcodex.errors import ConflictError
from arcodex.model import TRUSTED, Operation, Record

if TYPE_CHECKING:
    from arcodex.backends._index import Prepared

__all__ = ["MIGRATIONS", "PostgresAdmin"]

_TRUSTED = {TRUSTED: True}

#: Version 1: the administrative tables (the catalog's own come from _postgres_schema).
_ADMIN_DDL = """
CREATE TABLE IF NOT EXISTS arcodex_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz,
    arcodex_version text,
    description text NOT NULL
);
CREATE TABLE IF NOT EXISTS schemas (
    key text COLLATE "C" PRIMARY KEY,
    text text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""

#: Every schema version of a PostgreSQL catalog, oldest first.
MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "records, metadata, text and extent indexes, operations, the schema version table"
        " and the schema registry",
        _ADMIN_DDL,
    ),
    Migration(2, "users and their API tokens (hashed)", USERS_DDL),
    Migration(
        3,
        "planner statistics of metadata paths and text values together (a path's values"
        " are counted per path, not as if paths and values were independent)",
        # Not on meta_num: its ranges are judged from the values of every path at once, and
        # telling the planner that a path implies a kind only made those guesses worse.
        "CREATE STATISTICS IF NOT EXISTS meta_txt_paths (mcv, dependencies) ON pid, k"
        " FROM meta_txt; ANALYZE meta_txt",
    ),
    Migration(
        4,
        "each text metadata row carries its record's time and box (rounded to float4) inside"
        " the metadata index, so that a value and an extent are answered by one index scan",
        EXTENT_DDL,
    ),
]


def code_version() -> int:
    """The schema version this code makes and expects."""
    return max(m.version for m in MIGRATIONS)


def _apply(conn: Any, steps: Sequence[Migration]) -> None:
    """Run ``steps`` in the open transaction and note each in ``arcodex_schema``."""
    from arcodex import __version__

    for step in steps:
        if isinstance(step.apply, str):
            for statement in step.apply.split(";"):
                if statement.strip():
                    conn.execute(statement)
        elif step.apply is not None:
            step.apply(conn)
        conn.execute(
            "INSERT INTO arcodex_schema(version, applied_at, arcodex_version, description)"
            " VALUES (%s, now(), %s, %s) ON CONFLICT (version) DO UPDATE SET"
            " applied_at = excluded.applied_at, arcodex_version = excluded.arcodex_version,"
            " description = excluded.description",
            [step.version, __version__, step.description],
        )


def _version(conn: Any) -> int:
    """The schema version of the catalog ``conn`` sees (0: made before versions were kept)."""
    if conn.execute("SELECT to_regclass('arcodex_schema')").fetchone()[0] is None:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM arcodex_schema").fetchone()[0])


def _described(steps: Sequence[Migration]) -> list[str]:
    return [f"{m.version}: {m.description}" for m in steps]


class PostgresAdmin(UserTables):
    """The administrative side of the PostgreSQL backend (its schema versions, users, tokens)."""

    if TYPE_CHECKING:
        url: str
        schema: str

        def _tx(self) -> AbstractContextManager[Any]: ...

        def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _write(self) -> AbstractContextManager[tuple[Any, dict[str, int]]]: ...

        def _pids(
            self, conn: Any, paths: Sequence[str], pending: dict[str, int]
        ) -> dict[str, int]: ...

        def _insert(
            self, conn: Any, items: list[tuple[int, Prepared, str | None]], pid: dict[str, int]
        ) -> None: ...

    def _auth_run(
        self, sql: str, params: Sequence[Any] = (), *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", "%s")
        if not write:
            return self._q(sql, params)
        with self._tx() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    # -- versions --------------------------------------------------------------------------

    def _admin_create(self, conn: Any) -> None:
        """Create the administrative tables of a new catalog (inside its creating transaction)."""
        _apply(conn, pending(MIGRATIONS, 0))

    def _admin_check(self, conn: Any) -> None:
        """Refuse a catalog whose schema this code cannot use (called on every open)."""
        version, known = _version(conn), code_version()
        if version > known:
            raise newer_schema(self.url, version, known)
        if version < known and not admin_opening():
            raise older_schema(self.url, version, known)

    def schema_info(self) -> SchemaInfo:
        with self._tx() as conn:
            version = _version(conn)
            rows = (
                conn.execute(
                    "SELECT version, description, applied_at, arcodex_version"
                    " FROM arcodex_schema ORDER BY version"
                ).fetchall()
                if version
                else []
            )
        applied = [
            AppliedMigration(
                int(v), str(d), at.isoformat(timespec="seconds") if at is not None else None, by
            )
            for v, d, at, by in rows
        ]
        return SchemaInfo(
            version, code_version(), applied, _described(pending(MIGRATIONS, version))
        )

    def upgrade(self, dry_run: bool = False) -> list[str]:
        with self._tx() as conn:
            # One upgrader at a time; the others wait, then find nothing left to do.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"arcodex-upgrade:{self.schema}"],
            )
            version, known = _version(conn), code_version()
            if version > known:
                raise newer_schema(self.url, version, known)
            steps = pending(MIGRATIONS, version)
            if not dry_run:
                _apply(conn, steps)
        return _described(steps)

    # -- whole-catalog export and import -----------------------------------------------------

    def is_empty(self) -> bool:
        rows = self._q(
            "SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM operations)"
            " OR EXISTS (SELECT 1 FROM schemas) OR EXISTS (SELECT 1 FROM users)"
            " OR EXISTS (SELECT 1 FROM tokens)"
        )
        return not rows[0][0]

    def export_records(self, batch: int = 1000) -> Iterator[list[tuple[Record, str | None]]]:
        after = ""
        while True:
            # Keyset paging on the unique index of ids (COLLATE "C": code point order).
            rows = self._q(
                "SELECT id, doc, prior_status FROM records WHERE id > %s ORDER BY id LIMIT %s",
                [after, batch],
            )
            if not rows:
                return
            after = rows[-1][0]
            yield [
                (Record.model_validate_json(doc, context=_TRUSTED), prior) for _, doc, prior in rows
            ]

    def import_records(self, rows: Sequence[tuple[Record, str | None]]) -> None:
        if not rows:
            return
        from arcodex.backends._index import prepare_many

        ids = [record.id for record, _ in rows]
        if len(set(ids)) != len(ids):
            twice = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise ConflictError(f"record id {twice} is given twice; give each record its own id")
        prepared = prepare_many([record.model_dump_json() for record, _ in rows])
        paths = sorted({p for item in prepared for p, _ in item[3].stats})
        with self._write() as (conn, new_paths):
            taken = conn.execute(
                "SELECT id FROM records WHERE id = ANY(%s) ORDER BY id LIMIT 5", [ids]
            ).fetchall()
            if taken:
                raise ConflictError(
                    f"record id {', '.join(str(t[0]) for t in taken)} already exists;"
                    " import only into an empty catalog"
                )
            pids = self._pids(conn, paths, new_paths)
            rids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT nextval('rid_seq') FROM generate_series(1, %s) ORDER BY 1",
                    [len(prepared)],
                ).fetchall()
            ]
            items = [
                (rid, item, prior)
                for rid, item, (_, prior) in zip(rids, prepared, rows, strict=True)
            ]
            self._insert(conn, items, pids)

    def all_operations(self) -> Iterator[Operation]:
        after: tuple[float, str] | None = None
        while True:
            if after is None:
                rows = self._q(
                    "SELECT started_at, id, doc FROM operations ORDER BY started_at, id LIMIT 1000"
                )
            else:
                rows = self._q(
                    "SELECT started_at, id, doc FROM operations WHERE (started_at, id) > (%s, %s)"
                    " ORDER BY started_at, id LIMIT 1000",
                    list(after),
                )
            if not rows:
                return
            after = (rows[-1][0], rows[-1][1])
            for _, _, doc in rows:
                yield Operation.model_validate_json(doc)

    # -- the schema registry -----------------------------------------------------------------

    def put_schema(self, key: str, text: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO schemas(key, text) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE"
                " SET text = excluded.text, updated_at = now()",
                [key, text],
            )

    def schema_text(self, key: str) -> str | None:
        rows = self._q("SELECT text FROM schemas WHERE key = %s", [key])
        return str(rows[0][0]) if rows else None

    def schema_keys(self) -> list[str]:
        return [str(r[0]) for r in self._q("SELECT key FROM schemas ORDER BY key")]
