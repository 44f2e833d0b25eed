"""Raw Zarr over HTTP: a global mean through ``/zarr/ID`` vs local disk vs xpublish.

A generated dataset (``--mb`` of float32, chunked by time) is converted to Zarr
by arcodex, published, and served by ``arcodex`` (uvicorn in a thread) and by
xpublish's Zarr router (uvicorn in a thread, same dataset); xarray with Dask
computes the global mean of ``tas`` through each. The answers are compared
before anything is printed; medians of ``--repeats`` runs, MB/s and ratios.

    PYTHONPATH=src python benchmarks/serve_bench.py --mb 300 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _uvicorn(app: Any) -> Iterator[str]:
    import uvicorn

    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _make(root: Path, mb: int) -> str:
    import numpy as np
    import pandas as pd
    import xarray as xr

    from arcodex.catalog import Catalog
    from arcodex.convert import convert

    ny, nx = 256, 512
    steps = max(8, mb * 1024 * 1024 // (ny * nx * 4))
    (root / "src").mkdir(parents=True)
    per = steps // 4
    for i in range(4):
        times = pd.date_range("2000-01-01", periods=steps, freq="D")[i * per : (i + 1) * per]
        values = np.random.default_rng(i).normal(280, 10, (len(times), ny, nx)).astype("f4")
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={
                "time": times,
                "lat": np.linspace(-89, 89, ny, dtype="f4"),
                "lon": np.linspace(0, 359, nx, dtype="f4"),
            },
        )
        ds.to_netcdf(root / "src" / f"f{i}.nc")
    with Catalog.create(root / "cat") as cat:
        result = convert(
            str(root / "src" / "f*.nc"),
            dest=root / "out.zarr",
            catalog=cat,
            cluster="threads",
            chunks={"time": 8, "lat": ny, "lon": nx},
        )
        assert result.record is not None
        cat.update(result.record.id, set={"access.published": True, "access.visibility": "public"})
        return result.record.id


def _time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    answers, times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        answers.append(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), answers[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import dask
    import xarray as xr
    import xpublish

    from arcodex.server import create_app

    dask.config.set(scheduler="threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rid = _make(root, args.mb)
        local = xr.open_zarr(root / "out.zarr")
        nbytes = local.tas.nbytes

        def mean_of(ds: Any) -> float:
            return float(ds.tas.mean().compute())

        t_local, a_local = _time(lambda: mean_of(xr.open_zarr(root / "out.zarr")), args.repeats)
        with _uvicorn(create_app(root / "cat")) as base:
            url = f"{base}/zarr/{rid}"
            t_arc, a_arc = _time(lambda: mean_of(xr.open_zarr(url)), args.repeats)
        # The baseline: xpublish with its Zarr router (the xpublish-zarr plugin, found by its
        # entry point), Zarr v3 with consolidated metadata in its root zarr.json.
        with _uvicorn(xpublish.SingleDatasetRest(local).app) as base:
            t_xp, a_xp = _time(
                lambda: mean_of(xr.open_zarr(f"{base}/zarr", zarr_format=3, consolidated=True)),
                args.repeats,
            )
        assert abs(a_arc - a_local) < 1e-6 * abs(a_local), (a_arc, a_local)
        assert abs(a_xp - a_local) < 1e-6 * abs(a_local), (a_xp, a_local)
        mb = nbytes / 1e6
        print(f"dataset: {mb:.0f} MB of tas (float32), {args.repeats} repeats, medians")
        for name, t in (("local disk", t_local), ("arcodex /zarr", t_arc), ("xpublish", t_xp)):
            print(f"  {name:14s} {t:7.2f} s  {mb / t:8.1f} MB/s")
        print(f"  arcodex / xpublish throughput: {t_xp / t_arc:.2f}x (target >= 1.5x)")
        print(f"  arcodex / local throughput:    {t_local / t_arc:.0%} (target >= 50%)")


if __name__ == "__main__":
    main()
