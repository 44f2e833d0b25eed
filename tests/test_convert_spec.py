"""One spec for a product (`ConvertSpec`), convert/update as pipelines, and dry runs.

The spec round-trips through its dict form and JSON Schema, refuses bad values
with one line naming the field, is stored with the product (so the product can
be made again from it), and the CLI builds it from a file with only the flags
the user typed on top. A dry run resolves, scans and plans, and writes and
registers nothing.
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
from arcodex.convert import ConvertSpec, convert, open_product, update
from arcodex.errors import ConflictError, ValidationError
from arcodex.testing import assert_same_values, sources_dataset

xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")

REPO = Path(__file__).resolve().parent.parent


def _spec(**changes: Any) -> ConvertSpec:
    fields: dict[str, Any] = {
        "sources": ["a.nc", "b.nc"],
        "to": "icechunk",
        "dest": "s3://bucket/out.icechunk",
        "dest_profile": "archive",
        "concat_dim": "time",
        "variables": ["tas"],
        "chunks": {"time": 8, "lat": -1},
        "chunking": "timeseries",
        "chunk_mb": 4.0,
        "codec": "zstd",
        "level": 5,
        "shards": {"time": 16},
        "attrs": {"global": {"set": {"title": "T"}}, "variables": {"tas": {"delete": ["x"]}}},
        "grid": "grid.nc",
        "grid_coords": {"nav_lon": "glamt"},
        "group": "daily",
        "tag": "v1",
        "check": False,
        "samples": 5,
        "cluster": "threads",
        "workers": 2,
        "title": "Air temperature",
        "overwrite": True,
        "pyramid": 3,
    }
    fields.update(changes)
    return ConvertSpec(**fields)


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


# -- the model ------------------------------------------------------------------------------


def test_spec_round_trips_through_its_dict_form() -> None:
    spec = _spec()
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = ConvertSpec.from_dict(data)
    assert again == spec
    assert again.to_dict() == data
    assert ConvertSpec.model_validate(spec.model_dump()) == spec
    # The dict form of a default spec is just as complete.
    assert ConvertSpec.from_dict(ConvertSpec(sources="x.nc").to_dict()).to == "zarr"


def test_spec_normalises_what_the_keywords_accept(tmp_path: Path) -> None:
    from arcodex.convert import AttrFixes

    spec = ConvertSpec(
        sources=tmp_path / "a.nc",
        chunks="time=24,lat=full",
        variables="tas, pr",
        attrs=AttrFixes.parse(["title=T"]),
        dest=tmp_path / "out.zarr",
    )
    assert spec.sources == str(tmp_path / "a.nc")
    assert spec.chunks == {"time": 24, "lat": -1}
    assert spec.variables == ["tas", "pr"]
    assert spec.attrs == {"global": {"set": {"title": "T"}}}
    assert spec.dest == str(tmp_path / "out.zarr")
    assert spec.replace(codec="zstd").codec == "zstd"


def test_json_schema_describes_every_field() -> None:
    schema = ConvertSpec.model_json_schema()
    assert set(schema["properties"]) == set(ConvertSpec.model_fields)
    assert schema["required"] == ["sources"]
    assert schema["properties"]["to"]["enum"] == ["zarr", "icechunk", "virtual"]
    assert json.loads(json.dumps(schema)) == schema


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"chunk_mb": 0}, "chunk_mb"),
        ({"codec": "lzma"}, "codec"),
        ({"to": "netcdf"}, "to"),
        ({"chunks": "time=x"}, "chunks"),
        ({"attrs": {"globals": {}}}, "attrs"),
        ({"colour": "red"}, "colour"),
        ({"samples": -1}, "samples"),
        ({"sources": 3}, "sources"),
    ],
)
def test_bad_values_are_one_line_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ConvertSpec.from_dict({"sources": "a.nc", **changes})
    message = str(info.value)
    assert f"{field}: " in message and "\n" not in message, message


def test_inconsistent_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Zarr format 3 only"):
        ConvertSpec(sources="a.nc", to="icechunk", zarr_format=2)
    with pytest.raises(ValidationError, match="sources: required"):
        ConvertSpec.from_dict({"to": "zarr"})


def test_an_in_memory_dataset_is_recorded_not_serialised() -> None:
    import numpy as np

    ds = xr.Dataset({"tas": (("time",), np.arange(3.0))})
    spec = ConvertSpec(sources=ds, dest="out.zarr")
    assert spec.in_memory and spec.sources is ds
    assert spec.to_dict()["sources"] == "<in-memory dataset>"
    assert ConvertSpec(sources=[ds, ds]).to_dict()["sources"] == ["<in-memory dataset>"] * 2
    with pytest.raises(ValidationError, match="pass the dataset as sources"):
        ConvertSpec.from_dict(spec.to_dict())


def test_spec_and_keywords_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        convert(ConvertSpec(sources="a.nc"), chunk_mb=2.0)


def test_spec_holds_no_secrets() -> None:
    assert "storage_options" not in ConvertSpec.model_fields
    assert "dest_options" not in ConvertSpec.model_fields


# -- stored with the product ------------------------------------------------------------------


def test_the_stored_spec_rebuilds_an_equal_product(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=3)
    with Catalog.create(tmp_path / "cat") as cat:
        spec = ConvertSpec(
            sources=str(tmp_path / "src" / "*.nc"),
            dest=str(tmp_path / "a.zarr"),
            chunks={"time": 4},
            codec="zstd",
            attrs={"global": {"set": {"title": "made from a spec"}}},
            cluster="threads",
        )
        first = convert(spec, catalog=cat)
        assert first.status == "pass", first.report
        stored = first.product.provenance()["parameters"]["spec"]
        # Every source, in order: the glob's files as they were.
        assert stored["sources"] == [str(f) for f in files]
        assert stored["codec"] == "zstd" and stored["chunks"] == {"time": 4}
        # The operation records the spec as given.
        [operation] = [o for o in cat.operations() if o.id == first.operation_id]
        assert operation.parameters["spec"] == spec.to_dict()
        again = convert(
            ConvertSpec.from_dict(stored).replace(dest=str(tmp_path / "b.zarr")), catalog=cat
        )
    assert again.status == "pass"
    with open_product(tmp_path / "a.zarr") as a, open_product(tmp_path / "b.zarr") as b:
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
        assert a.attrs["title"] == b.attrs["title"] == "made from a spec"
        assert_same_values(b, sources_dataset(files, raw=False))


def test_an_update_keeps_the_stored_spec_whole(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=4)
    old, new = files[:3], files[3:]
    dest = tmp_path / "a.zarr"
    convert([str(f) for f in old], dest=dest, cluster="threads", chunks="time=4")
    update(dest, ConvertSpec(sources=[str(f) for f in new], cluster="threads"))
    stored = open_product(dest).attrs  # the product opens; its spec names all four
    from arcodex.convert import Product

    spec = Product.detect(dest).provenance()["parameters"]["spec"]
    assert spec["sources"] == [str(f) for f in files]
    rebuilt = convert(ConvertSpec.from_dict(spec).replace(dest=str(tmp_path / "b.zarr")))
    with open_product(dest) as a, open_product(rebuilt.product.target.url) as b:
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert stored


# -- pipelines and dry runs -------------------------------------------------------------------


def test_convert_runs_as_named_steps(tmp_path: Path) -> None:
    from arcodex.convert._pipelines import CONVERT, UPDATE

    names = ["resolve-sources", "scan", "plan", "write", "check", "register"]
    assert CONVERT.names() == UPDATE.names() == names
    assert [s.name for s in CONVERT.steps if not s.changes] == names[:3]
    write_archive(tmp_path / "src", "regular", files=2)
    result = convert(str(tmp_path / "src"), dest=tmp_path / "a.zarr", cluster="threads")
    assert [name for name, _ in result.steps] == names
    assert list(result.to_dict()["timings"]) == names


def test_dry_run_writes_and_registers_nothing(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=3)
    with Catalog.create(tmp_path / "cat") as cat:
        before = (cat.count(), len(cat.operations(limit=1000)))
        result = convert(
            str(tmp_path / "src"), catalog=cat, chunks="time=4", shards="time=8", dry_run=True
        )
        assert (cat.count(), len(cat.operations(limit=1000))) == before
    assert not Path(result.product.target.url).exists()
    assert result.status == "dry-run" and result.record is None
    assert result.skipped == ["write", "check", "register"]
    data = result.to_dict()
    assert [f["url"] for f in data["files"]] == [str(f) for f in files]
    tas = data["layout"]["variables"]["tas"]
    assert tas["dims"] == ["time", "lat", "lon"] and tas["chunks"][0] == 4
    assert tas["shards"][0] == 8
    assert data["layout"]["codec"] == "blosc-zstd"
    assert data["layout"]["size"]["uncompressed_bytes"] >= 12 * 12 * 16 * 4
    assert data["first"] < data["last"]


def test_dry_run_update_leaves_the_product_as_it_is(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=4)
    dest = tmp_path / "a.zarr"
    convert([str(f) for f in files[:3]], dest=dest, cluster="threads")
    tree = sorted((p.relative_to(dest), p.stat().st_mtime_ns) for p in dest.rglob("*"))
    result = update(dest, str(files[3]), cluster="threads", dry_run=True)
    assert sorted((p.relative_to(dest), p.stat().st_mtime_ns) for p in dest.rglob("*")) == tree
    assert result.dry_run and result.changes["appended"] == [str(files[3])]
    assert result.changes["appended_steps"] == 4


def test_dry_run_reports_a_refusal(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "regular", files=2)
    dest = tmp_path / "taken.zarr"
    dest.mkdir()
    with pytest.raises(ConflictError, match="already exists"):
        convert(str(tmp_path / "src"), dest=dest, cluster="threads", dry_run=True)


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_spec_file_with_flags_on_top(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "regular", files=2)
    (tmp_path / "product.yaml").write_text(
        "sources: src/*.nc\ndest: out.zarr\nchunking: map\ncodec: zlib\ncluster: threads\n",
        encoding="utf-8",
    )
    done = _cli(
        "convert", "--spec", "product.yaml", "--codec", "zstd", "--print-spec", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    import yaml

    printed = yaml.safe_load(done.stdout)
    # Typed flags win; Typer's defaults (chunking: balanced) do not override the file.
    assert printed["codec"] == "zstd" and printed["chunking"] == "map"
    assert printed["sources"] == "src/*.nc"
    assert not (tmp_path / "out.zarr").exists()
    as_json = _cli("convert", "--spec", "product.yaml", "--print-spec", "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["codec"] == "zlib"


def test_cli_dry_run_and_convert_from_a_spec(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "regular", files=2)
    (tmp_path / "product.yaml").write_text(
        "sources: src/*.nc\ndest: out.zarr\ncluster: threads\n", encoding="utf-8"
    )
    dry = _cli("convert", "--spec", "product.yaml", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: convert would write zarr" in dry.stdout and "tas" in dry.stdout
    assert not (tmp_path / "out.zarr").exists()
    as_json = _cli("convert", "--spec", "product.yaml", "--dry-run", "--json", cwd=tmp_path)
    data = json.loads(as_json.stdout)
    assert data["dry_run"] and data["skipped"] == ["write", "check", "register"]
    assert not (tmp_path / "out.zarr").exists()
    done = _cli("convert", "--spec", "product.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "pass"
    refused = _cli("convert", "--spec", "product.yaml", "--dry-run", "--json", cwd=tmp_path)
    assert refused.returncode == 1
    assert "already exists" in json.loads(refused.stdout)["refused"]


def test_cli_bad_spec_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "product.yaml").write_text("sources: a.nc\nchunk_mb: -1\n", encoding="utf-8")
    done = _cli("convert", "--spec", "product.yaml", "--print-spec", cwd=tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "chunk_mb" in lines[0], done.stderr


def test_arcodex_run_lists_and_runs_convert_and_update(tmp_path: Path) -> None:
    write_archive(tmp_path / "src", "regular", files=3)
    Catalog.create(tmp_path / "cat").close()
    cat = ["--catalog", "cat"]
    listed = _cli(*cat, "pipelines", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    steps = {p["name"]: [s["name"] for s in p["steps"]] for p in json.loads(listed.stdout)}
    names = ["resolve-sources", "scan", "plan", "write", "check", "register"]
    assert steps["convert"] == names and steps["update"] == names
    first = ["src/regular_000.nc", "src/regular_001.nc"]
    options = ["-p", "cluster=threads", "-p", "key=products/tas.zarr"]
    bad = _cli(*cat, "run", "convert", *first, *options, "-p", "chunk_mb=-1", cwd=tmp_path)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 1 and len(lines) == 1 and "chunk_mb" in lines[0], bad.stderr
    dry = _cli(*cat, "run", "convert", *first, *options, "--dry-run", "--json", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"]
    product = tmp_path / "cat" / "store" / "products" / "tas.zarr"
    assert not product.exists()
    with Catalog.open(tmp_path / "cat") as catalog:
        assert catalog.count() == 0
    done = _cli(*cat, "run", "convert", *first, *options, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["status"] == "pass" and made["steps"] == 8 and product.exists()
    more = _cli(
        *cat, "run", "update", made["record"], "src/*.nc", "-p", "cluster=threads", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["steps"] == 12
    assert xr.open_zarr(product).sizes["time"] == 12
