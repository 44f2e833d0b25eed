"""`add` as a declared pipeline: its steps, its dry run (nothing changes, refusals are
listed), pipelines declared in arcodex.yaml and by plugins, `arcodex run`, the `schema`
group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arcodex.catalog import Catalog, CatalogConfig, HookContext, HookError, get_pipeline
from arcodex.cli import app
from arcodex.errors import NotFoundError, ValidationError

OBS = {"type": "object", "required": ["site"], "properties": {"site": {"type": "string"}}}


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.create(tmp_path / "cat") as catalog:
        yield catalog


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots``, byte for byte: the database, its WAL, the event log,
    the journal, the store. Not SQLite's ``-shm`` file: every reader updates its read
    marks in that shared-memory index, which holds no data."""
    return {
        str(p): p.read_bytes()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def _declare(root: Path, pipelines: dict[str, list[str]]) -> None:
    config = root / "arcodex.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["pipelines"] = pipelines
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_add_is_the_declared_sequence_of_steps(cat: Catalog, tmp_path: Path) -> None:
    add = get_pipeline("add")
    assert add.names() == [
        "extract-metadata",
        "validate-record",
        "plan-path",
        "write-artifact",
        "commit-record",
    ]
    assert [s.changes for s in add.steps] == [False, False, False, True, True]
    seen: list[tuple[str, str | None]] = []
    cat.hooks.register("before_step", lambda ctx: seen.append((ctx.point, ctx.step)), name="b")
    cat.hooks.register("after_step", lambda ctx: seen.append((ctx.point, ctx.step)), name="a")
    cat.add_files([_file(tmp_path / "a.csv", "t\n1\n"), _file(tmp_path / "b.csv", "t\n2\n")])
    assert seen == [(p, s) for s in add.names() for p in ("before_step", "after_step")]
    timed = cat.logs(event="pipeline.step")
    assert [e["step"] for e in timed] == add.names()
    (op,) = cat.operations()
    assert {e["operation_id"] for e in timed[2:]} == {op.id}  # plan-path opens the unit


def test_a_required_hook_failing_after_a_step_leaves_nothing(cat: Catalog, tmp_path: Path) -> None:
    def refuse(ctx: HookContext) -> None:
        if ctx.step == "write-artifact":
            raise RuntimeError("quota exceeded")

    cat.hooks.register("after_step", refuse, name="quota")
    before = _snapshot(cat.root / "store") if (cat.root / "store").exists() else {}
    with pytest.raises(HookError, match="quota failed at after_step"):
        cat.add_file(_file(tmp_path / "a.csv", "t\n1\n"))
    assert cat.search().records == []
    stored = _snapshot(cat.root / "store") if (cat.root / "store").exists() else {}
    assert stored == before == {}
    (op,) = cat.operations()
    assert op.status == "failed"
    assert cat.journal.open_operations() == []


def test_dry_run_changes_nothing_and_lists_every_refusal(cat: Catalog, tmp_path: Path) -> None:
    cat.register_schema("obs@1", OBS)
    held = _file(tmp_path / "data" / "held.csv", "t\n1\n")
    cat.add_file(held, metadata={"site": "MHD"})
    new = _file(tmp_path / "data" / "new.csv", "t\n2\n")
    copy = _file(tmp_path / "data" / "copy.csv", "t\n1\n")  # the content of held.csv
    before = _snapshot(cat.root, tmp_path / "data")

    plan = cat.plan_add([new, copy, new], metadata={"site": "MHD"}, schema="obs@1")
    assert plan.dry_run and plan.records == []
    assert [s["name"] for s in plan.steps if s["ran"]] == [
        "extract-metadata",
        "validate-record",
        "plan-path",
    ]
    first, second, third = (item.to_dict() for item in plan.items)
    assert first["refusals"] == []
    assert first["key"].endswith(".csv") and first["profile"] == "local"
    assert first["fields"] == {"site": "MHD"} and first["schema"] == "obs@1"
    assert "already in the catalog" in second["refusals"][0]
    assert third["refusals"] == [f"{new} is given twice"]

    strict = cat.plan_add([new], schema="obs@1", schema_policy="strict")
    (refused,) = strict.items
    assert "does not match schema obs@1" in refused.refusals[0]

    assert _snapshot(cat.root, tmp_path / "data") == before
    with pytest.raises(NotFoundError):  # bad input is still refused, and still changes nothing
        cat.plan_add([tmp_path / "missing.csv"])
    assert _snapshot(cat.root, tmp_path / "data") == before


def test_cli_add_dry_run_json(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    data = _file(tmp_path / "obs.csv", "t,ch4\n1,1900\n")
    before = _snapshot(root, data.parent)
    runner = CliRunner()
    result = runner.invoke(
        app, ["--catalog", str(root), "add", str(data), "--dry-run", "--json", "-m", "site=MHD"]
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["refusals"] == []
    (item,) = report["items"]
    assert item["source"] == str(data) and item["format"] == "csv"
    assert item["fields"] == {"site": "MHD"}
    assert _snapshot(root, data.parent) == before

    runner.invoke(app, ["--catalog", str(root), "add", str(data)])
    again = runner.invoke(app, ["--catalog", str(root), "add", str(data), "--dry-run"])
    assert again.exit_code == 1  # the real add would be refused
    assert "refused: " in again.stdout and "already in the catalog" in again.stdout


def test_a_yaml_pipeline_runs_from_registered_steps(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    _declare(
        root,
        {"ingest-csv": ["extract-metadata", "validate-record", "write-artifact", "commit-record"]},
    )
    data = _file(tmp_path / "obs.csv", "t,ch4\n1,1900\n")
    with Catalog.open(root) as cat:
        names = {p.name: p for p in cat.pipelines()}
        assert names["ingest-csv"].origin == "config"
        assert "add" in names and "add-external" in names
        dry = cat.run_pipeline("ingest-csv", [str(data)], dry_run=True)
        assert [s["name"] for s in dry.steps if s["ran"]] == ["extract-metadata", "validate-record"]
        assert cat.search().records == []
        run = cat.run_pipeline("ingest-csv", [str(data)], params={"kind": "dataset", "tags": ["x"]})
        (record,) = run.records
        assert cat.get(record.id).kind == "dataset" and record.tags == ["x"]
        assert Path(cat.path(record.id)).read_bytes() == data.read_bytes()
        steps = [e.get("step") for e in cat.journal.read(str(run.operation_id))]
        assert "write-artifact" in steps and "plan-path" not in steps
        with pytest.raises(ValidationError, match="takes no parameter 'colour'; its parameters"):
            cat.run_pipeline("ingest-csv", [str(data)], params={"colour": "red"})


def test_an_unknown_step_in_arcodex_yaml_is_refused_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    _declare(root, {"mine": ["extract-metadata", "teleport", "commit-record"]})
    data = _file(tmp_path / "obs.csv", "x\n")
    result = CliRunner().invoke(app, ["--catalog", str(root), "run", "mine", str(data)])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: pipeline 'mine' (arcodex.yaml) names unknown step 'teleport'")
    assert "known steps: commit-record, extract-metadata" in line
    with Catalog.open(root) as cat:
        assert cat.search().records == [] and cat.operations() == []


def test_a_yaml_pipeline_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    config = CatalogConfig(pipelines={"add": ["extract-metadata"]})
    with (
        Catalog.create(tmp_path / "cat", config=config) as cat,
        pytest.raises(ValidationError, match="name of a built-in pipeline"),
    ):
        cat.run_pipeline("add", [])


def test_arcodex_run_in_a_subprocess(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    _declare(root, {"ingest-csv": ["validate-record", "write-artifact", "commit-record"]})
    data = _file(tmp_path / "obs.csv", "t,ch4\n1,1900\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}

    def arcodex(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arcodex", "--catalog", str(root), *args],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = arcodex("pipelines", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {p["name"]: p["origin"] for p in json.loads(listed.stdout)}["ingest-csv"] == "config"
    done = arcodex("run", "ingest-csv", str(data), "--param", "metadata.site=MHD", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (record,) = report["records"]
    assert record["metadata"]["site"] == "MHD" and report["dry_run"] is False
    assert [s["name"] for s in report["steps"]] == [
        "validate-record",
        "write-artifact",
        "commit-record",
    ]
    assert all(s["ran"] and s["seconds"] >= 0 for s in report["steps"])
    missing = arcodex("run", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no pipeline 'nope'; known pipelines: add, ")


def test_a_plugin_step_and_pipeline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin installed as a distribution (its dist-info on sys.path) adds a step and a
    pipeline made of it and built-in steps."""
    from arcodex.plugins import registry

    site = tmp_path / "site"
    _file(
        site / "pipeplug" / "__init__.py",
        textwrap.dedent(
            """
            def stamp(ctx):
                ctx.params.setdefault("metadata", {})["stamped"] = True

            def register(registrar):
                registrar.add_step("stamp", stamp, changes=False, doc="stamp the metadata")
                registrar.add_pipeline(
                    "stamped-add",
                    ["stamp", "validate-record", "write-artifact", "commit-record"],
                )
            """
        ),
    )
    dist = site / "pipeplug-0.1.dist-info"
    _file(dist / "METADATA", "Metadata-Version: 2.1\nName: pipeplug\nVersion: 0.1\n")
    _file(dist / "entry_points.txt", "[arcodex.plugins]\npipeplug = pipeplug:register\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ARCODEX_PLUGINS", raising=False)
    registry().reset()
    try:
        with Catalog.create(tmp_path / "cat") as cat:
            found = {p.name: p for p in cat.pipelines()}
            assert found["stamped-add"].origin == "plugin"
            data = _file(tmp_path / "obs.csv", "x\n")
            run = cat.run_pipeline("stamped-add", [str(data)])
            (record,) = run.records
            assert cat.get(record.id).metadata["stamped"] is True
    finally:
        registry().reset()


def test_schema_group_lists_adds_and_shows(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    schema = tmp_path / "obs.json"
    schema.write_text(json.dumps(OBS), encoding="utf-8")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["--catalog", str(root), *args])
        assert result.exit_code == 0, result.stderr
        return result.stdout

    assert "registered schema obs@1" in run("schema", "add", "obs@1", str(schema))
    assert json.loads(run("schema", "list", "--json")) == ["obs@1"]
    assert json.loads(run("schema", "show", "obs")) == OBS
    assert json.loads(run("schema", "show", "obs@1", "--json")) == OBS
    assert run("schemas") == "obs@1\n"  # the old name, hidden, for one release
    assert "schema-add" not in run("--help") and "schema " in run("--help")
    missing = runner.invoke(app, ["--catalog", str(root), "schema", "show", "nope"])
    assert missing.exit_code == 1
    assert "no schema 'nope' (registered: obs@1)" in missing.stderr


def test_schema_show_convert_prints_the_spec_schema(tmp_path: Path) -> None:

    result = CliRunner().invoke(app, ["schema", "show", "convert"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["type"] == "object" and "properties" in document
    assert {"sources", "to", "chunks", "pyramid"} <= set(document["properties"])


def test_doctor_names_the_step_an_interrupted_add_was_in(tmp_path: Path) -> None:
    from arcodex.catalog._journal import KILL_AT_ENV

    root = tmp_path / "cat"
    Catalog.create(root).close()
    data = _file(tmp_path / "obs.csv", "x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    env[KILL_AT_ENV] = "step_finished"  # the first: plan-path, inside the unit of work
    done = subprocess.run(
        [sys.executable, "-m", "arcodex", "--catalog", str(root), "add", str(data)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode < 0, done.stderr
    with Catalog.open(root) as cat:
        (op,) = cat.doctor().incomplete_operations
        assert (op["last_state"], op["step"]) == ("planned", "plan-path")
        (recovered,) = cat.recover()
        assert recovered.decision == "roll_back"
        assert cat.search().records == [] and cat.doctor().clean
