"""The Dask cluster a conversion runs on.

``local`` starts a LocalCluster of worker *processes* (HDF5 is not thread
safe, so one thread each by default); ``threads`` runs the workers as
threads of this process (cheap to start, for small jobs and tests);
``tcp://host:8786`` connects to a running scheduler; ``slurm`` and ``pbs``
start a dask-jobqueue cluster from the ``cluster`` settings of
``arcodex.yaml``. A client passed in is used as it is and left open.

Worker processes are started by spawn (distributed's default), which
re-imports the main module in every worker. Where that would go wrong -- a
script that converts at its top level without an ``if __name__ ==
"__main__":`` guard, or a main module that is no file (``python - <
script.py``) -- ``local`` runs the workers as threads instead and says so in
one log line. A REPL, ``python -c``, a notebook and a guarded script keep
processes: nothing of theirs is re-imported.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from arcodex.catalog._config import ClusterConfig
from arcodex.errors import ConversionError, ValidationError

__all__ = ["ClusterConfig", "cancel_and_wait", "open_client", "spawn_hazard", "worker_count"]

logger = logging.getLogger("arcodex.convert")


def worker_count(client: Any) -> int:
    """The workers ``client``'s cluster has now (at least 1)."""
    try:
        return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    except Exception:  # a scheduler that cannot say: plan for one
        return 1


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
        import dask
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
        # Shutting a cluster down logs closed connections as tracebacks at INFO level, and a
        # task's error is logged with its traceback before it reaches us as an exception.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)
        processes = kind != "threads"
        if processes and cluster is None and settings.kind == "local":
            hazard = spawn_hazard()
            if hazard is not None:
                logger.warning(
                    "notice: %s, so the local cluster runs its workers as threads "
                    "(pass cluster='local' to insist on processes)",
                    hazard,
                )
                processes = False
        # The workers' statistical profiler samples every thread's stack 100 times a second
        # for the dashboard's profile page: CPU a conversion's busy cores need (py-spy put
        # it at up to 16 % of a task under load).
        with dask.config.set({"distributed.worker.profile.enabled": settings.profile}):
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
        from arcodex.convert._batch import batch_client

        with batch_client(
            kind, settings, threads=per, memory_limit=memory, workers=workers
        ) as client:
            yield client
        return
    raise ValidationError(
        f"unknown cluster {kind!r}; use local, threads, tcp://HOST:PORT, slurm or pbs"
    )


def spawn_hazard() -> str | None:
    """Why worker processes would fail to start from this main module, or None if they can.

    Spawned (and forkserver) workers run the main module again as ``__mp_main__``: a
    script whose top level starts a cluster without a ``__main__`` guard would start
    one in every worker, and a main module read from stdin cannot be run again.
    """
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return None
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and str(spec.name).endswith(".__main__"):
        return None  # `python -m package`: multiprocessing does not run it again
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return None  # a REPL, `python -c`, a notebook: nothing is re-imported
    if not os.path.isfile(path):
        return f"the main module {path} cannot be run again by worker processes"
    line = _main_top_level_line(main.__dict__, path)
    if line is not None and not _under_main_guard(path, line):
        name = os.path.basename(path)
        return f'{name} converts at its top level without an `if __name__ == "__main__":` guard'
    return None


def _main_top_level_line(namespace: dict[str, Any], path: str) -> int | None:
    """The line the main script's top level is executing now, if it is on the call stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if frame.f_globals is namespace and code.co_name == "<module>" and code.co_filename == path:
            return frame.f_lineno
        frame = frame.f_back
    return None


def _under_main_guard(path: str, line: int) -> bool:
    """Whether ``line`` of the script at ``path`` is inside an ``if __name__ == "__main__":``."""
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    for node in tree.body:
        end = node.end_lineno or node.lineno
        if node.lineno <= line <= end:
            return isinstance(node, ast.If) and _is_main_test(node.test)
    return False


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1
