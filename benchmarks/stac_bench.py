"""STAC API search latency, open-to-first-data, and virtual reads through the client.

One run measures three things:

1. ``/stac/search`` on a catalog of ``--items`` (default 100,000) dataset
   records (realistic metadata, bbox, time range; the records of
   ``catalog_bench.py``), served by ``arcodex serve``'s app under uvicorn on
   loopback. Each request is a POST with a bbox, a datetime interval and a
   CQL2 filter on a metadata key, ``limit=100``; ``--concurrency`` clients
   (httpx, asyncio) send ``--requests`` of them. It prints p50/p95 latency and
   requests/s. The baseline, measured in the same run, answers the same
   searches the way a server without indexes does: a scan over the items'
   JSON already in memory, each with the metadata the filter names
   (generous to the baseline: no HTTP). Before any figure is printed, the
   scan's first page of each of the first 50 searches must be the ids
   arcodex answered, and the searches must match items at all.
2. Open-to-first-data: ``Client(url).search(ids=[…]).open_dataset(…)`` of a
   Zarr product in that catalog, through the API, until the first value is
   in memory.
3. Virtual reads: the global mean of ``tas`` over an archive
   (``--files`` × 31 × 360 × 720 float32, zlib) read through virtual products
   (kerchunk JSON and virtual Icechunk) opened by the client with the chunks
   their STAC asset advertises, against plain
   ``xr.open_dataset(refs, engine="kerchunk", chunks=…)`` in each way a user
   would open it: no Dask, Dask on the stored chunks (``chunks={}``), and one
   Dask chunk a source file (what the client uses). Each plain way is timed
   ``--repeat`` times before the client's reads and again after them, and the
   ratios are against the fastest plain median, so neither a poor choice of
   chunks nor a setting the client left behind can favour it. Every read's
   mean must agree with the others (to float32 summation error) before any
   figure is printed.

    python benchmarks/stac_bench.py [--items 100000] [--files 12] [--repeat 5]
    python benchmarks/stac_bench.py --only virtual   # part 3 alone, on a tiny catalog

Targets on these machines: ``/search`` p50 < 50 ms at 100k items,
open-to-first-data < 1 s, virtual reads ≥ 2× plain kerchunk.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arcodex.catalog import Catalog
from catalog_bench import SITES, make_record
from convert_bench import generate_archive, read_step

GOALS = {"search_p50_ms": 50.0, "first_data_s": 1.0, "virtual_ratio": 2.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The arcodex app under uvicorn in a thread, on loopback."""

    def __init__(self, root: Path) -> None:
        import uvicorn

        from arcodex.server import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(root), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stac/"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def build_catalog(
    root: Path, n: int, seed: int, database_url: str | None = None, *, documents: bool = True
) -> list[dict[str, Any]]:
    """The catalog of n records; their STAC item JSON for the baseline scan, each with the
    record's metadata under ``arcodex:metadata`` (where the filter's ``site`` lives: it is a
    queryable of the catalog, not a property of the item documents)."""
    from arcodex.stac import item_for

    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    items: list[dict[str, Any]] = []
    from arcodex.catalog import CatalogConfig

    config = CatalogConfig(database_url=database_url) if database_url else None
    with Catalog.create(root, config=config) as catalog:
        for start in range(0, n, 20_000):
            records = [make_record(i, rng) for i in range(start, min(n, start + 20_000))]
            catalog.add_records(records, user="bench")
            if not documents:  # the same records: another backend's catalog needs no items
                continue
            items.extend(
                {
                    **item_for(r, None, open_data=False).to_dict(include_self_link=False),
                    "arcodex:metadata": dict(r.metadata),
                }
                for r in records
            )
    return items


def queries(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lon, lat = rng.uniform(-170, 150), rng.uniform(-70, 50)
        year = rng.randrange(2001, 2023)
        out.append(
            {
                "bbox": [lon, lat, lon + 30, lat + 25],
                "datetime": f"{year}-01-01T00:00:00Z/{year + 1}-12-31T23:59:59Z",
                "filter-lang": "cql2-json",
                "filter": {"op": "=", "args": [{"property": "site"}, rng.choice(SITES)]},
                "limit": 100,
            }
        )
    return out


async def run_searches(
    url: str, bodies: list[dict[str, Any]], concurrency: int
) -> tuple[list[float], float, list[list[str]]]:
    """Latencies, wall time, and each body's answer (the ids of its first page, in order)."""
    import httpx

    latencies: list[float] = []
    answers: list[list[str]] = [[] for _ in bodies]
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for index, body in enumerate(bodies):
        queue.put_nowait((index, body))

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, body = queue.get_nowait()
            t0 = time.perf_counter()
            answer = await client.post(url + "search", json=body)
            latencies.append(time.perf_counter() - t0)
            answer.raise_for_status()
            answers[index] = [f["id"] for f in answer.json()["features"]]

    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, elapsed, answers


def scan(items: list[dict[str, Any]], body: dict[str, Any]) -> list[str]:
    """The baseline: every item's JSON checked in Python, first page in insertion order."""
    west, south, east, north = body["bbox"]
    lo, hi = body["datetime"].split("/")
    site = body["filter"]["args"][1]
    out = []
    for item in items:
        if item["arcodex:metadata"].get("site") != site:
            continue  # the most selective test first, as a hand-written scan would
        w, s, e, n = item["bbox"]
        props = item["properties"]
        if e < west or w > east or n < south or s > north:
            continue
        if props["end_datetime"] < lo or props["start_datetime"] > hi:
            continue
        out.append(item["id"])
        if len(out) == body["limit"]:
            break
    return out


def same_answers(
    items: list[dict[str, Any]], bodies: list[dict[str, Any]], answers: list[list[str]]
) -> None:
    """Stop unless the scan's first pages are arcodex's and the searches match something."""
    for index, (body, ids) in enumerate(zip(bodies, answers, strict=True)):
        expected = scan(items, body)
        if expected != ids:
            raise SystemExit(
                f"search {index} ({json.dumps(body)}): arcodex answered {len(ids)} ids, the scan "
                f"{len(expected)}; first difference "
                f"{next((a, b) for a, b in itertools.zip_longest(ids, expected) if a != b)}"
            )
    if not any(answers):
        raise SystemExit("no search matched any item: the benchmark would time empty answers")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--files", type=int, default=12, help="files of the virtual archive")
    parser.add_argument("--repeat", type=int, default=5, help="timed reads of each virtual kind")
    parser.add_argument(
        "--only",
        choices=["search", "virtual"],
        default=None,
        help="search: parts 1 and 2; virtual: part 3 alone, on a catalog of its products only",
    )
    parser.add_argument(
        "--backends",
        type=lambda text: [b.strip() for b in text.split(",") if b.strip()],
        default=["sqlite", "postgres"],
        help="catalog backends whose /search is measured (comma-separated): sqlite,postgres",
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes of each server")
    parser.add_argument(
        "--pgstac",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also serve the items with stac-fastapi-pgstac (the baseline)",
    )
    parser.add_argument(
        "--pgstac-venv", type=Path, default=None,
        help="pypgstac and stac-fastapi-pgstac's virtual environment (created when absent); "
        "default: a cache directory outside the repository",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="arcodex-stac-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    search = args.only in (None, "search")
    virtual = args.only in (None, "virtual")
    n_items = args.items if search else 0

    print(f"# arcodex STAC benchmark, {n_items:,} items")
    checks: list[tuple[str, float, bool, str]] = []
    if search:
        checks += compare_servers(args, work, results)
    else:
        build_catalog(work / "catalog", 0, args.seed)

    # A Zarr product and virtual products in the same catalog, for parts 2 and 3.
    from arcodex.convert import convert

    files, _ = generate_archive(work / "archive", args.files, 31, 360, 720, args.seed)
    mb = args.files * 31 * 360 * 720 * 4 / 1e6
    with Catalog.open(work / "catalog") as catalog:
        zarr_id = convert(
            [str(f) for f in files[:2]], to="zarr", catalog=catalog, cluster="threads", check=False
        ).record.id
        kerchunk = convert(
            [str(f) for f in files], to="virtual", format="kerchunk", catalog=catalog,
            cluster="threads", check=False,
        )  # fmt: skip
        icechunk_id = convert(
            [str(f) for f in files], to="virtual", format="icechunk", catalog=catalog,
            cluster="threads", check=False,
        ).record.id  # fmt: skip
    refs_path = kerchunk.product.target.url

    with Server(work / "catalog") as server:
        from arcodex.client import Client

        if search:
            source_first = float(read_step(files[0], 0)[0, 0])
            first = first_data(server, zarr_id, source_first, results)
            checks.append(("open to first data < 1 s", first, first < GOALS["first_data_s"], "s"))
        if virtual:
            client = Client(server.url)
            ratios = virtual_reads(
                refs_path, client, kerchunk.record.id, icechunk_id, mb, args.repeat, results
            )
            goal = GOALS["virtual_ratio"]
            checks += [
                ("virtual (kerchunk) ≥ 2× plain", ratios[0], ratios[0] >= goal, "×"),
                ("virtual (Icechunk) ≥ 2× plain", ratios[1], ratios[1] >= goal, "×"),
            ]

    print("\ntargets:")
    for label, value, good, unit in checks:
        print(f"  {label:<36}{value:>8.2f} {unit:<3} {'PASS' if good else 'FAIL'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def measure(url: str, bodies: list[dict[str, Any]], concurrency: int) -> Side:
    asyncio.run(run_searches(url, bodies[:20], 4))  # warm-up: connections, caches
    latencies, elapsed, answers = asyncio.run(run_searches(url, bodies, concurrency))
    return Side(latencies, elapsed, answers)


class Side:
    """One server's figures: latencies (s), wall time (s), each body's first page of ids."""

    def __init__(self, latencies: list[float], elapsed: float, answers: list[list[str]]) -> None:
        self.latencies, self.elapsed, self.answers = latencies, elapsed, answers
        self.p50 = percentile(latencies, 0.5) * 1000
        self.p95 = percentile(latencies, 0.95) * 1000
        self.rps = len(latencies) / elapsed


def compare_servers(
    args: argparse.Namespace, work: Path, results: dict[str, Any]
) -> list[tuple[str, float, bool, str]]:
    """Part 1: /search of each backend's catalog under ``arcodex serve --workers N`` (child
    processes, as deployed), and of stac-fastapi-pgstac over the same items, in one run.

    Before any figure is printed: every arcodex backend gives the same first pages, equal
    to the scan's for the first 50 searches, and pgstac finds the same items for every
    search (as sets: its default order is by datetime, arcodex's by insertion).
    """
    from contextlib import ExitStack

    from arcodex.testing import local_postgres, serve_workers

    bodies = queries(args.requests, args.seed + 1)
    sides: dict[str, Side] = {}
    items: list[dict[str, Any]] = []
    pgstac_report: dict[str, Any] = {}
    with ExitStack() as stack:
        pg = None
        if "postgres" in args.backends or args.pgstac:
            pg = stack.enter_context(local_postgres())
            os.environ.update(pg.env())  # the password reaches the servers through PGPASSWORD
        for backend in args.backends:
            root = work / "catalog" if backend == "sqlite" else work / f"catalog-{backend}"
            url = pg.schema_url() if backend == "postgres" and pg else None
            t0 = time.perf_counter()
            built = build_catalog(root, args.items, args.seed, url, documents=not items)
            items = items or built
            print(f"{backend} catalog of {args.items:,} records built in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
            with serve_workers(root, args.workers) as served:
                sides[f"arcodex, {backend}"] = measure(
                    f"{served.url}/stac/", bodies, args.concurrency
                )
        if args.pgstac and pg is not None:
            from pgstac_baseline import pgstac_server

            if not items:
                items = build_catalog(work / "catalog", args.items, args.seed)
            venv = args.pgstac_venv or Path.home() / ".cache" / "arcodex-bench" / "pgstac-venv"
            t0 = time.perf_counter()
            with pgstac_server(pg, items, venv, args.workers, pgstac_report) as base:
                print(f"pgstac loaded {args.items:,} items (pypgstac) in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
                sides["stac-fastapi-pgstac"] = measure(base, bodies, args.concurrency)
    if args.pgstac:
        from pgstac_baseline import drop_pgstac_roles

        drop_pgstac_roles()

    # The answers first.
    arcodex_sides = [name for name in sides if name.startswith("arcodex")]
    reference = sides[arcodex_sides[0]].answers
    same_answers(items, bodies[:50], reference[:50])
    for name in arcodex_sides[1:]:
        for index, (a, b) in enumerate(zip(reference, sides[name].answers, strict=True)):
            if a != b:
                raise SystemExit(f"search {index}: {arcodex_sides[0]} and {name} differ")
    full = 0
    if "stac-fastapi-pgstac" in sides:
        for index, (a, b) in enumerate(
            zip(reference, sides["stac-fastapi-pgstac"].answers, strict=True)
        ):
            if len(a) == bodies[index]["limit"] or len(b) == bodies[index]["limit"]:
                full += 1  # a full page: each orders the matches its own way
                if len(a) != len(b):
                    raise SystemExit(f"search {index}: arcodex {len(a)} items, pgstac {len(b)}")
            elif sorted(a) != sorted(b):
                raise SystemExit(
                    f"search {index} ({json.dumps(bodies[index])}): arcodex found {len(a)} "
                    f"items, pgstac {len(b)}; only arcodex: {sorted(set(a) - set(b))[:5]}, "
                    f"only pgstac: {sorted(set(b) - set(a))[:5]}"
                )
    counts = [len(ids) for ids in reference]
    print(
        f"\n/search at {args.items:,} items (bbox + datetime + CQL2, limit 100, "
        f"{args.concurrency} concurrent clients, {len(bodies)} requests, servers with "
        f"--workers {args.workers}); {statistics.mean(counts):.1f} items per answer; "
        f"every server found the same items for every search"
        + (f" ({full} full pages compared by count)" if full else "")
        + ", the first 50 equal to the scan's:"
    )
    baseline = sides.get("stac-fastapi-pgstac")
    for name, side in sides.items():
        ratio = ""
        if baseline is not None and side is not baseline:
            ratio = (f"  → p50 {baseline.p50 / side.p50:.2f}× and requests/s "
                     f"{side.rps / baseline.rps:.2f}× pgstac's")  # fmt: skip
        print(f"  {name:<24} p50 {side.p50:7.1f} ms  p95 {side.p95:7.1f} ms  "
              f"{side.rps:6.0f} requests/s{ratio}")  # fmt: skip
    base = []
    for body in bodies[:50]:
        s0 = time.perf_counter()
        scan(items, body)
        base.append(time.perf_counter() - s0)
    base_p50 = statistics.median(base) * 1000
    print(f"  baseline scan of the items' JSON in memory (no HTTP): p50 {base_p50:.1f} ms")
    results["search"] = {
        name: {"p50_ms": side.p50, "p95_ms": side.p95, "requests_per_s": side.rps}
        for name, side in sides.items()
    }
    results["search"]["scan_p50_ms"] = base_p50
    results["pgstac"] = pgstac_report
    checks = []
    for name, side in sides.items():
        if name.startswith("arcodex"):
            checks.append((f"{name}: /search p50 < 50 ms", side.p50, side.p50 < 50, "ms"))
            if baseline is not None:
                checks.append((f"{name}: p50 ≤ pgstac's", side.p50, side.p50 <= baseline.p50, "ms"))
                checks.append(
                    (f"{name}: requests/s ≥ pgstac's", side.rps, side.rps >= baseline.rps, "/s")
                )
    return checks


def first_data(server: Server, zarr_id: str, source_first: float, results: dict[str, Any]) -> float:
    """Part 2: open-to-first-data through the API."""
    from arcodex.client import Client

    firsts = []
    for _ in range(5):
        s0 = time.perf_counter()
        ds = Client(server.url).search(ids=[zarr_id]).open_dataset(0, variables=["tas"])
        value = float(ds["tas"][0, 0, 0].values)
        firsts.append(time.perf_counter() - s0)
        if value != source_first:
            raise SystemExit(
                f"open to first data read {value!r}, the source holds {source_first!r}"
            )
    first = statistics.median(firsts)
    print(f"\nClient(url).search(ids=…).open_dataset(…) to first data: {first:.2f} s (median of 5)")
    results["first_data_s"] = first
    return first


PLAIN_WAYS: dict[str, dict[str, int] | None] = {
    "no Dask": None,
    "chunks={} (stored chunks)": {},
    "chunks={'time': 31} (a file a chunk)": {"time": 31},
}


def virtual_reads(
    refs_path: str,
    client: Any,
    kerchunk_id: str,
    icechunk_id: str,
    mb: float,
    repeat: int,
    results: dict[str, Any],
) -> tuple[float, float]:
    """Part 3: the global mean of tas, each plain way before and after the client's reads."""
    import numpy as np
    import xarray as xr

    means: dict[str, list[float]] = {}

    def timed_mean(name: str, open_fn: Any) -> float:
        s0 = time.perf_counter()
        with open_fn() as ds:
            value = float(ds["tas"].mean().values)
        seconds = time.perf_counter() - s0
        means.setdefault(name, []).append(value)
        return seconds

    def median_of(name: str, open_fn: Any) -> tuple[float, list[float]]:
        timed_mean(name, open_fn)  # warm: imports, the page cache, the client's catalog lookups
        runs = [timed_mean(name, open_fn) for _ in range(repeat)]
        return statistics.median(runs), runs

    def plain_fn(chunks: dict[str, int] | None) -> Any:
        return lambda: xr.open_dataset(refs_path, engine="kerchunk", chunks=chunks)

    before = {way: median_of(way, plain_fn(c)) for way, c in PLAIN_WAYS.items()}
    via_refs, refs_runs = median_of(
        "client, kerchunk asset", lambda: client.open_dataset(kerchunk_id)
    )
    via_icechunk, icechunk_runs = median_of(
        "client, virtual Icechunk asset", lambda: client.open_dataset(icechunk_id)
    )
    after = {way: median_of(way, plain_fn(c)) for way, c in PLAIN_WAYS.items()}

    # Every way reads the same float32 values; only the order of the float32 sums differs.
    reference = means["no Dask"][0]
    for name, values in means.items():
        for value in values:
            if not np.isclose(value, reference, rtol=1e-6, atol=0):
                raise SystemExit(f"{name}: mean {value!r} differs from plain no-Dask {reference!r}")
    best_way = min(PLAIN_WAYS, key=lambda way: min(before[way][0], after[way][0]))
    plain = min(before[best_way][0], after[best_way][0])

    def runs_text(runs: list[float]) -> str:
        return ", ".join(f"{r:.2f}" for r in runs)

    print(f"\nglobal mean of tas over {mb:,.0f} MB (virtual, the sources' zlib chunks), "
          f"median of {repeat} after a warm-up; every mean {reference:.6f} (within 1e-6):")  # fmt: skip
    for way in PLAIN_WAYS:
        print(f"  plain xr.open_dataset(refs, engine='kerchunk'), {way}: before "
              f"{before[way][0]:.2f} s ({runs_text(before[way][1])}), after the client's reads "
              f"{after[way][0]:.2f} s ({runs_text(after[way][1])})")  # fmt: skip
    print(f"  fastest plain way: {best_way}, {plain:.2f} s")
    print(f"  arcodex client, kerchunk asset:         {via_refs:.2f} s, "
          f"{mb / via_refs:.0f} MB/s, {plain / via_refs:.2f}× the fastest plain "
          f"({runs_text(refs_runs)})")  # fmt: skip
    print(f"  arcodex client, virtual Icechunk asset: {via_icechunk:.2f} s, "
          f"{mb / via_icechunk:.0f} MB/s, {plain / via_icechunk:.2f}× the fastest plain "
          f"({runs_text(icechunk_runs)})")  # fmt: skip
    results["virtual"] = {
        "plain_before_s": {way: before[way][0] for way in PLAIN_WAYS},
        "plain_after_s": {way: after[way][0] for way in PLAIN_WAYS},
        "plain_best_way": best_way, "plain_s": plain, "means": means,
        "kerchunk_s": via_refs, "icechunk_s": via_icechunk, "mb": mb, "repeat": repeat,
        "kerchunk_ratio": plain / via_refs, "icechunk_ratio": plain / via_icechunk,
    }  # fmt: skip
    return plain / via_refs, plain / via_icechunk


if __name__ == "__main__":
    main()
