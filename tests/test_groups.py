"""Groups of products (`arcodex.groups`, `arcodex group …`): padocc's job, done right.

A group made from a CSV of members with mixed targets (Zarr, Icechunk, virtual
Kerchunk) and padocc-style attribute updates and removals runs every member on one
Dask cluster; the fixes are in the products (padocc's never were). A member whose
source is broken fails alone, and `--only failed` completes it once the source is
fixed; a second run skips what is done, a changed source re-runs its member; bad
rows are refused at init with row and column, and nothing is created. The products
make one STAC Collection named after the group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.errors import ConflictError, NotFoundError, ValidationError
from arcodex.groups import (
    GroupRun,
    GroupStatus,
    group_status,
    init_group,
    list_groups,
    member_detail,
    run_group,
)

pytest.importorskip("xarray")
pytest.importorskip("zarr")

REPO = Path(__file__).resolve().parent.parent

MEMBERS_CSV = """id,sources,to,format,updates,removals
tas,src/tas/*.nc,zarr,,"title=Air temperature;source=model",history
ice,src/ice/*.nc,icechunk,,"{""title"": ""Ice"", ""project"": ""ARCO""}",
refs,src/refs/*.nc,virtual,kerchunk,institution=NOC,"[""history""]"
bad,src/bad/*.nc,zarr,,,
"""


def _archive(root: Path, names: tuple[str, ...] = ("tas", "ice", "refs", "bad")) -> None:
    for i, name in enumerate(names):
        write_archive(root / "src" / name, "regular", files=2, steps=2, seed=i)


def _break(root: Path) -> Path:
    broken = sorted((root / "src" / "bad").glob("*.nc"))[-1]
    broken.write_bytes(b"this is not NetCDF")
    return broken


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    environ.pop("ARCODEX_CATALOG", None)
    return subprocess.run(
        [sys.executable, "-m", "arcodex", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _arcodex(*args: str, catalog: Path) -> Any:
    """The CLI in this process (``arcodex --catalog CATALOG ARGS``): a result with
    ``returncode``, ``stdout`` and ``stderr`` as a subprocess has."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from arcodex.cli import app

    done = CliRunner().invoke(app, ["--catalog", str(catalog), *args])
    return SimpleNamespace(returncode=done.exit_code, stdout=done.stdout, stderr=done.stderr)


@pytest.fixture
def group(tmp_path: Path) -> tuple[Catalog, Path]:
    _archive(tmp_path)
    (tmp_path / "members.csv").write_text(MEMBERS_CSV)
    with Catalog.create(tmp_path / "cat") as cat:
        yield cat, tmp_path


def _products(cat: Catalog, name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for record in cat.search(kind="dataset", limit=None).records:
        member = (record.metadata.get("member_of") or {}).get("member")
        if (record.metadata.get("member_of") or {}).get("group") == name:
            found.setdefault(member, []).append(record.id)
    return found


def test_a_csv_group_runs_mixed_targets_with_their_attribute_fixes(group: Any) -> None:
    from arcodex.convert import open_product

    cat, root = group
    _break(root)
    status = init_group(cat, "arch", root / "members.csv", title="An archive")
    assert isinstance(status, GroupStatus)
    assert [m.id for m in status.members] == ["tas", "ice", "refs", "bad"]
    assert status.counts["pending"] == 4

    seen: list[tuple[str, str, str]] = []
    run = run_group(cat, "arch", cluster="threads", progress=lambda *a: seen.append(a))
    assert isinstance(run, GroupRun)
    outcome = {m.id: m for m in run.members}
    # The broken member fails alone; the others finish every phase.
    assert outcome["bad"].status == "failed" and outcome["bad"].phase == "scan"
    assert "regular_001.nc" in (outcome["bad"].reason or "")
    for member in ("tas", "ice", "refs"):
        assert outcome[member].status == "done", outcome[member]
        assert outcome[member].ran == ["scan", "compute", "validate"]
        assert outcome[member].product and outcome[member].operation
    assert run.counts["done"] == 3 and run.counts["failed"] == 1 and run.exit_code == 1
    assert ("tas", "compute", "running") in seen and ("tas", "validate", "done") in seen

    # Targets as the rows say, each product in the catalog's storage under the group.
    formats = {}
    for member in ("tas", "ice", "refs"):
        record = cat.get(outcome[member].product)
        formats[member] = record.metadata["convert"]["format"]
        assert record.metadata["member_of"]["group"] == "arch"
        assert f"products/arch/{member}." in cat.path(record.id)
    assert formats == {"tas": "zarr", "ice": "icechunk", "refs": "kerchunk"}

    # The attribute fixes are applied: updated ones there, removed ones gone.
    with open_product(outcome["tas"].product, catalog=cat) as ds:
        assert ds.attrs["title"] == "Air temperature" and ds.attrs["source"] == "model"
        assert "history" not in ds.attrs
    with open_product(outcome["ice"].product, catalog=cat) as ds:
        assert ds.attrs["title"] == "Ice" and ds.attrs["project"] == "ARCO"
        assert "history" in ds.attrs  # no removal asked for
    with open_product(outcome["refs"].product, catalog=cat) as ds:
        assert ds.attrs["institution"] == "NOC" and "history" not in ds.attrs

    after = group_status(cat, "arch")
    assert after.counts == {"pending": 0, "running": 0, "done": 3, "warn": 0, "failed": 1}


def test_fixing_a_broken_source_then_only_failed_completes_it(group: Any) -> None:
    cat, root = group
    broken = _break(root)
    init_group(cat, "arch", root / "members.csv")
    first = run_group(cat, "arch", cluster="threads")
    assert [m.id for m in first.failed] == ["bad"]
    products = _products(cat, "arch")

    # Nothing changed: --only failed runs only the failed member, which fails again.
    again = run_group(cat, "arch", only="failed", retries=1, cluster="threads")
    assert [m.id for m in again.members] == ["bad"] and again.exit_code == 1
    assert again.members[0].attempts == 2  # the retry ran, and failed the same way

    # The source is fixed: it completes, and nobody else is touched.
    broken.unlink()
    write_archive(root / "src" / "bad", "regular", files=2, steps=2, seed=3)
    fixed = run_group(cat, "arch", only="failed", retries=1, cluster="threads")
    assert [(m.id, m.status) for m in fixed.members] == [("bad", "done")]
    assert fixed.exit_code == 0
    assert group_status(cat, "arch").counts["done"] == 4
    after = _products(cat, "arch")
    assert {k: v for k, v in after.items() if k != "bad"} == products
    assert len(after["bad"]) == 1

    # Everything is done with the same sources and spec: a re-run skips every member.
    resumed = run_group(cat, "arch", cluster="threads")
    assert {m.status for m in resumed.members} == {"skipped"}
    assert all(m.skipped == ["scan", "compute", "validate"] for m in resumed.members)
    assert _products(cat, "arch") == after

    # A changed source re-runs its member only, replacing its product (never a second one).
    write_archive(root / "src" / "tas", "regular", files=3, steps=2, seed=0)
    changed = run_group(cat, "arch", cluster="threads")
    status = {m.id: m.status for m in changed.members}
    assert status == {"tas": "done", "ice": "skipped", "refs": "skipped", "bad": "skipped"}
    assert _products(cat, "arch") == after
    assert cat.get(after["tas"][0]).metadata["convert"]["steps"] == 6


def test_phases_run_one_at_a_time_and_say_what_they_found(group: Any) -> None:
    cat, root = group
    init_group(cat, "arch", root / "members.csv")
    scan = run_group(cat, "arch", phase="scan", members=["tas", "refs"], cluster="threads")
    assert [(m.id, m.status, m.phase) for m in scan.members] == [
        ("tas", "done", "scan"),
        ("refs", "done", "scan"),
    ]
    assert not _products(cat, "arch")  # a scan writes nothing
    detail = member_detail(cat, "arch", "tas")
    assert detail["scan"]["sources"] == 2 and detail["scan"]["steps"] == 4
    assert detail["scan"]["size"]["uncompressed_bytes"] > 0
    assert detail["status"] == "done" and detail["phase"] == "scan"
    assert [h["status"] for h in detail["history"]] == ["running", "done"]
    assert any("scan started" in line for line in detail["log"])

    # Validating before computing fails the member, saying what to run.
    early = run_group(cat, "arch", phase="validate", members=["refs"], cluster="threads")
    assert early.members[0].status == "failed" and "--phase compute" in str(early.members[0].reason)

    run_group(cat, "arch", phase="compute", members=["refs"], cluster="threads")
    check = run_group(cat, "arch", phase="validate", members=["refs"], cluster="threads")
    assert check.members[0].status == "done"
    report = member_detail(cat, "arch", "refs")["check"]
    assert report["status"] == "pass" and report["checked"]["full"] is True

    with pytest.raises(NotFoundError, match="no member 'nope'"):
        run_group(cat, "arch", members=["nope"], cluster="threads")
    with pytest.raises(NotFoundError, match="arcodex group list"):
        run_group(cat, "other", cluster="threads")


def test_bad_rows_are_refused_with_row_and_column_and_nothing_is_made(tmp_path: Path) -> None:
    _archive(tmp_path, ("tas",))
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "id,sources,to,chunks,updates\n"
        "a,src/tas/*.nc,zarr,,\n"
        "b,src/tas/*.nc,netcdf,,\n"
        "c,src/tas/*.nc,zarr,time=x,\n"
        "a,src/tas/*.nc,zarr,,\n"
        "d,src/tas/*.nc,zarr,,title\n"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        before = cat.count()
        with pytest.raises(ValidationError) as info:
            init_group(cat, "g", bad)
        message = str(info.value)
        assert "\n" not in message
        assert "row 2 (id b) column to" in message
        assert "row 3 (id c) column chunks" in message
        assert "row 4 column id: 'a' is also row 1" in message
        assert "(and 1 more)" in message and "nothing was created" in message
        assert cat.count() == before and list_groups(cat) == []

        with pytest.raises(
            ValidationError, match=r"row 1 \(id a\) column colour: not a member column"
        ):
            init_group(cat, "g", [{"id": "a", "sources": "x.nc", "colour": "red"}])
        with pytest.raises(ValidationError, match="not a group name"):
            init_group(cat, "bad name", [{"id": "a", "sources": "x.nc"}])
        with pytest.raises(ValidationError, match="cannot read the members file"):
            init_group(cat, "g", tmp_path / "missing.csv")
        (tmp_path / "nohead.csv").write_text("name,files\na,x.nc\n")
        with pytest.raises(ValidationError, match="header must name the columns id and sources"):
            init_group(cat, "g", tmp_path / "nohead.csv")
        assert cat.count() == before

        init_group(cat, "g", [{"id": "a", "sources": str(tmp_path / "src/tas/*.nc")}])
        with pytest.raises(ConflictError, match="group named 'g' already"):
            init_group(cat, "g", [{"id": "a", "sources": "x.nc"}])


def test_yaml_members_with_defaults_and_python_defaults(tmp_path: Path) -> None:
    _archive(tmp_path, ("tas", "ice"))
    (tmp_path / "members.yaml").write_text(
        "defaults:\n"
        "  to: icechunk\n"
        "  chunks: {time: 2}\n"
        "  updates: {project: ARCO}\n"
        "members:\n"
        "  - {id: tas, sources: src/tas/*.nc}\n"
        "  - id: ice\n"
        "    sources: [src/ice/regular_000.nc, src/ice/regular_001.nc]\n"
        "    to: zarr\n"
        "    removals: [history]\n"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        status = init_group(cat, "y", tmp_path / "members.yaml", defaults={"codec": "zstd"})
        assert status.defaults["to"] == "icechunk" and status.defaults["codec"] == "zstd"
        tas = member_detail(cat, "y", "tas")["spec"]
        ice = member_detail(cat, "y", "ice")["spec"]
        assert (tas["to"], ice["to"]) == ("icechunk", "zarr")
        assert tas["chunks"] == {"time": 2} and tas["codec"] == "zstd"
        assert tas["attrs"] == {"global": {"set": {"project": "ARCO"}}}
        assert ice["attrs"]["global"]["delete"] == ["history"]
        assert ice["sources"][0] == str(tmp_path / "src/ice/regular_000.nc")
        assert ice["key"] == "products/y/ice.zarr" and tas["key"] == "products/y/tas.icechunk"


def test_the_group_products_make_one_stac_collection(group: Any) -> None:
    from arcodex.stac._export import build_documents

    cat, root = group
    init_group(cat, "arch", root / "members.csv", title="An archive")
    # Before any member finishes there is no product, so no Collection either.
    assert "arch/collection.json" not in build_documents(cat, open_data=False)
    run_group(cat, "arch", phase="compute", members=["tas", "ice"], cluster="threads")
    docs = build_documents(cat, open_data=False)
    collection = docs["arch/collection.json"]
    assert collection["title"] == "An archive"
    items = [k for k in docs if k.startswith("arch/") and k != "arch/collection.json"]
    assert len(items) == 2
    # Group and member records are no Items of their own.
    ids = {d["id"] for d in docs.values() if d.get("type") == "Feature"}
    assert ids == set(_products(cat, "arch")["tas"] + _products(cat, "arch")["ice"])

    # The STAC API serves it, and a member finishing joins the same Collection.
    pytest.importorskip("stac_fastapi.api")
    import asyncio

    import httpx

    from arcodex.server import create_app
    from arcodex.testing import publish_all

    publish_all(cat)

    async def served() -> tuple[list[str], list[str]]:
        transport = httpx.ASGITransport(app=create_app(cat.root))
        async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
            listed = (await http.get("/stac/collections")).json()["collections"]
            items = (await http.get("/stac/collections/arch/items")).json()["features"]
            assert {f["collection"] for f in items} == {"arch"}
            return [c["id"] for c in listed], sorted(f["id"] for f in items)

    listed, items = asyncio.run(served())
    assert listed == ["arch"] and len(items) == 2
    run_group(cat, "arch", phase="compute", members=["refs"], cluster="threads")
    docs = build_documents(cat, open_data=False)
    assert len([k for k in docs if k.startswith("arch/") and k != "arch/collection.json"]) == 3
    listed, items = asyncio.run(served())
    assert len(items) == 2, "a new member is served once it is published"
    assert len(publish_all(cat)) == 1
    listed, items = asyncio.run(served())
    assert listed == ["arch"] and items == sorted(
        i for ids in _products(cat, "arch").values() for i in ids
    )
    # The group is searchable as a collection record.
    found = cat.search(kind="collection").records
    assert [r.metadata["group"]["name"] for r in found] == ["arch"]


def test_cli_init_status_show_and_run(tmp_path: Path) -> None:
    _archive(tmp_path, ("tas", "bad"))
    _break(tmp_path)
    (tmp_path / "members.csv").write_text(
        "id,sources,updates\ntas,src/tas/*.nc,title=T\nbad,src/bad/*.nc,\n"
    )
    cat = tmp_path / "cat"
    Catalog.create(cat).close()
    members = str(tmp_path / "members.csv")
    made = _arcodex("group", "init", "g", "--from", members, "--set", "to=icechunk", catalog=cat)
    assert made.returncode == 0, made.stderr
    assert "2 members pending" in made.stdout

    run = _arcodex("group", "run", "g", "--cluster", "threads", "--json", catalog=cat)
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert set(result) == {"name", "phase", "ok", "counts", "seconds", "recovered", "members"}
    assert result["counts"]["done"] == 1 and result["counts"]["failed"] == 1

    status = json.loads(_arcodex("group", "status", "g", "--json", catalog=cat).stdout)
    assert set(status) == {
        "name",
        "title",
        "record",
        "source",
        "defaults",
        "total",
        "counts",
        "members",
    }
    assert status["defaults"] == {"to": "icechunk"}
    assert set(status["members"][0]) == {
        "id",
        "status",
        "phase",
        "reason",
        "seconds",
        "bytes",
        "operation",
        "product",
        "updated_at",
        "stale",
    }
    table = _arcodex("group", "status", "g", catalog=cat)
    assert "tas" in table.stdout and "failed" in table.stdout and "1 done" in table.stdout

    shown = json.loads(_arcodex("group", "show", "g", "tas", "--json", catalog=cat).stdout)
    assert shown["check"]["status"] == "pass" and shown["scan"]["sources"] == 2
    assert shown["spec"]["to"] == "icechunk" and shown["log"]
    text = _arcodex("group", "show", "g", "bad", catalog=cat)
    assert "failed after scan" in text.stdout

    listed = json.loads(_arcodex("group", "list", "--json", catalog=cat).stdout)
    assert [(g["name"], g["total"]) for g in listed] == [("g", 2)]

    unknown = _arcodex("group", "status", "nope", catalog=cat)
    assert unknown.returncode != 0 and "arcodex group list" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    member = _arcodex("group", "show", "g", "zz", catalog=cat)
    assert "no member 'zz'" in member.stderr
    badfile = _arcodex("group", "init", "h", "--from", str(tmp_path / "nothing.csv"), catalog=cat)
    assert badfile.returncode != 0 and "cannot read the members file" in badfile.stderr
    badset = _arcodex("group", "init", "h", "--from", members, "--set", "to", catalog=cat)
    assert "write FIELD=VALUE" in badset.stderr


@pytest.mark.parametrize(
    ("phase", "kill_at", "adopted"),
    [
        # A conversion killed while it writes: its partial product goes with recover.
        ("run", "artifact_write_succeeded", False),
        # Killed right after one conversion committed, before its member was written done:
        # the next run adopts that product instead of converting again.
        ("compute", "committed", True),
    ],
)
def test_a_killed_run_recovers_and_resumes_without_duplicates(
    tmp_path: Path, phase: str, kill_at: str, adopted: bool
) -> None:
    names = ("m1", "m2", "m3", "m4")
    _archive(tmp_path, names)
    (tmp_path / "members.csv").write_text(
        "id,sources,to\n" + "".join(f"{n},src/{n}/*.nc,zarr\n" for n in names)
    )
    cat = tmp_path / "cat"
    Catalog.create(cat).close()
    members = str(tmp_path / "members.csv")
    assert _arcodex("group", "init", "g", "--from", members, catalog=cat).returncode == 0
    if phase == "compute":
        scanned = _arcodex(
            "group", "run", "g", "--phase", "scan", "--cluster", "threads", catalog=cat
        )
        assert scanned.returncode == 0, scanned.stderr
    before = json.loads(_arcodex("group", "status", "g", "--json", catalog=cat).stdout)

    killed = _cli(  # a process of its own, to be killed
        "group",
        "run",
        "g",
        "--phase",
        phase,
        "--cluster",
        "threads",
        cwd=cat,
        env={"ARCODEX_KILL_AT": kill_at},
    )
    assert killed.returncode == -9, killed.stderr
    during = json.loads(_arcodex("group", "status", "g", "--json", catalog=cat).stdout)
    # The dead process's members are shown as they were, and block nothing.
    assert any(m["stale"] for m in during["members"])

    recovered = _arcodex("recover", "--json", catalog=cat)
    assert recovered.returncode == 0, recovered.stderr
    after = json.loads(_arcodex("group", "status", "g", "--json", catalog=cat).stdout)
    assert after["counts"]["running"] == 0
    assert not any(m["stale"] for m in after["members"])
    # Every member is done with a phase the killed run finished, or back as it was before.
    was = {m["id"]: (m["status"], m["phase"]) for m in before["members"]}
    for m in after["members"]:
        finished = ("done", "scan") if phase == "run" else was[m["id"]]
        assert (m["status"], m["phase"]) in (was[m["id"]], finished), m
    if phase == "compute":
        assert [(m["status"], m["phase"]) for m in after["members"]] == list(was.values())
    with Catalog.open(cat) as opened:
        committed = _products(opened, "g")
        assert all(len(v) == 1 for v in committed.values())
        assert bool(committed) == adopted
        doctor = opened.doctor()
        assert not doctor.incomplete_operations and not doctor.orphaned_files

    resumed = _arcodex(
        "group", "run", "g", "--phase", phase, "--cluster", "threads", "--json", catalog=cat
    )
    assert resumed.returncode == 0, resumed.stdout
    result = json.loads(resumed.stdout)
    assert result["counts"]["done"] == len(names)
    reasons = [m["reason"] for m in result["members"]]
    # (Threads may commit a second conversion before the kill lands.)
    assert reasons.count("adopted the product an earlier run made") == len(committed)
    with Catalog.open(cat) as opened:
        final = _products(opened, "g")
        assert sorted(final) == list(names) and all(len(v) == 1 for v in final.values())
        assert all(final[member] == ids for member, ids in committed.items())


def test_a_run_after_a_kill_is_not_blocked_and_a_later_recover_keeps_its_work(
    tmp_path: Path,
) -> None:
    names = ("m1", "m2", "m3")
    _archive(tmp_path, names)
    cat = tmp_path / "cat"
    Catalog.create(cat).close()
    rows = [{"id": n, "sources": str(tmp_path / "src" / n / "*.nc")} for n in names]
    init_group(cat, "g", rows)
    killed = _cli(
        "group",
        "run",
        "g",
        "--cluster",
        "threads",
        cwd=cat,
        env={"ARCODEX_KILL_AT": "artifact_write_succeeded"},
    )
    assert killed.returncode == -9, killed.stderr
    assert any(m.stale for m in group_status(cat, "g").members)

    # No recover first: the run recovers what the dead process left, then runs everything.
    run = run_group(cat, "g", cluster="threads")
    assert run.recovered
    assert [m.status for m in run.members] == ["done"] * 3, [m.reason for m in run.members]
    with Catalog.open(cat) as opened:
        assert opened.recover() == []
        assert [m.status for m in group_status(opened, "g").members] == ["done"] * 3
        assert sorted(_products(opened, "g")) == list(names)
        assert all(len(v) == 1 for v in _products(opened, "g").values())
        doctor = opened.doctor()
        assert not doctor.incomplete_operations and not doctor.orphaned_files


def test_a_record_written_ahead_is_put_back_by_rollback_and_by_recover(tmp_path: Path) -> None:
    """The catalog's generic mechanism under member status: ``_stage_record`` writes at
    once, and the unit's rollback (in process) or ``recover`` (after a kill) undoes it."""
    from arcodex.model import Record

    with Catalog.create(tmp_path / "cat") as cat:
        (record,) = cat.add_records([Record(kind="note", metadata={"state": "before"})])

        def staged(current: Record) -> Record:
            return current.model_copy(
                update={"metadata": {"state": "ahead"}, "version": current.version + 1}
            )

        seen: list[dict[str, Any]] = []

        def stop_part_way() -> None:
            with cat.unit_of_work("demo") as uow:
                cat._stage_record(uow, record, staged(record))
                seen.append(cat.get(record.id).metadata)
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            stop_part_way()
        assert seen == [{"state": "ahead"}]
        assert cat.get(record.id).metadata == {"state": "before"}

    code = (
        "import os, signal, sys\n"
        "from arcodex.catalog import Catalog\n"
        "cat = Catalog.open(sys.argv[1])\n"
        "rec = cat.get(sys.argv[2])\n"
        "new = rec.model_copy(update={'metadata': {'state': 'ahead'}, 'version': rec.version + 1})\n"
        "with cat.unit_of_work('demo') as uow:\n"
        "    cat._stage_record(uow, rec, new)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    killed = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cat"), record.id], env=env, timeout=60
    )
    assert killed.returncode == -9
    with Catalog.open(tmp_path / "cat") as cat:
        assert cat.get(record.id).metadata == {"state": "ahead"}
        assert cat.recover(dry_run=True)[0].would_restore == [f"record {record.id}"]
        (recovery,) = cat.recover()
        assert recovery.decision == "roll_back" and recovery.restored == [f"record {record.id}"]
        assert cat.get(record.id).metadata == {"state": "before"}
        assert cat.recover() == []

    # A record someone changed after the killed write is left as they made it.
    killed = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cat"), record.id], env=env, timeout=60
    )
    assert killed.returncode == -9
    with Catalog.open(tmp_path / "cat") as cat:
        cat.update(record.id, set={"state": "later"})
        (recovery,) = cat.recover()
        assert recovery.restored == [] and recovery.kept[0]["where"] == f"record {record.id}"
        assert cat.get(record.id).metadata == {"state": "later"}


def test_a_gap_in_time_makes_the_member_warn_not_fail(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src" / "gap", "regular", files=3, steps=2)
    files[1].unlink()  # two days missing between the first file and the last
    with Catalog.create(tmp_path / "cat") as cat:
        init_group(cat, "w", [{"id": "gap", "sources": str(tmp_path / "src/gap/*.nc")}])
        run = run_group(cat, "w", cluster="threads")
        (member,) = run.members
        assert member.status == "warn" and member.phase == "validate", member
        assert "gap" in str(member.reason).lower() or "missing" in str(member.reason).lower()
        assert run.exit_code == 0 and group_status(cat, "w").counts["warn"] == 1
        # A warn is finished: the next run skips it.
        assert run_group(cat, "w", cluster="threads").members[0].status == "skipped"


def test_a_file_one_thread_reads_is_not_closed_by_another(tmp_path: Path) -> None:
    """Conversions of a group run in threads of one process: the few source files kept
    open are per thread, so one thread making room never closes a file under another."""
    import threading

    from arcodex.convert._sources import SourceRef, open_raw

    files = write_archive(tmp_path / "src", "regular", files=6, steps=2)
    mine = open_raw(SourceRef(str(files[0])))
    first = mine.read("tas", (slice(0, 1), slice(0, 2), slice(0, 2))).copy()

    def elsewhere() -> None:
        for path in files[1:]:  # more files than are kept open
            open_raw(SourceRef(str(path))).read("tas", (slice(0, 1), slice(0, 1), slice(0, 1)))

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join()
    again = mine.read("tas", (slice(0, 1), slice(0, 2), slice(0, 2)))
    assert (again == first).all()


def test_a_member_another_run_took_first_is_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of one group at once: each member is converted by one of them; the other
    says it was taken (it is not failed, and nothing is converted twice)."""
    from arcodex.groups import _run

    _archive(tmp_path, ("a", "b"))
    (tmp_path / "m.csv").write_text("id,sources\na,src/a/*.nc\nb,src/b/*.nc\n")
    cat = Catalog.create(tmp_path / "cat")
    init_group(cat, "g", tmp_path / "m.csv")
    read_members = _run.member_records
    inner: list[GroupRun] = []
    racing = [True]

    def read_then_race(catalog: Any, name: str) -> Any:
        records = read_members(catalog, name)
        if racing:  # the other run claims and finishes every member meanwhile
            racing.clear()
            inner.append(run_group(catalog, name, phase="compute", cluster="threads"))
        return records

    monkeypatch.setattr(_run, "member_records", read_then_race)
    outer = run_group(cat, "g", phase="compute", cluster="threads")
    assert inner[0].counts["done"] == 2
    assert outer.counts["running"] == 2 and outer.counts["failed"] == 0, outer.to_dict()
    assert all("another run of group g took it first" in (m.reason or "") for m in outer.members)
    assert outer.exit_code == 0
    assert {m.status for m in group_status(cat, "g").members} == {"done"}
    assert sorted(len(ids) for ids in _products(cat, "g").values()) == [1, 1]


def test_members_start_with_the_engine_imported(tmp_path: Path) -> None:
    """Two threads importing xarray for the first time can deadlock in its circular
    imports ("deadlock detected by _ModuleLock", seen with a process cluster), so a run
    imports what its members need before the first one starts (in a fresh interpreter)."""
    _archive(tmp_path, ("a", "b"))
    (tmp_path / "m.csv").write_text("id,sources,to\na,src/a/*.nc,zarr\nb,src/b/*.nc,icechunk\n")
    script = f"""
import json, sys
from arcodex.catalog import Catalog
from arcodex.groups import init_group, run_group
cat = Catalog.create({str(tmp_path / "cat")!r})
init_group(cat, "g", {str(tmp_path / "m.csv")!r})
assert "xarray" not in sys.modules
seen = []
def progress(member, phase, status):
    if not seen:
        seen.append(sorted(m for m in ("xarray", "zarr", "icechunk", "h5py") if m in sys.modules))
run = run_group(cat, "g", phase="scan", cluster="threads", progress=progress)
print(json.dumps({{"imported": seen[0], "counts": run.counts}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["counts"]["done"] == 2
    assert found["imported"] == ["h5py", "icechunk", "xarray", "zarr"]
