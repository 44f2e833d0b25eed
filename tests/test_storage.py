"""Storage profiles: one contract for file, memory and S3 (a real HTTP endpoint on loopback)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.errors import AuthError, StorageError, ValidationError
from arcodex.storage import (
    FileProfileConfig,
    FsspecStore,
    LocalStore,
    MemoryProfileConfig,
    S3ProfileConfig,
    open_storage,
)
from arcodex.testing import S3_KEY_ID, S3_SECRET


def _bucket(endpoint: str) -> str:
    import boto3

    name = f"arcodex-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


def _s3_profile(endpoint: str, **extra: Any) -> S3ProfileConfig:
    return S3ProfileConfig(
        bucket=_bucket(endpoint),
        prefix="managed",
        endpoint_url=endpoint,
        region="us-east-1",
        path_style=True,
        **extra,
    )


@pytest.fixture(params=["file", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | FsspecStore:
    if request.param == "file":
        return open_storage("local", FileProfileConfig(root=str(tmp_path / "files")), tmp_path)
    if request.param == "memory":
        root = f"arcodex-{uuid.uuid4().hex[:8]}"
        return open_storage("scratch", MemoryProfileConfig(root=root), tmp_path)
    request.getfixturevalue("s3_env")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_storage("s3-project", _s3_profile(endpoint), tmp_path)


# -- the contract every profile keeps --------------------------------------------------------


def test_write_read_hash(store: LocalStore | FsspecStore) -> None:
    key, size, sha = store.write_bytes(b"hello world", "dataset/a.nc")
    assert key == "dataset/a.nc"
    assert size == 11
    assert sha == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert store.exists(key)
    assert sorted(store.iter_keys()) == ["dataset/a.nc"]


def test_never_overwrites(store: LocalStore | FsspecStore) -> None:
    first, _, _ = store.write_bytes(b"one", "x/f.txt")
    second, _, _ = store.write_bytes(b"two", "x/f.txt")
    assert first == "x/f.txt"
    assert second == "x/f-1.txt"
    assert sorted(store.iter_keys()) == ["x/f-1.txt", "x/f.txt"]


def test_failed_write_leaves_nothing(store: LocalStore | FsspecStore) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise OSError("source vanished")
            return b"partial data"

    with pytest.raises((OSError, StorageError)):
        store.write_stream(Broken(), "y/broken.bin")  # type: ignore[arg-type]
    assert not store.exists("y/broken.bin")
    assert list(store.iter_keys()) == []


def test_delete(store: LocalStore | FsspecStore) -> None:
    key, _, _ = store.write_bytes(b"z", "d/z.txt")
    assert store.delete(key) is True
    assert store.delete(key) is False
    assert not store.exists(key)


# -- catalogs on S3 --------------------------------------------------------------------------


@pytest.fixture
def s3_catalog(tmp_path: Path, s3_endpoint: str, s3_env: None) -> Catalog:
    config = CatalogConfig(
        profiles={"local": FileProfileConfig(), "s3-project": _s3_profile(s3_endpoint)}
    )
    return Catalog.create(tmp_path / "cat", config=config)


def test_add_to_s3_profile_and_purge(s3_catalog: Catalog, tmp_path: Path) -> None:
    src = tmp_path / "obs.csv"
    src.write_bytes(b"time,ch4\n2020-01-01,1900\n")
    rec = s3_catalog.add_file(src, profile="s3-project", metadata={"site": "MHD"})
    art = rec.artifact()
    assert art.locator.type == "fsspec_url"
    assert art.locator.profile == "s3-project"  # type: ignore[union-attr]
    url = s3_catalog.path(rec.id)
    assert url.startswith("s3://") and url.endswith(".csv")
    store, _ = s3_catalog._store("s3-project")
    key = store.key_of(url)  # type: ignore[union-attr]
    assert key is not None
    assert store.fs.cat(store._path(key)) == src.read_bytes()  # type: ignore[union-attr]
    assert art.size_bytes == src.stat().st_size
    s3_catalog.purge(rec.id)
    assert not store.exists(key)


def test_secrets_never_reach_records_config_or_database(
    s3_catalog: Catalog, tmp_path: Path
) -> None:
    src = tmp_path / "obs.csv"
    src.write_bytes(b"x\n")
    rec = s3_catalog.add_file(src, profile="s3-project")
    s3_catalog.close()
    assert list((s3_catalog.root / "state" / "logs").glob("*.jsonl")), "the add was logged"
    for path in s3_catalog.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert S3_SECRET.encode() not in data, path
            assert S3_KEY_ID.encode() not in data, path
    reopened = Catalog.open(s3_catalog.root)
    assert S3_SECRET not in reopened.get(rec.id).model_dump_json()
    assert S3_SECRET not in str(reopened.info().to_dict())


def test_missing_credentials_is_one_clear_error(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    config = CatalogConfig(profiles={"s3": _s3_profile_no_bucket(s3_endpoint)})
    cat = Catalog.create(tmp_path / "cat", config=config)
    src = tmp_path / "a.txt"
    src.write_text("a")
    with pytest.raises(AuthError, match=r"\$AWS_ACCESS_KEY_ID"):
        cat.add_file(src, profile="s3")
    assert cat.count() == 0


def _s3_profile_no_bucket(endpoint: str) -> S3ProfileConfig:
    return S3ProfileConfig(
        bucket="never-created", endpoint_url=endpoint, region="us-east-1", path_style=True
    )


def test_unreachable_endpoint_changes_nothing(tmp_path: Path, s3_env: None) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    profile = S3ProfileConfig(
        bucket="nowhere",
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        path_style=True,
    )
    cat = Catalog.create(tmp_path / "cat", config=CatalogConfig(profiles={"s3": profile}))
    src = tmp_path / "a.txt"
    src.write_text("a")
    with pytest.raises(StorageError) as info:
        cat.add_file(src, profile="s3")
    message = str(info.value)
    assert "\n" not in message and "profile 's3'" in message
    assert S3_SECRET not in message
    assert cat.count() == 0


def test_credentials_file(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[project]\naws_access_key_id = {S3_KEY_ID}\naws_secret_access_key = {S3_SECRET}\n"
    )
    profile = _s3_profile(s3_endpoint, credentials_file=str(creds), credentials_section="project")
    cat = Catalog.create(tmp_path / "cat", config=CatalogConfig(profiles={"s3": profile}))
    src = tmp_path / "a.txt"
    src.write_text("a")
    rec = cat.add_file(src, profile="s3")
    assert cat.path(rec.id).startswith("s3://")
    assert S3_SECRET not in (cat.root / "arcodex.yaml").read_text()


def test_template_cannot_escape_the_root(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("a")
    for template in ("../{id}{ext}", "..", "{kind}/../../{id}"):
        config = CatalogConfig(profiles={"local": FileProfileConfig(path_template=template)})
        cat = Catalog.create(tmp_path / f"cat-{uuid.uuid4().hex[:6]}", config=config)
        with pytest.raises(ValidationError, match="unusable path"):
            cat.add_file(src)
        assert cat.count() == 0
        assert not (cat.root / "store").exists() or not any((cat.root / "store").rglob("*"))
    # A value cannot climb out either: it is reduced to safe characters.
    config = CatalogConfig(
        profiles={"local": FileProfileConfig(path_template="{metadata.site}/{id}")}
    )
    cat = Catalog.create(tmp_path / "cat-meta", config=config)
    rec = cat.add_file(src, metadata={"site": "../../etc"})
    assert Path(cat.path(rec.id)).resolve().is_relative_to((cat.root / "store").resolve())


def test_memory_profile_through_the_catalog(tmp_path: Path) -> None:
    root = f"arcodex-{uuid.uuid4().hex[:8]}"
    config = CatalogConfig(
        profiles={"local": FileProfileConfig(), "mem": MemoryProfileConfig(root=root)}
    )
    cat = Catalog.create(tmp_path / "cat", config=config)
    rec = cat.add_bytes(b"payload", name="n.txt", profile="mem")
    assert cat.path(rec.id) == f"memory://{root}/document/{rec.id}.txt"
    cat.purge(rec.id)
    store, _ = cat._store("mem")
    assert list(store.iter_keys()) == []


@pytest.fixture(scope="module")
def s3_checking_credentials() -> Iterator[str]:
    """A moto S3 server that checks credentials (every request is authenticated)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_wrong_credentials_are_one_clear_error(
    tmp_path: Path, s3_checking_credentials: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    profile = S3ProfileConfig(
        bucket="some-bucket",
        endpoint_url=s3_checking_credentials,
        region="us-east-1",
        path_style=True,
    )
    cat = Catalog.create(tmp_path / "cat", config=CatalogConfig(profiles={"s3": profile}))
    src = tmp_path / "a.txt"
    src.write_text("a")
    with pytest.raises(AuthError, match="access denied; check the credentials") as info:
        cat.add_file(src, profile="s3")
    assert S3_SECRET not in str(info.value)
    assert cat.count() == 0
    (failed,) = cat.logs(event="operation.failed")
    assert failed["exc_type"] == "AuthError"
    logs = "".join(p.read_text() for p in (cat.root / "state" / "logs").glob("*.jsonl"))
    assert S3_SECRET not in logs
