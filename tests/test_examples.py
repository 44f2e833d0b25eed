"""The examples under ``examples/`` run as a reader would run them, and do what they say.

Each example is copied to a temporary directory (its ``output/`` lands there, not in the
checkout) and its one script runs there with this environment's Python, as a subprocess
with no ``ARCODEX_*`` settings of the test run. The checks read what the script printed
and what it left in ``output/``: a broken example fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from arcodex.catalog import Catalog

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECORD_ID = re.compile(r"01[0-9a-hjkmnp-tv-z]{24}")


def _run(name: str, tmp_path: Path) -> tuple[str, Path]:
    """Run the example's one script from a copy of its directory; its stdout and output/."""
    (script,) = (EXAMPLES / name).glob("*.py")
    here = tmp_path / name
    shutil.copytree(EXAMPLES / name, here, ignore=shutil.ignore_patterns("output"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    done = subprocess.run(
        [sys.executable, str(here / script.name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, here / "output"


def _lines(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix)]


def check_basic_file_catalog(out: str, output: Path) -> None:
    added = dict(re.findall(r"^added (\S+) as (\S+)$", out, re.M))
    assert sorted(added) == ["ch4_MHD_2020.csv", "ch4_MHD_2021.csv", "ch4_TAC_2021.csv"]
    assert "search site=MHD year>=2021: ['MHD2021']" in out
    assert "search tag=ch4: 3 records" in out
    assert "adding ch4_TAC_2021.csv again: refused as a duplicate" in out
    tac = added["ch4_TAC_2021.csv"]
    assert f"updated {tac}: version=2 quality=good tags=['ch4', 'reviewed']" in out
    assert "update expecting version 1: refused, the record is at version 2" in out
    assert f"search quality=good: ['{tac}']" in out
    with Catalog.open(output / "catalog") as cat:
        assert {r.id for r in cat.search(limit=None).records} == set(added.values())
        rec = cat.get(tac)
        assert rec.version == 2 and rec.metadata["quality"] == "good"
        stored = Path(cat.path(tac))
        assert stored.is_relative_to(output / "catalog" / "store")
        assert stored.read_bytes() == (output / "data" / "ch4_TAC_2021.csv").read_bytes()


def check_netcdf_metadata_extraction(out: str, output: Path) -> None:
    assert len(RECORD_ID.findall(out)) == 2
    assert "  variable sst: dims=['time', 'lat', 'lon'] units=degC" in out
    assert "  variable so: dims=['time', 'lat', 'lon'] units=1e-3" in out
    assert "  bbox=[-40.0, 40.0, -10.0, 60.0]" in out
    assert "  time=2021-07-01T00:00:00Z .. 2021-07-10T00:00:00Z" in out
    assert _lines(out, "search ") == [
        "search netcdf.variables.sst:exists: ['sst_natl']",
        "search netcdf.variables.so.units=\"1e-3\": ['sal_tas']",
        "search netcdf.attrs.institution~Example*: ['sst_natl', 'sal_tas']",
        "search --bbox -30,45,-20,55: ['sst_natl']",
        "search --time 2021-07: ['sal_tas']",
        "search --bbox 100,-50,160,-30 --time 2020: []",
    ]
    assert sorted(p.name for p in (output / "data").iterdir()) == ["sal_tas.nc", "sst_natl.nc"]
    with Catalog.open(output / "catalog") as cat:
        (rec,) = cat.search("netcdf.attrs.title=sst_natl").records
        assert rec.kind == "dataset" and rec.metadata["netcdf"]["dims"]["time"] == 10


def check_rollback_demo(out: str, output: Path) -> None:
    assert (
        "journal of that add: started -> planned -> artifact_write_started -> artifact_written"
        " -> artifact_write_succeeded -> rollback_started -> rolled_back"
    ) in out
    assert "error: failure injected after artifact_write_succeeded (ARCODEX_FAIL_AT)" in out
    stores = _lines(out, "files in the store:")
    assert stores[0] == "files in the store: [] records: 0"  # the failed add, undone
    assert re.fullmatch(r"files in the store: \['01\w+\.csv'\]", stores[1])  # the kill's orphan
    assert stores[2] == "files in the store: [] records: 0"  # recovered: rolled back
    assert stores[3] == "files in the store: 1 records: 1"  # rolled forward
    assert out.count("[killed by SIGKILL]") == 2
    doctor = out.split("$ arcodex doctor\n")[1:]
    assert len(doctor) == 2
    assert "incomplete operation" in doctor[0] and "run `arcodex recover`" in doctor[0]
    assert "[exit status 1]" in doctor[0]
    assert doctor[1].startswith("clean: nothing to repair\n[exit status 0]")
    assert re.search(r"would roll back, removing\s+local:document/01\w+\.csv", out)
    assert re.search(r"did roll back, removing\s+local:document/01\w+\.csv", out)
    assert re.search(r"\(add, stopped after catalog_write_succeeded\): did roll forward", out)
    for event in ("operation.failed", "recover.roll_back", "recover.roll_forward"):
        assert event in out
    with Catalog.open(output / "catalog") as cat:
        (rec,) = cat.search(limit=None).records
        assert rec.title == "c.csv"
        assert cat.journal.open_operations() == []
        assert cat.doctor(verify_hashes=True).clean


def check_format_preparation(out: str, output: Path) -> None:
    assert "schemas: ['ocean-std@1']" in out
    (refused,) = _lines(out, "naive product refused: ")
    assert "does not match schema ocean-std@1" in refused and "'sst' is a required" in refused
    (line,) = _lines(out, "product buoy7-std as ")
    product_id = RECORD_ID.search(line)
    assert product_id and line.endswith(": schema ocean-std@1")
    assert "validate buoy7-std: valid=True" in out
    assert "  variable sst: units=degC" in out and "  variable so: units=1e-3" in out
    assert "lineage: derived_from operation convert (succeeded)" in out
    assert "  inputs: ['buoy7_2021-03_std.nc']" in out
    assert "  prepared from: BUOY7_2021-03.nc" in out
    assert "sst in the product: 10.0 .. 15.0 degC" in out
    with Catalog.open(output / "catalog") as cat:
        assert cat.list_schemas() == ["ocean-std@1"]
        records = cat.search(limit=None).records
        assert sorted(r.title for r in records) == ["BUOY7_2021-03.nc", "buoy7-std"]
        product = cat.get(product_id.group())
        assert (product.schema_name, product.schema_version) == ("ocean-std", "1")
        assert "standardised" in product.tags
        source = cat.get(product.metadata["prepared_from"])
        assert "raw" in source.tags and "SST" in source.metadata["netcdf"]["variables"]
        (result,) = cat.validate(product.id)
        assert result.valid


def check_remote_frontend(out: str, output: Path) -> None:
    registered = dict(re.findall(r"^registered (\S+) as (\S+) \(external\)$", out, re.M))
    assert sorted(registered) == ["tas_2022-01.nc", "tas_2022-02.nc", "tas_2022-03.nc"]
    assert _lines(out, "requests to the server so far:") == [
        "requests to the server so far: 0",  # registering downloads nothing
        "requests to the server so far: 1 ['/tas_2022-03.nc']",  # one fetch, once
    ]
    assert "search month>=2022-02: ['tas_2022-02.nc', 'tas_2022-03.nc']" in out
    fetched = re.search(
        r"^fetched tas_2022-03.nc as (\S+); asked again: same record=True$", out, re.M
    )
    assert fetched
    assert "local copy: dataset variables=['lat', 'lon', 'tas', 'time']" in out
    assert len(json.loads((output / "manifest.json").read_text())) == 3
    with Catalog.open(output / "catalog") as cat:
        external = cat.get(registered["tas_2022-03.nc"])
        assert external.kind == "external" and external.metadata["month"] == "2022-03"
        assert external.artifacts[0].locator.type == "external_uri"
        assert external.metadata["local_copy"] == fetched.group(1)
        local = cat.get(fetched.group(1))
        assert local.metadata["fetched_from"] == external.id and "fetched" in local.tags
        stored = Path(cat.path(local.id))
        assert stored.is_relative_to(output / "catalog" / "store")
        assert stored.read_bytes() == (output / "remote" / "tas_2022-03.nc").read_bytes()
        assert "local_copy" not in cat.get(registered["tas_2022-01.nc"]).metadata


def check_persistent_ids(out: str, output: Path) -> None:
    registered = dict(re.findall(r"^registered doi:(\S+) as (\S+): pid=", out, re.M))
    assert sorted(registered) == ["10.5555/buoy.7", "10.5555/buoy.8"]
    assert (
        "doi:buoy.9 refused: required hook pid failed at before_record_commit:"
        " 'buoy.9' is not a DOI (10.PREFIX/SUFFIX); the operation was rolled back"
    ) in out
    assert "records: 2" in out
    assert _lines(out, "not materialised:") == [
        "not materialised: ['10.5555/buoy.7', '10.5555/buoy.8']",
        "not materialised: ['10.5555/buoy.7']",
    ]
    done = re.search(r"^materialised doi:10.5555/buoy.8 as (\S+)$", out, re.M)
    assert done and "again: True" in out
    with Catalog.open(output / "catalog") as cat:
        pid = cat.get(registered["10.5555/buoy.8"])
        assert pid.kind == "external" and pid.artifacts[0].locator.uri == "doi:10.5555/buoy.8"
        assert pid.metadata["pid"] == {"scheme": "doi", "value": "10.5555/buoy.8"}
        assert pid.metadata["materialised"] is True
        assert pid.metadata["local_copy"] == done.group(1)
        assert cat.get(registered["10.5555/buoy.7"]).metadata["materialised"] is False
        local = cat.get(done.group(1))
        assert local.metadata["materialised_from"] == "doi:10.5555/buoy.8"
        assert "pid" not in local.metadata  # the hook leaves files alone
        stored = Path(cat.path(local.id))
        assert stored.read_bytes() == (output / "repository" / "buoy8.nc").read_bytes()
        assert cat.count() == 3  # the refused DOI left nothing
        assert cat.journal.open_operations() == []


CHECKS: dict[str, Callable[[str, Path], None]] = {
    "basic-file-catalog": check_basic_file_catalog,
    "format-preparation": check_format_preparation,
    "netcdf-metadata-extraction": check_netcdf_metadata_extraction,
    "persistent-ids": check_persistent_ids,
    "remote-frontend": check_remote_frontend,
    "rollback-demo": check_rollback_demo,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_does_what_it_says(name: str, tmp_path: Path) -> None:
    out, output = _run(name, tmp_path)
    CHECKS[name](out, output)


def test_every_example_is_checked_and_listed() -> None:
    found = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "output")
    assert found == sorted(CHECKS)
    listing = (EXAMPLES / "README.md").read_text()
    for name in found:
        assert len(list((EXAMPLES / name).glob("*.py"))) == 1, name
        assert (EXAMPLES / name / "README.md").is_file(), name
        assert f"[{name}]({name}/)" in listing, name
