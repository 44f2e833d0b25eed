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


@contextmanager
def serve_catalog(root: Any) -> Iterator[str]:
    """The arcodex server of the catalog at ``root`` under uvicorn on a free loopback port,
    in a thread; yields the base URL (the STAC API is under ``/stac``)."""
    import socket
    import threading
    import time

    import uvicorn

    from arcodex.server import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(root), host="127.0.0.1", port=port, log_level="critical")
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
