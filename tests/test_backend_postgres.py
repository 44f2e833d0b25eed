"""The PostgreSQL backend: the shared contract, plus what only PostgreSQL has."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from arcodex.backends import CatalogBackend, open_backend
from arcodex.backends._postgres import HOLDERS_SQL, PREFIX_SQL, SOURCES_SQL, PostgresBackend
from arcodex.catalog import Catalog, CatalogConfig, load_config
from arcodex.cli import app
from arcodex.errors import (
    AuthError,
    ConflictError,
    LockTimeoutError,
    NotACatalogError,
    NotFoundError,
    QueryError,
    StorageError,
    ValidationError,
)
from arcodex.model import Artifact, LocalPath, Query, Record
from arcodex.testing import BackendContract, LocalPostgres, sample_records


class TestPostgresContract(BackendContract):
    """The same contract as SQLite's; each test gets a schema of its own.

    ``create_backend(path)`` names the schema after ``path``, so that a second call with
    the same path opens the same catalog, as the contract asks.
    """

    @pytest.fixture(autouse=True)
    def _server(self, postgres: LocalPostgres) -> None:
        self.server = postgres

    def create_backend(self, path: Path) -> CatalogBackend:
        schema = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
        return PostgresBackend(self.server.schema_url(schema), create=True, busy_timeout=10.0)


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def backend(pg_url: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(pg_url, create=True, busy_timeout=2.0)
    try:
        yield backend
    finally:
        backend.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line_without(message: str, secret: str) -> None:
    assert "\n" not in message, message
    assert secret not in message, message


def _schema_url(postgres: LocalPostgres, schema: str) -> str:
    return postgres.schema_url(schema)


# -- URLs, schemas and opening ---------------------------------------------------------------


def test_url_names_no_password(backend: PostgresBackend, postgres: LocalPostgres) -> None:
    assert backend.url.startswith("postgresql://")
    assert backend.schema in backend.url
    assert postgres.password not in backend.url
    assert postgres.password not in backend.conninfo
    assert "password" not in backend.conninfo


def test_open_backend_dispatches_both_schemes(pg_url: str) -> None:
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        backend = open_backend(url, create=True)
        try:
            assert isinstance(backend, PostgresBackend)
            backend.add([Record(id=f"via-{url[:8]}")]) if url is pg_url else None
        finally:
            backend.close()


def test_tables_live_in_the_schema_named_by_the_url(
    backend: PostgresBackend, postgres: LocalPostgres
) -> None:
    backend.add([Record(id="a")])
    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [backend.schema],
        ).fetchall()
        assert {"records", "meta_txt", "meta_num", "paths"} <= {r[0] for r in rows}
        public = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert public is not None and public[0] == 0


def test_create_false_on_an_empty_schema(postgres: LocalPostgres) -> None:
    url = postgres.schema_url()
    with pytest.raises(NotACatalogError, match="no arcodex catalog in schema") as info:
        PostgresBackend(url)
    _one_line_without(str(info.value), postgres.password)


@pytest.mark.parametrize("create", [False, True])
def test_schema_with_foreign_tables_is_refused(postgres: LocalPostgres, create: bool) -> None:
    schema = f"birds_{int(create)}_{os.getpid()}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {schema}.birds (name text)")
    with pytest.raises(NotACatalogError, match="choose another schema"):
        PostgresBackend(postgres.schema_url(schema), create=create)
    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    assert [r[0] for r in rows] == ["birds"], "nothing was added to the foreign schema"


def test_two_handles_one_catalog(backend: PostgresBackend, pg_url: str) -> None:
    records = sample_records()
    backend.add(records)
    again = PostgresBackend(pg_url)
    try:
        assert again.get("s1") == records[0]
        assert again.count(Query.parse(["site=MHD"])) == 2
    finally:
        again.close()


def test_close_then_use_again(backend: PostgresBackend) -> None:
    backend.add([Record(id="a")])
    backend.close()
    assert backend.get("a").id == "a"


# -- errors: one line, no secret ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://someone:s3cr3t-pw@127.0.0.1:99999/db",
        "postgresql://someone:s3cr3t-pw@127.0.0.1/db?no_such_option=1",
        "postgresql://someone:s3cr3t-pw@127.0.0.1/db?schema=Bad-Name",
    ],
)
def test_bad_url(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        PostgresBackend(url)
    _one_line_without(str(info.value), "s3cr3t-pw")


def test_wrong_password(postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "not-the-password-42")
    with pytest.raises(AuthError) as info:
        PostgresBackend(postgres.schema_url(), create=True)
    message = str(info.value)
    assert f"refused user {postgres.user} on 127.0.0.1:{postgres.port}" in message
    assert "PGPASSWORD" in message and "ARCODEX_DATABASE_PASSWORD" in message
    _one_line_without(message, "not-the-password-42")
    _one_line_without(message, postgres.password)


def test_wrong_password_given_to_arcodex(
    postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(AuthError) as info:
        PostgresBackend(postgres.schema_url(), create=True, password="wrong-given-77")
    _one_line_without(str(info.value), "wrong-given-77")


def test_password_in_a_url_stays_out_of_url_and_conninfo(
    postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    url = postgres.schema_url().replace(
        f"{postgres.user}@", f"{postgres.user}:{postgres.password}@", 1
    )
    backend = PostgresBackend(url, create=True)
    try:
        backend.add([Record(id="a")])
        assert postgres.password not in backend.url
        assert postgres.password not in backend.conninfo
        assert postgres.password not in repr(vars(backend).get("_params"))
        # A dedicated connection (as the shared-operations part opens) works from these alone.
        with psycopg.connect(backend.conninfo, **backend._connect_kwargs()) as conn:
            row = conn.execute("SELECT count(*) FROM records").fetchone()
            assert row is not None and row[0] == 1
    finally:
        backend.close()


def test_password_from_pgpass(
    postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{postgres.user}:{postgres.password}\n")
    passfile.chmod(0o600)
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    backend = PostgresBackend(postgres.schema_url(), create=True)
    try:
        backend.add([Record(id="a")])
        assert backend._connect_kwargs() == {}
        with psycopg.connect(backend.conninfo, **backend._connect_kwargs()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        backend.close()


def test_unreachable_server(postgres: LocalPostgres) -> None:
    port = _free_port()
    url = f"postgresql://{postgres.user}@127.0.0.1:{port}/{postgres.database}"
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        PostgresBackend(url)
    message = str(info.value)
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in message
    assert "is the server running?" in message
    _one_line_without(message, postgres.password)
    assert time.monotonic() - started < 10


def test_connect_timeout_from_the_url(postgres: LocalPostgres) -> None:
    """A server that takes the connection and never answers: the URL's timeout ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://{postgres.user}@127.0.0.1:{port}/db?connect_timeout=1"
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            PostgresBackend(url)
        elapsed = time.monotonic() - started
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port} (no answer within 1s)" in str(info.value)
    assert 0.9 < elapsed < 5


def test_missing_database(postgres: LocalPostgres) -> None:
    url = f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/no_such_db_{os.getpid()}"
    with pytest.raises(NotACatalogError) as info:
        PostgresBackend(url, create=True)
    message = str(info.value)
    assert (
        f"database no_such_db_{os.getpid()} does not exist on 127.0.0.1:{postgres.port}" in message
    )
    assert "createdb" in message
    _one_line_without(message, postgres.password)


def test_locked_record_times_out(backend: PostgresBackend, postgres: LocalPostgres) -> None:
    backend.add([Record(id="kept", title="before")])
    kept = backend.get("kept")
    with psycopg.connect(backend.conninfo, **backend._connect_kwargs()) as other:
        other.execute("SELECT 1 FROM records WHERE id = 'kept' FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            backend.update(kept.model_copy(update={"version": 2}), expected_version=1)
        assert isinstance(info.value, TimeoutError)
        assert "busy_timeout" in str(info.value)
        assert time.monotonic() - started < 10
        # Row locks only: other records and reads go on.
        backend.add([Record(id="other")])
        assert backend.get("kept") == kept
        other.rollback()
    backend.update(kept.model_copy(update={"version": 2}), expected_version=1)


def test_bad_regular_expression_is_a_query_error(backend: PostgresBackend) -> None:
    backend.add([Record(id="a", metadata={"s": "x"})])
    with pytest.raises(QueryError):
        backend.search(Query.parse(["s~/(?P<name>x)/"]))


# -- concurrency -----------------------------------------------------------------------------


def test_one_of_two_updates_with_one_version_wins(backend: PostgresBackend) -> None:
    backend.add([Record(id="r", title="old")])
    record = backend.get("r")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def change(title: str) -> None:
        barrier.wait(timeout=10)
        try:
            backend.update(
                record.model_copy(update={"title": title, "version": 2}), expected_version=1
            )
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=change, args=(t,)) for t in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "won"]
    final = backend.get("r")
    assert final.version == 2 and final.title in ("a", "b")


def _add_many(url: str, worker: int, count: int) -> None:
    backend = PostgresBackend(url)
    try:
        for start in range(0, count, 50):
            backend.add(
                [
                    Record(
                        id=f"w{worker}-{i}", metadata={"worker": worker, "i": i, "w": f"w{worker}"}
                    )
                    for i in range(start, start + 50)
                ]
            )
    finally:
        backend.close()


def test_processes_adding_lose_and_duplicate_nothing(backend: PostgresBackend, pg_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_add_many, args=(pg_url, w, 500)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    ids = backend.ids(Query(limit=None))
    assert len(ids) == 2000 and len(set(ids)) == 2000
    assert backend.count(Query.parse(["worker=2"])) == 500
    assert {f.path: f.count for f in backend.fields()} == {"worker": 2000, "i": 2000, "w": 2000}


def test_concurrent_adds_of_one_id_conflict_naming_it(backend: PostgresBackend) -> None:
    backend.add([Record(id="taken")])
    with pytest.raises(ConflictError, match="taken"):
        backend.add([Record(id="free"), Record(id="taken")])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add() -> None:
        barrier.wait(timeout=10)
        try:
            backend.add([Record(id="race", metadata={"k": 1})])
            outcomes.append("added")
        except ConflictError as exc:
            outcomes.append("conflict" if "race" in str(exc) else str(exc))

    threads = [threading.Thread(target=add) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["added", "conflict"]
    assert backend.count(Query.parse(["k=1"])) == 1


def test_a_forked_child_gets_its_own_pool(backend: PostgresBackend) -> None:
    backend.add([Record(id="parent")])
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_child_adds, args=(backend,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    # The parent's connections were left alone by the child.
    assert sorted(backend.ids(Query(limit=None))) == ["child", "parent"]


def _child_adds(backend: PostgresBackend) -> None:
    backend.add([Record(id="child")])
    backend.close()


# -- indexes ---------------------------------------------------------------------------------

#: Tables a selective search must never read whole.
_BIG_TABLES = {"records", "meta_txt", "meta_num", "tags", "artifacts"}


@pytest.fixture(scope="module")
def indexed(postgres: LocalPostgres) -> Iterator[PostgresBackend]:
    """A few thousand varied records, analysed, so that the planner sees real statistics."""
    backend = PostgresBackend(postgres.schema_url(), create=True)
    backend.add(sample_records())
    records = []
    for i in range(4000):
        lon, lat = (i * 37) % 340 - 170, (i * 11) % 160 - 80
        records.append(
            Record(
                id=f"x{i:05d}",
                title=f"record number{i}",
                metadata={
                    "site": f"S{i % 400}",
                    "year": 1000 + i,
                    "obs": f"{1900 + i % 120}-0{1 + i % 9}-01",
                    "inst": {"name": f"I{i % 50}"},
                    "bbox": [lon, lat, lon + 1, lat + 1],
                    "datetime": f"{1900 + i % 120}-0{1 + i % 9}-0{1 + i % 9}T00:00:00Z",
                },
                tags=[f"t{i % 300}"],
                artifacts=[
                    Artifact(
                        locator=LocalPath(path=f"/data/x{i}.nc"),
                        hashes={"sha256": hashlib.sha256(str(i).encode()).hexdigest()},
                        metadata={"source_path": f"/src/x{i}.nc"},
                    )
                ],
            )
        )
    backend.add(records)
    with psycopg.connect(backend.conninfo, autocommit=True, **backend._connect_kwargs()) as conn:
        conn.execute("VACUUM ANALYZE")  # as a bulk add does: index-only scans need it
    try:
        yield backend
    finally:
        backend.close()


def _plan(backend: PostgresBackend, sql: str, params: list[object]) -> list[dict[str, object]]:
    """Every node of PostgreSQL's plan for ``sql``."""
    rows = backend._q(f"EXPLAIN (FORMAT JSON) {sql}", params)
    nodes: list[dict[str, object]] = []

    def walk(node: dict[str, object]) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):  # type: ignore[attr-defined]
            walk(child)

    walk(rows[0][0][0]["Plan"])
    return nodes


def _assert_indexed(nodes: list[dict[str, object]], index: str) -> None:
    used = {str(n.get("Index Name")) for n in nodes if "Index Name" in n}
    assert index in used, (index, [(n["Node Type"], n.get("Index Name")) for n in nodes])
    scans = [n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not set(scans) & _BIG_TABLES, scans


@pytest.mark.parametrize(
    ("terms", "options", "index"),
    [
        (["site=S7"], {}, "meta_txt_key"),
        (["site=[S1,S2]"], {}, "meta_txt_key"),
        (["inst.name=I3", "year>4900"], {}, "meta_num_key"),
        (["year>=4990"], {}, "meta_num_key"),
        (["obs<1900-02"], {}, "meta_num_key"),
        (["site~S39*"], {}, "meta_txt_key"),
        (["tag=t5"], {}, "tags_pkey"),
        (["site=MHD", "status=deleted"], {}, "meta_txt_key"),
        (["id=x00042"], {}, "records_id_key"),
        ([], {"text": "number42"}, "records_text"),
        ([], {"text": "mace head"}, "records_text"),
        ([], {"bbox": "10.2,20.2,10.4,20.4"}, "records_b1"),
        ([], {"time": "1950-03-03T00:00:00Z"}, "records_time"),
    ],
)
def test_search_uses_indexes(
    indexed: PostgresBackend, terms: list[str], options: dict[str, str], index: str
) -> None:
    compiled = indexed._compile(Query.parse(terms, **options))
    sql = f"SELECT r.rid {compiled.source} ORDER BY {compiled.order} LIMIT 101"
    _assert_indexed(_plan(indexed, sql, compiled.params), index)
    count_sql = f"SELECT count(*) {compiled.source}"
    scans = [n.get("Relation Name") for n in _plan(indexed, count_sql, compiled.params)]
    assert "records" not in [
        n.get("Relation Name")
        for n in _plan(indexed, count_sql, compiled.params)
        if n["Node Type"] == "Seq Scan"
    ], scans


def test_a_value_with_a_time_and_a_box_is_one_index_only_scan(indexed: PostgresBackend) -> None:
    """The site's entries of the metadata index carry each record's extent: the candidates
    of ``site=X`` + time + box come from the index alone, not a probe into ``records`` for
    every record of the site."""
    query = Query.parse(["site=S7"], time="1900/1950", bbox="-100,-60,100,60")
    compiled = indexed._compile(query)
    sql = f"SELECT r.rid {compiled.source} ORDER BY {compiled.order} LIMIT 101"
    nodes = _plan(indexed, sql, compiled.params)
    scans = [n for n in nodes if n.get("Index Name") == "meta_txt_key"]
    assert [n["Node Type"] for n in scans] == ["Index Only Scan"], nodes
    # A wide box is written so that it is tested on the site's candidates, never
    # intersected as a GiST bitmap of the whole catalog (PostgreSQL judges every box to
    # keep 0.5 %; at 1,000,000 records this one keeps 180,000); a narrow box keeps its
    # index (test_search_uses_indexes).
    assert "&& box(point(%s, %s), point(%s, %s))) IS TRUE" in compiled.source
    narrow = indexed._compile(Query.parse(["site=S7"], bbox="10.2,20.2,10.4,20.4"))
    assert "IS TRUE" not in narrow.source
    narrowed = str(scans[0].get("Filter", ""))
    assert all(column in narrowed for column in ("t0", "t1", "w", "e", "s", "n")), narrowed
    expected = [
        r.id
        for r in indexed.search(Query.parse(["site=S7"], limit=None)).records
        if indexed.search(
            Query.parse([f"id={r.id}"], time="1900/1950", bbox="-100,-60,100,60")
        ).records
    ]
    assert expected and indexed.ids(query.model_copy(update={"limit": None})) == expected


def test_lookups_use_indexes(indexed: PostgresBackend) -> None:
    digest = hashlib.sha256(b"7").hexdigest()
    holders = _plan(indexed, HOLDERS_SQL, [[digest], ["/data/x8.nc"]])
    _assert_indexed(holders, "artifacts_sha256")
    _assert_indexed(holders, "artifacts_location")
    _assert_indexed(_plan(indexed, SOURCES_SQL, [["/src/x9.nc"]]), "artifacts_source")
    _assert_indexed(_plan(indexed, PREFIX_SQL, ["x0004", "x0004\U0010ffff", 10]), "records_id_key")
    assert indexed.holders(sha256=[digest]) == [(digest, "x00007", "active")]
    assert indexed.sources(["/src/x9.nc"])[0][:2] == ("/src/x9.nc", "x00009")
    assert indexed.ids_with_prefix("x0004", limit=3) == ["x00040", "x00041", "x00042"]


# -- a catalog on PostgreSQL, and its secrets ----------------------------------------------------

runner = CliRunner()


def _everything_written(root: Path) -> str:
    """Every file of a catalog root, as text (config, events, journal, state)."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(root.rglob("*")) if p.is_file()
    )


def test_catalog_on_postgres_flow(tmp_path: Path, pg_url: str) -> None:
    datafile = tmp_path / "obs.csv"
    datafile.write_text("time,ch4\n2020-01-01,1900.1\n")
    root = tmp_path / "cat"
    with Catalog.create(root, config=CatalogConfig(database_url=pg_url)) as cat:
        assert (root / "arcodex.yaml").is_file()
        assert isinstance(cat.backend, PostgresBackend)
        assert not list(root.glob("*.sqlite")), "the records live in PostgreSQL"
        rec = cat.add_file(datafile, metadata={"site": "MHD", "year": 2020}, tags=["ch4"])
        assert Path(cat.path(rec.id)).read_bytes() == datafile.read_bytes()
        assert [r.id for r in cat.search("site=MHD").records] == [rec.id]
        assert cat.get(rec.id[:8]) == rec
        updated = cat.update(rec.id, set={"site": "TAC"})
        assert updated.version == rec.version + 1
        assert cat.search("site=MHD").records == []
        cat.delete(rec.id)
        assert cat.search("site=TAC").records == []
        cat.restore(rec.id)
        assert [r.id for r in cat.search("site=TAC").records] == [rec.id]
        assert cat.doctor(verify_hashes=True).clean
    with Catalog.open(root) as again:
        assert again.get(rec.id).metadata["site"] == "TAC"
        again.purge(rec.id)
        with pytest.raises(NotFoundError):
            again.get(rec.id)
        assert again.info().backend.startswith("postgresql://")


def test_init_with_database(tmp_path: Path, pg_url: str, postgres: LocalPostgres) -> None:
    root = tmp_path / "cat"
    result = runner.invoke(app, ["init", str(root), "--database", pg_url])
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((root / "arcodex.yaml").read_text())
    assert config["database_url"] == pg_url
    datafile = tmp_path / "a.csv"
    datafile.write_text("x\n1\n")
    added = runner.invoke(app, ["--catalog", str(root), "add", str(datafile), "--json"])
    assert added.exit_code == 0, added.stderr
    info = runner.invoke(app, ["--catalog", str(root), "info", "--json"])
    assert json.loads(info.stdout)["backend"] == pg_url
    assert postgres.password not in _everything_written(root)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:hunter2-secret@127.0.0.1/db",
        "postgresql://alice@127.0.0.1/db?password=hunter2-secret",
    ],
)
def test_init_refuses_a_password_in_the_url(tmp_path: Path, url: str) -> None:
    root = tmp_path / "cat"
    result = runner.invoke(app, ["init", str(root), "--database", url])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PGPASSWORD, ~/.pgpass or ARCODEX_DATABASE_PASSWORD" in lines[0]
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert not (root / "arcodex.yaml").exists()


def test_config_file_with_a_password_is_refused(tmp_path: Path) -> None:
    (tmp_path / "arcodex.yaml").write_text(
        "database_url: postgresql://alice:hunter2-secret@127.0.0.1/db\n"
    )
    with pytest.raises(ValidationError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert "ARCODEX_DATABASE_PASSWORD" in message
    _one_line_without(message, "hunter2-secret")


def test_password_setting_is_never_serialised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCODEX_DATABASE_PASSWORD", "hunter2-secret")
    config = CatalogConfig(database_url="postgresql://alice@127.0.0.1/db")
    assert config.database_password is not None
    assert config.database_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in config.to_yaml()
    assert "database_password" not in config.to_yaml()
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config.model_dump())


def test_password_from_arcodex_database_password(
    tmp_path: Path, pg_url: str, postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("ARCODEX_DATABASE_PASSWORD", postgres.password)
    root = tmp_path / "cat"
    with Catalog.create(root, config=CatalogConfig(database_url=pg_url)) as cat:
        cat.add_records([Record(id="a")])
    with Catalog.open(root) as cat:
        assert cat.get("a").id == "a"
    assert postgres.password not in _everything_written(root)


def test_password_in_the_environment_url_stays_in_memory(
    tmp_path: Path, pg_url: str, postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARCODEX_DATABASE_URL may carry the password: it is split off and never written."""
    monkeypatch.delenv("PGPASSWORD")
    secret_url = pg_url.replace(f"{postgres.user}@", f"{postgres.user}:{postgres.password}@", 1)
    monkeypatch.setenv("ARCODEX_DATABASE_URL", secret_url)
    root = tmp_path / "cat"
    result = runner.invoke(app, ["init", str(root), "--json"])
    assert result.exit_code == 0, result.stderr
    assert postgres.password not in result.stdout
    datafile = tmp_path / "a.csv"
    datafile.write_text("x\n1\n")
    added = runner.invoke(app, ["--catalog", str(root), "add", str(datafile)])
    assert added.exit_code == 0, added.stderr
    info = runner.invoke(app, ["--catalog", str(root), "info", "--json"])
    assert info.exit_code == 0, info.stderr
    assert postgres.password not in info.stdout + info.stderr
    assert json.loads(info.stdout)["backend"] == pg_url
    assert yaml.safe_load((root / "arcodex.yaml").read_text())["database_url"] == pg_url
    assert postgres.password not in _everything_written(root)


def test_unreachable_catalog_is_one_line_from_the_cli(
    tmp_path: Path, postgres: LocalPostgres
) -> None:
    url = f"postgresql://{postgres.user}@127.0.0.1:{_free_port()}/{postgres.database}"
    result = runner.invoke(app, ["init", str(tmp_path / "cat"), "--database", url])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach PostgreSQL" in lines[0], result.stderr


# -- a bulk add: chunks prepared while the previous one is copied ----------------------------


def _bulk(count: int, *, first: int = 0) -> list[Record]:
    # A field appears only in later chunks (its path id is made mid-add), another in all.
    return [
        Record(
            id=f"bulk-{i:05d}",
            title=f"bulk record {i}",
            metadata={"n": i, **({"late": {"x": i % 3}} if i >= first + count - 5 else {})},
        )
        for i in range(first, first + count)
    ]


def test_a_bulk_add_in_many_chunks_is_whole(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.backends import _postgres

    monkeypatch.setattr(_postgres, "_CHUNK", 7)
    backend.add(_bulk(40))
    assert backend.count(Query()) == 40
    assert backend.count(Query.parse(["n>=33"])) == 7
    assert backend.count(Query.parse(["late.x=2"])) == 2  # of 35..39, 35 and 38
    assert backend.count(Query(text="bulk")) == 40
    fields = {f.path: f.count for f in backend.fields()}
    assert fields["n"] == 40 and fields["late.x"] == 5


def test_a_bulk_add_that_fails_in_a_late_chunk_adds_nothing(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.backends import _postgres

    monkeypatch.setattr(_postgres, "_CHUNK", 7)
    backend.add([Record(id="taken", title="first")])
    real = _postgres.PostgresBackend._insert
    calls = []

    def failing(self: PostgresBackend, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 4:
            raise StorageError("the disk is full")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_postgres.PostgresBackend, "_insert", failing)
    with pytest.raises(StorageError, match="disk is full"):
        backend.add(_bulk(40))
    assert len(calls) == 4  # three chunks were copied before the failure
    assert backend.count(Query()) == 1
    assert {f.path for f in backend.fields()} == set()


def test_a_large_bulk_add_leaves_the_planner_statistics_of_what_it_added(
    backend: PostgresBackend,
) -> None:
    # 12,000 records, 40 sites, each site's records ~2.5 % of all: the planner must count
    # a site's records from statistics of its path and value together, not as if the
    # path and the value were independent (which made it expect one record, not 300).
    backend.add(
        [
            Record(id=f"s{i:05d}", metadata={"site": f"S{i % 40}", "k": f"v{i % 7}", "n": i})
            for i in range(12_000)
        ]
    )
    assert _analysed(backend) == {"meta_num", "meta_txt", "records"}
    extended = backend._q(
        "SELECT stxname FROM pg_statistic_ext"
        " WHERE stxnamespace = current_schema()::regnamespace ORDER BY stxname"
    )
    assert [r[0] for r in extended] == ["meta_txt_paths"]
    compiled = backend._compile(Query.parse(["site=S7"], limit=100))
    sql = f"SELECT r.rid {compiled.source}"
    estimate = _plan(backend, sql, compiled.params)[0]["Plan Rows"]
    assert 225 <= float(estimate) <= 400, estimate  # 300 records hold site S7
    assert backend.count(Query.parse(["site=S7"])) == 300


def test_a_small_add_leaves_statistics_to_autovacuum(backend: PostgresBackend) -> None:
    backend.add([Record(id=f"t{i}", metadata={"site": "X"}) for i in range(50)])
    assert _analysed(backend) == set()


def _analysed(backend: PostgresBackend) -> set[str]:
    """The catalog tables of which the planner has column statistics."""
    rows = backend._q(
        "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()"
        " AND tablename IN ('records', 'meta_txt', 'meta_num')"
    )
    return {str(r[0]) for r in rows}
