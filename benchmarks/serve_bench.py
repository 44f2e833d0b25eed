"""Raw Zarr over HTTP: a global mean through ``/zarr/ID`` vs local disk vs xpublish.

A generated dataset (``--mb`` of float32, chunked by time) is converted to Zarr
by arcodex, published, and served by ``arcodex serve`` and by xpublish's Zarr
router over the same store, each a server process of its own as a site runs it
(uvicorn, one process, its default HTTP parser and loop), so neither shares the
client's interpreter; xarray with Dask computes the global mean of ``tas``
through each. The answers are compared before anything is printed; medians of
``--repeats`` runs, MB/s and ratios.

    PYTHONPATH=src python benchmarks/serve_bench.py --mb 300 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The baseline's server: xpublish's app over the same store, under uvicorn as arcodex's is.
XPUBLISH = """
import sys, uvicorn, xarray as xr, xpublish
app = xpublish.SingleDatasetRest(xr.open_zarr(sys.argv[1])).app
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""


@contextlib.contextmanager
def _server(argv: list[str], port: int, ready: str, env: dict[str, str]) -> Iterator[str]:
    """A server process on ``port``, once ``ready`` answers 200; stopped on exit."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"server {argv[:4]} exited ({proc.returncode})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + ready, timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit(f"server {argv[:4]} did not answer {ready}")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


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


def _interleaved(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, Any]:
    """Median time and last answer of each side, the sides taking turns in every repeat so
    that a change of the machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    answers: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), answers[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import dask
    import xarray as xr

    dask.config.set(scheduler="threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rid = _make(root, args.mb)
        local = xr.open_zarr(root / "out.zarr")
        nbytes = local.tas.nbytes

        def mean_of(ds: Any) -> float:
            return float(ds.tas.mean().compute())

        arcodex = [sys.executable, "-m", "arcodex", "serve", "--access-log", "off"]
        arc_port, xp_port = _port(), _port()
        env = {"ARCODEX_CATALOG": str(root / "cat")}
        # The baseline: xpublish with its Zarr router (the xpublish-zarr plugin, found by its
        # entry point), Zarr v3 with consolidated metadata in its root zarr.json.
        xpublish = [sys.executable, "-c", XPUBLISH, str(root / "out.zarr"), str(xp_port)]
        with (
            _server([*arcodex, "--port", str(arc_port)], arc_port, "/ready", env) as arc,
            _server(xpublish, xp_port, "/zarr/zarr.json", {}) as xp,
        ):
            found = _interleaved(
                {
                    "local": lambda: mean_of(xr.open_zarr(root / "out.zarr")),
                    "arcodex": lambda: mean_of(xr.open_zarr(f"{arc}/zarr/{rid}")),
                    "xpublish": lambda: mean_of(
                        xr.open_zarr(f"{xp}/zarr", zarr_format=3, consolidated=True)
                    ),
                },
                args.repeats,
            )
        (t_local, a_local), (t_arc, a_arc), (t_xp, a_xp) = found.values()
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
