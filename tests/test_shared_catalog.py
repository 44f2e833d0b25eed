"""Many hosts, one catalog: operation state shared through PostgreSQL (issue 14, part 5).

Two hosts are two catalog roots whose ``arcodex.yaml`` names the same database and the
same S3 profile (managed files on S3, so both see them). An operation killed on host A
is seen by ``doctor`` and repaired by ``recover`` on host B; a live operation on A is
left alone by B and reported as running; concurrent adds neither lose nor duplicate a
record; a group member running on A is running as seen from B.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.catalog._config import CONFIG_FILE
from arcodex.catalog._journal import KILL_AT_ENV
from arcodex.errors import ConflictError
from arcodex.storage import FileProfileConfig, S3ProfileConfig
from arcodex.testing import S3_KEY_ID, S3_SECRET

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hosts(tmp_path: Path, pg_url: str, s3_endpoint: str, s3_env: None) -> tuple[Path, Path]:
    """Two catalog roots ("hosts" A and B) sharing one PostgreSQL catalog and one S3 bucket."""
    import boto3

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    config = CatalogConfig(
        database_url=pg_url,
        profiles={
            "local": FileProfileConfig(),
            "shared": S3ProfileConfig(
                bucket=bucket, prefix="managed", endpoint_url=s3_endpoint, path_style=True
            ),
        },
        default_profile="shared",
    )
    a, b = tmp_path / "host-a", tmp_path / "host-b"
    Catalog.create(a, config=config).close()
    b.mkdir()
    shutil.copy(a / CONFIG_FILE, b / CONFIG_FILE)  # what an admin does on the second host
    return a, b


@pytest.fixture
def file_hosts(tmp_path: Path, pg_url: str) -> tuple[Path, Path]:
    """Two catalog roots sharing one PostgreSQL catalog and one directory of managed files
    (a file system both hosts mount at the same path): for the many-adds tests, where the
    loopback S3 server would be the bottleneck."""
    shared = FileProfileConfig(root=str(tmp_path / "shared-store"))
    config = CatalogConfig(
        database_url=pg_url, profiles={"shared": shared}, default_profile="shared"
    )
    a, b = tmp_path / "host-a", tmp_path / "host-b"
    Catalog.create(a, config=config).close()
    b.mkdir()
    shutil.copy(a / CONFIG_FILE, b / CONFIG_FILE)
    return a, b


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    env["PYTHONPATH"] = str(REPO / "src")
    return {**env, **extra}


def _cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "--catalog", str(root), *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _keys(cat: Catalog) -> list[str]:
    return sorted(cat.storage("shared").iter_keys())


def _gone(cat: Catalog, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The incomplete operations doctor reports, once none is running (a killed
    process's connection, and so its lease, goes a moment after it)."""
    deadline = time.monotonic() + timeout
    while True:
        ops = cat.doctor().incomplete_operations
        if not any(op["running"] for op in ops) or time.monotonic() > deadline:
            return ops
        time.sleep(0.05)


# -- an add killed on A, recovered from B ----------------------------------------------


@pytest.mark.parametrize(
    ("state", "kept"),
    [
        ("artifact_written", False),  # the object is on S3, the record is not: undone
        ("catalog_write_started", False),
        ("catalog_write_succeeded", True),  # the record landed: finished
    ],
)
def test_an_add_killed_on_one_host_is_recovered_from_another(
    hosts: tuple[Path, Path], tmp_path: Path, state: str, kept: bool
) -> None:
    a, b = hosts
    src = tmp_path / "obs.csv"
    src.write_text("t,ch4\n1,1900\n")
    killed = _cli(a, "add", str(src), "--id", "new", **{KILL_AT_ENV: state})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Catalog.open(b) as cat:
        (op,) = _gone(cat)
        assert op["action"] == "add" and op["running"] is False
        assert op["host"] and op["pid"]
        doctor = _cli(b, "doctor")
        assert "incomplete operation" in doctor.stdout and "arcodex recover" in doctor.stdout
        (done,) = cat.recover()
        assert done.decision == ("roll_forward" if kept else "roll_back")
        assert cat.journal.open_operations() == []
        ids = [r.id for r in cat.search(limit=None).records]
        if kept:
            assert ids == ["new"]
            store = cat.storage("shared")
            assert store.fs.cat_file(store._path(_keys(cat)[0])) == src.read_bytes()
            assert len(_keys(cat)) == 1
        else:
            assert ids == []
            assert _keys(cat) == []
        assert cat.doctor(verify_hashes=True).clean, cat.doctor().to_dict()
    with Catalog.open(a) as cat:  # and A agrees
        assert cat.journal.open_operations() == []
        assert cat.doctor().clean
        recovered = cat.logs(event="recover.*")
        assert [e["operation_id"] for e in recovered] == [op["operation_id"]]


_CONVERT = """
import sys
from arcodex.catalog import Catalog
from arcodex.convert import convert
with Catalog.open(sys.argv[1]) as cat:
    convert(sys.argv[2], to="zarr", catalog=cat, cluster="threads", workers=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("state", ["artifact_write_started", "artifact_write_succeeded"])
def test_a_convert_killed_on_one_host_is_recovered_from_another(
    hosts: tuple[Path, Path], tmp_path: Path, state: str
) -> None:
    from arcodex._archives import write_archive

    a, b = hosts
    write_archive(tmp_path / "src", "regular", files=2, steps=2)
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(a), str(tmp_path / "src" / "*.nc")],
        env=_env(**{KILL_AT_ENV: state}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    with Catalog.open(b) as cat:
        if state == "artifact_write_succeeded":
            assert _keys(cat), "the product was written to S3 before the kill"
        (op,) = _gone(cat)
        assert op["action"] == "convert" and not op["running"]
        cat.recover()
        assert cat.journal.open_operations() == []
        assert cat.search(limit=None).records == []
        assert _keys(cat) == []
        assert cat.doctor().clean, cat.doctor().to_dict()


# -- a live operation on A is left alone by B --------------------------------------------

_PAUSED_ADD = """
import sys, time
from pathlib import Path
from arcodex.catalog import Catalog

root, src, ready, go = sys.argv[1:5]

def wait_for_go(context):
    Path(ready).write_text("ready")
    while not Path(go).exists():
        time.sleep(0.02)

with Catalog.open(root) as cat:
    cat.hooks.register("before_record_commit", wait_for_go, name="paused")
    cat.add_file(src, record_id="live")
"""


def test_a_live_operation_on_one_host_is_not_rolled_back_from_another(
    hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = hosts
    src, ready, go = tmp_path / "obs.csv", tmp_path / "ready", tmp_path / "go"
    src.write_text("t,ch4\n1,1900\n")
    paused = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_ADD, str(a), str(src), str(ready), str(go)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert paused.poll() is None, paused.communicate()[1]
            assert time.monotonic() < deadline, "the add never reached its commit"
            time.sleep(0.02)
        with Catalog.open(b) as cat:
            (op,) = cat.doctor().incomplete_operations
            assert op["running"] is True and op["action"] == "add"
            assert not cat.doctor().clean
            doctor = _cli(b, "doctor")
            assert f"running operation {op['operation_id']}" in doctor.stdout
            assert cat.recover() == []
            assert json.loads(_cli(b, "recover", "--json").stdout) == []
            written = _keys(cat)
            assert len(written) == 1, "the live add's object is left where it is"
            assert cat.journal.open_operations() == [op["operation_id"]]
        go.write_text("go")
        _out, err = paused.communicate(timeout=60)
        assert paused.returncode == 0, err
    finally:
        if paused.poll() is None:
            paused.kill()
            paused.wait()
    with Catalog.open(b) as cat:
        assert [r.id for r in cat.search(limit=None).records] == ["live"]
        assert _keys(cat) == written
        assert cat.journal.open_operations() == []
        assert cat.doctor(verify_hashes=True).clean


# -- concurrent adds ---------------------------------------------------------------------

_ADDER = """
import sys
from pathlib import Path
from arcodex.catalog import Catalog

root, folder = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(folder.iterdir())
singles, batch = int(sys.argv[3]), int(sys.argv[4])
with Catalog.open(root) as cat:
    for f in files[:singles]:
        cat.add_file(f)
    rest = files[singles:]
    for i in range(0, len(rest), batch):
        cat.add_files(rest[i : i + batch])
print(len(files))
"""


def _files(folder: Path, n: int, tag: str) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"{tag}-{i:04d}.csv"
        path.write_text(f"t,v\n{i},{tag}\n")
        paths.append(path)
    return paths


@pytest.mark.slow
def test_eight_processes_add_a_thousand_files_each(
    file_hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = file_hosts
    procs, per = 8, 1000
    folders = [tmp_path / f"p{i}" for i in range(procs)]
    for i, folder in enumerate(folders):
        _files(folder, per, f"p{i}")
    started = time.perf_counter()
    # Half the processes on each host: 25 adds one by one, then batches of 325.
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, str(a if i % 2 else b), str(folder), "25", "325"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, folder in enumerate(folders)
    ]
    for proc in running:
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    seconds = time.perf_counter() - started
    with Catalog.open(a) as cat:
        records = cat.search(limit=None).records
        sources = [r.artifacts[0].metadata["source_path"] for r in records]
        assert len(records) == procs * per, "none lost"
        assert len(set(sources)) == len(sources) == procs * per, "none twice"
        assert len({r.artifacts[0].hashes["sha256"] for r in records}) == procs * per
        assert len(_keys(cat)) == procs * per
        report = cat.doctor()
        assert report.clean, report.to_dict()
    print(f"\n{procs} x {per} adds on PostgreSQL: {seconds:.1f} s")


_SAME = """
import random, sys
from pathlib import Path
from arcodex.catalog import Catalog
from arcodex.errors import ConflictError
from arcodex.storage import FileProfileConfig, S3ProfileConfig

root, folder, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
files = sorted(folder.iterdir())
random.Random(seed).shuffle(files)
added = refused = 0
with Catalog.open(root) as cat:
    for f in files:
        try:
            cat.add_file(f)
            added += 1
        except ConflictError:
            refused += 1
print(added, refused)
"""


def test_two_hosts_adding_the_same_files_catalogue_each_once(
    file_hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = file_hosts
    files = _files(tmp_path / "same", 60, "same")
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _SAME, str(root), str(tmp_path / "same"), str(seed)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, root in enumerate((a, b))
    ]
    outcomes = []
    for proc in running:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        outcomes.append(tuple(int(n) for n in out.split()))
    assert sum(added for added, _ in outcomes) == len(files)
    assert all(added + refused == len(files) for added, refused in outcomes)
    with Catalog.open(b) as cat:
        records = cat.search(limit=None).records
        assert len(records) == len(files)
        assert len({r.artifacts[0].hashes["sha256"] for r in records}) == len(files)
        assert len(_keys(cat)) == len(files), "the refused copies are removed"
        assert cat.doctor().clean
        with pytest.raises(ConflictError, match="already in the catalog"):
            cat.add_file(files[0])


# -- a group member running on A, seen from B ----------------------------------------------

_PAUSED_GROUP = """
import sys, time
from pathlib import Path
from arcodex.catalog import Catalog
from arcodex.groups import run_group

root, ready, go = sys.argv[1:4]

def wait_for_go(context):
    Path(ready).write_text("ready")
    while not Path(go).exists():
        time.sleep(0.02)

with Catalog.open(root) as cat:
    cat.hooks.register("before_record_commit", wait_for_go, name="paused")
    run = run_group(cat, "g", phase="scan", cluster="threads")
print(run.counts["done"])
"""


def test_a_group_member_running_on_one_host_is_running_from_another(
    hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    from arcodex._archives import write_archive
    from arcodex.groups import group_status, init_group, run_group

    a, b = hosts
    write_archive(tmp_path / "src", "regular", files=2, steps=2)
    init_group(a, "g", [{"id": "m1", "sources": str(tmp_path / "src" / "*.nc")}])
    ready, go = tmp_path / "ready", tmp_path / "go"
    paused = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_GROUP, str(a), str(ready), str(go)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert paused.poll() is None, paused.communicate()[1]
            assert time.monotonic() < deadline, "the member never reached its commit"
            time.sleep(0.02)
        (member,) = group_status(b, "g").members
        assert member.status == "running" and not member.stale
        other = run_group(b, "g", phase="scan", cluster="threads")
        assert [m.status for m in other.members] == ["running"]
        assert "running in process" in str(other.members[0].reason)
        assert other.recovered == []
        with Catalog.open(b) as cat:
            assert cat.recover() == []
        go.write_text("go")
        out, err = paused.communicate(timeout=120)
        assert paused.returncode == 0, err[-2000:]
        assert out.split() == ["1"]
    finally:
        if paused.poll() is None:
            paused.kill()
            paused.wait()
    (member,) = group_status(b, "g").members
    assert member.status == "done" and not member.stale


def test_a_group_member_whose_host_died_is_stale_from_another(
    hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    from arcodex._archives import write_archive
    from arcodex.groups import group_status, init_group

    a, b = hosts
    write_archive(tmp_path / "src", "regular", files=2, steps=2)
    init_group(a, "g", [{"id": "m1", "sources": str(tmp_path / "src" / "*.nc")}])
    killed = _cli(
        a, "group", "run", "g", "--phase", "scan", "--cluster", "threads",
        **{KILL_AT_ENV: "catalog_write_started"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    deadline = time.monotonic() + 10
    while not group_status(b, "g").members[0].stale:
        assert time.monotonic() < deadline, "the dead run's member still looks running"
        time.sleep(0.05)
    with Catalog.open(b) as cat:
        assert [r.action for r in cat.recover()] == ["group-member"]
    (member,) = group_status(b, "g").members
    assert member.status == "pending" and not member.stale


# -- the event log in the database -------------------------------------------------------


def test_events_of_every_host_are_queried_from_any_with_secrets_redacted(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "shared-secret-value-1234"
    monkeypatch.setenv("ARCODEX_TEST_S3_SECRET", secret)
    config = CatalogConfig(
        database_url=pg_url,
        profiles={
            "local": FileProfileConfig(),
            "s3": S3ProfileConfig(bucket="a-bucket", secret_env="ARCODEX_TEST_S3_SECRET"),
        },
    )
    a, b = tmp_path / "host-a", tmp_path / "host-b"
    with Catalog.create(a, config=config) as cat:
        cat.add_external("https://example.org/one", record_id="one")
        cat.events.emit("test.leak", f"a message holding {secret}", level="warning")
    b.mkdir()
    shutil.copy(a / CONFIG_FILE, b / CONFIG_FILE)
    with Catalog.open(b) as cat:
        cat.add_external("https://example.org/two", record_id="two")
        (leak,) = cat.logs(event="test.leak")
        assert leak["message"] == "a message holding ***"
        started = cat.logs(event="operation.started")
        assert len(started) == 2, "both hosts' operations"
        assert cat.logs(operation=started[0]["operation_id"])
        assert cat.logs(level="warning") == [leak]
        assert cat.logs(since="2000-01", until="2000-02") == []
        rows = cat.backend._q("SELECT entry FROM op_events")  # type: ignore[attr-defined]
        assert rows and not any(secret in row[0] for row in rows)
        assert not (a / "state" / "logs").exists() and not (b / "state" / "journal").exists()
