"""Reading a local Icechunk product prints no Icechunk warnings (its Rust log says a local
repository is "not safe for concurrent commits" on every open), and errors still show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog

pytest.importorskip("icechunk")


@pytest.fixture(scope="module")
def product(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> tuple[Path, str, str]:
    """A catalog with a local Icechunk product: (catalog root, record id, repository path)."""
    from arcodex.convert import convert

    base = tmp_path_factory.mktemp("quiet")
    files = write_archive(base / "src", "regular", files=1, steps=2)
    with Catalog.create(base / "cat") as cat:
        result = convert([str(f) for f in files], to="icechunk", catalog=cat, cluster="threads")
        return base / "cat", result.record.id, str(result.record.metadata["convert"]["url"])


def _run(
    root: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"}
    return subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "--catalog", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["open", "{id}"],
        ["show", "{id}"],
        ["check", "{id}"],
        ["add", "--in-place", "--allow-duplicate", "{repo}"],
    ],
    ids=["open", "show", "check", "add-in-place"],
)
def test_reads_print_no_icechunk_warning(product: tuple[Path, str, str], argv: list[str]) -> None:
    root, record_id, repo = product
    done = _run(root, *(a.format(id=record_id, repo=repo) for a in argv))
    assert done.returncode == 0, done.stderr
    assert "WARN" not in done.stderr, done.stderr


def test_a_users_own_icechunk_log_setting_wins(product: tuple[Path, str, str]) -> None:
    root, record_id, _ = product
    done = _run(root, "open", record_id, env={"ICECHUNK_LOG": "warn"})
    assert done.returncode == 0, done.stderr
    assert "not safe for concurrent commits" in done.stderr


def test_the_python_api_reads_quietly(product: tuple[Path, str, str]) -> None:
    root, record_id, _ = product
    code = (
        "from arcodex.client import Client\n"
        f"ds = Client({str(root)!r}).open_dataset({record_id!r})\n"
        "print(sorted(ds.data_vars))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=clean
    )
    assert done.returncode == 0, done.stderr
    assert "WARN" not in done.stderr, done.stderr
