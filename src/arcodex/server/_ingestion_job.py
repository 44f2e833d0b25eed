"""Ingestion and sync jobs: the catalog operation that is a job, and the process that runs it.

``POST /ingestions`` (and ``POST /sync/{id}``) saves an operation of action ``job``
(:func:`new_job`) and starts ``python -m arcodex.server._ingestion_job JOB_ID``
(:func:`launch`), a process of its own session: it outlives the request and the
server worker that started it. The job's state lives in that operation only, so
every server worker and host that shares the catalog answers the same
``GET /ingestions/{id}``. The process (:func:`run_job`) marks the job running,
runs :func:`arcodex.ingest.ingest` with the requesting user (the ingest operation
records them) and mirrors its progress into the job, and ends it done, failed or
cancelled. It holds the job's lease (the catalog's, as a unit of work does) from
before it marks the job running until after it ends it: a running job whose lease is
free has lost its process (killed, its host down) and is answered ``interrupted``.

A cancel request is an event (``job.cancel_requested`` naming the job's operation)
appended to the catalog's event log, never a write to the job's operation: the
job's process is the only writer of that operation after it started, so no
update is lost. ``cancelled()``, asked by the ingestion (or the sync) before each
period, looks for that event.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Operation

__all__ = [
    "ACTION",
    "JobState",
    "as_dict",
    "cancel_requested",
    "find_job",
    "jobs",
    "launch",
    "new_job",
    "public_result",
    "public_text",
    "request_cancel",
    "run_job",
    "state_of",
]

#: The action of a job's operation.
ACTION = "job"
#: The event a cancel request is.
CANCEL_EVENT = "job.cancel_requested"
JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
#: ``interrupted``: the job's process is gone without having ended the job (killed, or its
#: host went down); never written, judged from the job's lease (see :func:`state_of`).
FINAL = ("done", "failed", "cancelled", "interrupted")

# An absolute path (POSIX), in a message: only its last part is shown.
_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s'\"():,/]+/)+([^\s'\"():,/]+)")


def public_text(text: str) -> str:
    """``text`` with every absolute file path cut to its file name (answers show no paths)."""
    return _PATH.sub(r"\1", text)


# -- the job's operation ----------------------------------------------------------------------


def new_job(
    catalog: Catalog, kind: Literal["ingest", "sync"], request: dict[str, Any], user: str | None
) -> Operation:
    """A queued job of ``kind`` for ``request``, saved as an operation."""
    from arcodex.model import Operation

    inputs = (
        [str(request["template"]), str(request["extent"])]
        if kind == "ingest"
        else [str(request["record"])]
    )
    operation = Operation(
        action=ACTION,
        user=user,
        inputs=inputs,
        parameters={"kind": kind, "request": request, "job": {"state": "queued"}},
    )
    catalog.backend.save_operation(operation)
    return operation


def launch(catalog: Catalog, operation: Operation) -> None:
    """Start the process that runs the job, detached from this one (its own session).

    Its output goes to ``state/jobs/JOB_ID.log`` under the catalog root.
    """
    import subprocess
    import threading

    logs = Path(catalog.root) / "state" / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ARCODEX_CATALOG": str(Path(catalog.root).resolve())}
    with (logs / f"{operation.id}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "arcodex.server._ingestion_job", operation.id],
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    try:
        operation.parameters["job"].update(pid=process.pid, host=socket.gethostname())
        _save_job(catalog, operation)
    finally:
        # The process waits for this end of its stdin to close before it reads the job,
        # so that this save never overwrites what it writes.
        assert process.stdin is not None
        process.stdin.close()
    # Reaped when it ends, so that it does not linger as a zombie of the server.
    threading.Thread(target=process.wait, name=f"job-{operation.id}", daemon=True).start()


def _save_job(catalog: Catalog, operation: Operation) -> None:
    catalog.backend.save_operation(operation)


def jobs(catalog: Catalog, window: int = 200) -> Iterator[Operation]:
    """The jobs, newest first (the catalog's operations read in growing windows)."""
    seen = 0
    while True:
        found = catalog.backend.operations(limit=window)
        for operation in found[seen:]:
            if operation.action == ACTION:
                yield operation
        if len(found) < window:
            return
        seen, window = len(found), window * 4


def find_job(catalog: Catalog, job_id: str) -> Operation | None:
    """The job ``job_id``, or None."""
    return next((j for j in jobs(catalog) if j.id == job_id), None)


def request_cancel(catalog: Catalog, operation: Operation, user: str | None) -> None:
    """Ask the job to stop after its current period (an event, see the module's docstring)."""
    catalog.events.emit(
        CANCEL_EVENT,
        f"cancel of job {operation.id} requested",
        operation_id=operation.id,
        user=user,
    )


def cancel_requested(catalog: Catalog, operation: Operation) -> bool:
    """Whether someone asked the job to stop."""
    since = operation.started_at.date().isoformat()
    return bool(catalog.logs(operation=operation.id, event=CANCEL_EVENT, since=since, limit=1))


def _alive(catalog: Catalog, operation: Operation, job: dict[str, Any]) -> bool:
    """Whether the job's process still runs, as ``doctor`` and ``recover`` judge an
    operation: a running job's process holds the job's lease (:func:`run_job`), which the
    catalog's leases test (an advisory lock seen from every host of a PostgreSQL catalog,
    dropped at once by a killed process). Leases seen from one host only (the pid and
    host, a SQLite catalog's) cannot tell of another host's process: it counts as alive.
    A queued job has no lease yet: its process, started by the server, is judged by pid."""
    from arcodex.catalog._opstate import process_alive

    leases = catalog.leases
    if job.get("state") == "running" and leases.shared:
        return bool(leases.running(operation.id, job))
    if not isinstance(job.get("pid"), int) or job.get("host") != socket.gethostname():
        return True
    return process_alive(job.get("pid"), job.get("host"))


def state_of(catalog: Catalog, operation: Operation) -> tuple[JobState, str | None]:
    """The job's state, and why it failed or stopped; a job whose process is gone without
    ending it is ``interrupted``."""
    job = operation.parameters.get("job") or {}
    state: JobState = job.get("state", "queued")
    if state in FINAL:
        return state, job.get("error")
    if _alive(catalog, operation, job):
        return state, None
    # Its process may have ended the job between the read and the test of its lease.
    again = find_job(catalog, operation.id)
    ended = (again.parameters.get("job") or {}) if again is not None else {}
    if ended.get("state") in FINAL:
        operation.parameters = again.parameters if again is not None else operation.parameters
        return ended["state"], ended.get("error")
    done = int((operation.parameters.get("progress") or {}).get("periods_done") or 0)
    return "interrupted", (
        f"the job's process ended before the job did (killed, or its host stopped) after "
        f"{done} period(s); what it committed is kept: start the same "
        f"{operation.parameters.get('kind', 'ingest')} again to resume, and run "
        "`arcodex recover` to close its operation"
    )


# -- the job's process ----------------------------------------------------------------------


def run_job(catalog: Catalog, job_id: str) -> JobState:
    """Run the job ``job_id`` to its end; its final state."""
    from arcodex.catalog._events import acting_user
    from arcodex.catalog._opstate import released

    operation = find_job(catalog, job_id)
    if operation is None:
        raise SystemExit(f"no job {job_id!r} in the catalog")
    job = operation.parameters["job"]
    job.update(pid=os.getpid(), host=socket.gethostname())
    if cancel_requested(catalog, operation):
        return _end(catalog, operation, "cancelled")
    # Held from before the job says it runs until after it says it ended: a running job
    # whose lease is free is one whose process is gone (see state_of).
    with released(catalog.leases.hold(operation.id)):
        job["state"] = "running"
        job["started_at"] = _now()
        _save_job(catalog, operation)
        try:
            with acting_user(operation.user):
                if operation.parameters["kind"] == "sync":
                    state = _run_sync(catalog, operation)
                else:
                    state = _run_ingest(catalog, operation)
        except Exception as exc:  # the job's answer, not a traceback
            operation.error = _error(exc)
            return _end(catalog, operation, "failed", public_text(f"{type(exc).__name__}: {exc}"))
        return _end(catalog, operation, state)


def _run_ingest(catalog: Catalog, operation: Operation) -> JobState:
    from arcodex.ingest import get_extent, get_template, ingest

    request = operation.parameters["request"]
    template = get_template(catalog, request["template"])
    extent = get_extent(catalog, request["extent"])
    started = operation.started_at

    def progress(period: str, done: int, total: int) -> None:
        mirrored = _ingest_progress(catalog, operation, started)
        operation.parameters["progress"] = mirrored or {
            "periods_done": done,
            "periods_total": total,
            "current_period": period or None,
            "errors": [],
        }
        _save_job(catalog, operation)

    def cancelled() -> bool:
        return cancel_requested(catalog, operation)

    result = ingest(
        catalog,
        template,
        extent,
        request["start"],
        request["end"],
        overwrite=bool(request.get("overwrite")),
        publish=bool(request.get("publish")),
        progress=progress,
        user=operation.user,
        cancelled=cancelled,
    )
    done = len(result.done) + len(result.skipped)
    operation.parameters["progress"] = {
        "periods_done": done,
        "periods_total": done + len(result.failed) + len(result.pending),
        "current_period": None,
        "errors": [f.to_dict() for f in result.failed],
    }
    operation.parameters["result"] = public_result(result.to_dict())
    operation.outputs = [result.record_id] if result.record is not None else []
    if result.operation_id:
        operation.parameters["job"]["operation"] = result.operation_id
    if result.cancelled:
        return "cancelled"
    if result.failed:
        from arcodex.ingest._ingestion import shortfall
        from arcodex.model import OperationError

        message = public_text(shortfall(result))
        operation.parameters["job"]["error"] = message
        operation.error = OperationError(type="Incomplete", message=message)
    return "done" if result.ok else "failed"


def _ingest_progress(catalog: Catalog, job: Operation, started: datetime) -> dict[str, Any] | None:
    """The progress the ingest operation of this job saved last (errors included)."""
    inner = job.parameters["job"].get("operation")
    request = job.parameters["request"]
    for operation in catalog.backend.operations(status="running", limit=100):
        if inner is not None and operation.id != inner:
            continue
        if (
            operation.action != "ingest"
            or operation.user != job.user
            or operation.started_at < started
            or operation.parameters.get("template") != request["template"]
            or operation.parameters.get("extent") != request["extent"]
        ):
            continue
        job.parameters["job"]["operation"] = operation.id
        found = operation.parameters.get("progress")
        return dict(found) if isinstance(found, dict) else None
    return None


def _run_sync(catalog: Catalog, operation: Operation) -> JobState:
    from arcodex.ingest._sync import sync

    request = operation.parameters["request"]

    def cancelled() -> bool:
        return cancel_requested(catalog, operation)

    result = sync(
        catalog, request["record"], end=request.get("end"), user=operation.user, cancelled=cancelled
    )
    operation.parameters["result"] = public_result(as_dict(result))
    operation.outputs = [str(request["record"])]
    if result.cancelled:
        return "cancelled"
    return "done" if result.ok else "failed"


def as_dict(value: Any) -> dict[str, Any]:
    """A result or plan as a dict (``to_dict``, a Pydantic model or a dataclass)."""
    import dataclasses

    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    if hasattr(value, "model_dump"):
        return dict(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value) if isinstance(value, dict) else {"value": str(value)}


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result as the API may show it: texts without paths, no internal record objects."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return public_text(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items() if k != "record_obj"}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return public_text(str(value))

    return {k: clean(v) for k, v in result.items()}


def _error(exc: BaseException) -> Any:
    from arcodex.model import OperationError

    return OperationError(type=type(exc).__name__, message=public_text(str(exc)))


def _end(
    catalog: Catalog, operation: Operation, state: JobState, error: str | None = None
) -> JobState:
    from arcodex.model import utcnow

    job = operation.parameters["job"]
    job["state"] = state
    if error is not None:
        job["error"] = error
    operation.status = "failed" if state == "failed" else "succeeded"
    operation.finished_at = utcnow()
    _save_job(catalog, operation)
    return state


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    """``python -m arcodex.server._ingestion_job JOB_ID`` with ``$ARCODEX_CATALOG`` set."""
    from arcodex.catalog import Catalog

    args = sys.argv[1:] if argv is None else argv
    if not sys.stdin.isatty():
        sys.stdin.read()  # until the server has saved the job's process (see launch)
    root = os.environ.get("ARCODEX_CATALOG")
    if len(args) != 1 or not root:
        print("usage: ARCODEX_CATALOG=ROOT python -m arcodex.server._ingestion_job JOB_ID")
        return 2
    with Catalog.open(root) as catalog:
        state = run_job(catalog, args[0])
    print(f"job {args[0]}: {state}")
    return 0 if state in ("done", "cancelled") else 1


if __name__ == "__main__":
    raise SystemExit(main())
