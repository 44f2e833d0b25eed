"""The PostgreSQL backend: the shared contract, plus what only PostgreSQL has."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from arcodex.backends import CatalogBackend
from arcodex.backends._postgres import PostgresBackend
from arcodex.testing import BackendContract, LocalPostgres


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
