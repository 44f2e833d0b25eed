"""Fixtures shared by the test modules: an S3 endpoint on loopback and its credentials, an
empty STAC extension schema cache, a one-node SLURM cluster and a PostgreSQL database.

With ``ARCODEX_TEST_BACKEND=postgres`` every catalog a test makes lives in PostgreSQL (a
fresh schema per catalog, see ``catalog_backend``), except in tests marked
``sqlite_only`` (tests of SQLite itself); ``./dev test`` runs the suite both ways. A
module-scoped fixture that makes catalogs requests ``module_catalog_backend`` for the same;
one that does not fails (``catalog_guard``) rather than stay on SQLite unseen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from arcodex.testing import S3_KEY_ID, S3_SECRET, LocalPostgres, LocalSlurm, s3_server

#: Which backend the catalogs of this run use: ``sqlite`` (default) or ``postgres``.
TEST_BACKEND = os.environ.get("ARCODEX_TEST_BACKEND", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    if TEST_BACKEND not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"ARCODEX_TEST_BACKEND={TEST_BACKEND!r}: choose sqlite or postgres")


#: Modules the PostgreSQL run leaves out: they make no catalog (or only document one), or
#: they choose their backends themselves and already run on both.
NO_CATALOG = frozenset(
    {
        "test_backend_postgres.py",
        "test_db_admin.py",
        "test_opstate.py",
        "test_serve_workers.py",
        "test_shared_catalog.py",
        "test_archives.py",
        "test_cli_startup.py",
        "test_config_env.py",
        "test_environment.py",
        "test_exported_members.py",
        "test_extract_netcdf.py",
        "test_extract_netcdf_header.py",
        "test_import_layers.py",
        "test_model.py",
        "test_readme.py",
        "test_scan_memo.py",
        "test_skip_policy.py",
        "test_storage.py",
    }
)


def _sqlite_only(item: pytest.Item) -> bool:
    return item.get_closest_marker("sqlite_only") is not None or item.path.name in NO_CATALOG


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_BACKEND != "postgres":
        return
    # Deselected, not skipped: the SQLite run has them.
    kept = [item for item in items if not _sqlite_only(item)]
    gone = [item for item in items if _sqlite_only(item)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = kept


def _create_on(server: LocalPostgres, create: Any) -> Any:
    """``create`` (the function of ``Catalog.create``), giving a catalog without a database
    URL a fresh schema of ``server``."""
    from arcodex.catalog import Catalog, CatalogConfig

    def create_on_postgres(
        cls: type[Catalog], path: Any, *, config: CatalogConfig | None = None
    ) -> Catalog:
        config = config or CatalogConfig()
        if config.database_url is None:
            config = config.model_copy(update={"database_url": server.schema_url()})
        return create(cls, path, config=config)  # type: ignore[no-any-return]

    return create_on_postgres


@pytest.fixture(scope="session", autouse=True)
def catalog_guard() -> Iterator[None]:
    """In the PostgreSQL run, a catalog made outside ``catalog_backend`` and
    ``module_catalog_backend`` (which give it a schema) is an error, not a silent SQLite
    catalog: a module- or session-scoped fixture that makes one must request
    ``module_catalog_backend``.
    """
    if TEST_BACKEND != "postgres":
        yield
        return
    from arcodex.catalog import Catalog, CatalogConfig

    create = Catalog.create.__func__  # type: ignore[attr-defined]

    def create_guarded(
        cls: type[Catalog], path: Any, *, config: CatalogConfig | None = None
    ) -> Catalog:
        if config is None or config.database_url is None:
            raise RuntimeError(
                f"catalog {path} made outside the PostgreSQL patch of this run (it would be"
                " on SQLite): a fixture wider than a test that makes catalogs must request"
                " module_catalog_backend (tests/conftest.py)"
            )
        return create(cls, path, config=config)  # type: ignore[no-any-return]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Catalog, "create", classmethod(create_guarded))
        yield


@contextmanager
def _on_postgres(server: LocalPostgres) -> Iterator[None]:
    """``Catalog.create`` gives a catalog without a database URL a fresh schema of
    ``server``; on the way out, the pool of every PostgreSQL catalog made or opened in this
    process meanwhile is closed.

    Closed, because a catalog nobody closes keeps its connections (up to 8, and the leases'
    one) until the garbage collector finds it: an app tested through
    ``httpx.ASGITransport`` never runs the lifespan that closes its catalog, and a few dozen
    of those in a row used up the server's connection slots. A closed pool opens again
    when the catalog is used.
    """
    import weakref

    from arcodex.catalog import Catalog

    create = _create_on(server, Catalog.create.__func__)  # type: ignore[attr-defined]
    open_ = Catalog.open.__func__  # type: ignore[attr-defined]
    made: weakref.WeakSet[Catalog] = weakref.WeakSet()

    def create_kept(cls: type[Catalog], path: Any, **kwargs: Any) -> Catalog:
        catalog: Catalog = create(cls, path, **kwargs)
        made.add(catalog)
        return catalog

    def open_kept(cls: type[Catalog], path: Any) -> Catalog:
        catalog: Catalog = open_(cls, path)
        made.add(catalog)
        return catalog

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Catalog, "create", classmethod(create_kept))
        patch.setattr(Catalog, "open", classmethod(open_kept))
        yield
    for catalog in list(made):
        if catalog.backend.url.startswith("postgresql:"):
            catalog.close()


@pytest.fixture(autouse=True)
def catalog_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the PostgreSQL run, every catalog the test makes gets a schema of its own.

    ``Catalog.create`` without a database URL writes a fresh schema's URL into the new
    catalog's arcodex.yaml, so that opening it again, from this process or from a
    ``arcodex`` child process, reaches the same schema, and two catalogs of one test
    (a reference and a subject, two hosts) stay apart. The catalogs the test made or
    opened are closed after it (``_on_postgres``).
    """
    if TEST_BACKEND != "postgres":
        yield
        return
    with _on_postgres(request.getfixturevalue("postgres")):
        yield


@pytest.fixture(scope="module")
def module_catalog_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """``catalog_backend`` for a module-scoped fixture that makes catalogs (a served site, a
    fuzzed API): request it by name, as a parameter of that fixture.

    Not autouse, so that only the modules that need it keep catalogs for a whole module;
    its catalogs are closed once the fixtures that requested it (and the servers they
    started) have ended.
    """
    if TEST_BACKEND != "postgres":
        yield
        return
    with _on_postgres(request.getfixturevalue("postgres")):
        yield


@pytest.fixture
def copy_catalog() -> Callable[[Path, Path], Path]:
    """``copy(source, dest)``: a copy of the catalog at ``source`` in ``dest``, records too.

    ``shutil.copytree`` copies a SQLite catalog whole, but a PostgreSQL catalog's copy would
    share its schema (the URL in arcodex.yaml): here its tables are copied into a fresh
    schema, which the copy's arcodex.yaml names instead, so that a test may change the copy
    of a module's catalog without changing the module's.
    """

    def copy(source: Path, dest: Path) -> Path:
        from arcodex.catalog import Catalog

        shutil.copytree(source, dest)
        with Catalog.open(source) as cat:
            url = cat.backend.url
        if url.startswith("postgresql:"):
            _copy_schema(dest / "arcodex.yaml", url)
        return dest

    return copy


def _copy_schema(config: Path, url: str) -> None:
    """The tables of the PostgreSQL catalog at ``url`` copied into a fresh catalog schema,
    and the URL in ``config`` (an arcodex.yaml) pointed at it."""
    import graphlib
    import secrets

    from arcodex.backends import open_backend

    base, _, old = url.rpartition("?schema=")
    new = f"t_{secrets.token_hex(6)}"
    backend: Any = open_backend(f"{base}?schema={new}", create=True)
    try:
        with backend._tx() as conn:
            tables = [
                str(t)
                for (t,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                    [old],
                ).fetchall()
            ]
            # Rows of a referenced table (users) before the rows that reference them (tokens).
            parents: dict[str, set[str]] = {t: set() for t in tables}
            for child, parent in conn.execute(
                "SELECT c.relname, p.relname FROM pg_constraint k"
                " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid"
                " WHERE k.contype = 'f' AND k.connamespace = %s::regnamespace",
                [old],
            ).fetchall():
                if child != parent:
                    parents[str(child)].add(str(parent))
            ordered = list(graphlib.TopologicalSorter(parents).static_order())
            conn.execute("TRUNCATE " + ", ".join(f'"{new}"."{t}"' for t in ordered))
            for table in ordered:
                columns = conn.execute(
                    "SELECT column_name, udt_schema, udt_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = %s AND is_generated = 'NEVER'"
                    " ORDER BY ordinal_position",
                    [old, table],
                ).fetchall()
                names = ", ".join(f'"{c}"' for c, _, _ in columns)
                # A type of the schema (float8range) is another type in the copy's schema.
                values = ", ".join(
                    f'"{c}"::text::"{new}"."{t}"' if s == old else f'"{c}"' for c, s, t in columns
                )
                conn.execute(
                    f'INSERT INTO "{new}"."{table}" ({names}) OVERRIDING SYSTEM VALUE'
                    f' SELECT {values} FROM "{old}"."{table}"'
                )
            sequences = conn.execute(
                "SELECT sequencename, last_value FROM pg_sequences"
                " WHERE schemaname = %s AND last_value IS NOT NULL",
                [old],
            ).fetchall()
            for name, value in sequences:
                conn.execute("SELECT setval(%s, %s)", [f'"{new}"."{name}"', value])
    finally:
        backend.close()
    text = config.read_text(encoding="utf-8")
    assert text.count(f"?schema={old}") == 1, text
    config.write_text(text.replace(f"?schema={old}", f"?schema={new}"), encoding="utf-8")


@pytest.fixture(scope="session", autouse=True)
def stac_schema_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An empty extension schema cache: STAC validation must not depend on the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCODEX_STAC_SCHEMAS", str(tmp_path_factory.mktemp("stac-schemas")))
        yield


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, one per test module."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's credentials in the environment (where S3 profiles read them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalSlurm]:
    """The machine's one-node SLURM cluster, its commands pointed at it by ``SLURM_CONF``.

    Started (and SLURM installed, as root) by the first test process that needs it and
    shared by the others, stopped by the last (arcodex.testing._slurm). Where SLURM cannot
    be installed this fails; ``ARCODEX_SKIP_SLURM=1`` makes it a skip instead.
    """
    from arcodex.testing import OPT_OUT, SlurmUnavailable, local_slurm

    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(local_slurm())
        except SlurmUnavailable as exc:
            if os.environ.get(OPT_OUT, "") == "1":
                pytest.skip(f"{OPT_OUT}=1: {exc}")
            pytest.fail(str(exc), pytrace=False)
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in cluster.env().items():
            patch.setenv(name, value)
        yield cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A throwaway role and database of this test process on the machine's PostgreSQL
    (started when it is down), its password in ``PGPASSWORD`` for the whole session.

    Where PostgreSQL cannot be started this fails; ``ARCODEX_SKIP_POSTGRES=1`` makes it a
    skip instead (arcodex.testing._postgres).
    """
    from arcodex.testing import PG_OPT_OUT, PostgresUnavailable, local_postgres

    with ExitStack() as stack:
        try:
            server = stack.enter_context(local_postgres())
        except PostgresUnavailable as exc:
            if os.environ.get(PG_OPT_OUT, "") == "1":
                pytest.skip(f"{PG_OPT_OUT}=1: {exc}")
            pytest.fail(str(exc), pytrace=False)
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in server.env().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def pg_url(postgres: LocalPostgres) -> str:
    """A PostgreSQL catalog URL of its own: a fresh schema in the session's database."""
    return postgres.schema_url()
