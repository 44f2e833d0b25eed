"""Fixtures shared by the test modules: an S3 endpoint on loopback and its credentials, an
empty STAC extension schema cache, a one-node SLURM cluster and a PostgreSQL database.

With ``ARCODEX_TEST_BACKEND=postgres`` every catalog a test makes lives in PostgreSQL (a
fresh schema per catalog, see ``catalog_backend``), except in tests marked
``sqlite_only`` (tests of SQLite itself); ``./dev test`` runs the suite both ways.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
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


@pytest.fixture(autouse=True)
def catalog_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the PostgreSQL run, every catalog the test makes gets a schema of its own.

    ``Catalog.create`` without a database URL writes a fresh schema's URL into the new
    catalog's arcodex.yaml, so that opening it again, from this process or from a
    ``arcodex`` child process, reaches the same schema, and two catalogs of one test
    (a reference and a subject, two hosts) stay apart.
    """
    if TEST_BACKEND != "postgres":
        yield
        return
    from arcodex.catalog import Catalog, CatalogConfig

    server: LocalPostgres = request.getfixturevalue("postgres")
    create = Catalog.create.__func__  # type: ignore[attr-defined]

    def create_on_postgres(
        cls: type[Catalog], path: Any, *, config: CatalogConfig | None = None
    ) -> Catalog:
        config = config or CatalogConfig()
        if config.database_url is None:
            config = config.model_copy(update={"database_url": server.schema_url()})
        return create(cls, path, config=config)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Catalog, "create", classmethod(create_on_postgres))
        yield


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
