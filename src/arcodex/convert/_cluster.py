"""The Dask cluster a conversion runs on.

``local`` starts a LocalCluster of worker *processes* (HDF5 is not thread
safe, so one thread each by default); ``threads`` runs the workers as
threads of this process (cheap to start, for small jobs and tests);
``tcp://host:8786`` connects to a running scheduler; ``slurm`` and ``pbs``
start a dask-jobqueue cluster from the ``cluster`` settings of
``arcodex.yaml``. A client passed in is used as it is and left open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from arcodex.catalog._config import ClusterConfig
from arcodex.errors import ConversionError, ValidationError

__all__ = ["ClusterConfig", "cancel_and_wait", "open_client"]


def cancel_and_wait(client: Any, futures: Sequence[Any], timeout: float = 600.0) -> None:
    """Cancel ``futures`` and return only once none of their tasks still runs on a worker.

    Cancelling releases the tasks on the scheduler, but a task already running
    keeps running in its worker thread; a clean-up that removed its output
    before it ended would leave its chunks behind. Waits ``timeout`` seconds
    at most (a hung worker must not hang the caller for ever).
    """
    import time

    if not futures:
        return
    keys = [f.key for f in futures]
    client.cancel(list(futures))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            busy = client.run(_running_of, keys)
        except Exception:  # workers gone: nothing of ours can still be running
            return
        if not any(busy.values()):
            return
        time.sleep(0.05)


def _running_of(keys: Sequence[Any], dask_worker: Any = None) -> int:
    """On a worker: how many of ``keys`` are executing there right now."""
    wanted = set(keys)
    state = dask_worker.state
    return sum(1 for ts in (*state.executing, *state.long_running) if ts.key in wanted)


@contextmanager
def open_client(
    cluster: Any = None,
    *,
    workers: int | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    config: ClusterConfig | Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster`` (a spec string, a Client, or None for the config)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - part of the convert extra
        raise ConversionError(
            "conversion needs dask.distributed: pip install 'arcodex[convert]'"
        ) from exc
    if isinstance(cluster, Client):
        yield cluster
        return
    settings = config if isinstance(config, ClusterConfig) else ClusterConfig(**dict(config or {}))
    kind = str(cluster or settings.kind)
    n = workers or settings.workers or os.cpu_count() or 1
    per = threads or settings.threads
    memory = memory_limit or settings.memory_limit
    if kind.startswith(("tcp://", "tls://", "inproc://")):
        try:
            client = Client(kind, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConversionError(
                f"no Dask scheduler answers at {kind}; start one or use --cluster local"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    if kind in ("local", "processes", "threads"):
        import logging

        # Shutting a cluster down logs closed connections as tracebacks at INFO level, and a
        # task's error is logged with its traceback before it reaches us as an exception.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)
        processes = kind != "threads"
        lc = LocalCluster(
            n_workers=n,
            threads_per_worker=per,
            processes=processes,
            memory_limit=memory if processes else None,
            dashboard_address=":0",  # a free port: 8787 may be taken by another cluster
            silence_logs=logging.CRITICAL,
        )
        try:
            with Client(lc, set_as_default=False) as client:
                yield client
        finally:
            lc.close()
        return
    if kind in ("slurm", "pbs"):
        try:
            import dask_jobqueue
        except ImportError as exc:
            raise ConversionError(
                f"--cluster {kind} needs dask-jobqueue: pip install 'arcodex[hpc]'"
            ) from exc
        factory = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.PBSCluster
        options = {"cores": per, "memory": "4GiB", **settings.jobqueue}
        try:
            batch = factory(**options)
        except Exception as exc:
            raise ConversionError(f"cannot start a {kind} cluster: {exc}") from exc
        batch.scale(jobs=settings.jobs)
        try:
            with Client(batch, set_as_default=False) as client:
                yield client
        finally:
            batch.close()
        return
    raise ValidationError(
        f"unknown cluster {kind!r}; use local, threads, tcp://HOST:PORT, slurm or pbs"
    )
