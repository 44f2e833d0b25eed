"""``cluster: slurm`` on a real one-node SLURM cluster (slurmctld + slurmd on this machine).

The ``slurm`` fixture (tests/conftest.py) installs and starts the cluster once per test
run. Each test names its jobs uniquely, so that what it finds in the queue is its own:
the other test process of a ``pytest -n 2`` run shares the cluster.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog, CatalogConfig
from arcodex.catalog._config import ClusterConfig
from arcodex.convert import convert, open_product
from arcodex.errors import ConversionError
from arcodex.testing import LocalSlurm, assert_same_values, sources_dataset

xr = pytest.importorskip("xarray")
pytest.importorskip("dask_jobqueue")

REPO = Path(__file__).resolve().parents[1]
#: Runs on a worker: the SLURM job it lives in (None outside one).
JOB_ID = functools.partial(os.getenv, "SLURM_JOB_ID")


def _settings(tmp_path: Path, name: str, **jobqueue: Any) -> dict[str, Any]:
    """Cluster settings for small jobs of this cluster, their output in ``tmp_path/jobs``."""
    return {
        "kind": "slurm",
        "start_timeout": 120,
        "jobqueue": {
            "queue": "debug",
            "cores": 1,
            "memory": "1GiB",
            "walltime": "00:10:00",
            "job_name": name,
            "log_directory": str(tmp_path / "jobs"),
            **jobqueue,
        },
    }


def _name() -> str:
    return f"arcodex-test-{uuid.uuid4().hex[:8]}"


def _gone(slurm: LocalSlurm, name: str, timeout: float = 30.0) -> list[str]:
    """Wait until no job named ``name`` is in the queue; the ids of those still there."""
    deadline = time.monotonic() + timeout
    while (left := slurm.jobs(name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _jobs_that_ran(log_directory: Path, name: str) -> set[str]:
    """The ids of the jobs whose Dask worker joined a scheduler (from the jobs' output)."""
    ran = set()
    for err in log_directory.glob(f"{name}-*.err"):
        if "Registered to:" in err.read_text(errors="replace"):
            ran.add(err.stem.rpartition("-")[2])
    return ran


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("ARCODEX_CATALOG", None)
    return subprocess.run(
        [sys.executable, "-m", "arcodex", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def archive(tmp_path: Path) -> list[Path]:
    return write_archive(tmp_path / "src", "regular", files=3)


def test_convert_tasks_run_in_slurm_jobs(
    slurm: LocalSlurm, tmp_path: Path, archive: list[Path]
) -> None:
    from distributed import get_task_stream

    from arcodex.convert._cluster import open_client

    name = _name()
    settings = _settings(tmp_path, name)
    with open_client("slurm", config={**settings, "jobs": 2}) as client:
        assert len(slurm.jobs(name)) == 2
        with get_task_stream(client) as stream:
            result = convert(
                str(tmp_path / "src" / "*.nc"), to="zarr", dest=tmp_path / "p.zarr", cluster=client
            )
        job_of = client.run(JOB_ID)
    ran_on = {task["worker"] for task in stream.data}
    assert ran_on, "the conversion ran tasks on the cluster"
    assert all(job_of[worker] for worker in ran_on), (job_of, ran_on)
    assert len(set(job_of.values())) == 2  # two jobs, one worker each
    assert result.report is not None and result.report.status == "pass"
    with open_product(tmp_path / "p.zarr") as ds:
        assert_same_values(ds, sources_dataset(archive, raw=False))
    assert _gone(slurm, name) == [], "closing the cluster cancels its jobs"


def test_python_convert_on_slurm_from_catalog_settings(
    slurm: LocalSlurm, tmp_path: Path, archive: list[Path]
) -> None:
    name = _name()
    config = CatalogConfig(cluster=ClusterConfig(**_settings(tmp_path, name)))
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        result = convert(
            str(tmp_path / "src" / "*.nc"),
            to="zarr",
            dest=tmp_path / "p.zarr",
            catalog=cat,
            cluster="slurm",
        )
        assert result.record is not None and result.report is not None
        assert result.report.status == "pass"
    with open_product(tmp_path / "p.zarr") as ds:
        assert_same_values(ds, sources_dataset(archive, raw=False))
    assert len(_jobs_that_ran(tmp_path / "jobs", name)) == 1
    assert _gone(slurm, name) == []


def test_cli_convert_on_slurm(slurm: LocalSlurm, tmp_path: Path, archive: list[Path]) -> None:
    import yaml

    name = _name()
    root = tmp_path / "cat"
    config = CatalogConfig(cluster=ClusterConfig(**_settings(tmp_path, name)))
    Catalog.create(root, config=config).close()
    data = yaml.safe_load((root / "arcodex.yaml").read_text())
    assert data["cluster"]["kind"] == "slurm"
    done = _cli(
        "--catalog",
        str(root),
        "convert",
        str(tmp_path / "src" / "*.nc"),
        "--to",
        "zarr",
        "--dest",
        str(tmp_path / "p.zarr"),
        "--cluster",
        "slurm",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with open_product(tmp_path / "p.zarr") as ds:
        assert_same_values(ds, sources_dataset(archive, raw=False))
    assert len(_jobs_that_ran(tmp_path / "jobs", name)) == 1
    assert _gone(slurm, name) == []


def test_a_partition_that_does_not_exist_is_one_line(
    slurm: LocalSlurm, tmp_path: Path, archive: list[Path]
) -> None:
    name = _name()
    root = tmp_path / "cat"
    config = CatalogConfig(cluster=ClusterConfig(**_settings(tmp_path, name, queue="nope")))
    Catalog.create(root, config=config).close()
    started = time.monotonic()
    done = _cli(
        "--catalog",
        str(root),
        "convert",
        str(tmp_path / "src" / "*.nc"),
        "--to",
        "zarr",
        "--dest",
        str(tmp_path / "p.zarr"),
        "--cluster",
        "slurm",
        cwd=tmp_path,
    )
    assert time.monotonic() - started < 60
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "sbatch refused" in lines[0] and "invalid partition specified: nope" in lines[0]
    assert not (tmp_path / "p.zarr").exists()
    assert slurm.jobs(name) == []


def test_jobs_that_never_start_fail_within_the_timeout(
    slurm: LocalSlurm, tmp_path: Path, archive: list[Path]
) -> None:
    name = _name()
    settings = {**_settings(tmp_path, name, queue=slurm.down_partition), "start_timeout": 3}
    with Catalog.create(
        tmp_path / "cat", config=CatalogConfig(cluster=ClusterConfig(**settings))
    ) as cat:
        started = time.monotonic()
        with pytest.raises(ConversionError, match=r"no Dask worker joined within 3 s") as info:
            convert(
                str(tmp_path / "src" / "*.nc"),
                to="zarr",
                dest=tmp_path / "p.zarr",
                catalog=cat,
                cluster="slurm",
            )
        assert time.monotonic() - started < 30
        assert "PENDING (PartitionDown)" in str(info.value) and "\n" not in str(info.value)
        assert cat.search().records == []
    assert not (tmp_path / "p.zarr").exists()
    assert _gone(slurm, name) == [], "the pending job is cancelled"


def test_workers_that_cannot_start_fail_at_once(
    slurm: LocalSlurm, tmp_path: Path, archive: list[Path]
) -> None:
    from arcodex.convert._cluster import open_client

    name = _name()
    settings = _settings(tmp_path, name, python=str(tmp_path / "no-such-python"))
    started = time.monotonic()
    with (
        pytest.raises(ConversionError, match=r"ended before a Dask worker joined") as info,
        open_client("slurm", config=settings),
    ):
        pass
    assert time.monotonic() - started < 60
    assert str(tmp_path / "jobs") in str(info.value)
    assert _gone(slurm, name) == []


# -- refused before anything is submitted (no cluster needed) -----------------------------


def test_unknown_jobqueue_setting_is_one_clear_error(tmp_path: Path, archive: list[Path]) -> None:
    from arcodex.convert._cluster import open_client

    settings = {"kind": "slurm", "jobqueue": {"queue": "debug", "wall_time": "01:00:00"}}
    refused = (
        r"unknown cluster.jobqueue setting 'wall_time' for (slurm|pbs): did you mean 'walltime'"
    )
    for kind in ("slurm", "pbs"):
        with pytest.raises(ConversionError, match=refused), open_client(kind, config=settings):
            pass


@pytest.mark.parametrize(("kind", "command"), [("slurm", "sbatch"), ("pbs", "qsub")])
def test_no_submit_command_is_one_clear_error(
    tmp_path: Path, archive: list[Path], monkeypatch: pytest.MonkeyPatch, kind: str, command: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ConversionError, match=rf"submits jobs with {command}, which is not on PATH"
    ):
        convert(str(tmp_path / "src" / "*.nc"), to="zarr", dest=tmp_path / "p.zarr", cluster=kind)
    assert not (tmp_path / "p.zarr").exists()


# -- groups ---------------------------------------------------------------------------------

MEMBERS_CSV = """id,sources,to,updates,removals
tas,src/tas/*.nc,zarr,title=Air temperature,history
ice,src/ice/*.nc,icechunk,,
bad,src/bad/*.nc,zarr,,
"""


def _group_archive(root: Path) -> None:
    for i, member in enumerate(("tas", "ice", "bad")):
        write_archive(root / "src" / member, "regular", files=2, steps=2, seed=i)
    broken = sorted((root / "src" / "bad").glob("*.nc"))[-1]
    broken.write_bytes(b"this is not NetCDF")
    (root / "members.csv").write_text(MEMBERS_CSV)


def test_group_runs_its_members_in_slurm_jobs(slurm: LocalSlurm, tmp_path: Path) -> None:
    from distributed import get_task_stream

    from arcodex.convert._cluster import open_client
    from arcodex.groups import group_status, init_group, run_group

    _group_archive(tmp_path)
    name = _name()
    with (
        Catalog.create(tmp_path / "cat") as cat,
        open_client("slurm", config={**_settings(tmp_path, name), "jobs": 2}) as client,
    ):
        init_group(cat, "arch", tmp_path / "members.csv")
        with get_task_stream(client) as stream:
            run = run_group(cat, "arch", cluster=client)
        job_of = client.run(JOB_ID)
        outcome = {m.id: m for m in run.members}
        assert outcome["tas"].status == "done" and outcome["ice"].status == "done", outcome
        assert outcome["bad"].status == "failed"  # alone: the others finished
        assert group_status(cat, "arch").counts["done"] == 2
        ran_on = {task["worker"] for task in stream.data}
        assert ran_on and all(job_of[worker] for worker in ran_on), (job_of, ran_on)
    assert _gone(slurm, name) == []


def test_cli_group_run_on_slurm(slurm: LocalSlurm, tmp_path: Path) -> None:
    import json

    _group_archive(tmp_path)
    (tmp_path / "members.csv").write_text(MEMBERS_CSV.replace("bad,src/bad/*.nc,zarr,,\n", ""))
    name = _name()
    root = tmp_path / "cat"
    config = CatalogConfig(cluster=ClusterConfig(**_settings(tmp_path, name)))
    Catalog.create(root, config=config).close()
    made = _cli("group", "init", "arch", "--from", "../members.csv", cwd=root)
    assert made.returncode == 0, made.stderr
    run = _cli("group", "run", "arch", "--cluster", "slurm", "--json", cwd=root)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["counts"]["done"] == 2
    status = json.loads(_cli("group", "status", "arch", "--json", cwd=root).stdout)
    assert status["counts"]["done"] == 2
    assert len(_jobs_that_ran(tmp_path / "jobs", name)) == 1
    assert _gone(slurm, name) == []


def test_readme_batch_settings_are_taken_as_written() -> None:
    """The README's SLURM and PBS examples pass dask-jobqueue's arguments as it spells them."""
    import yaml

    from arcodex.convert._batch import BATCH_SYSTEMS, job_options

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### On a batch system (SLURM, PBS)", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    kinds = []
    for block in blocks:
        settings = ClusterConfig(**yaml.safe_load(block)["cluster"])
        options = job_options(BATCH_SYSTEMS[settings.kind], settings, threads=1, memory_limit=None)
        kinds.append(settings.kind)
        assert options["processes"] == options["cores"]  # one thread per worker process
    assert kinds == ["slurm", "pbs"]


def test_job_options_fill_from_settings_site_config_then_defaults() -> None:
    import dask

    from arcodex.convert._batch import BATCH_SYSTEMS, job_options

    slurm = BATCH_SYSTEMS["slurm"]
    plain = job_options(slurm, ClusterConfig(kind="slurm"), threads=1, memory_limit=None)
    assert plain["cores"] == 1 and plain["processes"] == 1 and plain["memory"] == "4.00GiB"
    assert plain["walltime"] == "01:00:00" and plain["job_name"] == "arcodex"
    sized = ClusterConfig(kind="slurm", jobqueue={"cores": 8, "job-extra-directives": ["-x"]})
    options = job_options(slurm, sized, threads=2, memory_limit="3GiB")
    assert options["processes"] == 4 and options["memory"] == "12.00GiB"
    assert options["job_extra_directives"] == ["-x"]
    with dask.config.set({"jobqueue.slurm.walltime": "08:00:00", "jobqueue.slurm.memory": "9GiB"}):
        site = job_options(slurm, ClusterConfig(kind="slurm"), threads=1, memory_limit=None)
    assert site["walltime"] == "08:00:00" and site["memory"] == "9GiB"


#: Opens a SLURM cluster with the settings in argv[1] (JSON), says so, and waits to be killed.
HOLD = """\
import json, sys, time
from arcodex.convert._cluster import open_client
with open_client("slurm", config=json.loads(sys.argv[1])) as client:
    print(len(client.scheduler_info(n_workers=-1)["workers"]), flush=True)
    time.sleep(600)
"""


def test_jobs_of_a_killed_run_end_by_themselves(slurm: LocalSlurm, tmp_path: Path) -> None:
    import json
    import signal

    name = _name()
    # death_timeout also bounds a worker's start: 3 s was too short for a loaded CI machine,
    # where the worker's job failed before it could join
    settings = _settings(tmp_path, name, death_timeout=15)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, json.dumps(settings)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "1"  # its worker joined
            assert len(slurm.jobs(name)) == 1
        finally:
            proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
    assert _gone(slurm, name, timeout=60) == [], "the worker left when its scheduler died"
