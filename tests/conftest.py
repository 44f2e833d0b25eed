"""Fixtures shared by the test modules: an S3 endpoint on loopback and its credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arcodex.testing import S3_KEY_ID, S3_SECRET, s3_server


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
