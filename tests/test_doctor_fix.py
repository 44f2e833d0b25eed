"""`doctor --fix` and `recover` remove orphans, local and S3, inside the catalog's profiles
and at a `--dest` outside them, but only what a journal or a provenance marker proves
arcodex wrote; `--dry-run` changes nothing and says what would go."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.convert import convert
from arcodex.testing import S3_KEY_ID, S3_SECRET

pytest.importorskip("xarray")


def _glob(tmp_path: Path, files: int = 3) -> str:
    write_archive(tmp_path / "src", "regular", files=files)
    return str(tmp_path / "src" / "regular_*.nc")


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    return subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "--catalog", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_fix_removes_proven_orphans_only(tmp_path: Path) -> None:
    src = _glob(tmp_path)
    root = tmp_path / "cat"
    Catalog.create(root).close()
    store = root / "store"
    stray = store / "products" / "stray.zarr"
    convert(src, to="zarr", dest=stray, cluster="threads", workers=1)  # no record points at it
    users = store / "notes" / "mine.txt"
    users.parent.mkdir(parents=True)
    users.write_text("not arcodex's")
    with Catalog.open(root) as cat:
        report = cat.doctor()
        proofs = {(o["root"], o["proof"]) for o in report.orphaned_files}
        assert proofs == {("products/stray.zarr", "provenance"), ("notes/mine.txt", None)}
    dry = _cli(root, "doctor", "--fix", "--dry-run", "--json")
    data = json.loads(dry.stdout)
    assert data["would_remove"] == ["local:products/stray.zarr"] and data["removed"] == []
    assert [k["where"] for k in data["kept"]] == ["local:notes/mine.txt"]
    assert stray.exists() and users.exists()
    done = json.loads(_cli(root, "doctor", "--fix", "--json").stdout)
    assert done["removed"] == ["local:products/stray.zarr"] and done["would_remove"] == []
    assert not stray.exists() and users.read_text() == "not arcodex's"
    assert [o["key"] for o in done["orphaned_files"]] == ["notes/mine.txt"]  # still there


def test_leftover_beside_a_dest_outside_the_catalog_is_found_and_fixed(tmp_path: Path) -> None:
    """A replaced product set aside beside a `--dest` (as a kill between the commit and the
    clean-up leaves it) is named by the finished journal, and `doctor --fix` removes it."""
    src = _glob(tmp_path)
    dest = tmp_path / "out" / "p.zarr"
    with Catalog.create(tmp_path / "cat") as cat:
        convert(src, to="zarr", dest=dest, catalog=cat, cluster="threads", workers=1)
        convert(src, to="zarr", dest=dest, catalog=cat, overwrite=True, cluster="threads")
        assert cat.doctor().clean
        staged = [
            e
            for op in cat.journal.done_operations()
            for e in cat.journal.read(op)
            if e["state"] == "artifact_staged" and e["args"]["backup"]
        ]
        backup = Path(staged[0]["args"]["backup"])
        shutil.copytree(dest, backup)
        mine = tmp_path / "out" / "mine.txt"
        mine.write_text("x")
        report = cat.doctor()
        assert [o["url"] for o in report.orphaned_products] == [str(backup)]
        dry = cat.doctor(fix=True, dry_run=True)
        assert dry.fix is not None and dry.fix.would_remove == [str(backup)]
        assert backup.exists()
        fixed = cat.doctor(fix=True)
        assert fixed.fix is not None and fixed.fix.removed == [str(backup)]
        assert fixed.clean and not backup.exists() and mine.exists() and dest.exists()


def test_recover_dry_run_reports_would_remove(tmp_path: Path) -> None:
    from arcodex.catalog._journal import KILL_AT_ENV

    src = _glob(tmp_path)
    root = tmp_path / "cat"
    dest = tmp_path / "p.zarr"
    Catalog.create(root).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    code = (
        "import sys\nfrom arcodex.convert import convert\n"
        "convert(sys.argv[1], to='zarr', dest=sys.argv[2], catalog=sys.argv[3], "
        "cluster='threads', workers=1)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, src, str(dest), str(root)],
        env={**env, KILL_AT_ENV: "artifact_write_succeeded"},
        capture_output=True,
        timeout=120,
    )
    assert dest.exists()
    out = json.loads(_cli(root, "recover", "--dry-run", "--json").stdout)
    (plan,) = out
    assert plan["decision"] == "roll_back" and plan["removed"] == []
    assert plan["would_restore"] == [str(dest)]
    assert dest.exists()
    (done,) = json.loads(_cli(root, "recover", "--json").stdout)
    assert done["restored"] == [str(dest)] and done["would_remove"] == []
    assert not dest.exists()
    assert _cli(root, "doctor").returncode == 0


def test_s3_orphan_with_provenance_is_removed(
    tmp_path: Path, s3_endpoint: str, s3_env: None
) -> None:
    import boto3

    from arcodex.catalog import CatalogConfig
    from arcodex.storage import FileProfileConfig, S3ProfileConfig

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="managed/users/keep.txt", Body=b"mine")
    options: dict[str, Any] = {"key": S3_KEY_ID, "secret": S3_SECRET, "endpoint_url": s3_endpoint}
    convert(
        _glob(tmp_path),
        to="zarr",
        dest=f"s3://{bucket}/managed/products/stray.zarr",
        dest_options=options,
        cluster="threads",
        workers=1,
    )
    profile = S3ProfileConfig(
        bucket=bucket, prefix="managed", endpoint_url=s3_endpoint, region="us-east-1"
    )
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "s3": profile})
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        report = cat.doctor()
        roots = {(o["root"], o["proof"]) for o in report.orphaned_files}
        assert roots == {("products/stray.zarr", "provenance"), ("users/keep.txt", None)}
        fixed = cat.doctor(fix=True)
        assert fixed.fix is not None and fixed.fix.removed == ["s3:products/stray.zarr"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["managed/users/keep.txt"]


def test_tagged_icechunk_product_is_clean_and_a_new_commit_is_not(tmp_path: Path) -> None:
    """The tag is set after the record is written (a tag name is never reused), and a tag
    rewrites the repository's info file: that is not a change of the product. A commit is."""
    pytest.importorskip("icechunk")
    import icechunk
    import numpy as np

    src = _glob(tmp_path, files=2)
    root = tmp_path / "cat"
    Catalog.create(root).close()
    with Catalog.open(root) as cat:
        result = convert(src, to="icechunk", catalog=cat, tag="v1", cluster="threads", workers=1)
        assert cat.doctor().mismatched_artifacts == []
        repo_path = Path(cat.path(result.record.id))
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo_path)))
    repo.create_tag("v2", repo.lookup_tag("v1"))
    with Catalog.open(root) as cat:
        assert cat.doctor().mismatched_artifacts == []
    session = repo.writable_session("main")
    import zarr

    group = zarr.open_group(session.store, mode="r+")
    name = next(iter(group.array_keys()))
    array = group[name]
    array[(0,) * array.ndim] = np.asarray(array[(0,) * array.ndim]) + 1
    session.commit("changed outside arcodex")
    with Catalog.open(root) as cat:
        changed = cat.doctor().mismatched_artifacts
        assert [m["location"] for m in changed] == [str(repo_path)]
