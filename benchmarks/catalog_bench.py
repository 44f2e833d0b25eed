"""Catalog bulk-add and query latency against a full scan of JSON documents.

For each N: bulk-add N records with realistic metadata (20 keys of mixed
types, a bbox and a time range) into a fresh catalog of each backend
(``--backends sqlite,postgres``; PostgreSQL's database comes from
``arcodex.testing.local_postgres``), then time three queries on each, each returning the first page (100 records, insertion order):

  (a) equality on one metadata key          site=XXX
  (b) (a) + time-range overlap + bbox       site=XXX --time … --bbox …
  (c) full text                             --text "<word>"

With ``--add-files N`` it also times the add path files take (extract, validate,
plan the path, copy, commit): ``add_files`` of N small files in one operation
(files/s), and single-file ``add_file`` calls (ms each, p50) — the per-file and
the per-operation cost of ``arcodex add``.

The baseline, measured in the same run, answers the same queries the way a
TinyDB-style catalog does: a scan over every record's JSON document (already
parsed into dicts in memory, which is generous to the baseline). The scan
also checks its matches against arcodex's first page, so the figures compare
two correct answers.

    .venv/bin/python benchmarks/catalog_bench.py --sizes 100000,1000000
    .venv/bin/python benchmarks/catalog_bench.py --sizes 20000 --backends postgres --repeats 10

Targets on PostgreSQL: query (b) p50 < 20 ms at 1M; bulk add ≥ 10,000 records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arcodex.catalog import Catalog
from arcodex.model import Query, Record
from arcodex.testing import local_postgres

SITES = [f"S{i:02d}" for i in range(50)]
SPECIES = ["ch4", "co2", "n2o", "co", "sf6", "h2", "hfc134a", "cfc11", "cfc12", "ccl4"]
NETWORKS = ["agage", "icos", "noaa", "wmo-gaw", "decc", "nies", "csiro", "ukmo"]
WORDS = [
    "methane",
    "carbon",
    "dioxide",
    "nitrous",
    "oxide",
    "flask",
    "continuous",
    "tower",
    "aircraft",
    "ship",
    "ocean",
    "coastal",
    "mountain",
    "urban",
    "background",
    "calibration",
    "reprocessed",
    "provisional",
    "hourly",
    "daily",
    "monthly",
    "inversion",
    "emission",
    "flux",
    "surface",
    "column",
    "retrieval",
    "satellite",
    "model",
    "reanalysis",
]
BASE = datetime(2000, 1, 1, tzinfo=UTC)
PAGE = 100


def make_record(i: int, rng: random.Random) -> Record:
    """One record with 20 metadata keys, a bbox and a time range."""
    site = SITES[rng.randrange(len(SITES))]
    lon = rng.uniform(-180, 175)
    lat = rng.uniform(-80, 75)
    start = BASE + timedelta(days=rng.randrange(0, 365 * 24))
    end = start + timedelta(days=rng.choice([1, 30, 365, 730]))
    words = rng.sample(WORDS, 4)
    metadata: dict[str, Any] = {
        "site": site,
        "species": rng.choice(SPECIES),
        "network": rng.choice(NETWORKS),
        "instrument": f"inst-{rng.randrange(20)}",
        "inlet_height": round(rng.uniform(1, 300), 1),
        "year": start.year,
        "calibration_scale": f"WMO-X{rng.randrange(2004, 2024)}",
        "data_owner": f"owner{rng.randrange(200)}",
        "institution": rng.choice(["NOC", "UoB", "MetOffice", "NOAA", "CSIRO", "LSCE"]),
        "platform": rng.choice(["surface", "aircraft", "ship", "satellite"]),
        "sampling_period": rng.choice([60, 3600, 86400]),
        "is_reprocessed": rng.random() < 0.3,
        "version_number": rng.randrange(1, 6),
        "latitude": round(lat, 4),
        "longitude": round(lon, 4),
        "altitude": round(rng.uniform(0, 4000), 1),
        "units": rng.choice(["ppb", "ppm", "ppt"]),
        "processing_level": rng.randrange(0, 4),
        "doi": f"10.5281/zenodo.{rng.randrange(10**6, 10**7)}",
        "comment": " ".join(words),
        "bbox": [
            round(lon, 3),
            round(lat, 3),
            round(lon + rng.uniform(0.1, 5), 3),
            round(lat + rng.uniform(0.1, 5), 3),
        ],
        "start_datetime": start.isoformat().replace("+00:00", "Z"),
        "end_datetime": end.isoformat().replace("+00:00", "Z"),
    }
    return Record(
        id=f"r{i:08d}",
        kind="dataset",
        title=f"{metadata['species']} at {site} ({metadata['network']})",
        description=f"{words[0]} {words[1]} measurements, {words[2]} {words[3]}",
        metadata=metadata,
        tags=[metadata["network"], metadata["species"]],
    )


# -- the baseline: a scan over parsed JSON documents --------------------------------------


def _overlaps_time(doc: dict[str, Any], lo: str, hi: str) -> bool:
    meta = doc["metadata"]
    return bool(meta["start_datetime"] <= hi and meta["end_datetime"] >= lo)


def _overlaps_bbox(doc: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    w, s, e, n = doc["metadata"]["bbox"]
    return w <= box[2] and e >= box[0] and s <= box[3] and n >= box[1]


def _has_word(doc: dict[str, Any], word: str) -> bool:
    blob = " ".join(
        [doc["title"] or "", doc["description"] or "", " ".join(doc["tags"])]
        + [v for v in doc["metadata"].values() if isinstance(v, str)]
    ).lower()
    return word in blob.split()


def scan(docs: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Every matching id, in insertion order (what a TinyDB search returns)."""
    return [d["id"] for d in docs if predicate(d)]


# -- timing ----------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def run_size(
    n: int, repeats: int, workdir: Path, seed: int, backends: list[str], pg: Any = None
) -> dict[str, Any]:
    """Bulk add and queries (a)–(c) on each backend's catalog of the same n records."""
    from arcodex.catalog import CatalogConfig

    rng = random.Random(seed)
    catalogs: dict[str, Catalog] = {}
    for backend in backends:
        root = workdir / f"catalog-{n}-{backend}"
        shutil.rmtree(root, ignore_errors=True)
        config = CatalogConfig(database_url=pg.schema_url()) if backend == "postgres" else None
        catalogs[backend] = Catalog.create(root, config=config)
    docs: list[dict[str, Any]] = []
    batch = 20_000
    add_seconds = dict.fromkeys(backends, 0.0)
    for start in range(0, n, batch):
        records = [make_record(i, rng) for i in range(start, min(n, start + batch))]
        for backend, catalog in catalogs.items():
            t0 = time.perf_counter()
            catalog.add_records(records, user="bench")
            add_seconds[backend] += time.perf_counter() - t0
        docs.extend(r.model_dump(mode="json") for r in records)

    qrng = random.Random(seed + 1)
    results: dict[str, Any] = {
        "n": n,
        "add_records_per_s": {b: n / add_seconds[b] for b in backends},
        "add_seconds": add_seconds,
    }
    for name in ("a", "b", "c"):
        ours: dict[str, list[float]] = {b: [] for b in backends}
        theirs: list[float] = []
        for _ in range(repeats):
            site = qrng.choice(SITES)
            year = qrng.randrange(2001, 2023)
            lo, hi = f"{year}-01-01", f"{year}-06-30T23:59:59.999999Z"
            west, south = qrng.uniform(-180, 60), qrng.uniform(-80, 0)
            box = (west, south, west + 120, south + 80)
            word = qrng.choice(WORDS)
            if name == "a":
                query = Query.parse([f"site={site}"], limit=PAGE)

                def pred(d: dict[str, Any], site: str = site) -> bool:
                    return bool(d["metadata"]["site"] == site)

            elif name == "b":
                query = Query.parse(
                    [f"site={site}"], time=f"{year}-01-01/{year}-06-30", bbox=list(box), limit=PAGE
                )

                def pred(
                    d: dict[str, Any], site: str = site, lo: str = lo, hi: str = hi, box: Any = box
                ) -> bool:
                    return (
                        bool(d["metadata"]["site"] == site)
                        and _overlaps_time(d, lo, hi)
                        and _overlaps_bbox(d, box)
                    )

            else:
                query = Query.parse([], text=word, limit=PAGE)

                def pred(d: dict[str, Any], word: str = word) -> bool:
                    return _has_word(d, word)

            t0 = time.perf_counter()
            expected = scan(docs, pred)
            theirs.append(time.perf_counter() - t0)
            for backend, catalog in catalogs.items():
                t0 = time.perf_counter()
                page = catalog.search(query)
                ours[backend].append(time.perf_counter() - t0)
                got = [r.id for r in page.records]
                if got != expected[:PAGE]:
                    raise SystemExit(
                        f"query ({name}) on {backend} disagrees with the scan: "
                        f"{got[:5]} vs {expected[:5]}"
                    )
        b50, b95 = percentiles(theirs)
        results[name] = {"scan_p50_ms": b50 * 1e3, "scan_p95_ms": b95 * 1e3}
        for backend in backends:
            p50, p95 = percentiles(ours[backend])
            results[name][backend] = {
                "p50_ms": p50 * 1e3,
                "p95_ms": p95 * 1e3,
                "ratio_p50": b50 / p50,
            }
    for backend, catalog in catalogs.items():
        catalog.close()
        shutil.rmtree(workdir / f"catalog-{n}-{backend}", ignore_errors=True)
    return results


def run_add_files(n: int, repeats: int, workdir: Path) -> dict[str, Any]:
    """add_files of ``n`` small files in one operation, and ``repeats`` single add_file calls."""
    root = workdir / f"files-catalog-{n}"
    data = workdir / f"files-{n}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    paths = []
    for i in range(n + repeats):
        path = data / f"obs-{i:06d}.csv"
        path.write_text(f"t,ch4\n{i},{1900 + i % 97}\n", encoding="utf-8")
        paths.append(path)
    with Catalog.create(root) as catalog:
        t0, c0 = time.perf_counter(), time.process_time()
        catalog.add_files(paths[:n], metadata={"site": "MHD"}, user="bench")
        bulk, bulk_cpu = time.perf_counter() - t0, time.process_time() - c0
        singles, singles_cpu = [], []
        for path in paths[n:]:
            t0, c0 = time.perf_counter(), time.process_time()
            catalog.add_file(path, metadata={"site": "MHD"}, user="bench")
            singles.append(time.perf_counter() - t0)
            singles_cpu.append(time.process_time() - c0)
    p50, p95 = percentiles(singles)
    cpu_p50, _ = percentiles(singles_cpu)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return {
        "n": n,
        "add_files_per_s": n / bulk,
        "add_files_seconds": bulk,
        "add_file_p50_ms": p50 * 1000,
        "add_file_p95_ms": p95 * 1000,
        # CPU time of this process: what the code costs, less what a busy machine adds.
        "add_files_cpu_ms_per_file": bulk_cpu / n * 1000,
        "add_file_cpu_p50_ms": cpu_p50 * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated record counts")
    parser.add_argument(
        "--backends",
        default="sqlite,postgres",
        help="comma-separated catalog backends, each given the same records: sqlite,postgres",
    )
    parser.add_argument("--repeats", type=int, default=40, help="queries timed per kind and size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--add-files",
        type=int,
        default=0,
        help="also time add_files of this many small files, and single add_file calls",
    )
    parser.add_argument(
        "--workdir", default=None, help="where catalogs are built (default: a temp dir)"
    )
    parser.add_argument(
        "--json", dest="json_out", default=None, help="also write the results to this file"
    )
    args = parser.parse_args()
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="arcodex-bench-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"# arcodex catalog benchmark {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
        f"python {platform.python_version()}, {__import__('os').cpu_count()} cores"
    )
    all_results = []
    if args.add_files:
        res = run_add_files(args.add_files, args.repeats, workdir)
        all_results.append(res)
        print(
            f"\nadd_files of {res['n']:,} files: {res['add_files_per_s']:,.0f} files/s "
            f"({res['add_files_seconds']:.2f} s); add_file p50 {res['add_file_p50_ms']:.2f} ms, "
            f"p95 {res['add_file_p95_ms']:.2f} ms; CPU {res['add_files_cpu_ms_per_file']:.2f} ms "
            f"per file in add_files, {res['add_file_cpu_p50_ms']:.2f} ms per add_file (p50)"
        )
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        raise SystemExit(f"--backends: unknown {sorted(unknown)}; give sqlite and/or postgres")
    with ExitStack() as stack:
        pg = stack.enter_context(local_postgres()) if "postgres" in backends else None
        if pg is not None:
            os.environ.update(pg.env())  # the password reaches libpq through PGPASSWORD
        for n in (int(s) for s in args.sizes.split(",") if s):
            res = run_size(n, args.repeats, workdir, args.seed, backends, pg)
            all_results.append(res)
            adds = ", ".join(
                f"{b} {res['add_records_per_s'][b]:,.0f} records/s ({res['add_seconds'][b]:.1f} s)"
                for b in backends
            )
            print(f"\nN = {n:,}: bulk add {adds}; every answer equal to the scan's first page")
            head = "".join(f"{b + ' p50':>14}{b + ' p95':>14}" for b in backends)
            print(
                f"{'query':<30}{head}{'scan p50':>10}"
                + "".join(f"{b + ' ×':>12}" for b in backends)
            )
            labels = {"a": "(a) site=X", "b": "(b) site=X + time + bbox", "c": "(c) full text"}
            for key, label in labels.items():
                r = res[key]
                cells = "".join(f"{r[b]['p50_ms']:>14.2f}{r[b]['p95_ms']:>14.2f}" for b in backends)
                ratios = "".join(f"{r[b]['ratio_p50']:>11.0f}×" for b in backends)
                print(f"{label:<30}{cells}{r['scan_p50_ms']:>10.1f}{ratios}")
            if "postgres" in backends:
                b50 = res["b"]["postgres"]["p50_ms"]
                rate = res["add_records_per_s"]["postgres"]
                print(f"targets (postgres): query (b) p50 < 20 ms: {b50:.2f} ms "
                      f"{'PASS' if b50 < 20 else 'FAIL'}; bulk add ≥ 10,000 records/s: "
                      f"{rate:,.0f} {'PASS' if rate >= 10_000 else 'FAIL'}")  # fmt: skip
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(all_results, indent=2))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
