"""Fixtures shared by the test modules: an S3 endpoint on loopback and its credentials, and an
empty STAC extension schema cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arcodex.testing import S3_KEY_ID, S3_SECRET, s3_server


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
