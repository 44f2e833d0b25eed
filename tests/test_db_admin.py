"""The catalog database as a whole: schema versions and migrations, `arcodex db status`,
`db upgrade [--dry-run]` and `db copy` between SQLite and PostgreSQL (both directions)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from arcodex.backends import CatalogBackend, admin_open, open_backend
from arcodex.backends._migrations import Migration
from arcodex.backends._postgres_admin import MIGRATIONS as PG_MIGRATIONS
from arcodex.backends._sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteBackend
from arcodex.catalog import (
    Catalog,
    CatalogConfig,
    catalog_digest,
    copy_database,
    database_status,
    upgrade_database,
)
from arcodex.catalog._users import Users
from arcodex.cli import app
from arcodex.errors import ConflictError, StorageError, ValidationError
from arcodex.model import Operation, Query, Record
from arcodex.testing import LocalPostgres

runner = CliRunner()

#: The newest PostgreSQL catalog schema this arcodex writes.
PG_VERSION = PG_MIGRATIONS[-1].version
#: What arcodex wrote before schema 4 (copied from the previous _sqlite.py, as it was).
SQLITE_SCHEMA_3 = """
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
CREATE INDEX artifacts_sha256 ON artifacts(sha256)
    WHERE role = 'primary' AND sha256 IS NOT NULL;
CREATE INDEX artifacts_location ON artifacts(location)
    WHERE role = 'primary' AND location IS NOT NULL;
CREATE INDEX artifacts_source ON artifacts(source)
    WHERE role = 'primary' AND source IS NOT NULL;
PRAGMA user_version = 3;
"""

OBS = {"type": "object", "properties": {"site": {"type": "string"}}, "required": ["site"]}

#: Queries whose answers a copy must keep (CLI terms, or keyword arguments of search).
QUERIES: list[dict[str, Any]] = [
    {"terms": "site=MHD"},
    {"terms": "year>=2020"},
    {"terms": "inlet>5 site~M*"},
    {"terms": "kind=external"},
    {"text": "tacolneston"},
    {"bbox": "-11,49,-8,55"},
    {"time": "2020-01-01/2020-12-31"},
    {"terms": "status=deleted"},
    {"terms": "tags=ch4"},
    {"terms": "station.code=A"},
]


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def one_line_error(result: Result, pattern: str) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    import re

    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def fill(cat: Catalog, tmp: Path) -> dict[str, str]:
    """A small catalog using every part a copy must carry: managed files, externals with
    extents, deleted records (of two prior statuses), a schema, operations, users and
    their tokens (one used, one revoked; ``ids["token"]`` is the good one's secret)."""
    cat.register_schema("obs@1", OBS)
    ids: dict[str, str] = {}
    for n, site in enumerate(["MHD", "TAC", "MHD"]):
        path = tmp / f"f{n}.csv"
        path.write_text(f"site,{site}\n{n}\n", encoding="utf-8")
        rec = cat.add_file(
            path,
            metadata={"site": site, "year": 2019 + n, "inlet": 2.5 * (n + 1)},
            tags=["ch4"] if site == "MHD" else ["n2o"],
            schema="obs@1",
        )
        ids[f"file{n}"] = rec.id
    ids["ext"] = cat.add_external(
        "https://example.org/tac.nc",
        title="Tacolneston tall tower",
        metadata={
            "site": "TAC",
            "bbox": [-10, 50, -9, 54],
            "start_datetime": "2020-01-01T00:00:00Z",
            "end_datetime": "2020-06-30T00:00:00Z",
            "station": [{"code": "A"}, {"code": "B"}],
        },
    ).id
    ids["gone"] = cat.add_external("https://example.org/gone", metadata={"site": "MHD"}).id
    ids["old"] = cat.add_external("https://example.org/old", metadata={"site": "BSD"}).id
    cat.update(ids["old"], status="deprecated")
    cat.delete(ids["gone"])
    cat.delete(ids["old"])
    cat.users.add("alice", "reader", ["P"])
    cat.users.add("bob", "writer")
    ids["token"] = cat.users.create_token("alice", expires_days=30)[1]
    cat.users.authenticate(ids["token"])  # a last use to carry over
    cat.users.revoke(cat.users.create_token("bob")[0].id)
    return ids


def same_users(copy: Users, source: Users, token: str) -> None:
    """The copy's users and tokens are the source's, and a token made before the copy
    authenticates against it (a revoked one still does not)."""
    assert copy.list() == source.list()
    assert copy.tokens() == source.tokens()
    principal, token_id = copy.authenticate(token)
    assert (principal.name, principal.role, principal.projects) == (
        "alice",
        "reader",
        frozenset({"P"}),
    )
    assert token_id == source.tokens("alice")[0].id
    assert [t.status for t in copy.tokens("bob")] == ["revoked"]


def answers(backend: CatalogBackend) -> list[list[str]]:
    """The ids each of :data:`QUERIES` finds (each finds some)."""
    out = []
    for terms in QUERIES:
        query = Query.parse(**{**terms, "limit": None})
        out.append([r.id for r in backend.search(query).records])
    assert all(out), dict(zip([str(q) for q in QUERIES], out, strict=True))
    return out


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Catalog, dict[str, str]]]:
    cat = Catalog.create(tmp_path / "src-cat")
    ids = fill(cat, tmp_path)
    yield cat, ids
    cat.close()


def digest_of(url: str) -> Any:
    backend = open_backend(url)
    try:
        return catalog_digest(backend)
    finally:
        backend.close()


# -- SQLite: schema 3 to 4, and what upgrade and status say -----------------------------------


def schema_3_file(path: Path) -> list[Record]:
    """A catalog file as the previous arcodex made it, holding records written through the
    tables it had (opened by this code without upgrading it)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_SCHEMA_3)
    records = [
        Record(id="r1", title="Mace Head methane", metadata={"site": "MHD", "year": 2020}),
        Record(id="r2", metadata={"site": "TAC", "bbox": [-10, 50, -9, 54]}, tags=["n2o"]),
        Record(id="r3", metadata={"site": "MHD", "year": 2019}, status="deprecated"),
    ]
    with admin_open():
        old = SQLiteBackend(path)
    try:
        old.add(records)
        old.delete("r3")
        old.save_operation(Operation(id="op-1", action="add", status="succeeded"))
    finally:
        old.close()
    return records


def _layout(path: Path) -> set[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            " AND name NOT LIKE 'fts_%' AND name NOT LIKE 'extent_%'"
        ).fetchall()
    return {(str(t), str(n)) for t, n in rows}


def _user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_schema_3_file_is_upgraded_as_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    records = schema_3_file(path)
    assert _user_version(path) == 3
    assert ("table", "arcodex_schema") not in _layout(path)
    backend = SQLiteBackend(path)
    try:
        info = backend.schema_info()
        assert (info.version, info.code_version, info.pending) == (
            SCHEMA_VERSION,
            SCHEMA_VERSION,
            [],
        )
        assert [(m.version, m.applied_at is None) for m in info.applied] == [
            (1, True),
            (2, True),
            (3, True),
            *((m.version, False) for m in MIGRATIONS[3:]),
        ], "versions from before the table are listed, without a date"
        assert backend.get("r1") == records[0]
        assert [r.id for r in backend.search(Query.parse(["site=MHD"])).records] == ["r1"]
        assert [r.id for r in backend.search(Query.parse(bbox="-9.5,51,-9.2,52")).records] == ["r2"]
        assert backend.restore("r3").status == "deprecated", "prior status kept"
        assert [o.id for o in backend.all_operations()] == ["op-1"]
        backend.put_schema("obs@1", json.dumps(OBS))
        assert backend.schema_keys() == ["obs@1"]
    finally:
        backend.close()
    assert _user_version(path) == SCHEMA_VERSION
    fresh = tmp_path / "fresh.sqlite"
    SQLiteBackend(fresh, create=True).close()
    assert _layout(path) == _layout(fresh), "an upgraded file is laid out as a new one"


def test_a_catalog_of_schema_3_opens_upgraded(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    (root / "catalog.sqlite").unlink()
    schema_3_file(root / "catalog.sqlite")
    with Catalog.open(root) as cat:
        assert cat.count() == 2
        assert [r.id for r in cat.search("year>=2020").records] == ["r1"]
        assert {f.path for f in cat.fields()} == {"site", "year", "bbox"}
    assert _user_version(root / "catalog.sqlite") == SCHEMA_VERSION


def test_db_status_and_dry_run_upgrade_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    schema_3_file(path)
    url = f"sqlite:///{path}"
    before = (path.read_bytes(), _layout(path))
    status = json.loads(ok("db", "status", url, "--json").stdout)
    pending = [f"{m.version}: {m.description}" for m in MIGRATIONS[3:]]
    assert pending[0] == "4: the schema version table and the schema registry"
    assert status["schema"]["version"] == 3
    assert status["schema"]["code_version"] == SCHEMA_VERSION
    assert status["schema"]["pending"] == pending
    assert status["records"] == 3 and status["records_by_status"] == {"active": 2, "deleted": 1}
    text = ok("db", "status", url).stdout
    assert f"{len(pending)} migrations pending: run `arcodex db upgrade`" in text
    dry = json.loads(ok("db", "upgrade", url, "--dry-run", "--json").stdout)
    assert dry["migrations"] == pending
    assert dry["dry_run"] and dry["version_before"] == dry["version"] == 3
    dry_text = ok("db", "upgrade", url, "--dry-run").stdout
    assert f"dry run: would apply {len(pending)} migrations" in dry_text
    assert (path.read_bytes(), _layout(path)) == before, "a dry run changes nothing"
    done = ok("db", "upgrade", url).stdout
    assert "upgraded" in done and f"from schema 3 to {SCHEMA_VERSION}" in done
    assert _user_version(path) == SCHEMA_VERSION
    assert f"is up to date (schema {SCHEMA_VERSION})" in ok("db", "upgrade", url).stdout
    assert upgrade_database(url).migrations == []


def test_db_status_of_the_catalog_by_default(
    source: tuple[Catalog, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cat, _ = source
    found = json.loads(ok("--catalog", str(cat.root), "db", "status", "--json").stdout)
    assert found["url"] == cat.backend.url
    assert found["records"] == 6 and found["schemas"] == 1 and found["operations"] >= 6
    assert found["schema"]["up_to_date"]
    monkeypatch.chdir(cat.root)
    assert f"schema: {SCHEMA_VERSION} (up to date)" in ok("db", "status").stdout
    assert database_status(cat.root).records_by_status == {
        "active": 4,
        "deleted": 2,
    }


def test_a_newer_sqlite_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    SQLiteBackend(path, create=True).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 9")
    message = (
        rf"made by a newer arcodex \(schema 9, this one knows {SCHEMA_VERSION}\); upgrade arcodex"
    )
    with pytest.raises(StorageError, match=message):
        SQLiteBackend(path)
    one_line_error(cli("db", "status", f"sqlite:///{path}"), message)
    one_line_error(cli("db", "upgrade", f"sqlite:///{path}"), message)
    assert _user_version(path) == 9


# -- copy between SQLite files ---------------------------------------------------------------


def test_copy_sqlite_to_sqlite_is_identical(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, ids = source
    dest = f"sqlite:///{tmp_path / 'copies' / 'copy.sqlite'}"
    copied = ok("db", "copy", str(cat.root), dest, "--json", "--batch", "2").stdout
    assert ids["token"] not in copied and ids["token"].split("_")[-1] not in copied
    result = json.loads(copied)
    want = catalog_digest(cat.backend)
    assert (result["records"], result["operations"], result["schemas"]) == (
        6,
        want.operations,
        1,
    )
    assert (result["users"], result["tokens"]) == (want.users, want.tokens) == (2, 2)
    assert result["sha256"] == want.sha256 == digest_of(dest).sha256
    with Catalog.create(tmp_path / "other", config=CatalogConfig(database_url=dest)) as other:
        assert answers(other.backend) == answers(cat.backend)
        assert other.fields() == cat.fields()
        assert other.list_schemas() == ["obs@1"]
        assert [r.valid for r in other.validate(ids["file0"])] == [True]
        same_users(other.users, cat.users, ids["token"])
        assert other.restore(ids["old"]).status == "deprecated"
        assert other.restore(ids["gone"]).status == "active"


def test_copy_text_says_how_to_use_the_copy(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, _ = source
    dest = f"sqlite:///{tmp_path / 'copy.sqlite'}"
    out = ok("db", "copy", str(cat.root), dest).stdout
    assert "copied 6 records" in out and "verified" in out
    assert f"database_url: {dest}" in out
    Catalog.create(tmp_path / "empty-cat").close()
    ok("db", "copy", dest, str(tmp_path / "empty-cat"))
    with Catalog.open(tmp_path / "empty-cat") as copied:
        assert copied.count() == cat.count() == 4, "a catalog directory means its database"
        assert copied.list_schemas() == ["obs@1"]


def test_copy_into_a_non_empty_destination_is_refused(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, _ = source
    dest = tmp_path / "taken.sqlite"
    taken = SQLiteBackend(dest, create=True)
    taken.add([Record(id="mine", title="keep me")])
    taken.close()
    before = digest_of(f"sqlite:///{dest}")
    one_line_error(
        cli("db", "copy", str(cat.root), f"sqlite:///{dest}"),
        r"holds 1 record; copy only into an empty catalog",
    )
    with pytest.raises(ConflictError, match="holds 1 record"):
        copy_database(cat.root, f"sqlite:///{dest}")
    assert digest_of(f"sqlite:///{dest}") == before, "the destination is left as it was"
    only_ops = tmp_path / "ops.sqlite"
    backend = SQLiteBackend(only_ops, create=True)
    backend.save_operation(Operation(action="add"))
    backend.close()
    with pytest.raises(ConflictError, match="holds 1 operation; copy only"):
        copy_database(cat.root, f"sqlite:///{only_ops}")
    only_users = tmp_path / "users.sqlite"
    backend = SQLiteBackend(only_users, create=True)
    Users(backend).add("alice", "admin")
    backend.close()
    with pytest.raises(ConflictError, match="holds 1 user; copy only"):
        copy_database(cat.root, f"sqlite:///{only_users}")


def test_a_copy_that_does_not_match_is_reported(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, _ = source
    dest = tmp_path / "bent.sqlite"
    SQLiteBackend(dest, create=True).close()
    with closing(sqlite3.connect(dest)) as conn:
        # A destination that changes what it is given, as a faulty disk or tool would.
        conn.execute(
            "CREATE TRIGGER bend AFTER INSERT ON docs BEGIN"
            " UPDATE docs SET doc = replace(doc, 'MHD', 'XXX') WHERE rid = NEW.rid; END"
        )
    line = one_line_error(
        cli("db", "copy", str(cat.root), f"sqlite:///{dest}"),
        r"does not match .* content digest \w+ instead of \w+; empty the destination",
    )
    assert "copied" not in line


def test_catalog_digest_sees_every_part(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, ids = source
    first = catalog_digest(cat.backend)
    assert first == catalog_digest(cat.backend), "stable"
    cat.restore(ids["gone"])
    cat.delete(ids["gone"])
    assert catalog_digest(cat.backend).sha256 != first.sha256, "versions count"
    changed = catalog_digest(cat.backend)
    cat.backend.save_operation(Operation(action="sync"))
    assert catalog_digest(cat.backend).sha256 != changed.sha256
    changed = catalog_digest(cat.backend)
    cat.backend.put_schema("other@1", "{}")
    assert catalog_digest(cat.backend).schemas == changed.schemas + 1
    changed = catalog_digest(cat.backend)
    cat.users.add("carol", "reader")
    assert catalog_digest(cat.backend).users == changed.users + 1
    changed = catalog_digest(cat.backend)
    cat.users.revoke(cat.users.tokens("alice")[0].id)
    assert catalog_digest(cat.backend).sha256 != changed.sha256, "a revocation counts"
    changed = catalog_digest(cat.backend)
    # A prior status alone changes it: restore would bring back something else.
    with closing(sqlite3.connect(cat.root / "catalog.sqlite")) as conn, conn:
        conn.execute("UPDATE records SET prior_status = 'planned' WHERE id = ?", (ids["old"],))
    assert catalog_digest(cat.backend).sha256 != changed.sha256


def test_bad_targets_are_one_line_errors(
    source: tuple[Catalog, dict[str, str]], tmp_path: Path
) -> None:
    cat, _ = source
    one_line_error(cli("db", "status", "mysql://h/x"), r"unsupported database URL scheme 'mysql'")
    one_line_error(cli("db", "status", str(tmp_path / "nowhere")), r"neither a database URL")
    one_line_error(cli("db", "status", f"sqlite:///{tmp_path / 'missing.sqlite'}"), r"is missing")
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE t (x)")
    one_line_error(
        cli("db", "copy", str(cat.root), f"sqlite:///{foreign}"), r"not an arcodex catalog"
    )
    one_line_error(cli("db", "copy", str(cat.root), str(cat.root)), r"both source and destination")
    one_line_error(cli("--catalog", str(tmp_path), "db", "status"), r"neither a database URL")


# -- PostgreSQL -----------------------------------------------------------------------------


def test_copy_sqlite_to_postgres_to_sqlite_is_identical(
    source: tuple[Catalog, dict[str, str]], pg_url: str, tmp_path: Path
) -> None:
    cat, ids = source
    want = catalog_digest(cat.backend)
    there = json.loads(ok("db", "copy", str(cat.root), pg_url, "--json").stdout)
    assert there["sha256"] == want.sha256 and there["records"] == 6
    assert (there["users"], there["tokens"]) == (2, 2)
    assert "password" not in json.dumps(there).lower()
    pg = open_backend(pg_url)
    try:
        assert catalog_digest(pg) == want
        assert answers(pg) == answers(cat.backend)
        assert pg.fields() == cat.backend.fields()
        assert pg.schema_keys() == ["obs@1"]
        assert list(pg.all_operations()) == list(cat.backend.all_operations())
        assert Users(pg).list() == cat.users.list()
        assert Users(pg).tokens() == cat.users.tokens()
    finally:
        pg.close()
    back = f"sqlite:///{tmp_path / 'back.sqlite'}"
    again = json.loads(ok("db", "copy", pg_url, back, "--json").stdout)
    assert again["sha256"] == want.sha256
    assert (again["users"], again["tokens"]) == (2, 2)
    with Catalog.create(tmp_path / "back", config=CatalogConfig(database_url=back)) as final:
        assert answers(final.backend) == answers(cat.backend)
        assert final.fields() == cat.fields()
        assert final.list_schemas() == ["obs@1"]
        assert [r.valid for r in final.validate(ids["file1"])] == [True]
        assert {o.id for o in final.operations(limit=1000)} == {
            o.id for o in cat.operations(limit=1000)
        }
        same_users(final.users, cat.users, ids["token"])
        assert final.restore(ids["old"]).status == "deprecated"
        assert final.restore(ids["gone"]).status == "active"


def test_copy_between_postgres_databases_and_refusal(
    source: tuple[Catalog, dict[str, str]], postgres: LocalPostgres
) -> None:
    cat, _ = source
    first = postgres.schema_url()
    ok("db", "copy", str(cat.root), first)
    other = f"{postgres.other_database('copy')}?schema=c1"
    result = json.loads(ok("db", "copy", first, other, "--json").stdout)
    assert result["sha256"] == catalog_digest(cat.backend).sha256
    before = digest_of(other)
    one_line_error(cli("db", "copy", str(cat.root), other), r"holds 6 records; copy only")
    assert digest_of(other) == before


def test_a_postgres_catalog_starts_at_the_current_version(pg_url: str) -> None:
    backend = open_backend(pg_url, create=True)
    try:
        info = backend.schema_info()
        assert info.version == info.code_version == PG_VERSION and info.up_to_date
        assert [m.version for m in info.applied] == list(range(1, PG_VERSION + 1))
        assert all(m.applied_at is not None for m in info.applied)
    finally:
        backend.close()
    status = json.loads(ok("db", "status", pg_url, "--json").stdout)
    assert status["url"] == pg_url and status["records"] == 0


def _pg_version_row(url: str, sql: str) -> None:
    import psycopg

    from arcodex.backends._postgres import parse_postgres_url

    params, _, schema = parse_postgres_url(url)
    with psycopg.connect(**params) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(sql)  # type: ignore[arg-type]


def test_a_newer_postgres_schema_is_refused(pg_url: str) -> None:
    open_backend(pg_url, create=True).close()
    _pg_version_row(pg_url, "INSERT INTO arcodex_schema(version, description) VALUES (7, 'x')")
    message = rf"made by a newer arcodex \(schema 7, this one knows {PG_VERSION}\); upgrade arcodex"
    with pytest.raises(StorageError, match=message):
        open_backend(pg_url)
    one_line_error(cli("db", "status", pg_url), message)
    one_line_error(cli("db", "upgrade", pg_url), message)


def test_an_older_postgres_schema_is_refused_until_upgraded(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.backends import _postgres_admin

    backend = open_backend(pg_url, create=True)
    backend.add([Record(id="kept", metadata={"site": "MHD"})])
    backend.close()
    new = PG_VERSION + 1
    step = Migration(new, "test: a note on each schema", "ALTER TABLE schemas ADD COLUMN note text")
    monkeypatch.setattr(_postgres_admin, "MIGRATIONS", [*_postgres_admin.MIGRATIONS, step])
    older = rf"catalog schema {PG_VERSION} is older than this arcodex \({new}\); run `arcodex db upgrade`"
    with pytest.raises(StorageError, match=older):
        open_backend(pg_url)
    status = json.loads(ok("db", "status", pg_url, "--json").stdout)
    assert status["schema"]["pending"] == [f"{new}: test: a note on each schema"]
    dry = json.loads(ok("db", "upgrade", pg_url, "--dry-run", "--json").stdout)
    assert dry["migrations"] == [f"{new}: test: a note on each schema"]
    assert dry["version"] == PG_VERSION
    with pytest.raises(StorageError, match=older):
        open_backend(pg_url)
    assert f"from schema {PG_VERSION} to {new}" in ok("db", "upgrade", pg_url).stdout
    backend = open_backend(pg_url)
    try:
        assert backend.schema_info().version == new
        assert backend.get("kept").metadata == {"site": "MHD"}
        backend.put_schema("obs@1", "{}")
        assert [m.version for m in backend.schema_info().applied] == list(range(1, new + 1))
    finally:
        backend.close()
    assert "up to date" in ok("db", "upgrade", pg_url).stdout


def test_a_schema_3_postgres_catalog_gets_its_extents_from_db_upgrade(pg_url: str) -> None:
    """Schema 4 puts each record's time and box on its text rows: an upgrade computes them
    in SQL, and they must be what an add of the same records writes."""
    import psycopg

    from arcodex.backends._postgres import parse_postgres_url

    records = [
        Record(id="plain", metadata={"site": "MHD"}),
        Record(
            id="both",
            metadata={
                "site": "MHD",
                "inst": "picarro",
                "bbox": [-10.5, 51.25, -9.75, 53.5],
                "start_datetime": "2020-01-01T00:00:00Z",
                "end_datetime": "2020-12-31T23:59:59Z",
            },
        ),
        Record(id="seam", metadata={"site": "TAC", "bbox": [170, -5, -170, 5]}),
        Record(id="moment", metadata={"site": "TAC", "datetime": "2021-06-01"}),
    ]
    backend = open_backend(pg_url, create=True)
    backend.add(records)
    backend.close()
    params, _, schema = parse_postgres_url(pg_url)
    rows_sql = "SELECT pid, k, rid, t0, t1, w, s, e, n FROM meta_txt ORDER BY rid, pid, k"
    with psycopg.connect(**params) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        written = conn.execute(rows_sql).fetchall()
    assert {r[3:] for r in written if r[2] == 1} == {(None,) * 6}
    assert all(None not in r[3:] for r in written if r[2] == 2)
    # The catalog as schema 3 left it: no extent columns, the index without them.
    _pg_version_row(
        pg_url,
        "DROP INDEX meta_txt_key; ALTER TABLE meta_txt DROP COLUMN t0, DROP COLUMN t1,"
        " DROP COLUMN w, DROP COLUMN s, DROP COLUMN e, DROP COLUMN n;"
        " CREATE INDEX meta_txt_key ON meta_txt (pid, k, rid);"
        " DELETE FROM arcodex_schema WHERE version = 4",
    )
    with pytest.raises(StorageError, match="older than this arcodex"):
        open_backend(pg_url)
    assert "from schema 3 to 4" in ok("db", "upgrade", pg_url).stdout
    with psycopg.connect(**params) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        assert conn.execute(rows_sql).fetchall() == written
    backend = open_backend(pg_url)
    try:
        query = Query.parse(["site=MHD"], time="2020-06", bbox="-10,52,-9,53", limit=None)
        assert backend.ids(query) == ["both"]
        assert backend.ids(Query.parse(["site=TAC"], bbox="179,0,180,1", limit=None)) == ["seam"]
    finally:
        backend.close()


def test_bad_postgres_urls_are_one_line_errors(
    source: tuple[Catalog, dict[str, str]], postgres: LocalPostgres
) -> None:
    cat, _ = source
    unreachable = "postgresql://nobody@127.0.0.1:9/nothing"
    one_line_error(cli("db", "copy", str(cat.root), unreachable), r"cannot reach PostgreSQL")
    missing = f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}/no_such_db_x"
    line = one_line_error(cli("db", "status", missing), r"does not exist")
    assert postgres.password not in line
    empty_schema = postgres.schema_url()
    one_line_error(cli("db", "status", empty_schema), r"no arcodex catalog in schema")


# -- the schema registry in the database ---------------------------------------------------


def test_schema_files_of_an_older_catalog_are_imported_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    # What an older arcodex left: schemas as files beside the database.
    (root / "schemas").mkdir()
    (root / "schemas" / "obs@1.json").write_text(json.dumps(OBS), encoding="utf-8")
    (root / "schemas" / "obs@2.json").write_text('{"type": "object"}', encoding="utf-8")
    (root / "schemas" / "broken@1.json").write_text("{not json", encoding="utf-8")
    with Catalog.open(root) as cat:
        cat.register_schema("obs@2", {"type": "object", "title": "newer"})
        assert cat.list_schemas() == ["obs@1", "obs@2"]
        assert cat.backend.schema_keys() == ["obs@1", "obs@2"]
        assert cat.get_schema("obs@2")["title"] == "newer", "the database wins over a file"
        rec = cat.add_external("https://e.org/a", metadata={"site": "MHD"}, schema="obs@1")
        assert [r.valid for r in cat.validate(rec.id)] == [True]
    assert (root / "schemas" / "obs@1.json").is_file(), "the user's files are left alone"
    (root / "schemas" / "obs@1.json").unlink()
    with Catalog.open(root) as cat:
        assert cat.list_schemas() == ["obs@1", "obs@2"], "kept in the database"


def test_hosts_sharing_a_postgres_catalog_see_the_same_schemas(pg_url: str, tmp_path: Path) -> None:
    config = CatalogConfig(database_url=pg_url, schema_policy="strict")
    with (
        Catalog.create(tmp_path / "host-a", config=config) as a,
        Catalog.create(tmp_path / "host-b", config=config) as b,
    ):
        a.register_schema("obs@1", OBS)
        assert b.list_schemas() == ["obs@1"]
        assert b.get_schema("obs") == OBS
        with pytest.raises(ValidationError, match="site"):
            b.add_external("https://e.org/x", metadata={"other": 1}, schema="obs@1")
        rec = b.add_external("https://e.org/y", metadata={"site": "MHD"}, schema="obs")
        assert (rec.schema_name, rec.schema_version) == ("obs", "1")
        assert not (tmp_path / "host-a" / "schemas").exists(), "no file: the database holds it"


def test_schema_files_are_read_in_place_when_the_database_cannot_take_them(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cat"
    Catalog.create(root, config=CatalogConfig(busy_timeout=0.2)).close()
    (root / "schemas").mkdir()
    (root / "schemas" / "obs@1.json").write_text(json.dumps(OBS), encoding="utf-8")
    with closing(sqlite3.connect(root / "catalog.sqlite", isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
        with Catalog.open(root) as cat:
            assert cat.list_schemas() == ["obs@1"]
            assert cat.get_schema("obs@1") == OBS
        other.execute("ROLLBACK")
    with Catalog.open(root) as cat:
        assert cat.list_schemas() == ["obs@1"]
        assert cat.backend.schema_keys() == ["obs@1"], "imported once the database is free"


def test_a_postgres_catalog_without_its_version_table_is_upgraded_by_db_upgrade(
    pg_url: str,
) -> None:
    backend = open_backend(pg_url, create=True)
    backend.add([Record(id="kept")])
    backend.close()
    # What migration 1 made, taken away: the catalog is as it was before versions were kept.
    _pg_version_row(pg_url, "DROP TABLE arcodex_schema; DROP TABLE schemas")
    older = (
        rf"catalog schema 0 is older than this arcodex \({PG_VERSION}\); run `arcodex db upgrade`"
    )
    with pytest.raises(StorageError, match=older):
        open_backend(pg_url)
    assert json.loads(ok("db", "status", pg_url, "--json").stdout)["schema"]["version"] == 0
    assert f"from schema 0 to {PG_VERSION}" in ok("db", "upgrade", pg_url).stdout
    backend = open_backend(pg_url)
    try:
        assert backend.get("kept").id == "kept"
        assert backend.schema_keys() == []
        assert backend.schema_info().up_to_date
    finally:
        backend.close()
