"""Data store latency: ``describe_data`` on a 100-variable product and ``list_data_ids`` on a
10,000-record catalog, each next to a plain baseline measured in the same run.

  describe (file store)     store.describe_data(id)   vs  xr.open_zarr + the same summary by hand
  describe (catalog store)  store.describe_data(id)   vs  the same baseline (the product on disk)
  list_data_ids (catalog)   store.list_data_ids()     vs  catalog.search pages, and raw SQL

Answers are compared before anything is printed (same variables, dtypes, units,
bbox and time range; the same ids), then p50 milliseconds and the ratio.

    .venv/bin/python benchmarks/stores_bench.py --variables 100 --records 10000 --repeats 30
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.convert import convert
from arcodex.model import Record
from arcodex.stores import new_store


def p50_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    fn()  # warm: imports, file system caches
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def wide_dataset(n: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (8, 45, 90)
    data = {
        f"v{i:03d}": (
            ("time", "lat", "lon"),
            rng.random(shape, dtype="float32"),
            {"units": "K", "long_name": f"variable {i}"},
        )
        for i in range(n)
    }
    return xr.Dataset(
        data,
        coords={
            "time": pd.date_range("2000-01-01", periods=shape[0], freq="D"),
            "lat": ("lat", np.linspace(-88, 88, shape[1]), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(-178, 178, shape[2]), {"units": "degrees_east"}),
        },
        attrs={"title": "wide product"},
    )


def by_hand(path: str) -> dict[str, Any]:
    """The summary a user builds with plain xarray: what the descriptor holds."""
    with xr.open_zarr(path) as ds:
        lat, lon, t = ds["lat"].values, ds["lon"].values, ds["time"].values
        return {
            "dims": dict(ds.sizes),
            "vars": {
                n: (str(v.dtype), v.attrs.get("units"), v.dims, v.shape)
                for n, v in ds.data_vars.items()
            },
            "bbox": (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())),
            "time": (str(t[0])[:19], str(t[-1])[:19]),
            "attrs": dict(ds.attrs),
        }


def same(described: Any, hand: dict[str, Any]) -> None:
    got = {n: (v.dtype, v.units, v.dims, v.shape) for n, v in described.data_vars.items()}
    assert got == hand["vars"], "variables differ"
    assert described.dims == hand["dims"]
    assert np.allclose(described.bbox, hand["bbox"])
    assert tuple(s[:19] for s in described.time_range) == hand["time"]


def bench_describe(tmp: Path, variables: int, repeats: int) -> list[tuple[str, float, float]]:
    ds = wide_dataset(variables)
    rows = []
    with new_store("file", root=str(tmp / "files")) as files:
        files.write_data(ds, "wide.zarr")
        path = str(tmp / "files" / "wide.zarr")
        store_ms, described = p50_ms(lambda: files.describe_data("wide.zarr"), repeats)
        base_ms, hand = p50_ms(lambda: by_hand(path), repeats)
        same(described, hand)
        rows.append(("describe_data, file store (Zarr metadata)", store_ms, base_ms))
    source = tmp / "wide.nc"
    ds.to_netcdf(source)
    Catalog.create(tmp / "cat").close()
    with new_store("catalog", root=str(tmp / "cat")) as cat:
        result = convert(source, catalog=cat.catalog, title="wide", cluster="threads")
        assert result.record is not None
        rid = result.record.id
        product = cat.catalog.path(rid)
        store_ms, described = p50_ms(lambda: cat.describe_data(rid), repeats)
        base_ms, hand = p50_ms(lambda: by_hand(product), repeats)
        same(described, hand)
        rows.append(("describe_data, catalog store (record)", store_ms, base_ms))
    return rows


def bench_list(tmp: Path, records: int, repeats: int) -> list[tuple[str, float, float]]:
    root = tmp / "big"
    with Catalog.create(root) as cat:
        batch = [
            Record(
                id=f"r{i:08d}",
                kind="dataset",
                title=f"dataset {i}",
                metadata={"site": f"S{i % 50:02d}", "year": 2000 + i % 20},
            )
            for i in range(records)
        ]
        for start in range(0, records, 5000):
            cat.add_records(batch[start : start + 5000])

        def pages() -> list[str]:
            ids: list[str] = []
            cursor = None
            while True:
                page = cat.search(kind="dataset", limit=1000, cursor=cursor)
                ids += [r.id for r in page.records]
                cursor = page.next_cursor
                if not cursor:
                    return ids

        def sql() -> list[str]:
            with sqlite3.connect(root / "catalog.sqlite") as db:
                rows = db.execute(
                    "SELECT id FROM records WHERE kind = 'dataset' AND status = 'active'"
                ).fetchall()
            return [r[0] for r in rows]

        with new_store("catalog", root=str(root)) as store:
            store_ms, listed = p50_ms(store.list_data_ids, repeats)
        search_ms, searched = p50_ms(pages, repeats)
        sql_ms, raw = p50_ms(sql, repeats)
    assert sorted(listed) == sorted(searched) == sorted(raw) and len(raw) == records
    return [
        (f"list_data_ids, {records:,} records vs catalog.search pages", store_ms, search_ms),
        (f"list_data_ids, {records:,} records vs raw SQL ids", store_ms, sql_ms),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, default=100)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # consolidated-metadata notices of the baseline's zarr
    print(f"python {platform.python_version()}, {platform.machine()}, repeats {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="arcodex-stores-bench-") as name:
        tmp = Path(name)
        rows = bench_describe(tmp, args.variables, args.repeats)
        rows += bench_list(tmp, args.records, max(5, args.repeats // 3))
    print(f"{'what':<62} {'store p50 ms':>12} {'baseline p50 ms':>16} {'ratio':>7}")
    for what, store_ms, base_ms in rows:
        print(f"{what:<62} {store_ms:>12.2f} {base_ms:>16.2f} {store_ms / base_ms:>6.2f}x")


if __name__ == "__main__":
    main()
