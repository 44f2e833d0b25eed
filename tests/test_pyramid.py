"""Multi-level products (``convert --pyramid N``): the multiscales layout, checked levels.

Every level is compared with level 0 coarsened by hand here (numpy, NaN-skipping
means), so a level that is not what it claims fails; refusals must write nothing,
and a level that fails its check rolls the whole product back.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.convert import check, convert, open_product, update
from arcodex.errors import ConversionError, ValidationError

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")
zarr = pytest.importorskip("zarr")


def dataset(steps: int = 3, ny: int = 8, nx: int = 12) -> Any:
    rng = np.random.default_rng(7)
    values = rng.random((steps, ny, nx)).astype("f4")
    values[0, 0, 0] = np.nan  # a window with one value missing: the mean of the others
    values[1, 2:4, 2:4] = np.nan  # a window with every value missing: missing
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={
            "time": pd.date_range("2001-01-01", periods=steps, freq="D"),
            "lat": ("lat", np.linspace(-70, 70, ny), {"axis": "Y", "units": "degrees_north"}),
            "lon": ("lon", np.arange(nx) * 30.0, {"axis": "X", "units": "degrees_east"}),
        },
    )


def coarsened(values: np.ndarray, factor: int) -> np.ndarray:
    """``values`` (time, y, x) averaged over ``factor`` x ``factor`` windows, NaN skipped."""
    t, ny, nx = values.shape
    ny, nx = ny // factor, nx // factor
    windows = values[:, : ny * factor, : nx * factor].reshape(t, ny, factor, nx, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(windows, axis=(2, 4))


@pytest.mark.parametrize("to", ["zarr", "icechunk"])
def test_levels_are_level_zero_coarsened(tmp_path: Path, to: str) -> None:
    ds = dataset()
    dest = tmp_path / f"p.{to}"
    result = convert(ds, to=to, dest=dest, cluster="threads", pyramid=3)
    assert result.status == "pass", result.report
    assert result.report is not None and result.report.checked["levels"] == 3
    assert result.report.checked["level_samples"] > 0
    for k, (ny, nx) in enumerate([(8, 12), (4, 6), (2, 3)]):
        with open_product(dest, level=k) as level:
            assert (level.sizes["lat"], level.sizes["lon"], level.sizes["time"]) == (ny, nx, 3)
            expected = coarsened(ds["tas"].values, 2**k)
            np.testing.assert_allclose(level["tas"].values, expected, rtol=1e-6)
            np.testing.assert_allclose(
                level["lat"].values, ds["lat"].values.reshape(ny, -1).mean(axis=1)
            )
            np.testing.assert_array_equal(level["time"].values, ds["time"].values)
    assert np.isnan(coarsened(ds["tas"].values, 2)[1, 1, 1])  # the all-missing window
    # Level 0 is what opens by default, and what `check` and `update` find.
    with open_product(dest) as full:
        assert full.sizes["lat"] == 8
    assert check(dest).status == "pass"


def test_root_attributes_follow_the_multiscales_convention(tmp_path: Path) -> None:
    convert(dataset(), to="zarr", dest=tmp_path / "p.zarr", cluster="threads", pyramid=2)
    attrs = zarr.open_group(str(tmp_path / "p.zarr"), mode="r").attrs.asdict()
    layout = attrs["multiscales"]["layout"]
    assert [item["asset"] for item in layout] == ["0", "1"]
    assert layout[1]["derived_from"] == "0" and layout[1]["transform"]["scale"] == [2.0, 2.0]
    assert attrs["zarr_conventions"][0]["name"] == "multiscales"
    # Plain xarray opens any level as a group.
    with xr.open_zarr(tmp_path / "p.zarr", group="1") as level:
        assert dict(level.sizes) == {"time": 3, "lat": 4, "lon": 6}


def test_catalog_record_and_stac_describe_the_levels(tmp_path: Path) -> None:
    from arcodex.client import open_dataset
    from arcodex.stac import stac_for, validate_stac

    with Catalog.create(tmp_path / "cat") as cat:
        result = convert(dataset(), to="icechunk", catalog=cat, cluster="threads", pyramid=3)
        assert result.record is not None
        record = cat.get(result.record.id)
        levels = record.metadata["levels"]
        assert [(lv["level"], lv["path"]) for lv in levels] == [(0, "0"), (1, "1"), (2, "2")]
        assert levels[1]["shape"] == {"lat": 4, "lon": 6}
        assert levels[2]["resolution"]["lon"] == pytest.approx(120.0)
        _, item = stac_for(record, cat)
        assert {"data", "level-1", "level-2"} <= set(item.assets)
        assert item.properties["arcodex:levels"] == levels
        collection, _ = stac_for(record, cat)
        collection.normalize_hrefs(f"/stac/{record.id}")
        docs = [
            d.to_dict(include_self_link=False, transform_hrefs=False) for d in (collection, item)
        ]
        # The level assets are valid STAC and meet arcodex's profile (this dataset has no
        # providers, and the extension schemas are not cached here: those problems are not theirs).
        problems = [p for p in validate_stac(docs).problems if "level" in p.path]
        assert problems == []
        with (
            open_dataset(item, level=1) as one,
            open_product(record.id, catalog=cat, level=1) as two,
        ):
            assert dict(one.sizes) == dict(two.sizes) == {"time": 3, "lat": 4, "lon": 6}
        with open_dataset(item) as full:
            assert full.sizes["lat"] == 8  # level 0 is what opens by default
        with pytest.raises(ValidationError, match="no level 5"):
            open_dataset(item, level=5)


def test_cli_pyramid_from_files(tmp_path: Path) -> None:
    from arcodex.cli import app

    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    dest = tmp_path / "p.zarr"
    result = CliRunner().invoke(
        app,
        [
            "convert",
            *map(str, files),
            "--dest",
            str(dest),
            "--pyramid",
            "2",
            "--cluster",
            "threads",
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["check"]["checked"]["levels"] == 2
    with open_product(dest, level=1) as level, open_product(dest) as full:
        spatial = [d for d in full["tas"].dims if d != "time"]
        for dim in spatial:
            assert level.sizes[dim] == full.sizes[dim] // 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": "virtual"}, "virtual products cannot have levels"),
        ({"to": "zarr", "group": "g"}, "drop --group"),
        ({"to": "zarr", "pyramid": 5}, "too small for 5 levels"),
        ({"to": "zarr", "pyramid": 0}, None),
    ],
    ids=["virtual", "group", "too-small", "zero-is-none"],
)
def test_refusals_write_nothing(
    tmp_path: Path, kwargs: dict[str, Any], message: str | None
) -> None:
    dest = tmp_path / "p.out"
    kwargs = {"pyramid": 2, **kwargs}
    if message is None:
        convert(dataset(), dest=dest, cluster="threads", **kwargs)
        assert "multiscales" not in zarr.open_group(str(dest), mode="r").attrs
        return
    with pytest.raises((ValidationError, ConversionError), match=message):
        convert(dataset(), dest=dest, cluster="threads", **kwargs)
    assert not dest.exists()
    assert not list(tmp_path.iterdir())


def test_update_of_a_multi_level_product_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "p.zarr"
    convert(dataset(), to="zarr", dest=dest, cluster="threads", pyramid=2)
    more = dataset().assign_coords(time=pd.date_range("2001-01-04", periods=3, freq="D"))
    with pytest.raises(ValidationError, match="has 2 levels"):
        update(dest, more, cluster="threads")
    with open_product(dest) as full:
        assert full.sizes["time"] == 3


def test_a_level_that_fails_its_check_rolls_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.convert import _pyramid

    written = _pyramid._encoding

    def corrupting(level: Any, base: Any, options: Any) -> Any:
        level, encoding = written(level, base, options)
        return level.assign(tas=level["tas"] + 1), encoding

    monkeypatch.setattr(_pyramid, "_encoding", corrupting)
    with Catalog.create(tmp_path / "cat") as cat:
        with pytest.raises(ConversionError, match=r"level 1: tas .* is not level 0 coarsened"):
            convert(dataset(), to="zarr", catalog=cat, cluster="threads", pyramid=2)
        assert list(cat.search(kind="dataset").records) == []
        assert not list((tmp_path / "cat").rglob("*.zarr"))


@pytest.mark.parametrize("cluster", ["local", "threads"])
def test_levels_of_a_dask_backed_dataset(tmp_path: Path, cluster: str) -> None:
    ds = dataset(steps=4).chunk({"time": 1, "lat": 4})
    result = convert(ds, to="icechunk", dest=tmp_path / "p.icechunk", cluster=cluster, pyramid=2)
    assert result.status == "pass"
    with open_product(tmp_path / "p.icechunk", level=1) as level:
        np.testing.assert_allclose(level["tas"].values, coarsened(ds["tas"].values, 2), rtol=1e-6)
