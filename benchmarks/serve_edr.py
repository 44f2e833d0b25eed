"""Latency of an OGC API – EDR ``position`` time series, against xarray on the product.

One run:

1. writes ``--years`` (default 10) of daily ``tas(time, lat, lon)`` float32 on a
   ``--nlat`` × ``--nlon`` grid (default 90 × 180, 2 degrees), one NetCDF file a year;
2. converts them with ``arcodex.convert`` into a Zarr product of a fresh catalog
   (``--chunking``, default ``balanced``), and publishes it;
3. serves the catalog with ``arcodex serve``'s app under uvicorn on loopback and asks
   ``--requests`` (default 60) ``GET /ogcapi/collections/ID/position?coords=POINT(x y)``
   at random points, one at a time after ``--warmup`` requests, the whole time series
   (``parameter-name=tas``) each time;
4. the baseline, in the same run, is the same selection done with xarray directly on
   the product, opened once as a user would (``xr.open_zarr``, with Dask on the stored
   chunks, and without Dask): ``ds.tas.sel(lon=x, lat=y, method="nearest").values``.

Before any figure is printed, every answer of the server must equal the baseline's
values (NaN-free data, so exactly equal). It prints the median and p90 of each, and
the ratio of medians (server / fastest baseline). Target: server p50 < 200 ms.

    python benchmarks/serve_edr.py [--years 10] [--nlat 90] [--nlon 180] [--requests 60]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.convert import convert
from arcodex.testing import serve_catalog


def write_years(directory: Path, years: int, nlat: int, nlon: int) -> list[Path]:
    """``years`` NetCDF files of daily float32 tas, deterministic."""
    directory.mkdir(parents=True, exist_ok=True)
    lat = -90 + (180 / nlat) * (np.arange(nlat) + 0.5)
    lon = -180 + (360 / nlon) * (np.arange(nlon) + 0.5)
    files = []
    for index in range(years):
        year = 2000 + index
        time_ = np.arange(f"{year}-01-01", f"{year + 1}-01-01", dtype="datetime64[D]")
        rng = np.random.default_rng(index)
        values = (280 + 10 * rng.standard_normal((len(time_), nlat, nlon))).astype("float32")
        ds = xr.Dataset(
            {
                "tas": (
                    ("time", "lat", "lon"),
                    values,
                    {"units": "K", "long_name": "air temperature"},
                )
            },
            coords={
                "time": ("time", time_.astype("datetime64[ns]"), {"standard_name": "time"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
            },
            attrs={"title": "EDR benchmark", "institution": "arcodex benchmarks"},
        )
        path = directory / f"tas_{year}.nc"
        ds.to_netcdf(
            path, unlimited_dims=["time"], encoding={"time": {"units": "days since 2000-01-01"}}
        )
        files.append(path)
    return files


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p90 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--nlat", type=int, default=90)
    parser.add_argument("--nlon", type=int, default=180)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--chunking", default="balanced", choices=["map", "timeseries", "balanced"])
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="serve-edr-"))
    try:
        started = time.perf_counter()
        files = write_years(work / "src", args.years, args.nlat, args.nlon)
        with Catalog.create(work / "cat") as cat:
            result = convert(
                [str(f) for f in files],
                to="zarr",
                catalog=cat,
                cluster="threads",
                chunking=args.chunking,  # type: ignore[arg-type]
            )
            assert result.record is not None
            rid = result.record.id
            cat.update(rid, set={"access.published": True, "access.visibility": "public"})
            product = cat.path(rid)
        made = time.perf_counter() - started
        dask = xr.open_zarr(product)
        plain = xr.open_zarr(product, chunks=None)
        steps = dask.sizes["time"]
        print(
            f"product: {steps} daily steps x {args.nlat} x {args.nlon} float32, "
            f"chunks {dict(zip(dask.tas.dims, dask.tas.encoding.get('chunks', ()), strict=False))}, "
            f"made in {made:.1f} s"
        )
        rng = random.Random(0)
        points = [
            (round(rng.uniform(-179, 179), 3), round(rng.uniform(-89, 89), 3))
            for _ in range(args.warmup + args.requests)
        ]

        def baseline(ds: Any, x: float, y: float) -> Any:
            return ds.tas.sel(lon=x, lat=y, method="nearest").values

        with serve_catalog(work / "cat") as url, httpx.Client(base_url=url, timeout=120) as client:
            path = f"/ogcapi/collections/{rid}/position"

            def ask(x: float, y: float) -> Any:
                response = client.get(
                    path, params={"coords": f"POINT({x} {y})", "parameter-name": "tas"}
                )
                response.raise_for_status()
                rng_ = response.json()["ranges"]["tas"]
                return np.array(rng_["values"], dtype="float64")

            # The answers first: each server answer must be xarray's values.
            for x, y in points[: args.warmup]:
                got = ask(x, y)
                np.testing.assert_array_equal(got, baseline(plain, x, y).astype("float64"))
                assert got.shape == (steps,)
            timings: dict[str, list[float]] = {"server": [], "xarray+dask": [], "xarray": []}
            for x, y in points[args.warmup :]:
                t0 = time.perf_counter()
                got = ask(x, y)
                timings["server"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with_dask = baseline(dask, x, y)
                timings["xarray+dask"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                without = baseline(plain, x, y)
                timings["xarray"].append(time.perf_counter() - t0)
                np.testing.assert_array_equal(got, without.astype("float64"))
                np.testing.assert_array_equal(with_dask, without)
        print(
            f"{args.requests} position requests (answers equal to xarray's), time series of {steps} steps"
        )
        print(f"{'':<14} {'p50 ms':>9} {'p90 ms':>9}")
        medians = {}
        for name, samples in timings.items():
            p50, p90 = stats(samples)
            medians[name] = p50
            print(f"{name:<14} {p50:>9.1f} {p90:>9.1f}")
        best = min(medians["xarray"], medians["xarray+dask"])
        print(f"ratio server/fastest xarray (p50): {medians['server'] / best:.2f}x")
        print(f"target server p50 < 200 ms: {'met' if medians['server'] < 200 else 'NOT met'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
