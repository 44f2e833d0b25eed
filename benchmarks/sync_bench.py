"""Sync of one new period against rematerialising the dataset; backfill against convert.

A generated archive of daily NetCDF files (one file a day, ``--ny`` × ``--nx``
float32) is ingested through the ``files`` provider into an Icechunk dataset of
60 and of 120 periods. Then one new day's file arrives and the same run times:

- ``arcodex.ingest.sync`` of that one period into each dataset;
- rematerialising the whole dataset from its files with ``arcodex convert``
  (Icechunk, the same chunks): the baseline, what a store without per-period
  commits must do to take the new day;
- the backfill itself (``ingest`` of 120 periods, a commit each) against
  ``convert`` of the same 120 files.

Before any figure is printed each synced dataset must equal the rebuilt one and
the source files. Medians of ``--repeats`` runs, ratios.

    PYTHONPATH=src python benchmarks/sync_bench.py [--repeats 3] [--ny 180 --nx 360]

Targets: sync >= 50x faster than rematerialising at 120 periods; the 120-period
sync within 1.3x of the 60-period one; backfill >= 0.8x convert's throughput.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNK_DAYS = 10


def _write_days(where: Path, first: int, count: int, ny: int, nx: int) -> None:
    """Days ``first`` .. ``first+count-1`` (from 2000-01-01), one NetCDF file each."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    where.mkdir(parents=True, exist_ok=True)
    lat = np.linspace(-89.5, 89.5, ny)
    lon = np.linspace(-179.5, 179.5, nx)
    for day in range(first, first + count):
        when = pd.Timestamp("2000-01-01") + pd.Timedelta(days=day)
        values = np.random.default_rng(day).normal(280, 10, (1, ny, nx)).astype("f4")
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={
                "time": ("time", [when.to_datetime64()]),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
            },
        )
        ds.to_netcdf(where / f"tas_{when:%Y-%m-%d}.nc")


def _template(files: Path, ny: int, nx: int) -> Any:
    from arcodex.ingest import Template

    return Template.model_validate(
        {
            "id": "tas",
            "period": "daily",
            "provider": {
                "name": "files",
                "params": {"path": str(files), "pattern": "tas_{period}.nc"},
            },
            "target": {"chunks": {"time": CHUNK_DAYS, "lat": ny, "lon": nx}},
        }
    )


def _define(root: Path, template: Any, extent: Any) -> None:
    """The template and extent as YAML in the catalog, where ``sync`` finds them."""
    import yaml

    for kind, model in (("templates", template), ("extents", extent)):
        (root / kind).mkdir(exist_ok=True)
        text = yaml.safe_dump(model.model_dump(mode="json", exclude_defaults=True))
        (root / kind / f"{model.id}.yaml").write_text(text)


def _day(n: int) -> str:
    import pandas as pd

    return f"{pd.Timestamp('2000-01-01') + pd.Timedelta(days=n):%Y-%m-%d}"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _load(catalog: Any, record_id: str) -> Any:
    from arcodex.convert import open_product

    with open_product(record_id, catalog=catalog) as ds:
        return ds.load()


def _one_size(root: Path, periods: int, ny: int, nx: int) -> dict[str, Any]:
    """Ingest ``periods`` days, add one day's file, then time sync vs rebuild (one repeat)."""
    import xarray as xr

    from arcodex.catalog import Catalog
    from arcodex.ingest import Extent, ingest
    from arcodex.ingest._sync import sync

    files = root / "files"
    _write_days(files, 0, periods, ny, nx)
    template = _template(files, ny, nx)
    world = Extent(id="world", bbox=(-180.0, -90.0, 180.0, 90.0))
    out: dict[str, Any] = {}
    with Catalog.create(root / "cat") as cat:
        _define(cat.root, template, world)
        out["backfill"], result = _timed(
            lambda: ingest(cat, template, world, _day(0), _day(periods - 1))
        )
        assert result.ok and len(result.done) == periods, result.to_dict()
        rid = result.record_id
        _write_days(files, periods, 1, ny, nx)  # the new day arrives
        out["sync"], synced = _timed(lambda: sync(cat, rid, end=_day(periods)))
        assert synced.action == "append", synced
        out["rebuild"], rebuilt = _timed(
            lambda: _convert(files, root / "rebuilt.icechunk", cat, ny, nx)
        )
        ours = _load(cat, rid)
        theirs = xr.open_mfdataset(sorted(files.glob("tas_*.nc")), combine="by_coords").load()
        assert ours.sizes["time"] == periods + 1, ours.sizes
        xr.testing.assert_equal(ours.tas, theirs.tas)
        assert rebuilt.record is not None
        xr.testing.assert_equal(_load(cat, rebuilt.record.id).tas, theirs.tas)
    return out


def _convert(files: Path, dest: Path, catalog: Any, ny: int, nx: int) -> Any:
    """``arcodex convert`` of every day's file to Icechunk, with the ingested chunks."""
    from arcodex.convert import convert

    return convert(
        str(files / "tas_*.nc"),
        to="icechunk",
        dest=dest,
        catalog=catalog,
        chunks={"time": CHUNK_DAYS, "lat": ny, "lon": nx},
        cluster="threads",
    )


def _convert_only(root: Path, periods: int, ny: int, nx: int) -> float:
    """``convert`` of the same ``periods`` files (the backfill's baseline)."""
    from arcodex.catalog import Catalog

    files = root / "files"
    _write_days(files, 0, periods, ny, nx)
    with Catalog.create(root / "cat") as cat:
        took, _ = _timed(lambda: _convert(files, root / "out.icechunk", cat, ny, nx))
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ny", type=int, default=180)
    parser.add_argument("--nx", type=int, default=360)
    args = parser.parse_args()

    runs: dict[int, list[dict[str, Any]]] = {60: [], 120: []}
    converts: list[float] = []
    for _ in range(args.repeats):
        for periods in runs:  # sizes take turns, so a change of load falls on both
            with tempfile.TemporaryDirectory() as tmp:
                runs[periods].append(_one_size(Path(tmp), periods, args.ny, args.nx))
        with tempfile.TemporaryDirectory() as tmp:
            converts.append(_convert_only(Path(tmp), 120, args.ny, args.nx))

    def med(periods: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[periods])

    mb = args.ny * args.nx * 4 / 1e6
    print(
        f"daily files of {mb:.2f} MB (tas float32 {args.ny}x{args.nx}), chunks of {CHUNK_DAYS} days"
    )
    print(f"{args.repeats} repeats, medians; synced datasets equal the rebuilt ones and the files")
    print(f"{'periods':>8} {'sync 1 new':>12} {'rematerialise':>14} {'ratio':>8}")
    for periods in runs:
        s, r = med(periods, "sync"), med(periods, "rebuild")
        print(f"{periods:>8} {s:>10.3f} s {r:>12.3f} s {r / s:>7.1f}x")
    s60, s120 = med(60, "sync"), med(120, "sync")
    r120 = med(120, "rebuild")
    print(f"sync vs rematerialise at 120: {r120 / s120:.1f}x (target >= 50x)")
    print(f"sync 120 / sync 60: {s120 / s60:.2f} (target <= 1.3)")
    backfill, convert_t = med(120, "backfill"), statistics.median(converts)
    print(
        f"backfill of 120 periods: {backfill:.2f} s ({120 / backfill:.1f} periods/s); "
        f"convert of the same files: {convert_t:.2f} s; "
        f"backfill throughput {convert_t / backfill:.2f}x convert's (target >= 0.8x)"
    )


if __name__ == "__main__":
    main()
