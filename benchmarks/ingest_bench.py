"""Batch ingest of many small files: `arcodex ingest-files` against the loop a user would
write (`arcodex add FILE`, one process per file) and against `Catalog.add_files` of every
file in one call.

Three ways to register the same N small CSV files (copied into managed storage,
metadata extracted, one record each), each into a fresh catalog:

  (a) ``arcodex ingest-files DIR`` — the CLI, one process, batches of --batch-size;
  (b) ``for f in DIR/*; do arcodex add "$f"; done`` — one process per file. It is
      slow, so it is timed on the first --add-loop files and its files/s is
      extrapolated from the median time per file (the output says so);
  (c) ``Catalog.add_files(all files)`` — the Python API, one operation;

and, for the cost of the ingest itself without a process start,
``Catalog.ingest_files(DIR)`` in this process.

Before any figure is printed, the answers are compared: every catalog holds one
record per file, and the (source path, sha256) pairs of (a) and (c) are the same set,
and those of (b) are exactly the ones (a) holds for the same files.

    .venv/bin/python benchmarks/ingest_bench.py --files 10000 --add-loop 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arcodex.catalog import Catalog


def write_files(directory: Path, n: int) -> list[Path]:
    """``n`` small CSV files (a few dozen bytes each), 1,000 to a directory."""
    paths = []
    for i in range(n):
        path = directory / f"d{i // 1000:03d}" / f"obs-{i:06d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"t,ch4\n{i},{1900 + i % 97}\n", encoding="utf-8")
        paths.append(path)
    return paths


def arcodex_command() -> list[str]:
    """The ``arcodex`` console script next to this Python (what a user runs), else
    ``python -m arcodex.cli``."""
    script = shutil.which("arcodex", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "arcodex.cli"]


def held(root: Path) -> set[tuple[str, str]]:
    """(source path, sha256) of every record of a catalog; one record per file checked."""
    with Catalog.open(root) as catalog:
        records = catalog.search(limit=None).records
    pairs = {
        (str(r.artifacts[0].metadata["source_path"]), str(r.artifacts[0].hashes["sha256"]))
        for r in records
    }
    if len(pairs) != len(records):
        raise SystemExit(f"{root}: {len(records)} records for {len(pairs)} files")
    return pairs


def time_ingest(data: Path, root: Path, batch_size: int) -> float:
    Catalog.create(root).close()
    started = time.perf_counter()
    done = subprocess.run(
        [*arcodex_command(), "--catalog", str(root), "ingest-files", str(data),
         "--batch-size", str(batch_size), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"arcodex ingest-files failed: {done.stderr.strip()}")
    return seconds


def time_add_loop(files: Sequence[Path], root: Path) -> list[float]:
    Catalog.create(root).close()
    seconds = []
    for path in files:
        started = time.perf_counter()
        done = subprocess.run(
            [*arcodex_command(), "--catalog", str(root), "add", str(path)],
            capture_output=True, text=True,
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"arcodex add {path} failed: {done.stderr.strip()}")
    return seconds


def time_ingest_api(data: Path, root: Path, batch_size: int) -> float:
    with Catalog.create(root) as catalog:
        started = time.perf_counter()
        result = catalog.ingest_files([data], batch_size=batch_size)
        seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"Catalog.ingest_files failed: {result.failed[:3]}")
    return seconds


def time_add_files(files: Sequence[Path], root: Path) -> float:
    with Catalog.create(root) as catalog:
        started = time.perf_counter()
        catalog.add_files(files)
        return time.perf_counter() - started


def run(n: int, loop: int, repeats: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    data = workdir / "files"
    shutil.rmtree(data, ignore_errors=True)
    files = write_files(data, n)
    loop = min(loop, n)
    ingest_s, api_s, bulk_s = [], [], []
    ingest_held: set[tuple[str, str]] = set()
    bulk_held: set[tuple[str, str]] = set()
    for i in range(repeats):
        root = workdir / f"ingest-{i}"
        shutil.rmtree(root, ignore_errors=True)
        ingest_s.append(time_ingest(data, root, batch_size))
        ingest_held = held(root)
        shutil.rmtree(root)
        root = workdir / f"ingest-api-{i}"
        shutil.rmtree(root, ignore_errors=True)
        api_s.append(time_ingest_api(data, root, batch_size))
        if held(root) != ingest_held:
            raise SystemExit("Catalog.ingest_files holds other files than arcodex ingest-files")
        shutil.rmtree(root)
        root = workdir / f"add-files-{i}"
        shutil.rmtree(root, ignore_errors=True)
        bulk_s.append(time_add_files(files, root))
        bulk_held = held(root)
        shutil.rmtree(root)
    root = workdir / "add-loop"
    shutil.rmtree(root, ignore_errors=True)
    per_file = time_add_loop(files[:loop], root)
    loop_held = held(root)
    shutil.rmtree(root)
    # The answers first: the same files, with the same content, in every catalog.
    if len(ingest_held) != n or ingest_held != bulk_held:
        raise SystemExit(
            f"ingest-files holds {len(ingest_held)} files, add_files {len(bulk_held)}; "
            f"{len(ingest_held ^ bulk_held)} differ"
        )
    wanted = {str(p.resolve()) for p in files[:loop]}
    if loop_held != {pair for pair in ingest_held if pair[0] in wanted}:
        raise SystemExit("the `arcodex add` loop holds other files than ingest-files does")
    ingest = statistics.median(ingest_s)
    bulk = statistics.median(bulk_s)
    loop_file = statistics.median(per_file)
    shutil.rmtree(data, ignore_errors=True)
    return {
        "files": n,
        "repeats": repeats,
        "batch_size": batch_size,
        "ingest_seconds": ingest,
        "ingest_files_per_s": n / ingest,
        "ingest_api_seconds": statistics.median(api_s),
        "ingest_api_files_per_s": n / statistics.median(api_s),
        "add_files_seconds": bulk,
        "add_files_per_s": n / bulk,
        "add_loop_files": loop,
        "add_loop_ms_per_file": loop_file * 1000,
        "add_loop_files_per_s": 1 / loop_file,
        "ratio_vs_add_loop": (n / ingest) * loop_file,
        "ratio_vs_add_files": bulk / ingest,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000, help="small files to register")
    parser.add_argument(
        "--add-loop",
        type=int,
        default=200,
        help="files the `arcodex add` loop is timed on (its files/s is extrapolated)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of ingest-files and add_files (median)"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="ingest-files --batch-size")
    parser.add_argument("--workdir", default=None, help="where files and catalogs go")
    parser.add_argument(
        "--json", dest="json_out", default=None, help="also write the results to this file"
    )
    args = parser.parse_args(argv)
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="arcodex-ingest-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"# arcodex batch ingest benchmark {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores"
    )
    try:
        res = run(args.files, args.add_loop, args.repeats, args.batch_size, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"answers agree: {res['files']:,} records, same paths and sha256 in every catalog")
    print(
        f"arcodex ingest-files ({res['files']:,} files, one process, batches of "
        f"{res['batch_size']}): {res['ingest_files_per_s']:,.0f} files/s "
        f"(median of {res['repeats']}: {res['ingest_seconds']:.2f} s)"
    )
    print(
        f"Catalog.ingest_files (same, in this process): {res['ingest_api_files_per_s']:,.0f} "
        f"files/s ({res['ingest_api_seconds']:.2f} s)"
    )
    print(
        f"Catalog.add_files (all in one call): {res['add_files_per_s']:,.0f} files/s "
        f"({res['add_files_seconds']:.2f} s)"
    )
    print(
        f"arcodex add loop (one process per file; timed on {res['add_loop_files']} files, "
        f"extrapolated): {res['add_loop_files_per_s']:,.1f} files/s "
        f"(median {res['add_loop_ms_per_file']:.0f} ms per file)"
    )
    print(
        f"ratio: ingest-files is {res['ratio_vs_add_loop']:,.0f}x the add loop (target >= 20x), "
        f"{res['ratio_vs_add_files']:.2f}x add_files in one call (the CLI's figure includes "
        "its process start; in this process: "
        f"{res['add_files_seconds'] / res['ingest_api_seconds']:.2f}x)"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
