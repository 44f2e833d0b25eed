"""A group of products converted together, against the same members one at a time (issue 13).

One run does, in order:

1. Generates the archive (or reuses a matching one in ``--workdir``): ``--members`` members
   (default 20), each ``--files`` NetCDF4 files (default 12) of daily ``tas(time, lat, lon)``
   float32 on a modest grid (31 days × 72 × 144 by default, 1.3 MB a file), written by
   ``arcodex.samples.write_sample_netcdf`` with a seed of their own, so every member is
   different and each file continues its member's time axis.
2. zarr: times, in alternating order, round by round (``--repeat``), each into a fresh catalog:

   - ``group``: ``arcodex group init bench --from members.csv`` and
     ``arcodex group run bench --json`` (one CLI process each; the run converts every member
     on the LocalCluster the catalog's config names, the default);
   - ``sequential``: what an operator scripts without groups, ``arcodex convert SOURCES --to
     zarr --dest …`` once per member, one CLI process after another, each with its own cluster.

   Both sides write to ``--dest`` paths of the same shape, with the same target, format and
   check (the default check) and register into a catalog.
3. virtual: ``arcodex group run`` of the same members with ``to: virtual, format: kerchunk``,
   and, with ``--padocc``, padocc's own kerchunk pipeline on the same group (``padocc init``
   from a CSV, ``scan`` and ``compute`` with ``-C kerchunk``), run from a virtual environment of
   its own (``--padocc-venv``; created with ``pip install padocc`` when absent, and the time
   that takes is printed). padocc is never imported into this process.
4. Batch ingest: ``benchmarks/ingest_bench.py``'s ``main(argv)`` (the ingest engineer's
   script; files/s of ``arcodex ingest-files`` against a loop of ``arcodex add`` and
   ``Catalog.add_files``), unless ``--skip-ingest`` or the script is absent.

Before any figure is printed every product is compared with its sources: it opens with
xarray, its time axis is the sources' concatenated, ``tas`` has the sources' values (a digest
of the whole array) and lat/lon are the sources'. Each group product must also equal the
sequential run's product of the same member (``xarray.testing.assert_equal``: values,
coordinates, dimensions). A ratio is printed only when both sides match.

Medians of ``--repeat`` rounds. CPU time (user + system of every process a side started) is
printed next to wall time, because other jobs on a shared machine inflate it far less.

    .venv/bin/python benchmarks/group_bench.py                       # 20 × 12, 3 rounds
    .venv/bin/python benchmarks/group_bench.py --members 4 --files 3 --repeat 1 --skip-ingest
    .venv/bin/python benchmarks/group_bench.py --padocc --padocc-venv ~/.cache/padocc-venv
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ARCHIVE_VERSION = 1
GROUP = "bench"
#: Issue 13: a group run ≥ 1.8× faster than its members through `arcodex convert` in turn.
TARGET_GROUP = 1.8
PADOCC_PACKAGE = "padocc"
HERE = Path(__file__).resolve().parent


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# -- the archive ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: str
    files: tuple[Path, ...]

    @property
    def pattern(self) -> str:
        return str(self.files[0].parent / "*.nc")


def generate_archive(
    root: Path, members: int, files: int, days: int, nlat: int, nlon: int
) -> tuple[list[Member], bool]:
    """Write (or reuse) the archive; return its members and whether it was reused."""
    from arcodex.samples import write_sample_netcdf

    manifest = {
        "version": ARCHIVE_VERSION,
        "members": members,
        "files": files,
        "days": days,
        "nlat": nlat,
        "nlon": nlon,
    }
    out = [
        Member(
            f"m{m:02d}",
            tuple(root / f"m{m:02d}" / f"tas_day_m{m:02d}_{f:03d}.nc" for f in range(files)),
        )
        for m in range(members)
    ]
    stamp = root / "archive.json"
    if (
        stamp.exists()
        and json.loads(stamp.read_text()) == manifest
        and all(p.exists() for m in out for p in m.files)
    ):
        return out, True
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for m, member in enumerate(out):
        first = date(1990 + m, 1, 1)
        for f, path in enumerate(member.files):
            write_sample_netcdf(
                path,
                start=(first + timedelta(days=f * days)).isoformat(),
                days=days,
                nlat=nlat,
                nlon=nlon,
                seed=1000 * m + f,
                variables=("tas",),
                attrs={"title": f"benchmark member {member.id}", "member": member.id},
            )
    stamp.write_text(json.dumps(manifest))
    return out, False


# -- running the CLI -------------------------------------------------------------------------


def arcodex(catalog: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "arcodex.cli", "--catalog", str(catalog), *args]


@dataclass
class Timed:
    wall: float
    cpu: float
    stdout: str


def run(
    cmd: Sequence[str], env: dict[str, str] | None = None, codes: tuple[int, ...] = (0,)
) -> Timed:
    """Run one command to its end; its wall time and the CPU time of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in codes:
        raise RuntimeError(
            f"{' '.join(Path(c).name if os.sep in c else c for c in cmd[:6])} … exited "
            f"{done.returncode}: {one_line(done.stderr) or one_line(done.stdout)}"
        )
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Timed(wall, cpu, done.stdout)


def fresh_catalog(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    catalog = root / "catalog"
    subprocess.run(
        [sys.executable, "-m", "arcodex.cli", "init", str(catalog)],
        check=True,
        capture_output=True,
    )
    return catalog


def product_path(root: Path, member: Member, to: str) -> Path:
    return root / "products" / (f"{member.id}.json" if to == "virtual" else f"{member.id}.zarr")


def write_members_csv(path: Path, members: Sequence[Member], root: Path, to: str) -> None:
    """The group's members: id, sources, and each one's target and destination."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "sources", "to", "format", "dest"])
        for member in members:
            fmt = "kerchunk" if to == "virtual" else ""
            writer.writerow(
                [member.id, member.pattern, to, fmt, str(product_path(root, member, to))]
            )


@dataclass
class Side:
    """One timed round of one way of converting the members."""

    wall: float
    cpu: float
    products: dict[str, Path]
    phases: dict[str, float] = field(default_factory=dict)


def run_group(members: Sequence[Member], root: Path, to: str, phase: str = "run") -> Side:
    """``arcodex group init`` + ``arcodex group run``, each one CLI process."""
    catalog = fresh_catalog(root)
    table = root / "members.csv"
    write_members_csv(table, members, root, to)
    init = run(arcodex(catalog, "group", "init", GROUP, "--from", str(table)))
    # Exit status 1 says a member failed; the JSON says which and why.
    done = run(arcodex(catalog, "group", "run", GROUP, "--phase", phase, "--json"), codes=(0, 1))
    report = json.loads(done.stdout)
    failed = [m for m in members if not member_done(report, m.id)]
    if failed:
        reasons = {
            row.get("id"): row.get("reason")
            for row in report.get("members", [])
            if isinstance(row, dict)
        }
        first = failed[0].id
        raise RuntimeError(
            f"group run left {len(failed)} member(s) not done ({', '.join(m.id for m in failed)}); "
            f"{first}: {reasons.get(first)}"
        )
    return Side(
        init.wall + done.wall,
        init.cpu + done.cpu,
        {m.id: product_path(root, m, to) for m in members},
        {"init": init.wall, "run": done.wall},
    )


def member_done(report: Any, member_id: str) -> bool:
    """Whether the group run's JSON says the member is done (or warn)."""
    rows: Any = report.get("members", report) if isinstance(report, dict) else report
    if isinstance(rows, dict):
        rows = [{"id": k, **(v if isinstance(v, dict) else {"status": v})} for k, v in rows.items()]
    for row in rows:
        if isinstance(row, dict) and row.get("id", row.get("member")) == member_id:
            return row.get("status") in ("done", "warn")
    return False


def run_sequential(members: Sequence[Member], root: Path, to: str) -> Side:
    """``arcodex convert`` once per member, one process after another, as a script would."""
    catalog = fresh_catalog(root)
    wall = cpu = 0.0
    products: dict[str, Path] = {}
    for member in members:
        dest = product_path(root, member, to)
        extra = ["--format", "kerchunk"] if to == "virtual" else []
        done = run(
            arcodex(
                catalog, "convert", member.pattern, "--to", to, *extra,
                "--dest", str(dest), "--json",
            )
        )  # fmt: skip
        status = json.loads(done.stdout)["status"]
        if status not in ("pass", "warn"):
            raise RuntimeError(f"convert of {member.id} ended {status}")
        wall += done.wall
        cpu += done.cpu
        products[member.id] = dest
    return Side(wall, cpu, products)


# -- padocc, in its own virtual environment --------------------------------------------------


def find_python312() -> str:
    candidates = [
        shutil.which("python3.12"),
        *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]
    for c in candidates:
        if c and Path(c).exists():
            return c
    raise RuntimeError("no python3.12 found for padocc's virtual environment; give --padocc-venv")


def ensure_padocc(venv: Path) -> tuple[Path, float | None, str]:
    """padocc's CLI in ``venv``, installing it there when absent; the install time and version."""
    exe = venv / "bin" / "padocc"
    took: float | None = None
    if not exe.exists():
        t0 = time.perf_counter()
        subprocess.run([find_python312(), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", PADOCC_PACKAGE],
            check=True,
            capture_output=True,
        )
        took = time.perf_counter() - t0
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('padocc'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    return exe, took, version


def run_padocc(exe: Path, members: Sequence[Member], root: Path) -> Side:
    """padocc's own pipeline of the group: init from a CSV, scan, compute (kerchunk)."""
    shutil.rmtree(root, ignore_errors=True)
    workdir = root / "workdir"
    workdir.mkdir(parents=True)
    table = root / "padocc.csv"
    # padocc's input rows: project code, pattern, updates file, removals file (no header).
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        for member in members:
            writer.writerow([member.id, member.pattern, "", ""])
    env = {**os.environ, "WORKDIR": str(workdir)}
    env.pop("PYTHONPATH", None)
    base = [str(exe)]
    phases: dict[str, float] = {}
    cpu = 0.0
    for phase, args in (
        ("init", ["init", "-G", GROUP, "-i", str(table)]),
        ("scan", ["scan", "-G", GROUP, "-C", "kerchunk"]),
        ("compute", ["compute", "-G", GROUP, "-C", "kerchunk"]),
    ):
        # The workdir comes from $WORKDIR only: padocc 1.5.1 fails when -w is given as well.
        done = run([*base, *args], env=env)
        phases[phase] = done.wall
        cpu += done.cpu
    products = {m.id: padocc_product(workdir, m.id) for m in members}
    return Side(phases["scan"] + phases["compute"], cpu, products, phases)


def padocc_product(workdir: Path, member_id: str) -> Path:
    """The kerchunk product padocc wrote for a member (``k<revision>.json``, not a ``trial-``)."""
    found = sorted((workdir / "in_progress" / GROUP / member_id).glob("k*.json"))
    if not found:
        raise RuntimeError(f"padocc wrote no kerchunk product for {member_id} under {workdir}")
    return found[-1]


# -- comparing answers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    steps: int
    times: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    tas_digest: str


def digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float32).tobytes()).hexdigest()


def expected_of(member: Member) -> Expected:
    """What the member's product must hold: the sources' values, concatenated along time."""
    import xarray as xr

    times, slabs = [], []
    lat = lon = None
    for path in member.files:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            times.append(ds["time"].values)
            slabs.append(ds["tas"].values)
            lat, lon = ds["lat"].values, ds["lon"].values
    assert lat is not None and lon is not None
    tas = np.concatenate(slabs)
    return Expected(len(tas), np.concatenate(times), lat, lon, digest(tas))


def open_product(path: Path) -> Any:
    import xarray as xr

    if path.suffix == ".json":
        return xr.open_dataset(str(path), engine="kerchunk")
    return xr.open_zarr(path, consolidated=None)


def check_product(path: Path, want: Expected) -> str | None:
    """None when the product equals its sources, else what differs."""
    try:
        ds = open_product(path)
    except Exception as exc:  # the product must open; say why it does not
        return f"does not open: {type(exc).__name__}: {exc}"
    with ds:
        if "tas" not in ds:
            return "no tas variable"
        if ds.sizes.get("time") != want.steps:
            return f"{ds.sizes.get('time')} time steps, the sources have {want.steps}"
        if not np.array_equal(ds["time"].values, want.times):
            return "time axis differs from the sources'"
        if not (
            np.array_equal(ds["lat"].values, want.lat)
            and np.array_equal(ds["lon"].values, want.lon)
        ):
            return "lat/lon differ from the sources'"
        if digest(ds["tas"].values) != want.tas_digest:
            return "tas values differ from the sources'"
    return None


def check_same(a: Path, b: Path) -> str | None:
    """None when two products hold the same dataset (values, coordinates, dimensions)."""
    import xarray as xr

    with open_product(a) as one, open_product(b) as two:
        try:
            xr.testing.assert_equal(one.load(), two.load())
        except AssertionError as exc:
            return one_line(str(exc)) or "datasets differ"
    return None


@dataclass
class Answers:
    """What was compared, and every difference found."""

    problems: list[str] = field(default_factory=list)
    products: int = 0
    pairs: int = 0

    def summary(self) -> str:
        if self.problems:
            return f"ANSWERS DIFFER ({len(self.problems)}), so no ratio is printed:\n  " + (
                "\n  ".join(self.problems[:40])
            )
        pairs = (
            f"; {self.pairs} group products equal the sequential run's product of the same member"
            if self.pairs
            else ""
        )
        return (
            f"answers: {self.products} products open with xarray and equal their sources "
            f"(time axis, lat/lon, every value of tas){pairs}"
        )


def verify(label: str, side: Side, expected: dict[str, Expected], answers: Answers) -> None:
    for member_id, path in side.products.items():
        wrong = check_product(path, expected[member_id])
        answers.products += 1
        if wrong:
            answers.problems.append(f"{label} {member_id}: {wrong}")


# -- the parts -------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def add(self, side: Side) -> None:
        self.walls.append(side.wall)
        self.cpus.append(side.cpu)
        self.phases.append(side.phases)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def line(self, members: int) -> str:
        if self.error or not self.walls:
            return f"{self.name:<34} not measured: {self.error}"
        spread = f"{min(self.walls):.1f}–{max(self.walls):.1f}"
        phases = ""
        if self.phases and self.phases[0]:
            keys = self.phases[0].keys()
            phases = (
                "  ("
                + ", ".join(
                    f"{k} {statistics.median(p[k] for p in self.phases):.2f} s" for k in keys
                )
                + ")"
            )
        return (
            f"{self.name:<34}{self.median:>9.2f} s{spread:>14} s{statistics.median(self.cpus):>9.1f} s"
            f"{self.median / members:>10.2f} s{phases}"
        )


def attempt(result: Result, fn: Callable[..., Side], *args: Any) -> Side | None:
    """Run one side once and keep its figures; a failure is kept in one line, not raised."""
    if result.error:
        return None
    try:
        side = fn(*args)
    except Exception as exc:  # report in one line, let the other side still run
        result.error = f"{type(exc).__name__}: {exc}"[:400]
        return None
    result.add(side)
    return side


def progress(r: int, repeat: int, result: Result, side: Side | None) -> None:
    took = f"{side.wall:.2f} s" if side is not None else f"failed: {result.error}"
    print(f"  round {r + 1}/{repeat}: {result.name}: {took}", flush=True)


def zarr_part(
    members: Sequence[Member], expected: dict[str, Expected], work: Path, repeat: int,
    phase: str, answers: Answers,
) -> tuple[Result, Result]:  # fmt: skip
    """The group run against the members through ``arcodex convert`` in turn, alternating."""
    group, seq = Result("arcodex group run (zarr)"), Result("arcodex convert × members (zarr)")
    ways: dict[str, tuple[Result, Callable[..., Side]]] = {
        "group": (group, functools.partial(run_group, phase=phase)),
        "sequential": (seq, run_sequential),
    }
    for r in range(repeat):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        sides: dict[str, Side | None] = {}
        for name in order:
            result, fn = ways[name]
            sides[name] = attempt(result, fn, members, work / "runs" / f"zarr-{name}-{r}", "zarr")
            progress(r, repeat, result, sides[name])
        for name, side in sides.items():
            if side is not None:
                verify(name, side, expected, answers)
        one, two = sides.get("group"), sides.get("sequential")
        if one is not None and two is not None:
            for member in members:
                differs = check_same(one.products[member.id], two.products[member.id])
                answers.pairs += 1
                if differs:
                    answers.problems.append(f"group vs sequential {member.id}: {differs}")
        for name in ways:
            shutil.rmtree(work / "runs" / f"zarr-{name}-{r}", ignore_errors=True)
    return group, seq


def virtual_part(
    members: Sequence[Member], expected: dict[str, Expected], work: Path, repeat: int,
    phase: str, padocc: Path | None, padocc_repeat: int, answers: Answers,
) -> tuple[Result, Result]:  # fmt: skip
    """A kerchunk group run against padocc's kerchunk pipeline of the same group."""
    group = Result("arcodex group run (kerchunk)")
    theirs = Result("padocc scan + compute (kerchunk)")
    if padocc is None:
        theirs.error = "not run (give --padocc)"
    for r in range(max(repeat, padocc_repeat if padocc else 0)):
        if r < repeat:
            root = work / "runs" / f"virtual-group-{r}"
            side = attempt(group, run_group, members, root, "virtual", phase)
            progress(r, repeat, group, side)
            if side is not None:
                verify("group (kerchunk)", side, expected, answers)
            shutil.rmtree(root, ignore_errors=True)
        if padocc is not None and r < padocc_repeat:
            root = work / "runs" / f"padocc-{r}"
            other = attempt(theirs, run_padocc, padocc, members, root)
            progress(r, padocc_repeat, theirs, other)
            if other is not None:
                verify("padocc", other, expected, answers)
            shutil.rmtree(root, ignore_errors=True)
    return group, theirs


def ingest_part(argv: list[str]) -> str | None:
    """Run the batch-ingest benchmark; None when it ran, else why not."""
    script = HERE / "ingest_bench.py"
    if not script.exists():
        return f"{script.name} is not in this tree yet (run it alone once it is)"
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingest_bench", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)
    return None


def ratio_line(name: str, ours: Result, theirs: Result, target: float | None) -> str:
    if ours.error or theirs.error or not ours.walls or not theirs.walls:
        return f"{name}: no ratio ({ours.error or theirs.error})"
    ratio = theirs.median / ours.median
    cpu = statistics.median(theirs.cpus) / statistics.median(ours.cpus)
    verdict = ""
    if target is not None:
        verdict = f"; target ≥ {target}×: {'met' if ratio >= target else 'NOT met'}"
    return f"{name}: {ratio:.2f}× faster in wall time, {cpu:.2f}× in CPU time{verdict}"


def convert_parts(
    args: argparse.Namespace, parts: set[str], work: Path, answers: Answers, load0: float
) -> None:
    """The archive, the zarr and virtual comparisons, and their summary."""
    results: list[tuple[str, Result, Result, float | None]] = []
    t0 = time.perf_counter()
    members, reused = generate_archive(
        work / "archive", args.members, args.files, args.days, args.nlat, args.nlon
    )
    size = sum(p.stat().st_size for m in members for p in m.files)
    print(
        f"archive: {args.members} members × {args.files} files of tas({args.days}, "
        f"{args.nlat}, {args.nlon}) float32, {size / 1e6:.0f} MB on disk "
        f"({'reused' if reused else f'written in {time.perf_counter() - t0:.1f} s'})",
        flush=True,
    )
    expected = {m.id: expected_of(m) for m in members}
    padocc_note = ""
    if "zarr" in parts:
        print("zarr: group run against the members through `arcodex convert` in turn", flush=True)
        group, seq = zarr_part(members, expected, work, args.repeat, args.group_phase, answers)
        results.append(("group vs sequential convert (zarr)", group, seq, TARGET_GROUP))
    if "virtual" in parts:
        exe = None
        if args.padocc:
            venv = args.padocc_venv or Path.home() / ".cache" / "arcodex-bench" / "padocc-venv"
            try:
                exe, took, version = ensure_padocc(venv)
                padocc_note = f"padocc {version} in its own virtual environment" + (
                    f" (installed in {took:.0f} s)" if took is not None else " (already installed)"
                )
            except Exception as exc:  # say why, the arcodex side still runs
                padocc_note = f"padocc did not install: {type(exc).__name__}: {one_line(str(exc))}"
            print(padocc_note, flush=True)
        print("virtual: group run (kerchunk) against padocc's kerchunk pipeline", flush=True)
        vgroup, theirs = virtual_part(
            members,
            expected,
            work,
            args.repeat,
            args.group_phase,
            exe,
            args.padocc_repeat,
            answers,
        )
        results.append(("group (kerchunk) vs padocc scan + compute", vgroup, theirs, None))

    print()
    print(answers.summary())
    print(f"{'':<34}{'median':>11}{'range':>16}{'CPU':>11}{'a member':>12}")
    for _, ours, theirs, _ in results:
        print(ours.line(args.members))
        print(theirs.line(args.members))
    if not answers.problems:
        for name, ours, theirs, target in results:
            print(ratio_line(name, ours, theirs, target))
    if padocc_note:
        print(padocc_note)
    print(f"load average: {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=20, help="members of the group")
    parser.add_argument("--files", type=int, default=12, help="NetCDF files a member")
    parser.add_argument("--days", type=int, default=31, help="daily steps a file")
    parser.add_argument("--nlat", type=int, default=72)
    parser.add_argument("--nlon", type=int, default=144)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of each side")
    parser.add_argument(
        "--parts", default="zarr,virtual,ingest", help="comma-separated: zarr, virtual, ingest"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the archive here (reused when it matches)"
    )
    parser.add_argument("--padocc", action="store_true", help="also run padocc's kerchunk pipeline")
    parser.add_argument(
        "--padocc-venv", type=Path,
        help="padocc's virtual environment (created with `pip install padocc` when absent); "
        "default: a cache directory outside the repository",
    )  # fmt: skip
    parser.add_argument(
        "--padocc-repeat", type=int, default=1,
        help="rounds of padocc (it takes ~15 s a member here); default 1",
    )  # fmt: skip
    parser.add_argument(
        "--group-phase", default="run", choices=("run", "compute"),
        help="the phase `arcodex group run` is given: run (scan, compute and the full "
        "validate; the default) or compute (convert with the default check, as `convert` does)",
    )  # fmt: skip
    parser.add_argument("--skip-ingest", action="store_true", help="leave out the batch ingest")
    parser.add_argument(
        "--ingest-args", default="",
        help="arguments given to ingest_bench.main (quoted, one string); default: its own",
    )  # fmt: skip
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if args.skip_ingest:
        parts.discard("ingest")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="arcodex-group-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    print(
        f"# arcodex group benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} on {platform.machine()}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores, load {load0:.1f}",
        flush=True,
    )
    try:
        answers = Answers()
        if parts & {"zarr", "virtual"}:
            convert_parts(args, parts, work, answers, load0)
        if "ingest" in parts:
            print("\n# batch ingest", flush=True)
            why = ingest_part(args.ingest_args.split())
            if why:
                print(f"batch ingest not measured: {why}")
        return 1 if answers.problems else 0
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "runs", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
