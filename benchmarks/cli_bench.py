"""One ``arcodex add`` of a small NetCDF file, as a user runs it, against a plain script.

Each run is a fresh process (``python -m arcodex.cli --catalog CAT add small.nc``)
into an existing catalog, timed from start to exit. In the same run, alternating
with it, two plain scripts are timed the same way:

- ``plain``: what any cataloguing script must do for one file, in Python with no
  framework: read the NetCDF header with netCDF4 (dimensions, variables,
  attributes, the extent of lat/lon/time), hash the file (sha256), copy it into
  the catalog directory and fsync it, and insert one JSON row into a SQLite
  database (WAL, ``synchronous=FULL``) in one transaction.
- ``python``: the interpreter starting and exiting (``python -c pass``), the floor.

CPU time (user + system of each process) is printed too: other jobs on the
machine inflate it much less than wall time.

arcodex does more than ``plain`` (a journal, an event log, an operation
record, the datacube, typed index rows, a command-line parser), so the ratio
says what that costs. The target (issue 11) is a median under 0.4 s.

    .venv/bin/python benchmarks/cli_bench.py [--runs 15]

Modules are byte-compiled first: an installed arcodex has its ``.pyc`` files,
a source checkout run with ``PYTHONDONTWRITEBYTECODE`` would compile every
module on every run.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

TARGET_S = 0.4

PLAIN = r"""
import hashlib, json, os, shutil, sqlite3, sys
import netCDF4, numpy as np
src, root = sys.argv[1], sys.argv[2]
with netCDF4.Dataset(src) as nc:
    meta = {
        "dims": {k: len(d) for k, d in nc.dimensions.items()},
        "variables": {k: {"dims": list(v.dimensions), "dtype": str(v.dtype),
                          **{a: str(v.getncattr(a)) for a in ("units", "long_name") if a in v.ncattrs()}}
                      for k, v in nc.variables.items()},
        "attrs": {k: str(nc.getncattr(k)) for k in nc.ncattrs()},
    }
    for name in ("lat", "lon", "time"):
        if name in nc.variables:
            values = np.asarray(nc.variables[name][:])
            meta[name] = [float(values.min()), float(values.max())]
digest = hashlib.sha256()
with open(src, "rb") as fh:
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
sha = digest.hexdigest()
dest = os.path.join(root, "files", sha + ".nc")
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + ".tmp"
shutil.copyfile(src, tmp)
fd = os.open(tmp, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
os.replace(tmp, dest)
db = sqlite3.connect(os.path.join(root, "plain.sqlite"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, sha256 TEXT, doc TEXT)")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
           (sha + str(os.getpid()), sha, json.dumps({"path": dest, "metadata": meta})))
db.execute("COMMIT")
db.close()
"""


def write_small_netcdf(path: Path) -> None:
    """A 4 x 10 x 20 float32 file with CF coordinates and a daily time axis (about 13 KB)."""
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "small test file"
        nc.institution = "NOC"
        for name, size in (("time", None), ("lat", 10), ("lon", 20)):
            nc.createDimension(name, size)
        time_ = nc.createVariable("time", "i8", ("time",))
        time_.units, time_.calendar, time_.axis = "days since 2020-01-01", "standard", "T"
        time_[:] = np.arange(4)
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-45, 45, 10)
        lon = nc.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(0, 350, 20)
        tas = nc.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True)
        tas.units, tas.long_name = "K", "air temperature"
        tas[:] = np.random.default_rng(0).random((4, 10, 20), dtype="float32") + 273


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time of one run, and the CPU time (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def import_summary(cmd: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """Cumulative import time of each top-level package the command imports (seconds)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    per_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) == 1:  # imported by the command itself, not nested
            per_package[match.group(3).split(".")[0]] += int(match.group(1)) / 1e6
    return sorted(per_package.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--top", type=int, default=12, help="imports listed in the summary")
    args = parser.parse_args()

    import arcodex

    package = Path(arcodex.__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    work = Path(tempfile.mkdtemp(prefix="arcodex-cli-bench-"))
    try:
        small = work / "small.nc"
        write_small_netcdf(small)
        catalog = work / "catalog"
        plain_root = work / "plain"
        plain_root.mkdir()
        subprocess.run(
            [sys.executable, "-m", "arcodex.cli", "init", str(catalog)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        commands = {
            "arcodex add": [
                sys.executable, "-m", "arcodex.cli", "--catalog", str(catalog), "add", str(small),
            ],
            "plain": [sys.executable, "-c", PLAIN, str(small), str(plain_root)],
            "python": [sys.executable, "-c", "pass"],
        }  # fmt: skip
        for cmd in commands.values():  # warm the page cache and the catalog
            timed(cmd, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                wall, used = timed(cmd, env)
                samples[name].append(wall)
                cpu[name].append(used)

        load = os.getloadavg()[0]
        print(
            f"# arcodex CLI benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} on {platform.machine()}, "
            f"python {platform.python_version()}, {os.cpu_count()} cores, load {load:.1f}"
        )
        print(f"one `arcodex add` of a {small.stat().st_size:,}-byte NetCDF, {args.runs} runs each")
        print(f"{'command':<14}{'median s':>10}{'min s':>9}{'max s':>9}{'CPU median s':>14}")
        for name, values in samples.items():
            print(
                f"{name:<14}{statistics.median(values):>10.3f}{min(values):>9.3f}"
                f"{max(values):>9.3f}{statistics.median(cpu[name]):>14.3f}"
            )
        ours = statistics.median(samples["arcodex add"])
        plain = statistics.median(samples["plain"])
        floor = statistics.median(samples["python"])
        print(
            f"ratio arcodex / plain: {ours / plain:.2f}x; above the interpreter's start: "
            f"arcodex {ours - floor:.3f} s, plain {plain - floor:.3f} s"
        )
        ours_cpu, plain_cpu = statistics.median(cpu["arcodex add"]), statistics.median(cpu["plain"])
        print(
            f"CPU time (less sensitive to other jobs): arcodex {ours_cpu:.3f} s, plain "
            f"{plain_cpu:.3f} s, ratio {ours_cpu / plain_cpu:.2f}x"
        )
        verdict = "met" if ours < TARGET_S else "NOT met"
        print(f"target: median < {TARGET_S} s: {verdict} ({ours:.3f} s)")
        print(f"\nimports of `arcodex add` (top {args.top}, cumulative, seconds):")
        for name, seconds in import_summary(commands["arcodex add"], env, args.top):
            print(f"  {name:<24}{seconds:>7.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
