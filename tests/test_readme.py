"""The README is a tested contract: every fenced example in it runs here, as written.

Each ``bash`` block runs one logical command at a time in bash (``set -e``), with
``arcodex`` on ``PATH`` standing for this checkout's CLI; each ``python`` block runs as a
script (``python snippet.py``, no ``__main__`` guard, as a reader would paste it); each
``yaml`` block must load into the catalog's own config model (``CatalogConfig``). Blocks run
in a fresh temporary directory holding small generated data at the paths the README names
(``data/*.nc``, ``archive/*.nc``, ``tas_2020.nc`` …). What stands in for a placeholder is in
:data:`PLACEHOLDERS`; the few lines not run are in :data:`SKIPPED_LINES` and the blocks not
run in :data:`NOT_RUN`, each with its reason. A block added to the README that this module
neither runs nor lists fails :func:`test_every_block_is_run_or_listed`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: A record id as arcodex prints it (a ULID in lower case, whole or cut short by a table),
#: with an Icechunk tag if any.
RECORD_ID = re.compile(r"\b01[0-9a-hjkmnp-tv-z]{6,24}(?:@[\w.-]+)?")


# -- the README's blocks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    ident: str  # the test id: the section's slug, the language and its place in the section
    lang: str
    code: str
    line: int  # where it starts in README.md

    def commands(self) -> list[str]:
        """The block's logical commands: lines joined across a trailing backslash, and a
        here-document (``cat > f <<'EOF'`` … ``EOF``) kept whole with its lines."""
        out: list[str] = []
        pending = ""
        heredoc: tuple[str, list[str]] | None = None
        for raw in self.code.splitlines():
            if heredoc is not None:
                word, lines = heredoc
                lines.append(raw)
                if raw.strip() == word:
                    out.append("\n".join(lines))
                    heredoc = None
                continue
            line = pending + raw
            opened = re.search(r"<<-?\s*(['\"]?)(\w+)\1\s*$", line)
            if opened:
                heredoc = (opened.group(2), [line.strip()])
                pending = ""
                continue
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
        return out


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order (indented ones in lists too)."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    heading = "top"
    counts: dict[tuple[str, str], int] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = _slug(line.lstrip("#"))
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence is None:
            i += 1
            continue
        indent, lang = fence.group(1), fence.group(2) or "text"
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        n = counts[heading, lang] = counts.get((heading, lang), 0) + 1
        ident = f"{heading}-{lang}" + (f"-{n}" if n > 1 else "")
        blocks.append(Block(ident, lang, "\n".join(body) + "\n", i - len(body)))
        i += 1
    return blocks


BLOCKS = readme_blocks()

#: Blocks not run, and why.
NOT_RUN = {
    "quick-start-bash": "`./dev demo` and `./dev test` set up .venv and run "
    "`python -m arcodex.demo` (run by test_extract_netcdf.py::test_demo_runs_end_to_end) and "
    "the whole suite (.ci/run), which this test is part of",
    "how-a-catalog-is-laid-out-text": "a picture of a catalog's directory, not a command",
    "on-a-batch-system-slurm-pbs-bash": "needs a batch system: tests/test_slurm.py runs "
    "`arcodex convert` and `arcodex group run` with `--cluster slurm` on a real one-node SLURM "
    "cluster and checks that no job is left in squeue",
    "plugins-toml": "a plugin's pyproject.toml excerpt: tests/test_plugins.py installs a "
    "plugin declared the same way and checks this block declares it so",
    "run-the-service-ini": "a systemd unit: tests/test_service.py runs `arcodex serve` with "
    "its flags (--root-path, --access-log json, SIGTERM) as a child process",
    "managed-datasets-and-publishing-bash": "needs an ID of a converted dataset: "
    "tests/test_publishing.py runs these commands (and their refusals) on real products",
    "managed-datasets-and-publishing-python": "needs a catalog `cat` and a converted `rid`: "
    "tests/test_publishing.py makes both and calls the same methods",
    "downloads-text": "an HTTP request, not a command: tests/test_download.py sends it to "
    "the app and compares the subset with xarray's",
}

#: Lines of run blocks that are not run, and why (matched against the logical command).
SKIPPED_LINES = {
    r"^source \.venv/bin/activate": "activates the environment this test already runs in; "
    "`arcodex` on PATH is this checkout's CLI",
}


# -- what stands in for what ------------------------------------------------------------------


@dataclass
class Run:
    """One block being run: where, with what environment, and its output so far."""

    tmp: Path
    env: dict[str, str]
    cwd: Path
    output: str = ""
    values: dict[str, str] = field(default_factory=dict)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def arcodex(self, *args: str) -> str:
        done = subprocess.run(
            ["arcodex", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"arcodex {' '.join(args)}: {done.stderr}"
        return done.stdout


def _shortest_prefix(full: str, others: list[str]) -> str:
    for n in range(4, len(full) + 1):
        if not any(o.startswith(full[:n]) for o in others if o != full):
            return full[:n]
    return full


def record_prefix(run: Run) -> str:
    """The first record id the block printed, cut to its shortest unambiguous prefix."""
    found = RECORD_ID.search(run.output)
    assert found, "no record id printed before a command that needs one"
    ids = run.arcodex("search", "--ids", "--limit", "1000").split()
    full = next(i for i in ids if i.startswith(found.group(0).split("@")[0]))
    return _shortest_prefix(full, ids)


def item_id(run: Run) -> str:
    """The first STAC Item id the block printed (``arcodex find`` lists them)."""
    found = RECORD_ID.search(run.output)
    assert found, "no item id printed before a command that needs one"
    return found.group(0)


#: Placeholder in the README (a whole word) -> what stands in for it, and how it is found.
PLACEHOLDERS: dict[str, tuple[str, Callable[[Run], str]]] = {
    "ID": (
        "the first record id printed earlier in the block, as its shortest unambiguous prefix",
        record_prefix,
    ),
    "ITEM_ID": ("the first Item id `arcodex find` printed", item_id),
    "DATASET_ID": ("the id of the dataset published before the block", item_id),
    "8000": (
        "a free loopback port for the server the block starts",
        lambda run: run.values["port"],
    ),
}


def substitute(command: str, run: Run) -> str:
    for word, (_, resolve) in PLACEHOLDERS.items():
        if re.search(rf"\b{word}\b", command):
            if word not in run.values:
                run.values[word] = resolve(run)
            command = re.sub(rf"\b{word}\b", run.values[word], command)
    return command


# -- generated data at the README's paths -------------------------------------------------------


def _sample_files(tmp: Path) -> None:
    """``data/*.nc``: two stations' methane files (inside the README's bbox and time), and
    ``data/store.zarr``, a Zarr store."""
    import xarray as xr

    from arcodex.samples import write_sample_netcdf

    first = write_sample_netcdf(
        tmp / "data" / "ch4_mhd_2020.nc", days=3, nlat=4, nlon=8, attrs={"institution": "NOC"}
    )
    write_sample_netcdf(
        tmp / "data" / "ch4_tac_2020.nc", start="2020-02-01", days=3, nlat=4, nlon=8, seed=1
    )
    with xr.open_dataset(first) as ds:
        ds.load().to_zarr(tmp / "data" / "store.zarr", consolidated=False)


def _api_file(tmp: Path) -> None:
    """``tas_2020.nc``: one file of methane and temperature fields from January 2020."""
    from arcodex.samples import write_sample_netcdf

    write_sample_netcdf(tmp / "tas_2020.nc", days=3, nlat=4, nlon=8)


def _archive(tmp: Path) -> None:
    """``archive/*.nc``: three files of three daily steps each."""
    from arcodex.samples import write_archive

    write_archive(tmp / "archive", files=3, steps=3)


def _next_files(run: Run) -> None:
    """More files arrive in ``archive/``: the next three periods of the same series."""
    from arcodex.samples import write_archive

    later = write_archive(run.tmp / "next", files=6, steps=3)[3:]
    for path in later:
        path.rename(run.tmp / "archive" / path.name)


def _daily(tmp: Path) -> None:
    """``daily/``: a provider's directory holding five days of air temperature."""
    from arcodex.samples import write_daily_t2m

    (tmp / "daily").mkdir()
    for day in range(1, 6):
        write_daily_t2m(tmp / "daily", f"2021-03-0{day}")


def _next_day(run: Run) -> None:
    """The provider publishes the sixth day."""
    from arcodex.samples import write_daily_t2m

    write_daily_t2m(run.tmp / "daily", "2021-03-06")


def _cmip(tmp: Path) -> None:
    """``cmip/{hist,ssp126,ssp585}/*.nc``: three small archives, one per group member."""
    from arcodex.samples import write_archive

    for seed, member in enumerate(("hist", "ssp126", "ssp585")):
        write_archive(tmp / "cmip" / member, files=2, steps=2, seed=seed)


@dataclass(frozen=True)
class Setup:
    """How one block runs: its data, environment, what must come out of it."""

    data: Callable[[Path], None] | None = None
    #: "catalog": ARCODEX_CATALOG is a new empty catalog; "product": the shared catalog
    #: holding a converted product (served when the block needs a server).
    catalog: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # settings (ARCODEX_*), with the reason
    server: bool = False  # a server of the product catalog runs on the block's port
    mirror: bool = False  # a loopback mirror of the STAC extension schemas
    prelude: str = ""  # python run before the block: the names the block assumes
    epilogue: str = ""  # python run after it: shows that it did what it says
    before: dict[str, Callable[[Run], None]] = field(default_factory=dict)  # command prefix -> step
    expect: dict[str, str] = field(default_factory=dict)  # command prefix -> regex of its stdout
    stderr: str | None = None  # regex a python block's stderr must match
    rewrite: dict[str, tuple[str, str]] = field(default_factory=dict)  # regex -> (replacement, why)
    #: The block follows one that published the product (`arcodex publish`): the harness
    #: publishes it the same way, as the blocks may run in any order or process.
    published: bool = False


SETUPS: dict[str, Setup] = {
    "using-it-bash": Setup(
        data=_sample_files,
        expect={
            "arcodex add ../data/*.nc": r"added 2 records",
            "arcodex search site=MHD": RECORD_ID.pattern,
            'arcodex search "site=[MHD,TAC]"': r'"id": "01',
            "arcodex show": r"ch4_mhd_2020|Sample",
            "arcodex path": r"\.nc",
            "arcodex update": r"updated 01\w+ \(version 2\)",
            "arcodex fields": r"site",
            "arcodex extract": r'"format": "zarr"',
            "arcodex add ../data/store.zarr": r"added 1 record",
        },
    ),
    "using-it-python": Setup(data=_api_file, expect={"": rf"^{RECORD_ID.pattern} Sample .+ \S+"}),
    "operations-that-roll-back-python": Setup(
        prelude="import arcodex\n"
        'catalog = arcodex.Catalog.create("my-catalog")\n'
        "def cleanup():\n    print('cleanup ran')\n",
        epilogue="op = catalog.operations()[0]\nprint(op.action, op.status, op.user)\n",
        expect={"": r"^ingest succeeded alice$"},
    ),
    "hooks-python": Setup(
        data=_api_file,
        prelude="import arcodex\n"
        'catalog = arcodex.Catalog.create("my-catalog")\n'
        "def lookup(site):\n    return {'MHD': 'Mace Head'}.get(site)\n",
        epilogue='rec = catalog.add_file("tas_2020.nc", metadata={"site": "MHD"})\n'
        'print(rec.metadata["site_name"])\n',
        expect={"": r"^Mace Head$"},
    ),
    "converting-archives-to-arco-products-bash": Setup(
        data=_archive,
        catalog="catalog",
        # One worker process, not one per core: the files are tiny, and each worker
        # process costs an interpreter start per command.
        env={"ARCODEX_CLUSTER__WORKERS": "1"},
        before={"arcodex update": _next_files},
        expect={
            "arcodex convert": r"check pass",
            "arcodex check tas.icechunk": r"^pass",
            "arcodex update": r"check pass",
            "arcodex check ID": r"^pass",
        },
    ),
    "groups-bash": Setup(
        data=_cmip,
        catalog="catalog",
        env={"ARCODEX_CLUSTER__WORKERS": "1"},
        expect={
            "arcodex group init": r"3 members pending",
            "arcodex group run cmip  ": r"3 done",
            "arcodex group status": r"3 done",
            "arcodex group show": r"check: pass",
            "arcodex group run cmip --only failed": r"no member to run",
            "arcodex search kind=collection": r"collection",
        },
    ),
    "one-spec-for-a-product-bash": Setup(
        data=_archive,
        catalog="catalog",
        env={"ARCODEX_CLUSTER__WORKERS": "1"},
        expect={
            "arcodex convert --spec product.yaml --codec zlib --print-spec": r"^codec: zlib$",
            "arcodex convert --spec product.yaml --dry-run": r"^dry run: convert would write zarr",
            "arcodex update tas.zarr": r"^dry run: .* up to date",
        },
    ),
    "one-spec-for-a-product-python": Setup(
        data=_archive,
        epilogue="print(result.status, again.status)\n",
        expect={"": r"^dry-run \[3, 12, 16\]\npass pass$"},
        stderr=r"^notice: snippet\.py converts at its top level .* threads",
    ),
    "converting-archives-to-arco-products-python": Setup(
        data=_archive,
        epilogue="print(result.status, dict(ds.sizes))\n",
        expect={"": r"^pass \{'time': 9,"},
        # A script without a `__main__` guard: the workers are threads, and it says so.
        stderr=r"^notice: snippet\.py converts at its top level .* threads",
    ),
    "batch-ingest-bash": Setup(
        data=_archive,
        catalog="catalog",
        expect={
            "arcodex ingest-files 'archive/*.nc' --manifest files.csv --dry-run": (
                r"dry run: would add 3, would skip 0, would fail 0"
            ),
            "arcodex ingest-files 'archive/*.nc' --manifest files.csv --tag": (
                r"^added 3, skipped 0, failed 0"
            ),
            "arcodex ingest-files 'archive/*.nc' --json": r'"skipped": 3',
            "arcodex search site=MHD --ids": rf"^{RECORD_ID.pattern}\n$",
        },
    ),
    "batch-ingest-python": Setup(
        data=_archive,
        expect={"": r"^\{'added': 3, 'skipped': 0, 'failed': 0, 'pending': 0\}$"},
    ),
    "stac-describe-validate-publish-bash": Setup(
        catalog="product",
        mirror=True,
        rewrite={
            r"^arcodex stac schemas fetch\b": (
                r"arcodex stac schemas fetch --mirror {mirror}",
                "the test has no network: the schemas come from a loopback mirror (the option "
                "the line names)",
            )
        },
        expect={
            "arcodex stac validate": r"valid:",
            "arcodex stac export public/stac --check": r"would write 0",
            "arcodex stac schemas list": r"cached|stac-extensions",
        },
    ),
    "data-stores-python": Setup(
        data=_sample_files,
        expect={"": r"ch4_mhd_2020\.nc.*store\.zarr(.|\n)*ch4_tac_2020\.nc"},
    ),
    "data-stores-bash": Setup(
        data=_sample_files,
        expect={
            "arcodex store kinds": r"catalog",
            "arcodex store list": r"store\.zarr",
            "arcodex store describe": r'"time_period": "P1D"',
            "arcodex store search": r"ch4_tac_2020\.nc",
            "arcodex store open": r"ch4",
        },
    ),
    "the-stac-api-and-the-client-bash": Setup(
        catalog="product",
        expect={
            "arcodex publish": rf"^published {RECORD_ID.pattern} \(public\)$",
            "arcodex find": r"1 found",
            "arcodex open": r"lon: [1-9]",
        },
    ),
    "serving-from-postgresql-bash": Setup(
        catalog="product",
        published=True,
        expect={"arcodex find": r"1 found"},
    ),
    "the-stac-api-and-the-client-python": Setup(
        catalog="product",
        published=True,
        server=True,
        epilogue="print(dict(ds.sizes))\n",
        expect={"": r"'lon': [1-9]"},
    ),
    "raw-zarr-over-http-python": Setup(
        catalog="product",
        published=True,
        server=True,
        epilogue="print(dict(ds.sizes), float(ds.tas.mean()))\n",
        expect={"": r"^\{'time': 6, 'lat': \d+, 'lon': \d+\} \d+\.\d+$"},
    ),
    "schema-versions-and-moving-a-catalog-bash": Setup(
        expect={
            "arcodex db status": r"^schema: \d+ \(up to date\)$",
            "arcodex db upgrade --dry-run": r"is up to date",
            "arcodex db copy": r"^copied 1 records, \d+ operations, 0 schemas, 0 users and 0 tokens .* verified",
        },
    ),
    "datasets-that-keep-themselves-up-to-date-bash": Setup(
        data=_daily,
        before={"arcodex sync t2m-daily+alps --plan": _next_day},
        expect={
            "arcodex templates": r"t2m-daily .*daily .*files .*temporal",
            "arcodex extents": r"alps .*The Alps .*5, 43, 17, 49",
            "arcodex ingest t2m-daily": r"5 periods committed, 0 already held, 0 failed; check pass",
            "arcodex sync t2m-daily+alps --plan": r"append 2021-03-06 to 2021-03-06 \(1 periods\)",
            "arcodex sync t2m-daily+alps --end": r"append: 1 periods committed; check pass",
            "arcodex sync --all --plan": r"t2m-daily\+alps: up to date",
        },
    ),
    "pipelines-and-dry-runs-bash": Setup(
        expect={
            "arcodex add obs.csv --meta site=MHD --dry-run": r"^dry run of add: nothing was changed",
            "arcodex add obs.csv --dry-run --json": r"the add would be refused",
            "arcodex pipelines": r"^add  \[builtin\]  extract-metadata",
        },
    ),
    "pipelines-and-dry-runs-bash-2": Setup(
        expect={
            "arcodex run ingest-csv obs.csv --param kind=dataset --param metadata.site=MHD --dry-run": (
                r"^would add 1 of 1$"
            ),
            "arcodex search site=MHD kind=dataset": RECORD_ID.pattern,
        },
    ),
    "pipelines-and-dry-runs-python": Setup(
        expect={
            "": r"^\['OBS.CSV'\] \['shout', 'validate-record', 'write-artifact', 'commit-record'\]$"
        }
    ),
}

#: Blocks whose failure is a known bug elsewhere (strict: fixed means this entry must go).
XFAIL: dict[str, str] = {}


# -- running ---------------------------------------------------------------------------------------


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _wait_for_port(port: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", int(port))) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after 60 s: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose ``arcodex`` is this checkout's CLI under this interpreter."""
    path = tmp_path_factory.mktemp("bin")
    shim = path / "arcodex"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m arcodex "$@"\n')
    shim.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def product_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog holding one Zarr product of 0-360 daily fields from January 2000."""
    from arcodex.catalog import Catalog
    from arcodex.convert import convert
    from arcodex.samples import write_archive

    root = tmp_path_factory.mktemp("product")
    files = write_archive(root / "archive", "lon360", files=2, steps=3)
    Catalog.create(root / "catalog").close()
    convert([str(f) for f in files], to="zarr", catalog=root / "catalog", cluster="threads")
    return root / "catalog"


@pytest.fixture
def schema_mirror() -> Iterator[str]:
    """stac-extensions.github.io on loopback: a permissive schema for every extension."""
    import functools
    import json
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from tempfile import TemporaryDirectory

    from arcodex.stac._build import EXTENSIONS

    with TemporaryDirectory() as directory:
        for uri in EXTENSIONS.values():
            path = Path(directory) / uri.removeprefix("https://stac-extensions.github.io/")
            path.parent.mkdir(parents=True, exist_ok=True)
            draft7 = "http://json-schema.org/draft-07/schema#"
            path.write_text(json.dumps({"$schema": draft7, "$id": uri}))

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=directory)
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _env(bin_dir: Path, tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ARCODEX_") and "PROXY" not in k.upper()
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env["ARCODEX_STAC_SCHEMAS"] = str(tmp / ".stac-schemas")
    env["COLUMNS"] = "100"
    return env


def _check_expect(setup: Setup, command: str, stdout: str) -> None:
    for prefix, pattern in setup.expect.items():
        if prefix and command.startswith(prefix):
            assert re.search(pattern, stdout, re.MULTILINE), (
                f"`{command}` printed no match of {pattern!r}:\n{stdout}"
            )


def run_shell(block: Block, setup: Setup, run: Run) -> None:
    for raw in block.commands():
        if any(re.search(pattern, raw) for pattern in SKIPPED_LINES):
            continue
        for prefix, step in setup.before.items():
            if raw.startswith(prefix):
                step(run)
        command = raw
        for pattern, (replacement, _) in setup.rewrite.items():
            command = re.sub(pattern, replacement.format(**run.values), command)
        command = substitute(command, run)
        if re.search(r"(?<!&)&\s*(#.*)?$", command):
            foreground = re.sub(r"&\s*(#.*)?$", "", command)
            log = run.tmp / f"background-{len(run.background)}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    ["bash", "-c", f"exec {foreground}"],
                    cwd=run.cwd,
                    env=run.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            run.background.append(proc)
            _wait_for_port(run.values["port"], proc, log)
            continue
        where = run.tmp / ".pwd"
        script = f'set -e\n{command}\n__status=$?\npwd > "{where}"\nexit $__status\n'
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=run.cwd,
            env=run.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (
            f"README line `{raw}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        run.cwd = Path(where.read_text().strip())
        run.output += done.stdout
        _check_expect(setup, raw, done.stdout)


def run_python(block: Block, setup: Setup, run: Run) -> None:
    code = block.code
    for word in PLACEHOLDERS:
        if re.search(rf"\b{word}\b", code):
            code = substitute(code, run)
    script = run.tmp / "snippet.py"
    script.write_text(setup.prelude + code + setup.epilogue)
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=run.cwd,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"README block {block.ident} failed:\n{done.stderr}"
    run.output += done.stdout
    if setup.stderr is not None:
        assert re.search(setup.stderr, done.stderr, re.MULTILINE), done.stderr
    if "" in setup.expect:
        assert re.search(setup.expect[""], done.stdout, re.MULTILINE), (
            f"README block {block.ident} printed no match of {setup.expect['']!r}:\n{done.stdout}"
        )


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(
            b,
            id=b.ident,
            marks=[pytest.mark.xfail(strict=True, reason=XFAIL[b.ident])]
            if b.ident in XFAIL
            else [],
        )
        for b in BLOCKS
        if b.lang in ("bash", "python") and b.ident not in NOT_RUN
    ],
)
def test_example_runs_as_written(
    block: Block,
    tmp_path: Path,
    bin_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    setup = SETUPS.get(block.ident, Setup())
    run = Run(tmp=tmp_path, env=_env(bin_dir, tmp_path), cwd=tmp_path)
    run.env.update(setup.env)
    run.values["port"] = _free_port()
    if setup.data is not None:
        setup.data(tmp_path)
    if setup.catalog == "catalog":
        from arcodex.catalog import Catalog

        Catalog.create(tmp_path / "catalog").close()
        run.env["ARCODEX_CATALOG"] = str(tmp_path / "catalog")
    elif setup.catalog == "product":
        run.env["ARCODEX_CATALOG"] = str(request.getfixturevalue("product_catalog"))
    if setup.published:
        run.output += run.arcodex("publish", *run.arcodex("search", "--ids").split())
    if setup.mirror:
        run.values["mirror"] = request.getfixturevalue("schema_mirror")
    try:
        if setup.server:
            from arcodex.testing import serve_catalog

            with serve_catalog(run.env["ARCODEX_CATALOG"]) as url:
                run.values["port"] = url.rsplit(":", 1)[1]
                run_python(block, setup, run)
        elif block.lang == "python":
            run_python(block, setup, run)
        else:
            run_shell(block, setup, run)
    finally:
        for proc in run.background:
            _stop(proc)


def test_every_block_is_run_or_listed() -> None:
    """A new README block must be run here, or listed in NOT_RUN with its reason."""
    for block in BLOCKS:
        if block.ident in NOT_RUN:
            continue
        assert block.lang in ("bash", "python", "yaml"), (
            f"README block {block.ident} (line {block.line}) is {block.lang!r}: "
            "run it here or list it in NOT_RUN with the reason"
        )
    idents = {b.ident for b in BLOCKS}
    stale = (set(NOT_RUN) | set(SETUPS) | set(XFAIL)) - idents
    assert not stale, f"entries for README blocks that no longer exist: {sorted(stale)}"


def test_blocks_are_found() -> None:
    text = "# A\n```bash\necho 1\n```\n- item\n\n  ```yaml\n  a: 1\n  ```\n## B c\n```\nx\n```\n"
    found = readme_blocks(text)
    assert [(b.ident, b.code) for b in found] == [
        ("a-bash", "echo 1\n"),
        ("a-yaml", "a: 1\n"),
        ("b-c-text", "x\n"),
    ]
    assert Block("x", "bash", "a \\\n  b\n# c\nd\n", 1).commands() == ["a    b", "d"]


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "yaml"], ids=lambda b: b.ident)
def test_config_example_is_valid_config(block: Block) -> None:
    """Every YAML example is a piece of ``arcodex.yaml`` that the catalog's config accepts."""
    import yaml

    from arcodex.catalog._config import CatalogConfig

    data = yaml.safe_load(block.code)
    assert isinstance(data, dict) and data, block.code
    config = CatalogConfig.model_validate(data)
    dumped = config.model_dump(mode="json")
    for key in data:
        assert key in dumped, f"{key} is not a setting of arcodex.yaml"


def test_documented_exit_statuses() -> None:
    """The README's exit statuses are what the CLI does: 1 for a user error, 2 for usage."""
    text = README.read_text(encoding="utf-8")
    for code, what in ((0, "success"), (1, "error"), (2, "usage"), (70, "internal")):
        assert re.search(rf"^\| `{code}` \|[^\n]*{what}", text, re.MULTILINE), (
            f"README does not document exit {code}"
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cli = [sys.executable, "-m", "arcodex"]
    usage = subprocess.run(
        [*cli, "search", "--no-such-option"], env=env, capture_output=True, check=False
    )
    assert usage.returncode == 2, usage.stderr
    user = subprocess.run(
        [*cli, "--catalog", str(ROOT / "no-such-catalog"), "show", "x"],
        env=env,
        capture_output=True,
        check=False,
    )
    assert user.returncode == 1, user.stderr
    assert user.stderr.decode().startswith("error: ")


def test_documented_convert_defaults_are_the_cli_defaults() -> None:
    """Every "`--option VALUE` (default" in the README is that option's default in the CLI."""
    import typer.main

    from arcodex.cli import app

    command = typer.main.get_command(app)
    convert = command.commands["convert"]  # type: ignore[attr-defined]
    defaults = {opt: p.default for p in convert.params for opt in getattr(p, "opts", [])}
    documented = re.findall(r"`(--[\w-]+) ([^`]+)` \(default", README.read_text(encoding="utf-8"))
    assert documented, "the README documents no convert default"
    for option, value in documented:
        assert option in defaults, f"README documents {option}, which convert does not take"
        assert str(defaults[option]) == value, (
            f"{option}: README says {value}, the CLI {defaults[option]}"
        )


def test_pre_commit_hooks_work_offline() -> None:
    """`pre-commit install` (the README's Development section) needs no download: every hook
    is a local one running a tool of the environment."""
    import importlib.util

    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert importlib.util.find_spec("pre_commit") is not None, "pre-commit is in the test extra"
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    assert {"ruff", "ruff-format"} <= {hook["id"] for hook in hooks}
    for hook in hooks:
        prefix = ".venv/bin/python -m "
        assert hook["language"] == "system" and hook["entry"].startswith(prefix), hook
        module = hook["entry"].removeprefix(prefix).split()[0]
        assert importlib.util.find_spec(module) is not None, f"{module} is not installed"
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
