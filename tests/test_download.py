"""GET /datasets/{id}/download: subsets of real converted products equal xarray's selection."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.convert import convert, open_product
from arcodex.server import create_app

with warnings.catch_warnings():  # starlette asks for httpx2, which is not installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _product(tmp_path: Path, cat: Catalog, kind: str, to: str = "zarr") -> str:
    files = write_archive(tmp_path / f"src-{kind}", kind, files=2, steps=3)  # type: ignore[arg-type]
    result = convert(
        [str(f) for f in files],
        to=to,  # type: ignore[arg-type]
        catalog=cat,
        cluster="threads",
        dest=tmp_path / "products" / f"{kind}.{to}",
    )
    assert result.status == "pass"
    assert result.record is not None
    return str(result.record.id)


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        ids = {
            "multivar": _product(tmp_path, cat, "multivar"),
            "lon360": _product(tmp_path, cat, "lon360", to="icechunk"),
            "hidden": _product(tmp_path, cat, "regular"),
        }
        cat.publish(ids["multivar"])
        cat.publish(ids["lon360"])
    return root, ids


def _expected(root: Path, rid: str) -> Any:
    with Catalog.open(root) as cat:
        return open_product(rid, catalog=cat).load()


def _netcdf(content: bytes, tmp_path: Path) -> Any:
    path = tmp_path / f"got-{len(list(tmp_path.glob('got-*.nc')))}.nc"  # xarray caches by path
    path.write_bytes(content)
    return xr.open_dataset(path).load()


def test_netcdf_subset_equals_xarray(served: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, ids = served
    rid = ids["multivar"]
    want = _expected(root, rid)[["tas"]]
    lats = want.lat.values
    want = want.isel(lon=np.nonzero((want.lon.values >= -50) & (want.lon.values <= 60))[0])
    want = want.isel(lat=np.nonzero((lats >= -30) & (lats <= 45))[0])
    times = want.time.values
    want = want.sel(time=slice(times[1], times[4]))
    start = str(times[1])[:19]
    end = str(times[4])[:19]
    with TestClient(create_app(root)) as client:
        answer = client.get(
            f"/datasets/{rid}/download",
            params={"variables": "tas", "bbox": "-50,-30,60,45", "time": f"{start}/{end}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-netcdf"
    assert answer.headers["content-disposition"] == f'attachment; filename="{rid}.nc"'
    got = _netcdf(answer.content, tmp_path)
    assert set(got.data_vars) == {"tas"}
    assert got.sizes["time"] == 4 and 0 < got.sizes["lon"] < 16 and 0 < got.sizes["lat"] < 12
    xr.testing.assert_allclose(got["tas"], want["tas"])
    assert not list(Path(__import__("tempfile").gettempdir()).glob("arcodex-download-*"))


def test_lon360_box_across_the_antimeridian(
    served: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, ids = served
    rid = ids["lon360"]
    full = _expected(root, rid)
    lons = full.lon.values  # 0 … 337.5
    # -30..30 is 330..30 in 0–360: the box crosses the frame's seam at 0.
    want = full.isel(lon=np.nonzero((lons >= 330) | (lons <= 30))[0])
    with TestClient(create_app(root)) as client:
        answer = client.get(f"/datasets/{rid}/download", params={"bbox": "-30,-90,30,90"})
        assert answer.status_code == 200, answer.text
        got = _netcdf(answer.content, tmp_path)
        # -180..-150 is 180..210 in 0–360
        narrow = client.get(f"/datasets/{rid}/download", params={"bbox": "-180,-90,-150,90"})
    assert set(got.lon.values) == {0.0, 22.5, 337.5}
    np.testing.assert_array_equal(got.lon.values, want.lon.values)
    xr.testing.assert_allclose(got["tas"], want["tas"])
    assert set(_netcdf(narrow.content, tmp_path).lon.values) == {180.0, 202.5}


def test_csv_subset_rows_equal_xarray(
    served: tuple[Path, dict[str, str]], monkeypatch: Any
) -> None:
    import pandas as pd

    from arcodex.server import _download

    monkeypatch.setattr(_download, "CSV_ROWS", 100)  # many slices: the rows still join up
    root, ids = served
    rid = ids["multivar"]
    full = _expected(root, rid)
    want = full[["tas", "pr"]].isel(lat=slice(0, 3)).to_dataframe().reset_index()
    south, north = float(full.lat.values[0]), float(full.lat.values[2])
    with TestClient(create_app(root)) as client:
        answer = client.get(
            f"/datasets/{rid}/download",
            params={"variables": "tas,pr", "bbox": f"-180,{south},180,{north}", "format": "csv"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == f'attachment; filename="{rid}.csv"'
    got = pd.read_csv(io.StringIO(answer.text), parse_dates=["time"])
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) == 6 * 3 * 16
    np.testing.assert_allclose(got["tas"].to_numpy(), want["tas"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["pr"].to_numpy(), want["pr"].to_numpy(), rtol=1e-6)
    assert (got["time"].to_numpy() == want["time"].to_numpy()).all()


def test_too_large_is_413_with_the_estimate(served: tuple[Path, dict[str, str]]) -> None:
    root, ids = served
    config = root / "arcodex.yaml"
    data = yaml.safe_load(config.read_text()) or {}
    data.setdefault("server", {})["download_max_bytes"] = 1000
    config.write_text(yaml.safe_dump(data))
    with TestClient(create_app(root)) as client:
        answer = client.get(f"/datasets/{ids['multivar']}/download")
        small = client.get(
            f"/datasets/{ids['multivar']}/download",
            params={"variables": "tas", "bbox": "0,0,20,10", "format": "csv"},
        )
    assert answer.status_code == 413
    body = answer.json()
    assert "server.download_max_bytes" in body["description"]
    assert "bytes" in body["description"] and "1,000" in body["description"]
    # One grid point over six steps fits: the limit is on the selection, not the dataset.
    assert small.status_code == 200, small.text
    assert int(small.headers["X-Estimated-Bytes"]) <= 1000
    assert len(small.text.strip().splitlines()) == 1 + 6


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "1,2,3"},
        {"bbox": "a,b,c,d"},
        {"bbox": "0,50,10,40"},
        {"time": "2001-13-45/2002-01-01"},
        {"time": "2003-01-01/2001-01-01"},
        {"variables": "nope"},
        {"variables": "tas,../etc"},
        {"format": "xlsx"},
    ],
)
def test_bad_parameters_are_400(
    served: tuple[Path, dict[str, str]], params: dict[str, str]
) -> None:
    root, ids = served
    with TestClient(create_app(root)) as client:
        answer = client.get(f"/datasets/{ids['multivar']}/download", params=params)
    assert answer.status_code == 400, answer.text
    description = answer.json()["description"]
    assert "\n" not in description and str(root) not in description


def test_hidden_dataset_download_is_404(served: tuple[Path, dict[str, str]]) -> None:
    root, ids = served
    with TestClient(create_app(root)) as client:
        hidden = client.get(f"/datasets/{ids['hidden']}/download")
        missing = client.get("/datasets/nothing/download")
    assert hidden.status_code == missing.status_code == 404
