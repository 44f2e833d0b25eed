"""The PostgreSQL backend alone: bulk-add rate and metadata-equality latency, beside SQLite.

For each N: bulk-add N records (``backend.add`` in batches of 10,000, COPY on
PostgreSQL) into a fresh schema (and a fresh SQLite file), then time 200
equality queries ``site=S…`` (each the first page of 100 records, a different
site each time) and report the p50. Two record shapes: ``simple`` (3 metadata
keys) and ``rich`` (20 keys of mixed types, a bbox and a time range).

It starts nothing of its own: the database is the machine's PostgreSQL, through
``arcodex.testing.local_postgres`` (a throwaway role and database, dropped at the end).

    .venv/bin/python benchmarks/postgres_backend_bench.py --sizes 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arcodex.backends import CatalogBackend
from arcodex.backends._postgres import PostgresBackend
from arcodex.backends._sqlite import SQLiteBackend
from arcodex.model import Query, Record
from arcodex.testing import local_postgres

BATCH = 10_000
SITES = 1_000


def simple(i: int) -> Record:
    return Record(
        id=f"r{i:08d}",
        title=f"record {i}",
        metadata={"site": f"S{i % SITES}", "year": 1900 + i % 120, "value": i * 0.5},
    )


def rich(i: int) -> Record:
    lon, lat = (i * 37) % 340 - 170, (i * 11) % 160 - 80
    meta: dict[str, Any] = {
        "site": f"S{i % SITES}",
        "year": 1900 + i % 120,
        "value": i * 0.5,
        "ok": i % 2 == 0,
        "institution": f"Institute {i % 37}",
        "variables": ["tas", "pr", f"v{i % 13}"],
        "attrs": {"conventions": "CF-1.8", "source": f"model {i % 7}", "level": i % 5},
        "bbox": [lon, lat, lon + 2, lat + 2],
        "start_datetime": f"{1950 + i % 70}-01-01T00:00:00Z",
        "end_datetime": f"{1950 + i % 70}-12-31T00:00:00Z",
    }
    meta.update({f"k{j}": f"value {i % (j + 3)}" for j in range(10)})
    return Record(id=f"r{i:08d}", title=f"record {i}", metadata=meta, tags=[f"t{i % 50}"])


def bench(backend: CatalogBackend, n: int, make: Callable[[int], Record]) -> tuple[float, float]:
    """Records per second of the bulk add, and the p50 of an equality query (ms)."""
    records = [make(i) for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        backend.add(records[start : start + BATCH])
    rate = n / (time.perf_counter() - started)
    if isinstance(backend, PostgresBackend):
        backend._q("ANALYZE")
    times = []
    for q in range(200):
        query = Query.parse([f"site=S{(q * 7) % SITES}"], limit=100)
        started = time.perf_counter()
        page = backend.search(query)
        times.append((time.perf_counter() - started) * 1000)
        assert page.records, query
    return rate, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated record counts")
    parser.add_argument("--shapes", default="simple,rich")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = {"simple": simple, "rich": rich}
    with local_postgres() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(server.env())
        print(f"{'backend':10} {'shape':7} {'N':>9} {'add rec/s':>10} {'eq p50 ms':>10}")
        for n in sizes:
            for shape in args.shapes.split(","):
                for name in ("postgres", "sqlite"):
                    backend: CatalogBackend
                    if name == "postgres":
                        backend = PostgresBackend(server.schema_url(), create=True)
                    else:
                        path = Path(tmp) / f"{shape}-{n}.sqlite"
                        backend = SQLiteBackend(path, create=True)
                    try:
                        rate, p50 = bench(backend, n, shapes[shape])
                    finally:
                        backend.close()
                    print(f"{name:10} {shape:7} {n:>9} {rate:>10.0f} {p50:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
