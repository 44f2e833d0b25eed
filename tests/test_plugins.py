"""Plugins: a real plugin package from tests/plugins, installed for real (a .dist-info with
its entry points, as pip writes it), registering one of each kind, and each kind used."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

import arcodex
from arcodex.catalog import Catalog
from arcodex.plugins import KINDS, PluginRegistrar, registry

PROJECTS = Path(__file__).parent / "plugins"
EXAMPLE_MODULES = ("arcodex_example_plugin", "arcodex_broken_plugin")
BROKEN_LINE = (
    "plugin 'broken' (dist arcodex-broken-plugin 1.2) failed to load: ValueError: the "
    "plugin's settings file is missing; fix or uninstall it, or disable plugins with "
    "ARCODEX_PLUGINS=off"
)


def install(project: Path, site: Path) -> None:
    """Install ``project`` into ``site`` as pip does for a pure-Python wheel: the packages,
    and a ``.dist-info`` with METADATA, entry_points.txt and RECORD (from its pyproject)."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = meta["name"], meta["version"]
    packages = sorted(p for p in (project / "src").iterdir() if p.is_dir())
    for package in packages:
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {meta['description']}\n",
        encoding="utf-8",
    )
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in entries.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    (info / "INSTALLER").write_text("arcodex-tests\n", encoding="utf-8")
    (info / "top_level.txt").write_text("".join(f"{p.name}\n" for p in packages))
    files = [p for package in packages for p in (site / package.name).rglob("*") if p.is_file()]
    files += list(info.iterdir())
    (info / "RECORD").write_text(
        "".join(f"{p.relative_to(site).as_posix()},,\n" for p in files) + f"{info.name}/RECORD,,\n"
    )


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site-example")
    install(PROJECTS / "arcodex_example_plugin", site)
    return site


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site-broken")
    install(PROJECTS / "arcodex_broken_plugin", site)
    return site


@contextmanager
def installed(*sites: Path) -> Iterator[None]:
    """The sites on sys.path for one test, then gone (no other test module sees the plugins)."""
    sys.path[:0] = [str(s) for s in sites]
    importlib.invalidate_caches()
    registry().reset()
    try:
        yield
    finally:
        for site in sites:
            sys.path.remove(str(site))
        for name in EXAMPLE_MODULES:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        registry().reset()


@pytest.fixture
def example(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example plugin installed; its module (imported by discovery) as the value."""
    monkeypatch.delenv("ARCODEX_PLUGINS", raising=False)
    with installed(example_site):
        registry().plugins()
        yield sys.modules["arcodex_example_plugin"]


@pytest.fixture
def all_plugins(
    example_site: Path, broken_site: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.delenv("ARCODEX_PLUGINS", raising=False)
    with installed(example_site, broken_site):
        yield


def env_with(*sites: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``arcodex`` subprocess that has the sites installed."""
    env = {k: v for k, v in os.environ.items() if k != "ARCODEX_PLUGINS"}
    src = str(Path(arcodex.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        [*map(str, sites), src, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "arcodex", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def station(tmp_path: Path) -> Path:
    path = tmp_path / "mace-head.station"
    path.write_text("station = alpha\nelevation = 120\n", encoding="utf-8")
    return path


def test_the_readme_declares_a_plugin_as_the_example_does() -> None:
    from test_readme import BLOCKS

    (block,) = [b for b in BLOCKS if b.ident == "plugins-toml"]
    readme = tomllib.loads(block.code)["project"]["entry-points"]
    example = tomllib.loads((PROJECTS / "arcodex_example_plugin" / "pyproject.toml").read_text())
    assert set(readme) == set(example["project"]["entry-points"]) == {"arcodex.plugins"}
    assert readme["arcodex.plugins"] == {"myplug": "myplug:register"}


# -- discovery -------------------------------------------------------------------------------


def test_the_example_registers_one_of_each_kind(example: ModuleType) -> None:
    (plugin,) = registry().plugins()
    assert (plugin.name, plugin.dist, plugin.version) == (
        "example",
        "arcodex-example-plugin",
        "0.3.1",
    )
    assert plugin.status == "loaded" and plugin.error is None
    assert set(plugin.registered) == set(KINDS)
    assert plugin.registered["store"] == ["example"]
    assert plugin.to_dict()["registered"]["cli"] == ["example"]


def test_discovery_is_idempotent(example: ModuleType) -> None:
    for _ in range(3):
        registry().plugins()
        registry().extractors()
        registry().stores()
    assert example.CALLS.count("register") == 1


def test_import_reads_no_entry_point(example_site: Path) -> None:
    code = "import arcodex.plugins as p; r = p.registry(); print(r.discovered)"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env_with(example_site),
        check=True,
    )
    assert done.stdout.strip() == "False"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    for heavy in ("importlib.metadata", "pydantic", "typer", "xarray", "arcodex_example_plugin"):
        assert heavy not in imported


def test_search_imports_no_plugin_and_add_does(
    example_site: Path, tmp_path: Path, station: Path
) -> None:
    mark = tmp_path / "imported"
    env = env_with(
        example_site, ARCODEX_CATALOG=str(tmp_path / "cat"), ARCODEX_EXAMPLE_PLUGIN_MARK=str(mark)
    )
    run_cli("init", str(tmp_path / "cat"), env=env)
    mark.unlink(missing_ok=True)  # init shows the schemas, plugins' among them
    run_cli("add", str(station), env=env)
    assert mark.read_text() == "imported\n"  # add runs extractors and hooks
    mark.unlink()
    searched = run_cli("search", "example.station=alpha", env=env)
    assert "mace-head.station" in searched.stdout
    run_cli("fields", env=env)
    assert not mark.exists()  # reading the catalog needs no plugin
    code = (
        "import sys; from arcodex.cli import main; from arcodex.plugins import registry\n"
        "sys.argv = ['arcodex', 'search', 'example.station=alpha', '--ids']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('discovered', registry().discovered)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split()[-2:] == ["discovered", "False"]  # not even the entry points


# -- each kind, used -------------------------------------------------------------------------


def test_extractor_fields_are_searchable_and_the_hook_runs(
    example: ModuleType, tmp_path: Path, station: Path
) -> None:
    cat = Catalog.create(tmp_path / "cat")
    record = cat.add_file(station)
    assert record.metadata["example"] == {"station": "alpha", "elevation": 120}
    assert record.metadata["example_hooked"] is True
    assert "hook:after_metadata_extract" in example.CALLS
    assert [r.id for r in cat.search("example.station=alpha").records] == [record.id]
    assert [r.id for r in cat.search("example.elevation>100").records] == [record.id]
    assert not cat.search("example.station=beta").records


def test_plugin_loads_and_versions_are_events(
    example: ModuleType, tmp_path: Path, station: Path
) -> None:
    cat = Catalog.create(tmp_path / "cat")
    record = cat.add_file(station)
    (loaded,) = cat.logs(event="plugin.loaded")
    assert loaded["plugin"] == "example" and loaded["plugin_version"] == "0.3.1"
    assert "store example" in loaded["message"]
    hooked = cat.logs(event="hook.run")
    assert hooked and hooked[0]["hook"] == "example.stamp"
    events = cat.logs(record=record.id)
    assert events and all(e["plugins"] == {"example": "0.3.1"} for e in events)


def test_schema_validates(example: ModuleType, tmp_path: Path) -> None:
    cat = Catalog.create(tmp_path / "cat")
    assert "example-station@1" in cat.list_schemas()
    good = {"kind": "document", "metadata": {"example": {"station": "a"}, "example_hooked": True}}
    bad = {"kind": "document", "metadata": {"example": {"station": "a"}}}
    (ok,) = cat.validate(document=good, schema="example-station@1")
    (not_ok,) = cat.validate(document=bad, schema="example-station@1")
    assert ok.valid and ok.schema == "example-station@1"
    assert not not_ok.valid and any("example_hooked" in e for e in not_ok.errors)


def test_step_runs_in_the_plugins_pipeline(example: ModuleType, tmp_path: Path) -> None:
    from arcodex.catalog import PipelineContext, get_pipeline, get_step, run_pipeline

    cat = Catalog.create(tmp_path / "cat")
    pipeline = get_pipeline("example-pipeline")
    assert (pipeline.origin, pipeline.names()) == ("plugin", ["example-stamp"])
    assert get_step("example-stamp").changes is False
    ctx = run_pipeline(pipeline, PipelineContext(cat, {}, dry_run=True))
    assert ctx.state["example_stamps"] == 1 and ctx.skipped == []
    assert [name for name, _ in ctx.timings] == ["example-stamp"]


def test_a_plugin_step_named_as_a_built_in_is_refused(example_site: Path) -> None:
    from arcodex.catalog import Step, register_step, step_registry

    built_in = Step("example-stamp", lambda ctx: None, doc="a built-in of the same name")
    register_step(built_in)
    try:
        with installed(example_site):
            assert step_registry()["example-stamp"] is built_in
            (plugin,) = registry().plugins()
            assert plugin.refused == [
                "plugin 'example' (dist arcodex-example-plugin 0.3.1): step 'example-stamp' "
                "is built into arcodex; refused"
            ]
    finally:
        from arcodex.catalog import _pipeline

        _pipeline._STEPS.pop("example-stamp")


def test_stac_formatter_changes_the_item(
    example: ModuleType, tmp_path: Path, station: Path
) -> None:
    from arcodex.stac import stac_for

    cat = Catalog.create(tmp_path / "cat")
    record = cat.add_file(station)
    _, item = stac_for(record, cat, open_data=False)
    assert item.properties["example:station"] == "alpha"


def test_source_kind_resolves_urls(example: ModuleType, tmp_path: Path) -> None:
    from arcodex.convert._sources import resolve_sources

    (tmp_path / "b.nc").write_bytes(b"")
    (tmp_path / "a.nc").write_bytes(b"")
    refs = resolve_sources(f"example://{tmp_path}")
    assert [r.url for r in refs] == [str(tmp_path / "a.nc"), str(tmp_path / "b.nc")]
    assert f"source:example://{tmp_path}" in example.CALLS


def test_convert_reads_a_plugins_source_kind(example: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    from arcodex._archives import write_archive
    from arcodex.convert import convert, open_product

    files = write_archive(tmp_path / "src", "regular", files=2, steps=3)
    result = convert(
        f"example://{tmp_path / 'src'}",
        to="zarr",
        dest=tmp_path / "out.zarr",
        cluster="threads",
        workers=1,
    )
    assert result.status == "pass", result.report.reasons
    assert f"source:example://{tmp_path / 'src'}" in example.CALLS
    with open_product(tmp_path / "out.zarr") as ds:
        assert ds.sizes["time"] == 6 and len(files) == 2


def test_unknown_url_scheme_says_what_reads_urls(example: ModuleType) -> None:
    from arcodex.convert._sources import resolve_sources
    from arcodex.errors import ValidationError

    with pytest.raises(
        ValidationError, match=r"nothing reads nope:// URLs .*from plugins: example"
    ):
        resolve_sources("nope://somewhere/x.nc")


def test_storage_profile_kind_holds_a_catalogs_files(
    example: ModuleType, tmp_path: Path, station: Path
) -> None:
    import fsspec

    from arcodex.catalog import CatalogConfig

    config = CatalogConfig.model_validate(
        {
            "profiles": {
                "local": {"type": "file"},
                "scratch": {"type": "example-memory", "root": "exm"},
            }
        }
    )
    cat = Catalog.create(tmp_path / "cat", config=config)
    record = cat.add_file(station, profile="scratch")
    assert "profile:scratch" in example.CALLS
    memory = fsspec.filesystem("memory")
    stored = [p for p in memory.find("/exm") if p.endswith(".station")]
    assert stored and memory.cat_file(stored[0]).startswith(b"station = alpha")
    locator = cat.get(record.id).artifacts[0].locator
    assert locator.model_dump() == {
        "type": "fsspec_url",
        "url": f"memory:/{stored[0]}",
        "profile": "scratch",
    }
    assert cat.path(record.id) == f"memory:/{stored[0]}"


def test_unknown_profile_kind_names_the_plugins(example: ModuleType, tmp_path: Path) -> None:
    from arcodex.errors import ValidationError
    from arcodex.storage import open_storage

    cat = Catalog.create(tmp_path / "cat")
    profile = cat.config.model_validate({"profiles": {"x": {"type": "ftp"}}}).profiles["x"]
    with pytest.raises(
        ValidationError, match=r"type 'ftp'.*known: file, memory, s3, example-memory"
    ):
        open_storage("x", profile, cat.root)


def test_cli_group_answers(example_site: Path) -> None:
    env = env_with(example_site)
    done = run_cli("example", "hello", "Ada", env=env)
    assert done.stdout.strip() == "hello Ada, from the example plugin 0.3.1"
    assert done.stderr == ""
    assert "example" in run_cli("--help", env=env).stdout


def test_plugins_and_info_list_the_plugin(example_site: Path, tmp_path: Path) -> None:
    env = env_with(example_site)
    listed = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert [(p["name"], p["version"], p["status"]) for p in listed] == [
        ("example", "0.3.1", "loaded")
    ]
    assert set(listed[0]["registered"]) == set(KINDS)
    text = run_cli("plugins", env=env).stdout
    assert "example" in text and "0.3.1" in text and "loaded" in text
    run_cli("init", str(tmp_path / "cat"), env=env)
    info = json.loads(run_cli("--catalog", str(tmp_path / "cat"), "info", "--json", env=env).stdout)
    assert info["plugins"] == [{"name": "example", "version": "0.3.1", "status": "loaded"}]
    assert "example 0.3.1 loaded" in run_cli("-C", str(tmp_path / "cat"), "info", env=env).stdout
    shown = json.loads(run_cli("plugins", "show", "example", "--json", env=env).stdout)
    assert shown == listed[0]
    missing = run_cli("plugins", "show", "nope", env=env, check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "error: no plugin 'nope' (example); run `arcodex plugins` to list them\n",
    )


# -- what goes wrong -------------------------------------------------------------------------


def test_a_broken_plugin_is_one_line_and_nothing_it_registered(all_plugins: None) -> None:
    found = {p.name: p for p in registry().plugins()}
    assert found["broken"].status == "failed"
    assert found["broken"].error == BROKEN_LINE
    assert found["broken"].registered == {}
    assert "broken-store" not in registry().stores()
    assert found["example"].status == "loaded"
    assert found["later"].status == "loaded"


def test_clashes_are_refused_for_the_later_plugin(all_plugins: None) -> None:
    registry().reserve("cli", ["search"])
    stores = registry().stores()
    assert registry().owner("store", "example") == "example"
    assert "later-store" in stores
    assert "search" not in registry().cli_apps()
    later = next(p for p in registry().plugins() if p.name == "later")
    assert later.refused == [
        "plugin 'later' (dist arcodex-broken-plugin 1.2): command group 'search' is built "
        "into arcodex; refused",
        "plugin 'later' (dist arcodex-broken-plugin 1.2): store kind 'example' is already "
        "registered by plugin 'example'; refused",
    ]
    assert later.registered["store"] == ["later-store"]


def test_the_command_still_works_with_a_broken_plugin(
    example_site: Path, broken_site: Path, tmp_path: Path, station: Path
) -> None:
    env = env_with(example_site, broken_site, ARCODEX_CATALOG=str(tmp_path / "cat"))
    run_cli("init", str(tmp_path / "cat"), env=env)
    added = run_cli("add", str(station), "--json", env=env)
    (record,) = json.loads(added.stdout)["records"]
    assert record["metadata"]["example"]["station"] == "alpha"  # the example still works
    warnings = added.stderr.splitlines()
    assert f"warning: {BROKEN_LINE}" in warnings
    assert all(w.startswith("warning: plugin ") for w in warnings)  # one line each, no more
    assert len([w for w in warnings if "'broken'" in w]) == 1
    logs = json.loads(run_cli("logs", "--event", "plugin.*", "--json", env=env).stdout)
    failed = [e for e in logs if e["event"] == "plugin.failed"]
    assert [(e["plugin"], e["message"]) for e in failed] == [("broken", BROKEN_LINE)]
    assert any(e["event"] == "plugin.refused" and e["plugin"] == "later" for e in logs)
    # The failing plugin extractor is noted on the record, and the add went on.
    (errors,) = [a["metadata"].get("extract_errors", []) for a in record["artifacts"]]
    assert errors == [
        "later-failing: plugin extractor failed: RuntimeError: cannot parse the station file"
    ]
    refused = [e["message"] for e in logs if e["event"] == "plugin.refused"]
    assert any("hook refused: unknown hook point 'no_such_point'" in m for m in refused)
    listed = run_cli("plugins", env=env)
    assert BROKEN_LINE in " ".join(listed.stdout.split())
    assert listed.stderr == ""  # the listing says it all
    later = next(
        p for p in json.loads(run_cli("plugins", "--json", env=env).stdout) if p["name"] == "later"
    )
    assert (
        "plugin 'later' (dist arcodex-broken-plugin 1.2): command group 'search' is built into arcodex; refused"
        in later["refused"]
    )
    assert later["registered"]["store"] == ["later-store"]


def test_plugins_off_loads_nothing(example_site: Path, broken_site: Path, tmp_path: Path) -> None:
    env = env_with(example_site, broken_site, ARCODEX_PLUGINS="off")
    listed = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert {p["name"]: p["status"] for p in listed} == {
        "broken": "disabled",
        "example": "disabled",
        "later": "disabled",
    }
    unknown = run_cli("example", "hello", "x", env=env, check=False)
    assert unknown.returncode == 2 and "no such command 'example'" in unknown.stderr


def test_allow_list_from_the_environment_and_the_config(
    example_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    env = env_with(example_site, broken_site, ARCODEX_PLUGINS="example")
    listed = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert {p["name"]: p["status"] for p in listed} == {
        "broken": "disabled",
        "example": "loaded",
        "later": "disabled",
    }
    root = tmp_path / "cat"
    env = env_with(example_site, broken_site)
    run_cli("init", str(root), env=env)
    config = (root / "arcodex.yaml").read_text(encoding="utf-8")
    (root / "arcodex.yaml").write_text(config + "plugins:\n  allow: [later]\n", encoding="utf-8")
    listed = json.loads(run_cli("-C", str(root), "plugins", "--json", env=env).stdout)
    assert {p["name"]: p["status"] for p in listed} == {
        "broken": "disabled",
        "example": "disabled",
        "later": "loaded",
    }
    (root / "arcodex.yaml").write_text(config + "plugins:\n  enabled: false\n", encoding="utf-8")
    listed = json.loads(run_cli("-C", str(root), "plugins", "--json", env=env).stdout)
    assert {p["status"] for p in listed} == {"disabled"}
    # The variable wins over the file.
    env["ARCODEX_PLUGINS"] = "on"
    listed = json.loads(run_cli("-C", str(root), "plugins", "--json", env=env).stdout)
    assert {p["name"]: p["status"] for p in listed}["example"] == "loaded"


def test_configure_after_discovery_filters_and_loads(all_plugins: None) -> None:
    registry().configure(allow=["example"])
    assert registry().stores() == {"example": registry().stores()["example"]}
    assert "arcodex_broken_plugin" not in sys.modules
    registry().configure(enabled=True, allow=None)
    assert "later-store" in registry().stores()
    registry().configure(enabled=False)
    assert registry().stores() == {} and registry().loaded_versions() == {}


def test_bad_registrations_fail_the_plugin() -> None:
    registrar = PluginRegistrar("p")
    with pytest.raises(ImportError, match="must be callable"):
        registrar.add_step("s", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ImportError, match="non-empty list of step names"):
        registrar.add_pipeline("p", [])
    registrar.add_store("k", dict)
    with pytest.raises(ImportError, match="registered twice"):
        registrar.add_store("k", dict)


def test_bad_plugins_setting_is_one_line(example_site: Path) -> None:
    done = run_cli("plugins", env=env_with(example_site, ARCODEX_PLUGINS=" , "), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: bad ARCODEX_PLUGINS")
    assert len(done.stderr.strip().splitlines()) == 1
    helped = run_cli("--help", env=env_with(example_site, ARCODEX_PLUGINS=" , "))
    assert helped.stderr.startswith("warning: bad ARCODEX_PLUGINS")
    assert "search" in helped.stdout
