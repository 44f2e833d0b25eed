"""`convert --overwrite` never destroys what arcodex did not make, and never loses the old
product: refusals, a staged write checked before the swap, failures and kills at every
journal state (read from a real run), S3, and a write that fails part-way on Dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.catalog._journal import FAIL_AT_ENV, KILL_AT_ENV, InjectedFailure
from arcodex.convert import convert, open_product
from arcodex.errors import ArcodexError, ConflictError, ValidationError
from arcodex.testing import S3_KEY_ID, S3_SECRET

xr = pytest.importorskip("xarray")


def _archives(tmp_path: Path) -> tuple[str, str]:
    """Two archives that make different products: (old glob, new glob)."""
    write_archive(tmp_path / "a", "regular", files=3)
    write_archive(tmp_path / "b", "regular", files=4)
    return str(tmp_path / "a" / "regular_*.nc"), str(tmp_path / "b" / "regular_*.nc")


def _steps(dest: str | Path, **kwargs: Any) -> int:
    with open_product(dest, **kwargs) as ds:
        return int(ds.sizes["time"])


def _siblings(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if ".arcodex-" in p.name)


def _convert(src: str, dest: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 1)
    return convert(src, to="zarr", dest=dest, **kwargs)


# -- refusals ---------------------------------------------------------------------------------


def test_overwrite_refuses_what_arcodex_did_not_make(tmp_path: Path) -> None:
    old, _ = _archives(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ConflictError, match="a directory that is not an arcodex product"):
        _convert(old, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    plain = tmp_path / "notes.zarr"
    plain.write_text("a file")
    with pytest.raises(ConflictError, match="is a plain file"):
        _convert(old, plain, overwrite=True)
    assert plain.read_text() == "a file"
    zarr = pytest.importorskip("zarr")
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["who"] = "someone else"
    with pytest.raises(ConflictError, match="zarr store not made by arcodex"):
        _convert(old, foreign, overwrite=True)
    assert zarr.open_group(str(foreign), mode="r").attrs["who"] == "someone else"


@pytest.mark.parametrize("where", ["archive", "parent", "file"])
def test_destination_holding_a_source_is_always_refused(tmp_path: Path, where: str) -> None:
    old, _ = _archives(tmp_path)
    dest = {
        "archive": tmp_path / "a",
        "parent": tmp_path,
        "file": tmp_path / "a" / "regular_000.nc",
    }[where]
    before = sorted(p.name for p in (tmp_path / "a").iterdir())
    for overwrite in (False, True):
        with pytest.raises(ValidationError, match="is or holds the source"):
            _convert(old, dest, overwrite=overwrite)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == before


def test_message_says_what_is_there(tmp_path: Path) -> None:
    old, _ = _archives(tmp_path)
    dest = tmp_path / "out.zarr"
    _convert(old, dest)
    with pytest.raises(ConflictError, match=r"^an arcodex zarr product already exists at"):
        _convert(old, dest)


def test_cli_refusal_is_one_line(tmp_path: Path) -> None:
    old, _ = _archives(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "convert", old, "--dest", str(mine), "--overwrite"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")},
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not an arcodex product" in lines[0], done.stderr
    assert (mine / "keep.txt").exists()


# -- replacing ---------------------------------------------------------------------------------


def test_overwrite_replaces_an_arcodex_product(tmp_path: Path) -> None:
    old, new = _archives(tmp_path)
    dest = tmp_path / "out.zarr"
    _convert(old, dest)
    result = _convert(new, dest, overwrite=True)
    assert result.status == "pass"
    assert _steps(dest) == _steps(result.product.target.url) == 4 * _per_file(tmp_path)
    assert _siblings(dest) == []
    # The check ran on the staged copy; its report names what is now at the destination.
    assert result.report.product == result.product.target.url == str(dest)
    assert result.to_dict()["check"]["product"] == str(dest)


def _per_file(tmp_path: Path) -> int:
    with xr.open_dataset(tmp_path / "a" / "regular_000.nc") as ds:
        return int(ds.sizes["time"])


def _reference_states(tmp_path: Path, old: str, new: str) -> list[str]:
    """The states a real `convert --overwrite` journals (read from its journal)."""
    root = tmp_path / "reference"
    with Catalog.create(root) as cat:
        dest = tmp_path / "reference.zarr"
        _convert(old, dest, catalog=cat)
        before = set(cat.journal.done_operations())
        _convert(new, dest, catalog=cat, overwrite=True)
        (op_id,) = set(cat.journal.done_operations()) - before
        states = [str(e["state"]) for e in cat.journal.read(op_id)]
    assert {"artifact_staged", "artifact_set_aside", "artifact_swapped"} <= set(states)
    # Each state once: the pipeline's step marks (step_started, step_finished) recur per step.
    return list(dict.fromkeys(states))


def test_overwrite_failing_at_any_state_keeps_the_old_product(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _archives(tmp_path)
    per = _per_file(tmp_path)
    for state in _reference_states(tmp_path, old, new):
        root = tmp_path / f"cat-{state}"
        dest = tmp_path / f"out-{state}.zarr"
        with Catalog.create(root) as cat:
            _convert(old, dest, catalog=cat)
            monkeypatch.setenv(FAIL_AT_ENV, state)
            with pytest.raises(InjectedFailure):
                _convert(new, dest, catalog=cat, overwrite=True)
            monkeypatch.delenv(FAIL_AT_ENV)
            steps = _steps(dest)
            assert steps == (4 if state == "committed" else 3) * per, state
            assert _siblings(dest) == [], state
            (record,) = cat.search(limit=None).records
            assert record.metadata["convert"]["steps"] == steps, state
            assert cat.doctor().clean, (state, cat.doctor().to_dict())


_KILLED = """
import sys
from arcodex.catalog import Catalog
from arcodex.convert import convert
with Catalog.open(sys.argv[1]) as cat:
    convert(sys.argv[2], to="zarr", dest=sys.argv[3], catalog=cat, cluster="threads",
            workers=1, overwrite=True)
"""


@pytest.mark.slow
def test_overwrite_killed_at_any_state_is_recovered(tmp_path: Path) -> None:
    """SIGKILL at every state of a real run's journal, then `recover`: the old product or the
    new one, whole, and nothing left beside it."""
    old, new = _archives(tmp_path)
    per = _per_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    for state in _reference_states(tmp_path, old, new):
        root = tmp_path / f"cat-{state}"
        dest = tmp_path / f"out-{state}.zarr"
        with Catalog.create(root) as cat:
            _convert(old, dest, catalog=cat)
        done = subprocess.run(
            [sys.executable, "-c", _KILLED, str(root), new, str(dest)],
            env={**env, KILL_AT_ENV: state},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == -signal.SIGKILL, (state, done.stderr[-2000:])
        with Catalog.open(root) as cat:
            cat.recover()
            (record,) = cat.search(limit=None).records
            steps = _steps(dest)
            assert steps in (3 * per, 4 * per), state
            assert record.metadata["convert"]["steps"] == steps, state
            assert _siblings(dest) == [], (state, _siblings(dest))
            report = cat.doctor()
            assert report.clean, (state, report.to_dict())


# -- a write that fails part-way on a real Dask cluster ------------------------------------


@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_the_destination_as_it_was(tmp_path: Path, existing: bool) -> None:
    """A source turns bad while chunks are being written on the workers: after the failure
    the destination is exactly as before, and the next convert is not blocked."""
    old, new = _archives(tmp_path)
    dest = tmp_path / "out.zarr"
    if existing:
        _convert(old, dest)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "out" in p.name)
    files = sorted((tmp_path / "b").glob("regular_*.nc"))
    last = files[-1]
    good = last.read_bytes()

    def damage(stage: str, done: int, total: int) -> None:
        if stage == "write" and last.read_bytes() == good:
            last.write_bytes(b"\0" * len(good))

    with pytest.raises(ArcodexError, match="regular_003"):
        _convert(new, dest, overwrite=existing, workers=2, chunks="time=1", progress=damage)
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "out" in p.name)
    assert after == before
    assert _siblings(dest) == []
    last.write_bytes(good)
    assert _convert(new, dest, overwrite=existing).status == "pass"


# -- S3 -----------------------------------------------------------------------------------


@pytest.fixture
def bucket(s3_endpoint: str, s3_env: None) -> tuple[str, dict[str, Any], Any]:
    import boto3

    name = f"arcodex-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    options = {"key": S3_KEY_ID, "secret": S3_SECRET, "endpoint_url": s3_endpoint}
    return name, options, client


def _keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.mark.parametrize("to", ["zarr", "icechunk"])
def test_s3_overwrite_is_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket: Any, to: str
) -> None:
    name, options, client = bucket
    old, new = _archives(tmp_path)
    per = _per_file(tmp_path)
    dest = f"s3://{name}/out.{to}"
    kw: dict[str, Any] = {"dest_options": options, "cluster": "threads", "workers": 1}
    with Catalog.create(tmp_path / "cat") as cat:
        convert(old, to=to, dest=dest, catalog=cat, **kw)
        keys = _keys(client, name)
        # After the swap, before the record: the old product must come back whole.
        monkeypatch.setenv(FAIL_AT_ENV, "artifact_write_succeeded")
        with pytest.raises(InjectedFailure):
            convert(new, to=to, dest=dest, catalog=cat, overwrite=True, **kw)
        monkeypatch.delenv(FAIL_AT_ENV)
        assert _keys(client, name) == keys
        assert _steps(dest, dest_options=options) == 3 * per
        result = convert(new, to=to, dest=dest, catalog=cat, overwrite=True, **kw)
        assert result.status == "pass"
        assert _steps(dest, dest_options=options) == 4 * per
        assert not [k for k in _keys(client, name) if ".arcodex-" in k]
        assert cat.doctor().clean
