"""A guided tour of arcodex: ``python -m arcodex.demo`` (or ``./dev demo``).

It writes two small NetCDF files from two measurement sites, makes a catalog
and runs the real ``arcodex`` command line against it, printing each command
before its output, as a tutorial would. Run it again and it starts afresh.

Needs the ``netcdf`` extra (xarray, netCDF4) to write and read the files.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "run_demo"]

#: Marks a directory made by this demo, so that a rerun only ever removes its own work.
MARKER = ".arcodex-demo"
CATALOG = "catalog"
INCOMING = "incoming"
ARCHIVE = "archive"
NEW = "archive-new"
DAILY = "provider"


@dataclass(frozen=True)
class _Site:
    file: str
    code: str
    name: str
    month: str
    days: int
    lat: tuple[float, float]
    lon: tuple[float, float]
    variables: tuple[str, ...]
    seed: int


SITES = (
    _Site(
        file="mhd-2020-01.nc",
        code="MHD",
        name="Mace Head",
        month="2020-01",
        days=31,
        lat=(51.0, 56.0),
        lon=(-13.0, -7.0),
        variables=("ch4", "tas"),
        seed=1,
    ),
    _Site(
        file="tac-2020-02.nc",
        code="TAC",
        name="Tacolneston",
        month="2020-02",
        days=29,
        lat=(50.0, 55.0),
        lon=(-1.0, 4.0),
        variables=("ch4", "co2"),
        seed=2,
    ),
)


class DemoError(Exception):
    """A demo step failed; the message says which."""


def _prepare(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise DemoError(f"{directory} is a file; pass --dir with a directory path")
        if any(directory.iterdir()) and not (directory / MARKER).exists():
            raise DemoError(
                f"{directory} exists and was not made by the demo; "
                "pass --dir with a new or empty directory"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("made by `python -m arcodex.demo`; safe to delete\n")


def _write_samples(directory: Path) -> list[Path]:
    from arcodex.samples import write_sample_netcdf

    paths = []
    for site in SITES:
        names = " and ".join(
            {"ch4": "methane", "tas": "air temperature", "co2": "carbon dioxide"}[v]
            for v in site.variables
        )
        paths.append(
            write_sample_netcdf(
                directory / INCOMING / site.file,
                start=f"{site.month}-01",
                days=site.days,
                lat=site.lat,
                lon=site.lon,
                nlat=6,
                nlon=8,
                variables=site.variables,
                seed=site.seed,
                attrs={
                    "title": f"{site.name} ({site.code}) {names}, {site.month}",
                    "site": site.code,
                    "site_name": site.name,
                    "institution": "arcodex demo network",
                },
            )
        )
    return paths


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The demo names its catalog on every command; a catalog from the environment must not win.
    env.pop("ARCODEX_CATALOG", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.setdefault("COLUMNS", str(shutil.get_terminal_size((100, 24)).columns))
    return env


def _run(
    args: Sequence[str], *, cwd: Path, note: str, out: TextIO, program: str = "arcodex"
) -> str:
    """Run one ``arcodex`` (or ``python``) command like a tutorial step; its stdout, or DemoError."""
    print(f"\n# {note}", file=out)
    print(f"$ {program} {shlex.join(args)}", file=out, flush=True)
    command = ["-m", "arcodex.cli"] if program == "arcodex" else []
    done = subprocess.run(
        [sys.executable, *command, *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if done.stdout:
        print(done.stdout.rstrip("\n"), file=out, flush=True)
    if done.stderr:
        print(done.stderr.rstrip("\n"), file=sys.stderr, flush=True)
    if done.returncode != 0:
        raise DemoError(f"`{program} {shlex.join(args)}` exited with {done.returncode}")
    return done.stdout


def run_demo(directory: Path, *, out: TextIO | None = None) -> None:
    """Make a fresh demo catalog in ``directory`` and walk through the CLI; DemoError on failure."""
    out = out or sys.stdout
    directory = directory.expanduser().resolve()
    _prepare(directory)
    files = [p.relative_to(directory).as_posix() for p in _write_samples(directory)]
    print(f"arcodex demo in {directory}", file=out)
    print(f"wrote {len(files)} sample NetCDF files: {', '.join(files)}", file=out)
    cat = ["--catalog", CATALOG]

    def step(note: str, *args: str, program: str = "arcodex") -> str:
        return _run(list(args), cwd=directory, note=note, out=out, program=program)

    step("Make an empty catalog (one SQLite file, nothing to start).", "init", CATALOG)
    step(
        "Add both files; arcodex reads dimensions, variables, attributes, bbox and time "
        "from each and copies it into managed storage.",
        *cat, "add", *files, "--meta", "project=demo", "--tag", "methane",
    )  # fmt: skip
    step(
        "Find records by a metadata value, an area (W,S,E,N) and a month.",
        *cat, "search", "netcdf.attrs.site=MHD", "--bbox", "-15,45,0,60", "--time", "2020-01",
    )  # fmt: skip
    step(
        "Full-text search over titles, tags and metadata.", *cat, "search", "--text", "Tacolneston"
    )
    ids = step(
        "Ids only, for scripts: every record with carbon dioxide data.",
        *cat, "search", "netcdf.variables.co2:exists", "--ids",
    ).split()  # fmt: skip
    if len(ids) != 1:
        raise DemoError(f"expected one record with carbon dioxide data, found {len(ids)}")
    step("Everything the catalog knows about one record.", *cat, "show", ids[0])
    step(
        "Which metadata fields exist, with their types and examples.",
        *cat,
        "fields",
        "netcdf.attrs",
    )
    step("A summary of the catalog.", *cat, "info")
    step("A health check: interrupted operations, orphaned or changed files.", *cat, "doctor")
    _convert_tour(directory, cat, step)
    _ingest_tour(directory, cat, step)
    step(
        "The catalog's own event log: who did what, when, and what failed.",
        *cat, "logs", "--event", "operation.*", "--limit", "6",
    )  # fmt: skip
    print(
        f"\ndone: the catalog is in {directory / CATALOG}; try "
        f"`arcodex --catalog {directory / CATALOG} search --help`",
        file=out,
    )


def _convert_tour(directory: Path, cat: list[str], step: Any) -> None:
    """Convert a generated archive to Zarr and to virtual references, update and check it."""
    import json

    from arcodex.samples import write_archive

    files = write_archive(directory / ARCHIVE, "regular", files=4, steps=8)
    (directory / NEW).mkdir()
    files[-1].rename(directory / NEW / files[-1].name)
    print(
        f"\nwrote an archive of {len(files) - 1} daily files in {ARCHIVE}/ and the next month in {NEW}/",
        file=sys.stdout,
    )
    made = step(
        "Convert the archive to Zarr on Dask (threads here; `--cluster local` for processes): "
        "files are ordered by time, values copied as stored, the product checked against "
        "its sources and registered with them.",
        *cat, "convert", f"{ARCHIVE}/*.nc", "--to", "zarr", "--chunks", "time=8", "--cluster", "threads", "--json",
    )  # fmt: skip
    product = json.loads(made)["record"]
    step(
        "The same archive as virtual references (kerchunk JSON): nothing copied.",
        *cat, "convert", f"{ARCHIVE}/*.nc", "--to", "virtual", "--format", "kerchunk", "--cluster", "threads",
    )  # fmt: skip
    step(
        "A new month arrives: append it to the Zarr product.",
        *cat, "update", product, f"{NEW}/*.nc", "--cluster", "threads",
    )  # fmt: skip
    step(
        "The same update again changes nothing.",
        *cat, "update", product, f"{NEW}/*.nc", "--cluster", "threads",
    )  # fmt: skip
    step("Check the product against every source again.", *cat, "check", product)
    step(
        "Publish the checked product: the service shows anonymous readers published "
        "datasets only.",
        *cat, "publish", product,
    )  # fmt: skip
    _stac_tour(directory, cat, step, product)


_TEMPLATE = """\
id: t2m-daily
name: Daily air temperature
description: Air temperature at 2 m, one file a day from the provider directory.
period: daily
provider:
  name: files
  params: {{path: {path}, pattern: "t2m_{{period}}.nc"}}
variables:
  t2m: {{units: degC, long_name: air temperature at 2 m}}
transforms:
  units: {{t2m: {{to: degC, offset: -273.15}}}}
target: {{chunks: {{time: 4}}}}
"""

_EXTENT = """\
id: alps
name: The Alps
bbox: [5.0, 43.0, 17.0, 49.0]
"""


def _ingest_tour(directory: Path, cat: list[str], step: Any) -> None:
    """Ingest a provider's days through a template, then sync the day that arrives next."""
    from arcodex.samples import write_daily_t2m

    provider = directory / DAILY
    provider.mkdir()
    for day in range(1, 6):
        write_daily_t2m(provider, f"2021-03-0{day}")
    root = directory / CATALOG
    (root / "templates").mkdir()
    (root / "extents").mkdir()
    (root / "templates" / "t2m-daily.yaml").write_text(_TEMPLATE.format(path=f"../{DAILY}"))
    (root / "extents" / "alps.yaml").write_text(_EXTENT)
    print(
        f"\nwrote 5 daily files in {DAILY}/, a template in {CATALOG}/templates/ and an "
        f"extent in {CATALOG}/extents/",
        file=sys.stdout,
    )
    step("The dataset templates the catalog offers.", *cat, "templates")
    step("The areas they can be ingested for.", *cat, "extents")
    step(
        "Ingest five days over the Alps: each day fetched, checked, clipped, converted to "
        "degC and committed on its own (a failure keeps what was committed; a rerun resumes).",
        *cat, "ingest", "t2m-daily", "--extent", "alps", "--start", "2021-03-01", "--end", "2021-03-05",
    )  # fmt: skip
    write_daily_t2m(provider, "2021-03-06")
    print(f"\nthe provider publishes the next day: {DAILY}/t2m_2021-03-06.nc", file=sys.stdout)
    step(
        "What a sync would do, without doing it.",
        *cat, "sync", "t2m-daily+alps", "--plan", "--end", "2021-03-06",
    )  # fmt: skip
    step(
        "Sync: only the new day is fetched and appended, as one more commit.",
        *cat, "sync", "t2m-daily+alps", "--end", "2021-03-06",
    )  # fmt: skip
    step(
        "Nothing is left to sync.",
        *cat, "sync", "t2m-daily+alps", "--plan", "--end", "2021-03-06",
    )  # fmt: skip


def _stac_tour(directory: Path, cat: list[str], step: Any, product: str) -> None:
    """Serve the catalog, find the converted product through its STAC API, open it, and
    open it again over ``/zarr`` with plain xarray (no arcodex, no storage options)."""
    import socket
    import time
    import urllib.request

    step(
        "Validate the catalog's STAC (core schemas and arcodex's profile), offline.",
        *cat,
        "stac",
        "validate",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/stac/"
    print(f"\n# Serve the catalog: a STAC API at {url}, Zarr at {base}/zarr/", file=sys.stdout)
    print(f"$ arcodex {shlex.join([*cat, 'serve', '--port', str(port)])} &", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "arcodex.cli", *cat, "serve", "--port", str(port)],
        cwd=directory,
        env=_child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise DemoError("the STAC API did not start") from None
                time.sleep(0.3)
        step(
            "Find datasets with air temperature over Europe through the STAC API.",
            "find", "--source", url, "--variables", "tas", "--bbox", "-20,30,40,70",
        )  # fmt: skip
        step(
            "Open the converted product through the API, subset to a box and a week, lazily.",
            "open", product, "--source", url, "--variables", "tas",
            "--bbox", "-20,30,40,70", "--time", "2000-01-03/2000-01-09", "--json",
        )  # fmt: skip
        code = (
            "import xarray as xr; "
            f'ds = xr.open_zarr("{base}/zarr/{product}"); '
            "print(dict(ds.sizes), float(ds.tas.mean()))"
        )
        mean = step(
            "Any client opens the published product over plain HTTP: xarray alone, "
            "no arcodex, no credentials.",
            "-c", code, program="python",
        ).split()  # fmt: skip
        if not mean:
            raise DemoError("xarray read nothing over /zarr")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m arcodex.demo",
        description="Write two sample NetCDF files, then catalog and search them with the CLI.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-catalog"),
        help="directory for the demo, removed and made afresh each run (default: ./demo-catalog)",
    )
    options = parser.parse_args(argv)
    try:
        run_demo(options.dir)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(
            f"demo failed: {exc}; install the netcdf extra: pip install 'arcodex[netcdf]'",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
