"""``/health`` and ``/ready``: is the process alive, and can it answer?

``/health`` answers as long as the process runs (a liveness probe restarts a
server that stops answering it). ``/ready`` also reaches the catalog's
database and every storage profile (a readiness probe, or a load balancer,
sends no traffic to a server that cannot serve it). Each check runs with a
timeout in a thread, and its answer is kept for a moment, so that a client
polling ``/ready`` cannot turn into a stream of requests to the database or
the bucket. Answers name the checks and say what failed; never a path, a URL
or a credential.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from arcodex.catalog import Catalog

__all__ = ["Readiness", "add_health"]

#: How long one check may take before it counts as failed (seconds).
CHECK_TIMEOUT = 5.0
#: How long an answer of ``/ready`` is kept (seconds).
KEEP = 2.0


class Readiness:
    """The checks of ``/ready``, run at most once per :data:`KEEP` seconds."""

    def __init__(self, catalog: Catalog, *, timeout: float = CHECK_TIMEOUT) -> None:
        self.catalog = catalog
        self.timeout = timeout
        self._lock = threading.Lock()
        self._answer: tuple[float, dict[str, str]] | None = None
        # Checks that hang (a bucket that never answers) must not pile up: few threads.
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="arcodex-ready")

    def checks(self) -> dict[str, str]:
        """Each check's name and ``"ok"`` or what failed."""
        with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._answer[0] < KEEP:
                return self._answer[1]
            found = self._run()
            self._answer = (time.monotonic(), found)
            return found

    def _run(self) -> dict[str, str]:
        tasks = {"database": self._pool.submit(self._database)}
        for name in sorted(self.catalog.config.profiles):
            tasks[f"storage:{name}"] = self._pool.submit(self._storage, name)
        deadline = time.monotonic() + self.timeout
        out: dict[str, str] = {}
        for name, task in tasks.items():
            try:
                task.result(timeout=max(0.0, deadline - time.monotonic()))
                out[name] = "ok"
            except FutureTimeout:
                out[name] = f"no answer within {self.timeout:g} s"
            except Exception as exc:  # any failure makes the server not ready
                out[name] = _reason(exc)
        return out

    def _database(self) -> None:
        self.catalog.backend.stats()

    def _storage(self, name: str) -> None:
        from arcodex.storage import LocalStore

        store = self.catalog.storage(name)
        if isinstance(store, LocalStore):
            if store.root.is_dir():
                next(store.root.iterdir(), None)
                return
            # A directory inside the catalog is made by the first write; one elsewhere (a
            # mounted disk, a shared archive) must be there.
            if store.root.is_relative_to(self.catalog.root) and self.catalog.root.is_dir():
                return
            raise FileNotFoundError("its directory is missing")
        # The bucket (or the prefix's first level) itself: one request, whatever its size.
        top = store.base.split("/", 1)[0]
        if top:
            store.fs.info(top)
        else:
            store.fs.ls("", detail=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reason(exc: BaseException) -> str:
    """What failed, in words a reader can act on, without paths, URLs or credentials."""
    from arcodex.errors import AuthError, StorageError

    if isinstance(exc, FileNotFoundError):
        return "not found (is the directory or bucket there?)"
    if isinstance(exc, PermissionError | AuthError):
        return "access denied (check the credentials of the profile)"
    if isinstance(exc, StorageError | OSError | ConnectionError | TimeoutError):
        return f"unreachable ({type(exc).__name__})"
    return f"failed ({type(exc).__name__})"


def add_health(app: FastAPI, catalog: Catalog) -> Readiness:
    """Add ``/health`` and ``/ready`` to ``app``; the :class:`Readiness` it uses."""
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    class Health(BaseModel):
        status: str = Field(description="`ok` while the process answers")

    class Ready(BaseModel):
        status: str = Field(description="`ready`, or `not ready` (HTTP 503)")
        checks: dict[str, str] = Field(
            description="each check (`database`, `storage:PROFILE`): `ok` or what failed"
        )

    readiness = Readiness(catalog)

    @app.get("/health", response_model=Health, tags=["Service"], summary="Liveness")
    def health() -> dict[str, Any]:
        """The process answers (nothing else is checked)."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=Ready,
        tags=["Service"],
        summary="Readiness",
        responses={503: {"model": Ready, "description": "a check failed"}},
    )
    async def ready() -> Any:
        """The catalog's database and every storage profile answer."""
        checks = await run_in_threadpool(readiness.checks)
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    return readiness
