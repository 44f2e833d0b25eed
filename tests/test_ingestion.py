"""Ingestion from providers (issue 16): one Icechunk commit per period, failures kept
apart, resumption from what the repository holds, reuse and overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from arcodex.catalog import Catalog
from arcodex.convert import open_product
from arcodex.ingest import (
    Availability,
    Extent,
    FetchError,
    Grid,
    IngestionResult,
    ProviderRef,
    Target,
    Template,
    Transforms,
    UnitConversion,
    available,
    committed_periods,
    ingest,
    parse_period,
    period_id,
)
from arcodex.ingest._cursor import CURSOR_KEY
from arcodex.ingest._periods import FREQUENCIES
from arcodex.ingest._repository import _append_arrays, write_period

DAYS = [f"2020-01-0{d}" for d in range(1, 7)]
EXTENT = Extent(id="box", name="A box", bbox=(0.0, 40.0, 3.0, 42.0))


class GeneratedProvider:
    """A provider of generated data: two steps a day of ``tas`` (K) and ``extra``.

    It fails the periods in ``fail`` with a FetchError, sleeps ``sleep`` seconds a fetch,
    and counts its fetches (in ``fetched``, and as lines of ``log`` across processes).
    """

    def __init__(
        self,
        fail: set[str] | None = None,
        sleep: float = 0.0,
        log: Path | None = None,
        shift: set[str] | None = None,
    ) -> None:
        self.fail = set(fail or ())
        self.shift = set(shift or ())
        self.sleep = sleep
        self.log = log
        self.fetched: list[str] = []

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        return Grid(dims={"lat": 2, "lon": 3}, coords={"lat": (40.5, 41.5), "lon": (0.5, 2.5)},
                    dtypes={"tas": "float32"})  # fmt: skip

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        return list(pd.period_range(start, end, freq=FREQUENCIES[params["period"]]))

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        pid = period_id(period, params["period"])
        self.fetched.append(pid)
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(pid + "\n")
        if self.sleep:
            time.sleep(self.sleep)
        if pid in self.fail:
            raise FetchError(f"period {pid}: the server answered 503")
        return source(period + 1 if pid in self.shift else period)


def source(period: pd.Period) -> xr.Dataset:
    times = pd.date_range(period.start_time, periods=2, freq="12h")
    base = (times - pd.Timestamp("2020-01-01")) / pd.Timedelta("1h")
    lat, lon = np.array([40.5, 41.5]), np.array([0.5, 1.5, 2.5])
    tas = 270.0 + base.values[:, None, None] + lat[None, :, None] / 10 + lon[None, None, :]
    return xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), tas.astype("float32"), {"units": "K"}),
            "extra": (("time", "lat", "lon"), np.zeros_like(tas, dtype="float32")),
        },
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"title": "generated"},
    )


def concatenated(days: list[str]) -> xr.Dataset:
    return xr.concat([source(parse_period(d, "daily")) for d in days], dim="time")


def template(**changes: Any) -> Template:
    fields: dict[str, Any] = {
        "id": "tas-daily",
        "name": "Generated temperature",
        "period": "daily",
        "provider": ProviderRef(name="generated"),
        "target": Target(chunks={"time": 3}),
        **changes,
    }
    return Template(**fields)


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    with Catalog.create(tmp_path / "cat") as cat:
        yield cat


def repository(cat: Catalog, rid: str) -> Any:
    from arcodex.convert._locate import resolve_product

    return resolve_product(rid, cat, None, {}, None, "main").repository()


def test_six_daily_periods_one_commit_each(catalog: Catalog) -> None:
    provider = GeneratedProvider()
    seen: list[tuple[str, int, int]] = []
    running: list[dict[str, Any]] = []

    def progress(period: str, done: int, total: int) -> None:
        seen.append((period, done, total))
        if period == DAYS[3]:  # what GET /ingestions/{id} would show now
            [op] = catalog.operations(status="running")
            running.append(op.parameters["progress"])

    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=provider, progress=progress
    )
    assert running == [
        {"periods_done": 3, "periods_total": 6, "current_period": DAYS[3], "errors": []}
    ]
    assert result.done == DAYS and not result.failed and result.check == "pass"
    assert provider.fetched == DAYS
    assert result.record_id == "tas-daily+box"
    assert seen[0] == (DAYS[0], 0, 6) and seen[-1] == ("", 6, 6)
    repo = repository(catalog, result.record_id)
    assert committed_periods(repo) == DAYS
    cursors = [s.metadata.get(CURSOR_KEY) for s in repo.ancestry(branch="main")]
    assert sum(1 for c in cursors if c) == 6
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
        assert ds["tas"].encoding["chunks"][0] == 3  # the template's chunking, appended mid-chunk
    record = catalog.get(result.record_id)
    assert record.kind == "dataset"
    assert record.metadata["convert"]["check"] == "pass"
    assert record.metadata["convert"]["snapshot"] == result.snapshot
    assert record.metadata["ingest"]["periods"] == DAYS
    [op] = [o for o in catalog.operations(limit=50) if o.action == "ingest"]
    assert op.status == "succeeded" and op.user
    assert op.parameters["progress"]["periods_done"] == 6
    assert op.parameters["progress"]["periods_total"] == 6
    assert op.outputs == [result.record_id]


def test_a_failed_period_is_reported_and_a_rerun_fetches_only_it(catalog: Catalog) -> None:
    faulty = GeneratedProvider(fail={DAYS[2]})
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=faulty)
    assert result.done == [d for d in DAYS if d != DAYS[2]]
    assert [f.period for f in result.failed] == [DAYS[2]]
    assert "503" in result.failed[0].message
    [op] = [o for o in catalog.operations(limit=50) if o.action == "ingest"]
    assert op.parameters["progress"]["errors"][0]["period"] == DAYS[2]
    with open_product(result.record_id, catalog=catalog) as ds:
        assert ds.sizes["time"] == 10

    healed = GeneratedProvider()
    again = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=healed)
    assert healed.fetched == [DAYS[2]]
    assert again.done == [DAYS[2]] and not again.failed and again.check == "pass"
    assert sorted(again.skipped) == sorted(set(DAYS) - {DAYS[2]})
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
    assert catalog.get(result.record_id).metadata["ingest"]["periods"][-1] == DAYS[2]


def test_a_period_holding_other_times_is_refused(catalog: Catalog) -> None:
    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider(shift={DAYS[1]})
    )
    assert [f.period for f in result.failed] == [DAYS[1]]
    assert "outside the period" in result.failed[0].message


def test_reused_unless_overwrite_which_switches_when_complete(catalog: Catalog) -> None:
    first = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider())
    old = catalog.locate(catalog.get(first.record_id).artifacts[0])
    provider = GeneratedProvider()
    reused = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=provider)
    assert reused.reused and provider.fetched == [] and reused.snapshot == first.snapshot

    # An overwrite that cannot complete leaves the dataset as it was.
    failing = GeneratedProvider(fail={DAYS[1]})
    broken = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=failing, overwrite=True)
    assert not broken.switched and failing.fetched == DAYS[:3]
    assert catalog.locate(catalog.get(first.record_id).artifacts[0]) == old
    assert Path(old).exists()
    assert [p.name for p in Path(old).parent.iterdir()] == [Path(old).name]

    provider = GeneratedProvider()
    rebuilt = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=provider, overwrite=True
    )
    assert rebuilt.switched and provider.fetched == DAYS[:3]
    new = catalog.locate(catalog.get(first.record_id).artifacts[0])
    assert new != old and Path(new).exists() and not Path(old).exists()
    with open_product(first.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS[:3]))


def test_transforms_shape_every_period(catalog: Catalog) -> None:
    shaped = template(
        transforms=Transforms(
            variables=["tas"],
            rename={"tas": "t2m"},
            units={"t2m": UnitConversion(to="degC", offset=-273.15)},
            attributes={"": {"institution": "arcodex"}, "t2m": {"long_name": "air temperature"}},
        )
    )
    result = ingest(catalog, shaped, EXTENT, DAYS[0], DAYS[1], provider=GeneratedProvider())
    with open_product(result.record_id, catalog=catalog) as ds:
        assert list(ds.data_vars) == ["t2m"]
        assert ds["t2m"].attrs["units"] == "degC"
        assert ds["t2m"].attrs["long_name"] == "air temperature"
        assert ds.attrs["institution"] == "arcodex"
        expected = concatenated(DAYS[:2])["tas"] - 273.15
        np.testing.assert_allclose(ds["t2m"].values, expected.values, rtol=1e-6)


def test_availability_holds_back_recent_periods(catalog: Catalog) -> None:
    late = template(availability=Availability(lag="2D"))
    provider = GeneratedProvider()
    result = ingest(
        catalog, late, EXTENT, DAYS[0], DAYS[-1], provider=provider,
        now=datetime(2020, 1, 6, 12),
    )  # fmt: skip
    # Jan 4 ends at Jan 5 00:00; with 2 days' lag it is out at Jan 7.
    assert provider.fetched == DAYS[:3]
    assert result.unavailable == DAYS[3:]


def periods(*ids: str) -> list[pd.Period]:
    return [parse_period(i, "daily") for i in ids]


def test_available_lag_and_cutoff() -> None:
    days = periods(*DAYS)
    assert available(days, Availability(), datetime(2020, 1, 4)) == days[:3]
    assert available(days, Availability(lag="36h"), datetime(2020, 1, 4, 12)) == days[:2]
    assert available(days, Availability(cutoff="2020-01-02"), datetime(2030, 1, 1)) == days[:2]
    assert available(days, Availability(), pd.Timestamp("2020-01-03T00:00Z")) == days[:2]
    months = [pd.Period("2020-01", "M"), pd.Period("2020-02", "M")]
    assert available(months, Availability(lag="5D"), datetime(2020, 3, 5)) == months[:1]
    assert available(months, Availability(lag="5D"), datetime(2020, 3, 6)) == months


def test_bad_lag_is_refused() -> None:
    from arcodex.errors import ValidationError

    with pytest.raises(ValidationError, match="pandas offset"):
        available(periods(DAYS[0]), Availability(lag="soon"), datetime(2020, 1, 4))


def test_publish_after_the_check(catalog: Catalog) -> None:
    from arcodex.catalog._access import is_published

    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[1], provider=GeneratedProvider(), publish=True
    )
    assert result.published
    record = catalog.get(result.record_id)
    assert is_published(record)
    assert record.metadata["access"]["snapshot"] == result.snapshot
    # A later period moves the publication to the new snapshot.
    more = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider())
    assert catalog.get(result.record_id).metadata["access"]["snapshot"] == more.snapshot


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from arcodex.catalog import Catalog
from arcodex.ingest import ingest
from test_ingestion import EXTENT, GeneratedProvider, template

with Catalog.open({root!r}) as cat:
    ingest(cat, template(), EXTENT, {start!r}, {end!r},
           provider=GeneratedProvider(sleep=0.4, log=Path({log!r})))
"""


def test_kill_mid_backfill_then_resume_fetches_only_the_missing(
    catalog: Catalog, tmp_path: Path
) -> None:
    log = tmp_path / "fetches.txt"
    script = _CHILD.format(
        tests=str(Path(__file__).parent), root=str(catalog.root), start=DAYS[0], end=DAYS[-1],
        log=str(log),
    )  # fmt: skip
    from arcodex.convert._place import place

    key = "ingest/tas-daily/box.icechunk"
    repo_path = Path(place(catalog, "icechunk", None, None, None, key, []).target.url)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=os.environ.copy())
    try:
        held: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(held) < 2:
            time.sleep(0.05)
            held = _held(repo_path)
        assert len(held) >= 2, "the child committed too little before the deadline"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    held = _held(repo_path)
    assert 2 <= len(held) < 6
    # Recovery of the killed operation undoes nothing the repository committed, and its
    # record says so: interrupted, with the periods it committed kept.
    [recovered] = [r for r in catalog.recover() if r.action == "ingest"]
    assert not recovered.removed
    assert _held(repo_path) == held
    [operation] = [
        o for o in catalog.backend.operations(limit=50) if o.id == recovered.operation_id
    ]
    assert operation.status == "failed" and operation.error is not None
    assert operation.error.type == "Interrupted"
    assert "rolled back" not in operation.error.message and "kept" in operation.error.message
    assert operation.parameters["committed_periods"] == held
    provider = GeneratedProvider()
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=provider)
    assert provider.fetched == [d for d in DAYS if d not in held]
    assert result.done == provider.fetched and result.check == "pass"
    before = log.read_text(encoding="utf-8").split()
    assert set(before) | set(provider.fetched) == set(DAYS)
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))


def _held(path: Path) -> list[str]:
    import icechunk

    if not path.exists():
        return []
    try:
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    except icechunk.IcechunkError:
        return []
    return committed_periods(repo)


def test_result_to_dict_is_json(catalog: Catalog) -> None:
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[0], provider=GeneratedProvider())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["done"] == [DAYS[0]] and data["record"] == "tas-daily+box"
    assert IngestionResult.from_dict(data).to_dict() == data
    failing = ingest(
        catalog, template(), EXTENT, DAYS[1], DAYS[1], provider=GeneratedProvider(fail={DAYS[1]})
    )
    assert IngestionResult.from_dict(failing.to_dict()).failed == failing.failed


def test_cli_ingests_from_the_templates_files(catalog: Catalog) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    root = Path(catalog.root)
    (root / "data").mkdir()
    for day in DAYS[:3]:
        source(parse_period(day, "daily")).to_netcdf(root / "data" / f"tas_{day}.nc")
    (root / "templates").mkdir()
    (root / "templates" / "tas.yaml").write_text(
        textwrap.dedent("""
            id: tas-files
            name: Temperature from files
            period: daily
            provider: {name: files, params: {path: data, pattern: "tas_{period}.nc"}}
            target: {chunks: {time: 4}}
        """),
        encoding="utf-8",
    )
    (root / "extents").mkdir()
    (root / "extents" / "box.yaml").write_text("id: box\nbbox: [0, 40, 3, 42]\n", encoding="utf-8")
    argv = ["--catalog", str(root), "ingest", "tas-files", "--extent", "box",
            "--start", DAYS[0], "--end", DAYS[2], "--json"]  # fmt: skip
    done = CliRunner().invoke(app, argv)
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["done"] == DAYS[:3] and result["record"] == "tas-files+box"
    again = json.loads(CliRunner().invoke(app, argv).stdout)
    assert again["reused"] and again["done"] == []
    with open_product("tas-files+box", catalog=catalog) as ds:
        assert ds.sizes["time"] == 6
    missing = CliRunner().invoke(app, ["--catalog", str(root), "ingest", "nope", "--extent", "box",
                                       "--start", DAYS[0], "--end", DAYS[2]])  # fmt: skip
    assert missing.exit_code == 1 and "no template 'nope'" in missing.stderr


def test_readers_see_an_icechunk_product(catalog: Catalog) -> None:
    from arcodex.stac import item_for
    from arcodex.stores import new_store

    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider())
    record = catalog.get(result.record_id)
    item = item_for(record, catalog)
    assert item.bbox == pytest.approx([0.5, 40.5, 2.5, 41.5], abs=0.5)
    assert str(item.common_metadata.start_datetime or item.datetime)[:10] == DAYS[0]
    assert any("icechunk" in (a.media_type or "") for a in item.assets.values())
    with new_store("catalog", root=str(catalog.root)) as store:
        ds = store.open_data(result.record_id)
        with ds:
            xr.testing.assert_allclose(ds.load(), concatenated(DAYS[:3]))


class FileProvider(GeneratedProvider):
    """The same data, handed over as NetCDF files (one a period); ``wide`` periods come
    on another grid."""

    def __init__(self, directory: Path, wide: set[str] | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.wide = set(wide or ())

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> Any:
        ds = super().fetch_period(period, extent, params)
        pid = period_id(period, "daily")
        if pid in self.wide:
            ds = ds.assign_coords(lon=ds["lon"] + 0.25)
        path = self.directory / f"{pid}.nc"
        ds.to_netcdf(path)
        return [path]


def test_files_are_read_and_another_grid_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    provider = FileProvider(tmp_path, wide={DAYS[2]})
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[3], provider=provider)
    assert result.done == [DAYS[0], DAYS[1], DAYS[3]]
    assert [f.period for f in result.failed] == [DAYS[2]]
    assert "lon coordinate differs" in result.failed[0].message
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated([DAYS[0], DAYS[1], DAYS[3]]))


def test_cancel_stops_between_periods_and_keeps_the_commits(catalog: Catalog) -> None:
    provider = GeneratedProvider()
    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=provider,
        cancelled=lambda: len(provider.fetched) >= 2,
    )  # fmt: skip
    assert result.cancelled and result.done == DAYS[:2] and result.pending == DAYS[2:]
    assert catalog.get(result.record_id).metadata["ingest"]["periods"] == DAYS[:2]
    again = GeneratedProvider()
    ingest(catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=again)
    assert again.fetched == DAYS[2:]


def test_published_dataset_is_served_over_zarr(catalog: Catalog) -> None:
    from arcodex.testing import serve_catalog

    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider(), publish=True
    )
    with serve_catalog(catalog.root) as base:
        remote = xr.open_zarr(f"{base}/zarr/{result.record_id}").load()
    xr.testing.assert_allclose(remote, concatenated(DAYS[:3]))


def test_a_failed_registration_keeps_the_commits_and_the_rerun_registers_them(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.catalog._journal import FAIL_AT_ENV, InjectedFailure

    ingest(catalog, template(), EXTENT, DAYS[0], DAYS[1], provider=GeneratedProvider())
    monkeypatch.setenv(FAIL_AT_ENV, "catalog_write_started")
    with pytest.raises(InjectedFailure):
        ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider())
    monkeypatch.delenv(FAIL_AT_ENV)
    rid = "tas-daily+box"
    assert catalog.get(rid).metadata["ingest"]["periods"] == DAYS[:2]  # rolled back
    assert committed_periods(repository(catalog, rid)) == DAYS[:3]  # the commit is kept
    provider = GeneratedProvider()
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=provider)
    assert provider.fetched == [] and not result.reused
    assert catalog.get(rid).metadata["ingest"]["periods"] == DAYS[:3]


def test_ingest_into_an_s3_profile_and_resume(tmp_path: Path, s3_endpoint: str) -> None:
    import uuid

    import boto3

    from arcodex.catalog import CatalogConfig
    from arcodex.storage import FileProfileConfig, S3ProfileConfig
    from arcodex.testing import S3_KEY_ID, S3_SECRET, no_aws_credentials

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET, region_name="us-east-1",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    profile = S3ProfileConfig(
        bucket=bucket, prefix="managed", endpoint_url=s3_endpoint, region="eu-west-1",
        path_style=True, key_env="INGEST_S3_KEY", secret_env="INGEST_S3_SECRET",
    )  # fmt: skip
    config = CatalogConfig(profiles={"local": FileProfileConfig(), "project": profile})
    on_s3 = template(target=Target(profile="project", chunks={"time": 3}))
    with pytest.MonkeyPatch.context() as patch, no_aws_credentials(patch):
        patch.setenv("INGEST_S3_KEY", S3_KEY_ID)
        patch.setenv("INGEST_S3_SECRET", S3_SECRET)
        with Catalog.create(tmp_path / "cat", config=config) as cat:
            faulty = GeneratedProvider(fail={DAYS[1]})
            first = ingest(cat, on_s3, EXTENT, DAYS[0], DAYS[3], provider=faulty)
            assert [f.period for f in first.failed] == [DAYS[1]]
            url = cat.locate(cat.get(first.record_id).artifacts[0])
            assert url.startswith(f"s3://{bucket}/managed/ingest/")
            healed = GeneratedProvider()
            ingest(cat, on_s3, EXTENT, DAYS[0], DAYS[3], provider=healed)
            assert healed.fetched == [DAYS[1]]
            with open_product(first.record_id, catalog=cat) as ds:
                xr.testing.assert_allclose(ds.load(), concatenated(DAYS[:4]))


def test_an_overwrite_whose_check_fails_leaves_the_dataset_as_it_was(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.ingest import _ingestion

    first = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider(), publish=True
    )
    before = catalog.get(first.record_id)
    old = Path(catalog.locate(before.artifacts[0]))
    monkeypatch.setattr(_ingestion, "check_repository", lambda *a: ("fail", ["forced to fail"]))
    result = ingest(
        catalog, template(), EXTENT, DAYS[0], DAYS[2], provider=GeneratedProvider(),
        overwrite=True, publish=True,
    )  # fmt: skip
    assert not result.ok and not result.switched and not result.published
    assert result.check == "fail" and "forced to fail" in result.reasons
    assert any("left as it was" in r for r in result.reasons)
    after = catalog.get(first.record_id)
    assert after.model_dump() == before.model_dump()
    assert after.metadata["access"]["snapshot"] == first.snapshot
    assert old.exists() and [p.name for p in old.parent.iterdir()] == [old.name]
    assert committed_periods(repository(catalog, first.record_id)) == DAYS[:3]
    with open_product(first.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS[:3]))


_OVERWRITE_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from arcodex.catalog import Catalog
from arcodex.ingest import ingest
from test_ingestion import EXTENT, GeneratedProvider, template

with Catalog.open({root!r}) as cat:
    ingest(cat, template(), EXTENT, {start!r}, {end!r}, overwrite=True,
           provider=GeneratedProvider(sleep=0.4))
"""


def test_recover_removes_the_rebuild_of_an_overwrite_killed_midway(
    catalog: Catalog, tmp_path: Path
) -> None:
    first = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[-1], provider=GeneratedProvider())
    before = catalog.get(first.record_id)
    old = Path(catalog.locate(before.artifacts[0]))
    script = _OVERWRITE_CHILD.format(
        tests=str(Path(__file__).parent), root=str(catalog.root), start=DAYS[0], end=DAYS[-1]
    )
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=os.environ.copy())
    try:
        rebuilds: list[Path] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(len(_held(r)) >= 1 for r in rebuilds):
            time.sleep(0.05)
            rebuilds = [p for p in old.parent.iterdir() if p != old]
        assert rebuilds, "the child started no rebuild before the deadline"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    [recovered] = [r for r in catalog.recover() if r.action == "ingest"]
    assert [Path(r) for r in recovered.removed] == rebuilds
    assert [p.name for p in old.parent.iterdir()] == [old.name]
    assert catalog.get(first.record_id).model_dump() == before.model_dump()
    assert committed_periods(repository(catalog, first.record_id)) == DAYS
    [operation] = [
        o for o in catalog.backend.operations(limit=50) if o.id == recovered.operation_id
    ]
    assert operation.status == "rolled_back" and "committed_periods" not in operation.parameters


def test_a_backfill_commits_a_time_chunk_of_periods_at_once(catalog: Catalog) -> None:
    chunked = template(target=Target(chunks={"time": 6}))  # three periods of two steps
    result = ingest(catalog, chunked, EXTENT, DAYS[0], DAYS[4], provider=GeneratedProvider())
    assert result.done == DAYS[:5] and result.check == "pass"
    repo = repository(catalog, result.record_id)
    cursors = [s.metadata.get(CURSOR_KEY) for s in repo.ancestry(branch="main")]
    batches = [c.get("periods", [c["period"]]) for c in reversed(cursors) if c]
    assert batches == [DAYS[0:3], DAYS[3:5]]
    assert committed_periods(repo) == DAYS[:5]
    # Nothing committed is fetched again; the data is the periods', in order.
    provider = GeneratedProvider()
    more = ingest(catalog, chunked, EXTENT, DAYS[0], DAYS[5], provider=provider)
    assert provider.fetched == [DAYS[5]] and more.done == [DAYS[5]]
    assert committed_periods(repository(catalog, result.record_id)) == DAYS
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
        assert ds["tas"].encoding["chunks"][0] == 6


# -- writing periods: an append written through zarr stores exactly what xarray's own append
# (``to_icechunk(append_dim="time")``) stores, packed and masked encodings included,
# mid-chunk and across chunks; what it cannot write so goes through xarray.


def gridded_day(n: int, *, packed: bool = False, attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """Day ``n`` of 2020 (one step at noon): ``tas`` on a 3x4 grid, a NaN in it, and a
    per-step ``count`` without a grid."""
    times = pd.DatetimeIndex([pd.Timestamp("2020-01-01 12:00") + pd.Timedelta(days=n)])
    tas = np.arange(12, dtype="float32").reshape(1, 3, 4) + 270 + n
    tas[0, 0, 0] = np.nan
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), tas, {"units": "K"}),
            "count": (("time",), np.array([n], dtype="int32")),
        },
        coords={"time": times, "lat": [10.0, 11.0, 12.0], "lon": [0.0, 1.0, 2.0, 3.0]},
        attrs=attrs or {"title": "generated"},
    )
    if packed:
        ds["tas"].encoding = {
            "dtype": "int16",
            "scale_factor": 0.01,
            "add_offset": 270.0,
            "_FillValue": -32767,
        }
    return ds


def store_at(where: Path) -> Any:
    from arcodex.convert._product import Product
    from arcodex.convert._target import Target as StoreTarget

    return Product("icechunk", StoreTarget.of(str(where)))


def write_one(target: Any, ds: xr.Dataset, first: bool) -> str:
    return write_period(
        target,
        ds,
        first=first,
        chunks={"time": 4},
        message="test",
        metadata={"test": True},
    )


def xarray_append(target: Any, ds: xr.Dataset) -> None:
    """The same append through xarray, as it was written before."""
    from icechunk.xarray import to_icechunk

    session = target.repository().writable_session("main")
    to_icechunk(ds, session, append_dim="time")
    session.commit("xarray")


def stored_arrays(target: Any) -> dict[str, Any]:
    """Every array as stored: raw values, attributes, chunks, fill value; root attributes."""
    session = target.repository().readonly_session(branch="main")
    group = zarr.open_group(session.store, mode="r")
    out: dict[str, Any] = {"attrs": dict(group.attrs)}
    for name, array in group.arrays():
        out[name] = (array[...], dict(array.attrs), array.chunks, str(array.fill_value))
    return out


def assert_same_store(ours: Any, theirs: Any) -> None:
    mine, other = stored_arrays(ours), stored_arrays(theirs)
    assert mine.keys() == other.keys()
    assert mine["attrs"] == other["attrs"]
    for name in mine.keys() - {"attrs"}:
        values, attrs, chunks, fill = mine[name]
        np.testing.assert_array_equal(values, other[name][0], err_msg=name)
        assert values.dtype == other[name][0].dtype, name
        assert (attrs, chunks, fill) == other[name][1:], name


@pytest.mark.parametrize("packed", [False, True])
def test_append_through_zarr_stores_what_xarray_stores(tmp_path: Path, packed: bool) -> None:
    ours, theirs = store_at(tmp_path / "ours.icechunk"), store_at(tmp_path / "theirs.icechunk")
    for target in (ours, theirs):
        write_one(target, gridded_day(0, packed=packed), True)
    # 1 to 6: mid-chunk (chunks of 4 steps), a chunk filled, then the next chunk begun.
    for n in range(1, 7):
        write_one(ours, gridded_day(n, packed=packed), False)
        xarray_append(theirs, gridded_day(n, packed=packed))
    assert_same_store(ours, theirs)
    with xr.open_zarr(
        ours.repository().readonly_session(branch="main").store, consolidated=False
    ) as ds:
        expected = xr.concat([gridded_day(n, packed=packed) for n in range(7)], dim="time")
        tolerance = 0.01 if packed else 0
        xr.testing.assert_allclose(ds.tas.load(), expected.tas, atol=tolerance, rtol=0)
        xr.testing.assert_equal(ds["count"].load(), expected["count"])
        assert ds.tas.isnull().sum() == 7  # the NaNs were stored masked and read back
    # The appends above went through zarr, not through xarray.
    session = ours.repository().writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    assert _append_arrays(gridded_day(7, packed=packed), group, dict(group.arrays()))


def test_what_zarr_cannot_write_as_xarray_would_goes_through_xarray(tmp_path: Path) -> None:
    target = store_at(tmp_path / "ds.icechunk")
    write_one(target, gridded_day(0).assign(flag=xr.DataArray(np.int8(0))), True)
    session = target.repository().writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    arrays = dict(group.arrays())
    # Other global attributes (xarray replaces the stored ones), a variable the store
    # lacks, a variable of other dimensions: nothing is written, xarray's append is used.
    assert not _append_arrays(gridded_day(1, attrs={"title": "other"}), group, arrays)
    assert not _append_arrays(gridded_day(1).assign(extra=gridded_day(1).tas * 2), group, arrays)
    assert not _append_arrays(gridded_day(1).transpose("time", "lon", "lat"), group, arrays)
    # A variable without time that holds other values than those stored (xarray writes
    # them over the stored ones); with the values stored, the steps go through zarr.
    flag = xr.DataArray(np.int8(1))
    assert not _append_arrays(gridded_day(1).assign(flag=flag), group, arrays)
    assert arrays["tas"].shape == (1, 3, 4) and arrays["time"].shape == (1,)
    fresh = target.repository().writable_session("main")
    root = zarr.open_group(fresh.store, mode="r+")
    same = gridded_day(1).assign(flag=xr.DataArray(np.int8(0)))
    assert _append_arrays(same, root, dict(root.arrays()))
    # The same through write_period: the attributes changed, and the steps are there.
    write_one(target, gridded_day(1, attrs={"title": "other"}), False)
    with xr.open_zarr(
        target.repository().readonly_session(branch="main").store, consolidated=False
    ) as ds:
        assert ds.sizes["time"] == 2 and ds.attrs["title"] == "other"
        xr.testing.assert_equal(ds.tas.isel(time=1).load(), gridded_day(1).tas.isel(time=0))


@pytest.mark.parametrize("masked_lat", [False, True])
def test_the_held_shape_read_through_zarr_is_what_xarray_reads(
    tmp_path: Path, masked_lat: bool
) -> None:
    from arcodex.ingest._fetching import PeriodShape

    def period(n: int) -> xr.Dataset:
        ds = gridded_day(n)
        if masked_lat:  # xarray masks a stored fill value: read through xarray, not zarr
            ds = ds.assign_coords(lat=[10.0, np.nan, 12.0])
        ds = ds.assign_coords(area=(("lat", "lon"), np.ones((3, 4))), level=5.0)
        ds["flag"] = xr.DataArray(np.int8(1))  # a data variable without dimensions
        return ds

    target = store_at(tmp_path / "ds.icechunk")
    write_one(target, period(0), True)
    write_one(target, period(1), False)
    shape, steps = PeriodShape.held(target)
    opened, opened_steps = PeriodShape.of_opened(target)
    assert steps == opened_steps == 2
    assert shape.variables == opened.variables == {"tas", "count", "flag"}
    assert shape.grid.keys() == opened.grid.keys() == {"lat", "lon"}
    for dim, values in opened.grid.items():
        np.testing.assert_array_equal(shape.grid[dim], values)
    if not masked_lat:
        assert shape.unlike(PeriodShape.of(period(2))) is None
        assert "lon" in str(shape.unlike(PeriodShape.of(period(2).assign_coords(lon=[9, 8, 7, 6]))))


class OffsetProvider(GeneratedProvider):
    """Its periods' two steps are six hours later than the others' (00:00 and 12:00)."""

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        ds = super().fetch_period(period, extent, params)
        return ds.assign_coords(time=ds.time + pd.Timedelta("6h"))


def by_name(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with its datacube's entries in name order (a store lists its arrays in
    no set order, so two descriptions of one dataset may list them differently)."""
    cube = dict(metadata["datacube"])
    for key in ("dimensions", "variables"):
        cube[key] = sorted(cube[key], key=lambda entry: entry["name"])
    return {**metadata, "datacube": cube}


@pytest.mark.parametrize("steps", ["regular", "irregular"])
def test_an_append_updates_the_record_as_describing_the_dataset_again_would(
    catalog: Catalog, steps: str
) -> None:
    from arcodex.ingest._ingestion import _appended_steps, _product_of
    from arcodex.ingest._record import _appended_description, dataset_record

    first = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[3], provider=GeneratedProvider())
    before = catalog.get(first.record_id)
    later = GeneratedProvider() if steps == "regular" else OffsetProvider()
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[5], provider=later)
    assert result.ok and result.done == DAYS[4:] and result.record is not None
    record = result.record
    product = _product_of(catalog, record)
    # The record was updated from the appended steps, not by describing the dataset...
    tail = _appended_steps(product, str(result.snapshot), before.metadata["convert"]["steps"])
    assert tail is not None and _appended_description(before, tail) is not None
    # ...and says what describing it again says.
    described = dataset_record(
        template(),
        EXTENT,
        product,
        None,
        periods=DAYS,
        snapshot=str(result.snapshot),
        check="pass",
        operation_id=str(result.operation_id),
        user=record.updated_by,
        current=before,
    )
    assert by_name(record.metadata) == by_name(described.metadata)
    time_dim = next(d for d in record.metadata["datacube"]["dimensions"] if d["name"] == "time")
    assert time_dim.get("step") == ("PT12H" if steps == "regular" else None)
    assert record.metadata["convert"]["steps"] == 12
    assert record.metadata["end_datetime"].startswith(
        "2020-01-06T12:00" if steps == "regular" else "2020-01-06T18:00"
    )


def test_the_check_of_appended_steps_catches_a_damaged_append(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that appends the period's steps three days early (a fault injected in the
    zarr append): the check of the appended steps alone fails it, and the record says so."""
    from arcodex.ingest import _repository

    ingest(catalog, template(), EXTENT, DAYS[0], DAYS[3], provider=GeneratedProvider())

    def damaged(ds: xr.Dataset, session: Any, to_icechunk: Any) -> bool:
        group = zarr.open_group(session.store, mode="r+")
        early = ds.assign_coords(time=ds["time"] - np.timedelta64(3, "D"))
        return _append_arrays(early, group, dict(group.arrays()))

    monkeypatch.setattr(_repository, "_add", damaged)
    result = ingest(catalog, template(), EXTENT, DAYS[0], DAYS[4], provider=GeneratedProvider())
    assert result.done == [DAYS[4]] and result.check == "fail" and not result.ok
    assert "time steps are not strictly increasing" in result.reasons
    assert any(DAYS[4] in r and "no time step" in r for r in result.reasons)
    assert catalog.get(result.record_id).metadata["convert"]["check"] == "fail"
