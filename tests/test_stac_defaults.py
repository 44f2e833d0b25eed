"""A user's own data gets valid STAC: every way to name its provider and license works, and a
Collection that names none says how to fix it (``stac validate``, ``stac export``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arcodex.catalog import Catalog, load_config
from arcodex.cli import app
from arcodex.errors import ValidationError

pytest.importorskip("pystac")
xr = pytest.importorskip("xarray")
np = pytest.importorskip("numpy")

DEFAULTS = """
stac_defaults:
  license: CC-BY-4.0
  providers: [{name: My Lab, roles: [producer, host], url: https://lab.example.org}]
"""


def _plain(path: Path, start: str, **attrs: Any) -> Path:
    """A NetCDF file as plain xarray writes it: no institution, no license."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.ones((3, 2, 4), "f4"), {"units": "K"})},
        coords={
            "time": pd.date_range(start, periods=3, freq="D"),
            "lat": [10.0, 20.0],
            "lon": [0.0, 10.0, 20.0, 30.0],
        },
        attrs=attrs,
    ).to_netcdf(path)
    return path


def _cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--catalog", str(root), *args])


@pytest.fixture(scope="module")
def fresh(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> tuple[Path, str]:
    """A new catalog with one product converted from plain generated files."""
    base = tmp_path_factory.mktemp("defaults")
    files = [_plain(base / "data" / f"tas_{m}.nc", f"2020-0{m}-01") for m in (1, 2)]
    assert _cli(base / "cat", "init", str(base / "cat")).exit_code == 0
    done = _cli(
        base / "cat", "convert", *map(str, files), "--to", "zarr", "--cluster", "threads", "--json"
    )
    assert done.exit_code == 0, done.output
    return base / "cat", json.loads(done.stdout)["record"]


@pytest.fixture
def copy(
    fresh: tuple[Path, str], tmp_path: Path, copy_catalog: Callable[[Path, Path], Path]
) -> tuple[Path, str]:
    """The fresh catalog, copied so a test can change its configuration or records."""
    root, record_id = fresh
    return copy_catalog(root, tmp_path / "cat"), record_id


def test_a_fresh_product_fails_validation_naming_every_fix(fresh: tuple[Path, str]) -> None:
    root, record_id = fresh
    export = ["stac", "export", str(root / "out")]
    for args in (["stac", "validate"], ["stac", "validate", record_id], export):
        done = _cli(root, *args)
        assert done.exit_code == 1, done.output
        text = " ".join(done.output.split())
        assert "'providers' is a required property" in text
        for fix in (
            "institution, creator_name or publisher_name",
            "arcodex convert --set-attr institution=",
            f"arcodex update {record_id} --set institution=",
            "arcodex.yaml (stac_defaults: providers: [{name: My Lab, roles: [producer, host]}])",
        ):
            assert fix in text, (fix, text)
    assert not (root / "out").exists(), "an invalid catalog is not exported"


def test_catalog_defaults_make_it_valid_and_exportable(copy: tuple[Path, str]) -> None:
    root, record_id = copy
    with (root / "arcodex.yaml").open("a", encoding="utf-8") as fh:
        fh.write(DEFAULTS)
    assert _cli(root, "stac", "validate").exit_code == 0
    done = _cli(root, "stac", "export", str(root / "out"))
    assert done.exit_code == 0, done.output
    collection = json.loads((root / "out" / record_id / "collection.json").read_text())
    assert collection["license"] == "CC-BY-4.0"
    assert collection["providers"] == [
        {"name": "My Lab", "roles": ["producer", "host"], "url": "https://lab.example.org"}
    ]


def test_a_records_own_provider_and_license_win(copy: tuple[Path, str]) -> None:
    root, record_id = copy
    with (root / "arcodex.yaml").open("a", encoding="utf-8") as fh:
        fh.write(DEFAULTS)
    done = _cli(
        root, "update", record_id, "--set", "institution=Ocean Institute", "--set", "license=MIT"
    )
    assert done.exit_code == 0, done.output
    from arcodex.stac import collection_for

    with Catalog.open(root) as cat:
        collection = collection_for(cat.get(record_id), cat).to_dict()
    assert collection["license"] == "MIT"
    assert [p["name"] for p in collection["providers"]] == ["Ocean Institute"]


def test_update_set_makes_it_valid(copy: tuple[Path, str]) -> None:
    root, record_id = copy
    assert _cli(root, "update", record_id, "--set", "creator_name=A. Person").exit_code == 0
    done = _cli(root, "stac", "validate", record_id)
    assert done.exit_code == 0, done.output


def test_netcdf_attributes_make_it_valid(tmp_path: Path) -> None:
    """Attributes in the sources, or set by the conversion, name the provider and license."""
    root = tmp_path / "cat"
    assert _cli(root, "init", str(root)).exit_code == 0
    own = _plain(tmp_path / "own.nc", "2020-01-01", institution="Met Lab", license="CC0-1.0")
    plain = _plain(tmp_path / "plain.nc", "2020-02-01")
    ids = []
    for extra in ([str(own)], [str(plain), "--set-attr", "publisher_name=Data Centre"]):
        done = _cli(root, "convert", *extra, "--to", "zarr", "--cluster", "threads", "--json")
        assert done.exit_code == 0, done.output
        ids.append(json.loads(done.stdout)["record"])
    done = _cli(root, "stac", "validate")
    assert done.exit_code == 0, done.output
    from arcodex.stac import collection_for

    with Catalog.open(root) as cat:
        first, second = (collection_for(cat.get(i), cat).to_dict() for i in ids)
    assert first["license"] == "CC0-1.0" and first["providers"][0]["name"] == "Met Lab"
    assert second["license"] == "other" and second["providers"][0]["name"] == "Data Centre"


def test_served_collections_use_the_defaults(copy: tuple[Path, str]) -> None:
    import httpx

    from arcodex.testing import serve_catalog

    root, record_id = copy
    with (root / "arcodex.yaml").open("a", encoding="utf-8") as fh:
        fh.write(DEFAULTS)
    assert _cli(root, "publish", record_id).exit_code == 0
    with serve_catalog(root) as url:
        collection = httpx.get(f"{url}/stac/collections/{record_id}").json()
    assert collection["license"] == "CC-BY-4.0"
    assert [p["name"] for p in collection["providers"]] == ["My Lab"]


def test_group_collections_use_the_defaults_after_their_own(tmp_path: Path) -> None:
    from arcodex.catalog import CatalogConfig
    from arcodex.stac import build_documents, validate_stac

    config = CatalogConfig(
        stac_collections=[
            {"id": "mine", "where": ["tags=mine"]},
            {"id": "theirs", "where": ["tags=theirs"], "providers": [{"name": "Them"}]},
        ],
        stac_defaults=load_config_text(tmp_path, DEFAULTS).stac_defaults,
    )
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        cat.add_files([_plain(tmp_path / "a.nc", "2020-01-01")], kind="dataset", tags=["mine"])
        cat.add_files([_plain(tmp_path / "b.nc", "2021-01-01")], kind="dataset", tags=["theirs"])
        docs = build_documents(cat, open_data=False)
    groups = {d["id"]: d for d in docs.values() if d["type"] == "Collection"}
    assert [p["name"] for p in groups["mine"]["providers"]] == ["My Lab"]
    assert groups["mine"]["license"] == "CC-BY-4.0"
    assert [p["name"] for p in groups["theirs"]["providers"]] == ["Them"]
    report = validate_stac(list(docs.values()))
    assert report.valid, report.to_dict()


def test_a_group_without_providers_says_where_to_set_them(tmp_path: Path) -> None:
    from arcodex.catalog import CatalogConfig
    from arcodex.stac import build_documents, validate_stac

    config = CatalogConfig(stac_collections=[{"id": "mine", "where": ["tags=mine"]}])
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        cat.add_files([_plain(tmp_path / "a.nc", "2020-01-01")], kind="dataset", tags=["mine"])
        docs = build_documents(cat, open_data=False)
    [problem] = validate_stac(list(docs.values())).problems
    assert problem.id == "mine"
    assert "stac_collections entry mine" in problem.message
    assert "stac_defaults: providers:" in problem.message


def load_config_text(root: Path, text: str) -> Any:
    (root / "arcodex.yaml").write_text(text, encoding="utf-8")
    return load_config(root)


def test_a_bad_provider_role_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        load_config_text(tmp_path, DEFAULTS.replace("host]", "hoster]"))
    message = str(info.value)
    assert "\n" not in message
    assert "stac_defaults.providers.0.roles.1" in message and "'host'" in message
