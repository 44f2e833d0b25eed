"""A Dask cluster of batch jobs on SLURM or PBS, through dask-jobqueue.

The ``cluster`` settings of ``arcodex.yaml`` size it: ``jobs`` jobs, each
running ``jobqueue.processes`` worker processes of ``threads`` threads (one
by default: HDF5 is not thread safe), with ``jobqueue.memory`` for the whole
job. ``jobqueue`` takes any argument of dask-jobqueue's ``SLURMCluster`` or
``PBSCluster`` (``queue``, ``account``, ``walltime``, ``job_extra_directives``,
``local_directory``, ``log_directory``, ``interface``, ``python``…); an unknown
one is refused before anything is submitted.

Opening the cluster submits the jobs and waits until their workers join the
scheduler, for ``start_timeout`` seconds at most. A refused submission (a
partition that does not exist, no ``sbatch`` on PATH) or jobs that all end
before a worker joins fail at once with the batch system's own words; jobs
still queued at the timeout fail with their state and reason. Whatever
happens, closing cancels every job it submitted, and a worker whose scheduler
has gone exits by itself after dask-jobqueue's ``death_timeout`` (60 s).
"""

from __future__ import annotations

import difflib
import inspect
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from arcodex.catalog._config import ClusterConfig
from arcodex.errors import ConversionError

__all__ = ["BATCH_SYSTEMS", "BatchSystem", "batch_client", "job_options"]

logger = logging.getLogger("arcodex.convert")

#: Per worker when neither ``memory_limit`` nor ``jobqueue.memory`` says.
DEFAULT_WORKER_MEMORY = "4GiB"
DEFAULT_WALLTIME = "01:00:00"
#: Job states in which a job may still bring a worker (SLURM's long names).
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING", "COMPLETING"}


@dataclass(frozen=True)
class BatchSystem:
    """What arcodex needs to know of one batch system."""

    kind: str
    cluster_class: str  # in dask_jobqueue
    submit: str  # the command that submits a job
    status: str  # the command an operator asks about jobs with
    default_logs: str  # where a job's output goes without ``log_directory``


BATCH_SYSTEMS = {
    "slurm": BatchSystem(
        "slurm", "SLURMCluster", "sbatch", "squeue", "slurm-JOBID.out in the directory of the run"
    ),
    "pbs": BatchSystem("pbs", "PBSCluster", "qsub", "qstat", "JOBNAME.oJOBID in your home"),
}

# Arguments of the cluster classes that arcodex sets itself or that make no sense in a file.
_NOT_SETTINGS = {"self", "scheduler", "name", "job_cls", "loop", "asynchronous", "config_name"}


@contextmanager
def batch_client(
    kind: str,
    settings: ClusterConfig,
    *,
    threads: int,
    memory_limit: str | None,
    workers: int | None,
) -> Iterator[Any]:
    """A Client of a dask-jobqueue cluster whose workers have joined; its jobs cancelled on exit."""
    from distributed import Client

    system = BATCH_SYSTEMS[kind]
    factory = _cluster_class(system)
    options = job_options(system, settings, threads=threads, memory_limit=memory_limit)
    if shutil.which(system.submit) is None:
        raise ConversionError(
            f"--cluster {kind} submits jobs with {system.submit}, which is not on PATH: run "
            f"arcodex where {kind.upper()}'s commands are (a login node), or use --cluster local"
        )
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        batch = factory(job_cls=_recording(factory.job_cls), **options)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"cannot start a {kind} cluster: {_one_line(exc)}") from exc
    try:
        if workers:
            batch.scale(n=workers)
        else:
            batch.scale(jobs=settings.jobs)
        with Client(batch, set_as_default=False) as client:
            expected = len(batch.worker_spec) * _processes(options)
            logs = options.get("log_directory") or system.default_logs
            _wait_for_workers(system, batch, client, expected, settings.start_timeout, logs)
            yield client
    finally:
        batch.close()


def job_options(
    system: BatchSystem, settings: ClusterConfig, *, threads: int, memory_limit: str | None
) -> dict[str, Any]:
    """The arguments of the dask-jobqueue cluster: ``settings.jobqueue``, then the site's dask
    jobqueue config, then arcodex's defaults."""
    import dask
    from dask.utils import format_bytes, parse_bytes

    given = {str(k).replace("-", "_"): v for k, v in settings.jobqueue.items()}
    known = _settings_of(_cluster_class(system))
    for key in given:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConversionError(
                f"unknown cluster.jobqueue setting {key!r} for {system.kind}: {hint}it takes "
                f"the arguments of dask-jobqueue's {system.cluster_class}"
            )
    # A site's dask config (~/.config/dask/jobqueue.yaml) fills what arcodex.yaml leaves out.
    site = dict(dask.config.get(f"jobqueue.{system.kind}", None) or {})
    processes = given.get("processes", site.get("processes"))
    cores = given.get("cores", site.get("cores"))
    if cores is None:
        cores = threads * (processes or 1)
    if processes is None:
        processes = max(1, int(cores) // threads)
    memory = given.get("memory", site.get("memory"))
    if memory is None:
        per_worker = memory_limit if memory_limit not in (None, "auto") else DEFAULT_WORKER_MEMORY
        memory = format_bytes(parse_bytes(str(per_worker)) * processes).replace(" ", "")
    walltime = site.get("walltime")
    name = site.get("name")
    scheduler = {"dashboard_address": ":0", **dict(given.pop("scheduler_options", None) or {})}
    return {
        "cores": cores,
        "processes": processes,
        "memory": memory,
        # dask-jobqueue's own defaults (30 minutes, dask-worker) give way to arcodex's.
        "walltime": walltime if walltime not in (None, "00:30:00") else DEFAULT_WALLTIME,
        "job_name": name if name not in (None, "dask-worker") else "arcodex",
        **given,
        "scheduler_options": scheduler,
    }


def _processes(options: dict[str, Any]) -> int:
    return int(options["processes"])


def _cluster_class(system: BatchSystem) -> Any:
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConversionError(
            f"--cluster {system.kind} needs dask-jobqueue: pip install 'arcodex[hpc]'"
        ) from exc
    return getattr(dask_jobqueue, system.cluster_class)


def _settings_of(factory: Any) -> set[str]:
    """The keyword arguments ``factory`` and its job class take (the ``jobqueue`` settings)."""
    import dask_jobqueue.core

    names: set[str] = set()
    for function in (
        factory.__init__,
        factory.job_cls.__init__,
        dask_jobqueue.core.Job.__init__,
        dask_jobqueue.core.JobQueueCluster.__init__,
    ):
        for p in inspect.signature(function).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    return names - _NOT_SETTINGS


_RECORDING: dict[type, type] = {}


def _recording(job_cls: type) -> type:
    """``job_cls``, remembering why a job could not be submitted instead of losing it.

    dask-jobqueue submits in a background task whose exception nobody awaits, and a
    job left in its first state makes the cluster's close fail. This job counts as
    started without a job id (nothing to cancel) and keeps the submit command's error;
    closed, it says so.
    """
    if job_cls not in _RECORDING:
        from distributed.core import Status

        class RecordingJob(job_cls):  # type: ignore[misc]
            submit_error: str | None = None

            async def start(self) -> None:
                try:
                    await super().start()
                except Exception as exc:
                    self.submit_error = _submit_error(exc)
                    self.status = Status.running

            async def close(self) -> None:
                await super().close()
                # dask-jobqueue leaves the status as it was, which the cluster's close asserts
                # on for every job still referenced (a failed one in a traceback, say).
                self.status = Status.closed

        RecordingJob.__name__ = job_cls.__name__
        _RECORDING[job_cls] = RecordingJob
    return _RECORDING[job_cls]


def _wait_for_workers(
    system: BatchSystem, batch: Any, client: Any, expected: int, timeout: float, logs: str
) -> None:
    """Return once ``expected`` workers joined; raise when none ever will."""
    deadline = time.monotonic() + timeout
    next_look = time.monotonic() + 2.0
    while True:
        joined = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if joined >= expected:
            return
        jobs = list(batch.workers.values())
        ids = [j.job_id for j in jobs if j.job_id]
        refused = [j.submit_error for j in jobs if getattr(j, "submit_error", None)]
        if refused and not ids and len(jobs) == len(batch.worker_spec):
            raise ConversionError(
                f"{system.submit} refused the worker jobs: {refused[0]}; check the "
                "cluster.jobqueue settings (queue, account, memory, walltime) in arcodex.yaml"
            )
        now = time.monotonic()
        if joined == 0 and ids and now >= next_look:
            next_look = now + 2.0
            states = _job_states(system, ids)
            if states is not None and not any(s.split()[0] in ALIVE for s in states.values()):
                raise ConversionError(
                    f"the {system.kind} jobs ended before a Dask worker joined "
                    f"({_listed(states)}); their output is in {logs}"
                )
        if now >= deadline:
            if joined:
                logger.warning(
                    "notice: %d of %d workers joined within %.0f s; the work starts with them",
                    joined,
                    expected,
                    timeout,
                )
                return
            states = _job_states(system, ids) if ids else None
            jobs_now = _listed(states) if states else ", ".join(f"job {i}" for i in ids)
            raise ConversionError(
                f"no Dask worker joined within {timeout:.0f} s ({jobs_now or 'no job submitted'}"
                f"; see `{system.status}`): raise cluster.start_timeout or pick another queue"
            )
        time.sleep(0.25)


def _job_states(system: BatchSystem, ids: list[str]) -> dict[str, str] | None:
    """Each job's state and reason (``PENDING (Resources)``), or None if the system cannot say."""
    if system.kind != "slurm":
        return None  # qstat's output differs between PBS Pro and Torque: wait for the timeout
    try:
        done = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T %r"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # Jobs the controller has forgotten (long ended) are "invalid".
        return dict.fromkeys(ids, "ENDED") if "Invalid job id" in done.stderr else None
    states = dict.fromkeys(ids, "ENDED")
    for line in done.stdout.splitlines():
        job, _, rest = line.strip().partition(" ")
        state, _, reason = rest.partition(" ")
        if job in states:
            states[job] = f"{state} ({reason})" if reason and reason != "None" else state
    return states


def _listed(states: dict[str, str]) -> str:
    return ", ".join(f"job {job} {state}" for job, state in states.items())


def _submit_error(exc: BaseException) -> str:
    """The submit command's own complaint, on one line (dask-jobqueue quotes its stderr)."""
    text = str(exc)
    tail = text.split("stderr:", 1)[1] if "stderr:" in text else text
    lines = []
    for line in tail.splitlines():
        for prefix in ("sbatch: error: ", "qsub: "):
            line = line.removeprefix(prefix)
        if line.strip() and line.strip() not in lines:
            lines.append(line.strip())
    return "; ".join(lines) or _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
