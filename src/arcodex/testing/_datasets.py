"""Helpers for tests of conversions: the sources as xarray sees them, value equality,
and an S3 endpoint on loopback (moto's server, as s3fs and zarr test themselves)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "S3_KEY_ID",
    "S3_SECRET",
    "assert_same_values",
    "http_directory",
    "http_server",
    "no_aws_credentials",
    "s3_server",
    "serve_catalog",
    "sources_dataset",
]

#: Credentials of the loopback S3 server (tests check they leak nowhere).
S3_KEY_ID = "AKIAARCODEXTESTKEY"
S3_SECRET = "arcodex-test-secret-7f3c9d"


def sources_dataset(files: Sequence[Path | str], dim: str = "time", *, raw: bool = True) -> Any:
    """The files concatenated along ``dim`` by plain xarray (given in time order), loaded."""
    import xarray as xr

    ds = xr.open_mfdataset(
        [str(f) for f in files],
        combine="nested",
        concat_dim=dim,
        decode_cf=not raw,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
    )
    with ds:
        return ds.load()


def assert_same_values(got: Any, want: Any) -> None:
    """Every variable of ``want`` is in ``got`` with the same dims, dtype and values (NaN = NaN)."""
    import numpy as np

    assert set(want.variables) <= set(got.variables), (set(want.variables), set(got.variables))
    for name, var in want.variables.items():
        other = got.variables[name]
        assert other.dims == var.dims, name
        assert other.dtype == var.dtype, (name, other.dtype, var.dtype)
        np.testing.assert_array_equal(
            np.asarray(other.values), np.asarray(var.values), err_msg=name
        )


@contextmanager
def no_aws_credentials(patch: Any) -> Iterator[None]:
    """No AWS credential anywhere botocore or Icechunk would look (env, files, IMDS), for
    the life of ``patch`` (a ``pytest.MonkeyPatch``)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    patch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def http_directory(directory: Path | str) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free loopback port; yields the base URL."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(functools.partial(Quiet, directory=str(directory))) as url:
        yield url


@contextmanager
def http_server(handler: Any) -> Iterator[str]:
    """An HTTP server with ``handler`` (a request handler class) on a free loopback port,
    in a thread; yields the base URL."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish_all(catalog: Any, *terms: str) -> list[str]:
    """Publish every dataset of ``catalog`` matching ``terms`` (all by default) as public.

    Anonymous readers of a served catalog see published public datasets only; this is
    ``arcodex publish`` on each, so a product whose check failed is refused as there.
    Returns the ids published (those already published are left as they are).
    """
    from arcodex.catalog._access import is_published

    done = []
    for record in catalog.search(*terms, kind="dataset", limit=None).records:
        if not is_published(record):
            catalog.publish(record.id, visibility="public")
            done.append(record.id)
    return done


@contextmanager
def serve_catalog(root: Any, **app_options: Any) -> Iterator[str]:
    """The arcodex server of the catalog at ``root`` (``app_options`` go to ``create_app``)
    under uvicorn on a free loopback port, in a thread; yields the base URL (the STAC API
    is under ``/stac``)."""
    import socket
    import threading
    import time

    import uvicorn

    from arcodex.server import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(root, **app_options)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the arcodex server did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_workers(
    root: Any,
    workers: int = 2,
    *,
    timeout: float = 60,
    stop: int | None = None,
    args: Sequence[str] = (),
) -> Iterator[ServedWorkers]:
    """``arcodex serve --workers N`` of the catalog at ``root`` (and ``args``) as a child
    process on a free loopback port; yields its :class:`ServedWorkers` once every worker
    is up. Its output (stdout and stderr) is :meth:`ServedWorkers.output`.

    On the way out it sends ``stop`` (default SIGTERM; SIGINT is Ctrl-C) to the parent
    and raises unless the parent and every worker process have ended within ``timeout``.
    """
    import os
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "arcodex", "--catalog", str(root), "serve"]
    command += ["--port", str(port), "--workers", str(workers), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A file, not a pipe (a full pipe would stall the server); the child appends to it (so
    # reading it meanwhile moves nothing under the child), removed in the finally below.
    fd, log_path = tempfile.mkstemp(prefix="arcodex-serve-", suffix=".log")
    os.close(fd)
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = ServedWorkers(proc, f"http://127.0.0.1:{port}", Path(log_path))
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"arcodex serve --workers {workers} exited: {served.output()}")
            try:
                if httpx.get(f"{served.url}/stac/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"arcodex serve --workers {workers} did not answer in {timeout} s"
                )
            time.sleep(0.1)
        # Every worker answers once its app is built; wait until all N are up.
        while workers > 1 and len(served.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        yield served
    finally:
        workers_seen = served.worker_pids()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if stop is None else stop)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError("arcodex serve did not stop on SIGTERM") from None
        finally:
            log.close()
            served.kept = served.output()
            Path(log_path).unlink(missing_ok=True)
        left = [pid for pid in workers_seen if _alive(pid)]
        if left:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise RuntimeError(f"worker processes {left} outlived arcodex serve")


class ServedWorkers:
    """A running ``arcodex serve --workers N``: its process and base URL."""

    def __init__(self, proc: Any, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self._log = log
        self.kept: str | None = None

    def output(self) -> str:
        """What the server wrote so far (all of it, once it has stopped)."""
        if self.kept is not None:
            return self.kept
        return self._log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The server's worker processes (its children running a server, from /proc)."""
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(text.rpartition(")")[2].split()[1])
            if ppid == self.proc.pid and b"spawn_main" in cmdline:
                out.append(int(stat.parent.name))
        return sorted(out)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent, the server, has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
