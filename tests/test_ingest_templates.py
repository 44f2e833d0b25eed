"""Dataset templates and extents: loading with file:line:field errors, providers by name,
plugins' templates and providers, the listing over the CLI and a live server, periods."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.errors import NotFoundError, PluginError, ValidationError
from arcodex.ingest import (
    Extent,
    LoadError,
    PeriodType,
    Provider,
    Template,
    get_extent,
    get_provider,
    get_template,
    load_extent_file,
    load_extents,
    load_template_file,
    load_templates,
    parse_period,
    period_id,
    period_range,
    provider_names,
)
from arcodex.plugins import registry

PLUGIN = Path(__file__).parent / "plugins" / "arcodex_ingest_plugin"
BUILT_IN = ["files", "http", "s3", "remote-zarr"]
#: Values that must never reach a listing (the template below holds them).
SECRETS = ("s3cr3t-key", "t0ken-value", "hunter2", "nested-secret", "/srv/private", "relative/")

ERA5 = """\
# ERA5 daily means
id: era5-t2m
name: ERA5 2m temperature
description: Daily mean 2 m temperature
period: daily
variables:
  t2m: {units: K, long_name: 2 m temperature}
provider:
  name: files
  params:
    directory: /srv/private/era5
    path: relative/era5-files
    options_dir: {cache: relative/http-cache}
    cache: relative/http-cache
    pattern: "era5_{period}.nc"
    api_key: s3cr3t-key
    access: {token: t0ken-value, region: eu}
    url: https://user:hunter2@example.org/era5
    options: {auth: {secret: nested-secret}, retries: 3}
availability: {lag: 5D}
transforms:
  rename: {t2m: tas}
target: {format: icechunk, dest: /srv/private/era5/products, chunks: {time: 30}}
display: {colormap: viridis, range: [220, 320]}
"""
MORE = """\
- id: chirps
  period: monthly
  provider: {name: http, params: {url: "https://data.example.org/chirps/{period}.nc"}}
  sync: release
---
id: static-dem
period: yearly
provider: {name: s3, params: {prefix: dem/}}
sync: static
"""
EXTENTS = """\
- id: sierra-leone
  name: Sierra Leone
  bbox: [-13.5, 6.9, -10.2, 10.0]
- id: pacific
  bbox: [170, -20, -170, 0]
  geometry: {type: Polygon, coordinates: [[[170, -20], [190, -20], [190, 0], [170, -20]]]}
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.create(tmp_path / "cat") as cat:
        yield cat


@pytest.fixture
def filled(catalog: Catalog) -> Catalog:
    write(catalog.root, "templates/era5.yaml", ERA5)
    write(catalog.root, "templates/more/more.yml", MORE)
    write(catalog.root, "extents/areas.yaml", EXTENTS)
    return catalog


def problems_of(catalog: Catalog, kind: str = "templates") -> list[str]:
    with pytest.raises(LoadError) as caught:
        (load_templates if kind == "templates" else load_extents)(catalog)
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert isinstance(caught.value, ValidationError)
    return caught.value.problems


# -- loading ----------------------------------------------------------------------------------


def test_templates_and_extents_load_from_the_default_directories(filled: Catalog) -> None:
    templates = load_templates(filled)
    assert list(templates) == ["chirps", "era5-t2m", "static-dem"]
    era5 = templates["era5-t2m"]
    assert era5.period == "daily"
    assert era5.provider.name == "files"
    assert era5.provider.params["pattern"] == "era5_{period}.nc"
    assert era5.availability.lag == "5D"
    assert era5.transforms.rename == {"t2m": "tas"}
    assert era5.target.chunks == {"time": 30}
    assert era5.display.range == (220.0, 320.0)
    assert templates["chirps"].sync == "release"
    extents = load_extents(filled)
    assert list(extents) == ["pacific", "sierra-leone"]
    assert extents["sierra-leone"].bbox == (-13.5, 6.9, -10.2, 10.0)
    assert get_template(filled, "chirps").period == "monthly"
    assert get_extent(filled, "pacific").geometry is not None
    with pytest.raises(NotFoundError, match=r"no template 'nope'; the templates are: chirps, era5"):
        get_template(filled, "nope")
    with pytest.raises(NotFoundError, match="no extent 'nope'; the extents are: pacific"):
        get_extent(filled, "nope")


def test_a_catalog_without_the_directories_has_none(catalog: Catalog) -> None:
    assert load_templates(catalog) == {}
    assert load_extents(catalog) == {}


def test_the_config_names_the_directories(tmp_path: Path) -> None:
    config = CatalogConfig(ingest={"templates": "defs/datasets", "extents": "defs/areas"})
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        write(cat.root, "defs/datasets/era5.yaml", ERA5)
        write(cat.root, "defs/areas/a.yaml", EXTENTS)
        write(cat.root, "templates/ignored.yaml", "id: [not read")
        assert list(load_templates(cat)) == ["era5-t2m"]
        assert list(load_extents(cat)) == ["pacific", "sierra-leone"]
    with Catalog.open(tmp_path / "cat") as cat:
        assert cat.config.ingest.templates == "defs/datasets"
        shutil.rmtree(cat.root / "defs" / "areas")
        assert problems_of(cat, "extents") == [
            "arcodex.yaml: ingest.extents: 'defs/areas' is not a directory under the catalog; "
            "create it or fix the setting"
        ]


def test_one_file_loads_alone(tmp_path: Path) -> None:
    path = write(tmp_path, "more.yaml", MORE)
    assert [t.id for t in load_template_file(path)] == ["chirps", "static-dem"]
    assert [e.id for e in load_extent_file(write(tmp_path, "a.yaml", EXTENTS))] == [
        "pacific",
        "sierra-leone",
    ]
    with pytest.raises(LoadError, match=r"more\.yaml:3: provider\.name: no provider"):
        load_template_file(write(tmp_path, "more.yaml", MORE.replace("name: http", "name: ftp")))


BAD = """\
id: t1
period: weekly
provider:
  params: {a: 1}
sync: temporal
colour: red
---
- id: t2
  period: daily
  provider: {name: files}
  display:
    range: [0, "high"]
- id: t3
  period: daily
  provider: {name: nowhere}
- id: t4
  period: daily
  provider: {name: files}
  variables: {t2m: {units: K}}
  transforms:
    units: {pr: {to: mm}}
- id: Not An Id
  period: daily
  provider: {name: files, parms: {}}
"""


def test_every_problem_names_the_file_the_line_and_the_field(catalog: Catalog) -> None:
    write(catalog.root, "templates/bad.yaml", BAD)
    found = problems_of(catalog)
    expected = {
        "templates/bad.yaml:2: period: input should be 'hourly', 'daily', 'monthly' or "
        "'yearly'; fix the value",
        "templates/bad.yaml:3: provider.name: field required; add it",
        "templates/bad.yaml:6: colour: unknown field; remove it or fix its name (the fields "
        "here are: id, name, description, variables, period, provider, sync, availability, "
        "transforms, target, display)",
        "templates/bad.yaml:12: display.range[1]: input should be a valid number, unable to "
        "parse string as a number; fix the value",
        "templates/bad.yaml:15: provider.name: no provider 'nowhere'; use one of: "
        + ", ".join(provider_names()),
        "templates/bad.yaml:16: transforms.units names ['pr'], not variables of the template; "
        "fix the template",
        "templates/bad.yaml:22: id: not an id; write lowercase letters, digits, '.', '_' or '-' "
        "(at most 100, starting with a letter or digit)",
        "templates/bad.yaml:24: provider.parms: unknown field; remove it or fix its name (the "
        "fields here are: name, params)",
    }
    assert set(found) == expected
    assert len(found) == len(expected)


def test_bad_extents_name_their_line(catalog: Catalog) -> None:
    write(
        catalog.root,
        "extents/bad.yaml",
        "id: north\nname: North\nbbox: [0, 80, 10, 70]\n---\nid: flat\nbbox: [0, 1, 2]\n"
        "---\nid: nobox\n",
    )
    assert problems_of(catalog, "extents") == [
        "extents/bad.yaml:3: bbox: south and north must be latitudes with south <= north; "
        "fix the value",
        "extents/bad.yaml:6: bbox[3]: field required; add it",
        "extents/bad.yaml:8: bbox: field required; add it",
    ]


def test_bad_yaml_and_documents_that_are_no_mapping(catalog: Catalog) -> None:
    write(catalog.root, "templates/a-syntax.yaml", "id: era5\nprovider: {name: files\nperiod: x\n")
    write(catalog.root, "templates/b-scalar.yaml", "just text\n")
    write(catalog.root, "templates/c-list.yaml", "- 1\n- 2\n")
    write(catalog.root, "templates/d-empty.yaml", "---\n# nothing\n")
    found = problems_of(catalog)
    assert len(found) == 3
    assert found[0].startswith("templates/a-syntax.yaml:3: not valid YAML: ")
    assert found[0].endswith("; fix the syntax")
    assert found[1:] == [
        "templates/b-scalar.yaml:1: a document must be a mapping of fields, or a list of them; "
        "fix the file",
        "templates/c-list.yaml:1: a document must be a mapping of fields, or a list of them; "
        "fix the file",
    ]


def test_a_duplicate_id_names_both_files(catalog: Catalog) -> None:
    write(catalog.root, "templates/a.yaml", ERA5)
    write(catalog.root, "templates/b.yaml", "# a copy\n\n" + ERA5)
    write(catalog.root, "extents/one.yaml", EXTENTS)
    write(catalog.root, "extents/two.yaml", "id: pacific\nbbox: [0, 0, 1, 1]\n")
    assert problems_of(catalog) == [
        "templates/b.yaml:4: id 'era5-t2m' is already defined at templates/a.yaml:2; "
        "rename or remove one of them"
    ]
    assert problems_of(catalog, "extents") == [
        "extents/two.yaml:1: id 'pacific' is already defined at extents/one.yaml:4; "
        "rename or remove one of them"
    ]


def test_an_edited_file_is_read_again(filled: Catalog) -> None:
    assert load_templates(filled)["era5-t2m"].name == "ERA5 2m temperature"
    path = filled.root / "templates" / "era5.yaml"
    path.write_text(ERA5.replace("name: ERA5 2m temperature", "name: ERA5 T2m"), "utf-8")
    assert load_templates(filled)["era5-t2m"].name == "ERA5 T2m"
    path.unlink()
    assert "era5-t2m" not in load_templates(filled)


def test_models_round_trip(filled: Catalog) -> None:
    for template in load_templates(filled).values():
        assert Template.model_validate(template.model_dump()) == template
        assert Template.model_validate_json(template.model_dump_json()) == template
        assert Template.model_validate(json.loads(template.model_dump_json())) == template
    for extent in load_extents(filled).values():
        assert Extent.model_validate(extent.model_dump(mode="json")) == extent


# -- providers --------------------------------------------------------------------------------


def test_built_in_providers_are_known_by_name(catalog: Catalog) -> None:
    assert provider_names()[:4] == BUILT_IN
    files = get_provider("files", catalog)
    assert isinstance(files, Provider)
    assert type(files).__name__ == "FilesProvider"
    with pytest.raises(NotFoundError, match="no provider 'ftp'; the providers are: files, http"):
        get_provider("ftp")


def test_a_missing_provider_module_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.ingest import _registry

    monkeypatch.setitem(_registry.BUILTIN_PROVIDERS, "gone", "arcodex.ingest._gone:GoneProvider")
    with pytest.raises(PluginError) as caught:
        get_provider("gone")
    assert str(caught.value) == (
        "provider 'gone' (arcodex.ingest._gone:GoneProvider) cannot be loaded: "
        "arcodex.ingest._gone is missing; reinstall or upgrade arcodex"
    )
    # A module that is there but needs a package that is not.
    monkeypatch.setitem(_registry.BUILTIN_PROVIDERS, "gone", "arcodex_ingest_needs:Provider")
    monkeypatch.syspath_prepend(
        str(write(tmp_path, "arcodex_ingest_needs.py", "import zzz_nope\n").parent)
    )
    with pytest.raises(PluginError) as caught:
        get_provider("gone")
    assert str(caught.value) == (
        "provider 'gone' (arcodex_ingest_needs:Provider) cannot be loaded: it needs zzz_nope, "
        "which is not installed; install the package that provides it"
    )


# -- plugins ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingest plugin installed as pip would (its package and a .dist-info)."""
    site = tmp_path_factory.mktemp("site-ingest")
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    shutil.copytree(PLUGIN / "src" / "arcodex_ingest_plugin", site / "arcodex_ingest_plugin")
    info = site / f"arcodex_ingest_plugin-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n", "utf-8"
    )
    entries = meta["entry-points"]["arcodex.plugins"]
    (info / "entry_points.txt").write_text(
        "[arcodex.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()), "utf-8"
    )
    return site


@contextmanager
def installed(site: Path, allow: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("ARCODEX_PLUGINS", allow)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    registry().reset()
    try:
        registry().plugins()
        yield sys.modules["arcodex_ingest_plugin"]
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("arcodex_ingest_plugin", None)
        importlib.invalidate_caches()
        registry().reset()


def test_a_plugins_provider_and_template(
    filled: Catalog, plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with installed(plugin_site, "ingest", monkeypatch) as plugin:
        assert provider_names() == [*BUILT_IN, "grid"]
        grid = get_provider("grid", filled)
        assert isinstance(grid, Provider)
        assert [filled] == plugin.MADE_WITH
        # The plugin's claim on a built-in name is refused, and the built-in one is used.
        assert type(get_provider("files")).__module__ == "arcodex.ingest._files"
        found = {p.name: p for p in registry().plugins()}["ingest"]
        assert found.refused == [
            "plugin 'ingest' (dist arcodex-ingest-plugin 0.1.0): provider 'files' is built "
            "into arcodex; refused"
        ]
        templates = load_templates(filled)
        assert list(templates) == ["chirps", "era5-t2m", "grid-monthly", "static-dem"]
        assert templates["grid-monthly"].provider.name == "grid"
        # A file defining the plugin's id is named with the plugin.
        write(filled.root, "templates/grid.yaml", "id: grid-monthly\nperiod: daily\n"
              "provider: {name: grid}\n")  # fmt: skip
        assert problems_of(filled) == [
            "plugin 'ingest' (template 'grid-monthly'): id 'grid-monthly' is already defined "
            "at templates/grid.yaml:1; rename or remove one of them"
        ]
    with pytest.raises(NotFoundError, match="no provider 'grid'"):
        get_provider("grid")


def test_a_plugins_bad_templates_are_named_with_the_plugin(
    catalog: Catalog, plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with installed(plugin_site, "ingest_bad", monkeypatch):
        assert problems_of(catalog) == [
            "plugin 'ingest_bad' (template 'no-provider'): provider: field required; add it",
            "plugin 'ingest_bad' (template 'lost'): provider.name: no provider 'nowhere'; "
            "use one of: " + ", ".join(BUILT_IN),
        ]


# -- the listing ------------------------------------------------------------------------------


def test_the_cli_lists_templates_and_extents(filled: Catalog) -> None:
    from arcodex.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["--catalog", str(filled.root), "templates", "--json"])
    assert done.exit_code == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [t["id"] for t in listed] == ["chirps", "era5-t2m", "static-dem"]
    era5 = listed[1]
    assert era5["provider"] == {
        "name": "files",
        "params": {
            "pattern": "era5_{period}.nc",
            "access": {"region": "eu"},
            "options": {"retries": 3},
        },
    }
    assert "dest" not in era5["target"]
    for secret in SECRETS:
        assert secret not in done.stdout
    table = runner.invoke(app, ["--catalog", str(filled.root), "templates"])
    assert table.exit_code == 0, table.stderr
    for word in ("era5-t2m", "ERA5 2m temperature", "daily", "files", "chirps", "release"):
        assert word in table.stdout
    extents = runner.invoke(app, ["--catalog", str(filled.root), "extents", "--json"])
    assert extents.exit_code == 0, extents.stderr
    assert [e["id"] for e in json.loads(extents.stdout)] == ["pacific", "sierra-leone"]
    text = runner.invoke(app, ["--catalog", str(filled.root), "extents"])
    assert "Sierra Leone" in text.stdout
    assert "-13.5, 6.9, -10.2, 10" in text.stdout


def test_the_cli_prints_each_problem_on_a_line(catalog: Catalog) -> None:
    from arcodex.cli import app

    write(catalog.root, "templates/bad.yaml", "id: t1\nperiod: daily\nprovider: {}\nsync: x\n")
    done = CliRunner().invoke(app, ["--catalog", str(catalog.root), "templates"])
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        "error: templates/bad.yaml:3: provider.name: field required; add it",
        "error: templates/bad.yaml:4: sync: input should be 'temporal', 'release' or 'static'; "
        "fix the value",
    ]
    empty = CliRunner().invoke(app, ["--catalog", str(catalog.root), "extents"])
    assert empty.exit_code == 0
    assert empty.stdout.startswith("no extents; add YAML files to extents/")


def test_the_server_lists_them_and_sees_edits(filled: Catalog) -> None:
    import httpx

    from arcodex.testing import serve_catalog

    with (
        serve_catalog(filled.root, reload_interval=0.0) as base,
        httpx.Client(base_url=base) as http,
    ):
        listing = http.get("/templates")
        assert listing.status_code == 200
        body = listing.json()
        assert body["kind"] == "templates"
        assert [t["id"] for t in body["items"]] == ["chirps", "era5-t2m", "static-dem"]
        assert body["links"] == [
            {"href": f"{base}/templates", "rel": "self", "type": "application/json"}
        ]
        one = http.get("/templates/era5-t2m")
        assert one.status_code == 200
        assert one.json()["links"][0]["href"] == f"{base}/templates/era5-t2m"
        assert one.json()["variables"]["t2m"]["units"] == "K"
        for response in (listing, one):
            for secret in SECRETS:
                assert secret not in response.text
            assert str(filled.root) not in response.text
        missing = http.get("/templates/nope")
        assert missing.status_code == 404
        assert missing.json()["description"] == "no template 'nope'; GET /templates lists them"
        extents = http.get("/extents").json()
        assert extents["kind"] == "extents"
        assert [e["id"] for e in extents["items"]] == ["pacific", "sierra-leone"]
        assert http.get("/extents/sierra-leone").json()["bbox"] == [-13.5, 6.9, -10.2, 10.0]
        assert http.get("/extents/nope").status_code == 404
        # An edit is seen without a restart; a broken file keeps the last good set served.
        write(filled.root, "templates/new.yaml", "id: new-one\nperiod: hourly\n"
              "provider: {name: files}\n")  # fmt: skip
        assert "new-one" in [t["id"] for t in http.get("/templates").json()["items"]]
        write(filled.root, "templates/new.yaml", "id: new-one\nperiod: hourly\n")
        kept = http.get("/templates")
        assert kept.status_code == 200
        assert "new-one" in [t["id"] for t in kept.json()["items"]]
        api = http.get("/api").json()
        assert {
            "/templates",
            "/templates/{template_id}",
            "/extents",
            "/extents/{extent_id}",
        } <= set(api["paths"])


def test_the_server_answers_503_until_the_files_load(catalog: Catalog) -> None:
    import httpx

    from arcodex.testing import serve_catalog

    write(catalog.root, "extents/bad.yaml", "id: x\n")
    with serve_catalog(catalog.root) as base, httpx.Client(base_url=base) as http:
        refused = http.get("/extents")
        assert refused.status_code == 503
        assert refused.json() == {
            "code": "ServiceUnavailable",
            "description": "the extents do not load; the server's log names each problem",
        }
        assert "bad.yaml" not in refused.text
        assert http.get("/templates").json()["items"] == []
        write(catalog.root, "extents/bad.yaml", "id: x\nbbox: [0, 0, 1, 1]\n")
        assert [e["id"] for e in http.get("/extents").json()["items"]] == ["x"]


# -- periods ----------------------------------------------------------------------------------

PERIOD_TYPES = st.sampled_from(["hourly", "daily", "monthly", "yearly"])
MOMENTS = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31))
FREQ = {"hourly": "h", "daily": "D", "monthly": "M", "yearly": "Y"}


@settings(max_examples=200, deadline=None)
@given(moment=MOMENTS, period_type=PERIOD_TYPES)
def test_a_period_is_the_pandas_period_holding_the_moment(
    moment: datetime, period_type: PeriodType
) -> None:
    import pandas as pd

    period = parse_period(moment.isoformat(), period_type)
    assert period == pd.Period(pd.Timestamp(moment), freq=FREQ[period_type])
    assert period.start_time <= pd.Timestamp(moment) <= period.end_time
    ident = period_id(period, period_type)
    assert parse_period(ident, period_type) == period
    assert ident == moment.strftime(
        {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}[
            period_type
        ]
    )


@settings(max_examples=150, deadline=None)
@given(a=MOMENTS, b=MOMENTS, period_type=st.sampled_from(["daily", "monthly", "yearly"]))
def test_a_period_range_is_pandas_period_range(
    a: datetime, b: datetime, period_type: PeriodType
) -> None:
    import pandas as pd

    start, end = sorted([a, b])
    if period_type == "daily" and (end - start).days > 3000:
        end = start + (end - start) / 100  # keep the lists short
    got = period_range(start.isoformat(), end.isoformat(), period_type)
    want = pd.period_range(
        pd.Period(start, freq=FREQ[period_type]), pd.Period(end, freq=FREQ[period_type])
    )
    assert got == list(want)
    assert got[0].start_time <= pd.Timestamp(start) and pd.Timestamp(end) <= got[-1].end_time
    if got[0] != got[-1]:
        with pytest.raises(ValidationError, match="is before start"):
            period_range(end.isoformat(), start.isoformat(), period_type)


@pytest.mark.parametrize("text", ["", "NaT", "nan", "yesterday", "2020-13", "2020-02-30"])
def test_a_bad_period_says_what_to_write(text: str) -> None:
    with pytest.raises(ValidationError, match="write a date such as Y-m-d"):
        parse_period(text, "daily")
