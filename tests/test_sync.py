"""Sync (issue 16, part 4): plans for each sync kind and availability case, appends that
fetch only what is new (mid-chunk too), release rebuilds that switch only once the new
version passes, failures that leave the dataset as it was, and ``arcodex sync``."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.convert import open_product
from arcodex.ingest import FetchError, Grid, committed_periods, get_extent, get_template, ingest
from arcodex.ingest._periods import FREQUENCIES, parse_period, period_id
from arcodex.ingest._registry import BUILTIN_PROVIDERS
from arcodex.ingest._sync import SyncPlan, SyncResult, plan_sync, sync

RID = "tas-daily+box"
DAYS = [f"2020-01-{d:02d}" for d in range(1, 21)]


def source(period: pd.Period, offset: float = 0.0) -> xr.Dataset:
    """One step (noon) of generated ``tas`` for a daily period; ``offset`` tells releases apart."""
    times = pd.DatetimeIndex([period.start_time + pd.Timedelta("12h")])
    day = ((times - pd.Timestamp("2020-01-01")) / pd.Timedelta("1D")).values
    lat, lon = np.array([40.5, 41.5]), np.array([0.5, 1.5, 2.5])
    tas = 270.0 + offset + day[:, None, None] + lat[None, :, None] / 10 + lon[None, None, :]
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("float32"), {"units": "K"})},
        coords={"time": times, "lat": lat, "lon": lon},
    )


def concatenated(days: list[str], offset: float = 0.0) -> xr.Dataset:
    return xr.concat([source(parse_period(d, "daily"), offset) for d in days], dim="time")


class Generated:
    """Generated daily periods up to ``last``; ``fail`` periods raise a FetchError,
    ``crash`` ones a RuntimeError (a bug, not a bad period); fetches are counted."""

    def __init__(self, last: str = DAYS[-1]) -> None:
        self.last = last
        self.fail: set[str] = set()
        self.crash: set[str] = set()
        self.offset = 0.0
        self.fetched: list[str] = []
        #: Called at each fetch (to act as someone else writing meanwhile).
        self.during: Any = None

    def probe(self, extent: Any, params: dict[str, Any]) -> Grid:
        return Grid(dims={"lat": 2, "lon": 3}, coords={}, dtypes={"tas": "float32"})

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        end = min(end, parse_period(self.last, params["period"]))
        if end < start:
            return []
        return list(pd.period_range(start, end, freq=FREQUENCIES[params["period"]]))

    def fetch_period(self, period: pd.Period, extent: Any, params: dict[str, Any]) -> xr.Dataset:
        pid = period_id(period, params["period"])
        self.fetched.append(pid)
        if self.during is not None:
            self.during()
        if pid in self.fail:
            raise FetchError(f"period {pid}: the server answered 503")
        if pid in self.crash:
            raise RuntimeError("the provider broke")
        return source(period, self.offset)


class Released(Generated):
    """A provider of releases: ``current`` is what ``release(params)`` answers."""

    def __init__(self) -> None:
        super().__init__()
        self.current: str | None = "r1"

    def release(self, params: dict[str, Any]) -> str | None:
        return self.current


TEMPLATES = {
    "tas-daily": "sync: temporal\nprovider: {name: generated}",
    "tas-release": "sync: release\nprovider: {name: released}",
    "tas-static": "sync: static\nprovider: {name: generated}",
    "tas-plain": "sync: release\nprovider: {name: generated}",
}


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Generated]:
    """The test providers, registered by name as every provider is found."""
    made: dict[str, Generated] = {"generated": Generated(), "released": Released()}
    for name in made:
        monkeypatch.setitem(BUILTIN_PROVIDERS, name, lambda name=name: made[name])  # type: ignore[misc]
    return made


@pytest.fixture
def catalog(tmp_path: Path, providers: dict[str, Generated]) -> Iterator[Catalog]:
    with Catalog.create(tmp_path / "cat") as cat:
        root = Path(cat.root)
        (root / "extents").mkdir()
        (root / "extents" / "box.yaml").write_text("id: box\nbbox: [0, 40, 3, 42]\n", "utf-8")
        (root / "templates").mkdir()
        for ident in TEMPLATES:
            write_template(cat, ident)
        yield cat


def write_template(cat: Catalog, ident: str, availability: str = "{lag: 0D}") -> None:
    path = Path(cat.root) / "templates" / f"{ident}.yaml"
    text = textwrap.dedent(f"""\
        id: {ident}
        period: daily
        availability: {availability}
        target: {{chunks: {{time: 4}}}}
    """)
    path.write_text(text + TEMPLATES[ident] + "\n", encoding="utf-8")
    # A rewrite within the clock's resolution still reads as changed.
    stamp = path.stat().st_mtime_ns + 1_000_000 * (1 + len(text))
    os.utime(path, ns=(stamp, stamp))


def ingested(cat: Catalog, ident: str, provider: Generated, days: int, **kw: Any) -> str:
    template, extent = get_template(cat, ident), get_extent(cat, "box")
    result = ingest(cat, template, extent, DAYS[0], DAYS[days - 1], provider=provider, **kw)
    assert result.done == DAYS[:days] and result.check == "pass"
    provider.fetched.clear()
    return result.record_id


def at(day: str) -> datetime:
    """The moment ``day`` starts: the day before it has just ended."""
    return datetime.fromisoformat(day)


def repository(cat: Catalog, rid: str) -> Any:
    from arcodex.convert._locate import resolve_product

    return resolve_product(rid, cat, None, {}, None, "main").repository()


# -- plans ---------------------------------------------------------------------------------


def test_temporal_plans_for_each_availability_case(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    ingested(catalog, "tas-daily", providers["generated"], 6)

    plan = plan_sync(catalog, RID, now=at(DAYS[6]))
    assert plan.action == "up_to_date" and plan.missing == [] and plan.held == 6
    assert plan.last_period == DAYS[5]

    plan = plan_sync(catalog, RID, now=at(DAYS[9]))  # default end: now
    assert plan.action == "append" and plan.missing == DAYS[6:9]
    assert (plan.start, plan.end) == (DAYS[6], DAYS[8])

    write_template(catalog, "tas-daily", "{lag: 2D}")
    plan = plan_sync(catalog, RID, end="2020-01-31", now=at(DAYS[11]))
    assert plan.action == "append" and plan.missing == DAYS[6:9]
    assert "clamped to availability (lag 2D): end 2020-01-31 -> 2020-01-09" in plan.reasons

    write_template(catalog, "tas-daily", "{cutoff: '2020-01-08'}")
    plan = plan_sync(catalog, RID, end="2020-01-31", now=at("2021-01-01"))
    assert plan.missing == DAYS[6:8] and plan.end == DAYS[7]
    assert "clamped to availability (cutoff 2020-01-08): end 2020-01-31 -> 2020-01-08" in (
        plan.reasons
    )

    write_template(catalog, "tas-daily", "{cutoff: '2020-01-06'}")
    plan = plan_sync(catalog, RID, now=at("2021-01-01"))
    assert plan.action == "up_to_date" and plan.missing == []

    write_template(catalog, "tas-daily")
    providers["generated"].last = DAYS[5]  # the source has nothing after what is held
    plan = plan_sync(catalog, RID, now=at("2021-01-01"))
    assert plan.action == "up_to_date"
    assert any(r.startswith("nothing new") for r in plan.reasons)
    assert providers["generated"].fetched == []  # planning fetches nothing
    assert SyncPlan.model_validate(json.loads(plan.model_dump_json())) == plan


def test_static_release_and_foreign_plans(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    ingested(catalog, "tas-static", providers["generated"], 2)
    plan = plan_sync(catalog, "tas-static+box", now=at(DAYS[9]))
    assert plan.action == "not_syncable" and "static template" in plan.reasons[0]
    assert sync(catalog, "tas-static+box", now=at(DAYS[9])).done == []

    ingested(catalog, "tas-plain", providers["generated"], 2)
    plan = plan_sync(catalog, "tas-plain+box", now=at(DAYS[9]))
    assert plan.action == "not_syncable" and "no release(params) method" in plan.reasons[0]

    released = providers["released"]
    ingested(catalog, "tas-release", released, 2)
    plan = plan_sync(catalog, "tas-release+box", now=at(DAYS[9]))
    assert plan.action == "rematerialize" and plan.release == "r1"
    assert "release r1 found (the dataset records no release)" in plan.reasons
    released.current = None
    assert plan_sync(catalog, "tas-release+box", now=at(DAYS[9])).action == "not_syncable"

    catalog.add_external("https://example.org/x.zarr", record_id="other", kind="dataset")
    plan = plan_sync(catalog, "other")
    assert plan.action == "not_syncable" and "not made by an ingestion" in plan.reasons[0]


# -- append --------------------------------------------------------------------------------


def test_one_new_period_after_6_then_after_12_fetches_only_it(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    provider = providers["generated"]
    ingested(catalog, "tas-daily", provider, 6)
    result = sync(catalog, RID, now=at(DAYS[7]))
    assert result.action == "append" and result.done == [DAYS[6]] and result.ok
    assert provider.fetched == [DAYS[6]]
    assert committed_periods(repository(catalog, RID)) == DAYS[:7]

    assert sync(catalog, RID, end=DAYS[11], now=at(DAYS[15])).done == DAYS[7:12]
    provider.fetched.clear()
    result = sync(catalog, RID, now=at(DAYS[13]))
    assert result.done == [DAYS[12]] and provider.fetched == [DAYS[12]]
    record = catalog.get(RID)
    assert record.metadata["ingest"]["periods"] == DAYS[:13]
    assert record.metadata["convert"]["snapshot"] == result.snapshot
    assert sync(catalog, RID, now=at(DAYS[13])).action == "up_to_date"
    assert provider.fetched == [DAYS[12]]


def test_append_mid_chunk_equals_the_concatenated_sources(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    ingested(catalog, "tas-daily", providers["generated"], 6)  # chunks of 4: [4, 2]
    assert sync(catalog, RID, now=at(DAYS[7])).done == [DAYS[6]]
    with open_product(RID, catalog=catalog) as ds:
        assert ds["tas"].encoding["chunks"][0] == 4
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:7]))


def test_a_failed_period_is_skipped_and_fetched_by_the_next_sync(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    provider = providers["generated"]
    ingested(catalog, "tas-daily", provider, 6)
    provider.fail = {DAYS[7]}
    result = sync(catalog, RID, now=at(DAYS[9]))
    assert result.done == [DAYS[6], DAYS[8]] and [f.period for f in result.failed] == [DAYS[7]]
    assert not result.ok
    # Committed periods are kept, each on its own; the gap is planned next.
    plan = plan_sync(catalog, RID, now=at(DAYS[9]))
    assert plan.missing == [DAYS[7]] and any("gap" in r for r in plan.reasons)
    provider.fail, provider.fetched = set(), []
    assert sync(catalog, RID, now=at(DAYS[9])).done == [DAYS[7]]
    assert provider.fetched == [DAYS[7]]
    with open_product(RID, catalog=catalog) as ds:
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:9]))


def test_a_bad_appended_period_is_refused_and_the_dataset_left_unchanged(
    catalog: Catalog, providers: dict[str, Generated], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = providers["generated"]
    ingested(catalog, "tas-daily", provider, 6)
    before = catalog.get(RID).metadata["convert"]["snapshot"]
    good = provider.fetch_period

    def other_grid(period: pd.Period, extent: Any, params: dict[str, Any]) -> xr.Dataset:
        ds = good(period, extent, params)
        return ds.assign_coords(lat=ds["lat"] + 5.0)

    monkeypatch.setattr(provider, "fetch_period", other_grid)
    result = sync(catalog, RID, now=at(DAYS[7]))
    assert not result.ok and not result.done and [f.period for f in result.failed] == [DAYS[6]]
    assert "lat coordinate differs" in result.failed[0].message
    repo = repository(catalog, RID)
    assert committed_periods(repo) == DAYS[:6] and str(repo.lookup_branch("main")) == before
    record = catalog.get(RID)
    assert record.metadata["ingest"]["periods"] == DAYS[:6]
    assert record.metadata["convert"]["snapshot"] == before
    with open_product(RID, catalog=catalog) as ds:
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:6]))


def test_the_check_of_an_append_reads_what_was_appended(
    catalog: Catalog, providers: dict[str, Generated], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.ingest import _repository

    ingested(catalog, "tas-daily", providers["generated"], 6)

    def damaged(ds: xr.Dataset, session: Any, to_icechunk: Any) -> None:
        # The period's step lands three days early: out of order, and its period absent.
        to_icechunk(
            ds.assign_coords(time=ds["time"] - np.timedelta64(3, "D")), session, append_dim="time"
        )

    monkeypatch.setattr(_repository, "_add", damaged)
    result = sync(catalog, RID, now=at(DAYS[7]))
    assert result.done == [DAYS[6]] and result.check == "fail" and not result.ok
    assert "time steps are not strictly increasing" in result.reasons
    assert any(DAYS[6] in r and "no time step" in r for r in result.reasons)
    assert catalog.get(RID).metadata["convert"]["check"] == "fail"


def test_a_provider_failing_mid_sync_leaves_the_dataset_unchanged(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    from arcodex.catalog._access import record_access

    provider = providers["generated"]
    ingested(catalog, "tas-daily", provider, 6, publish=True)
    before = catalog.get(RID)
    provider.crash = {DAYS[7]}
    with pytest.raises(RuntimeError, match="broke"):
        sync(catalog, RID, now=at(DAYS[9]))
    after = catalog.get(RID)
    assert after.version == before.version and after.metadata == before.metadata
    assert record_access(after)["published"] is True
    snapshot = record_access(after)["snapshot"]
    assert snapshot == before.metadata["convert"]["snapshot"]
    repo = repository(catalog, RID)
    with xr.open_zarr(repo.readonly_session(snapshot_id=snapshot).store, consolidated=False) as ds:
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:6]))
    # Only the period fully committed before the failure is in the repository, and the
    # next sync starts after it.
    assert committed_periods(repo) == DAYS[:7]
    provider.crash, provider.fetched = set(), []
    assert sync(catalog, RID, now=at(DAYS[9])).done == DAYS[7:9]
    assert provider.fetched == DAYS[7:9]


def test_a_cancelled_sync_leaves_the_dataset_unchanged_append_and_release(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    """Cancelled after periods were committed (an append) or built (a release): the
    dataset is as before, and the next sync does it all."""
    from arcodex.catalog._access import record_access

    provider = providers["generated"]
    ingested(catalog, "tas-daily", provider, 6, publish=True)
    before = catalog.get(RID)
    head = str(repository(catalog, RID).lookup_branch("main"))
    stopped = sync(catalog, RID, now=at(DAYS[15]), cancelled=lambda: len(provider.fetched) >= 5)
    assert stopped.cancelled and not stopped.done and provider.fetched == DAYS[6:11]
    assert "left as it was" in stopped.reasons[-1]
    after = catalog.get(RID)
    assert after.version == before.version and after.metadata == before.metadata
    assert record_access(after)["published"] is True
    repo = repository(catalog, RID)
    assert str(repo.lookup_branch("main")) == head and committed_periods(repo) == DAYS[:6]
    assert sync(catalog, RID, now=at(DAYS[9])).done == DAYS[6:9]

    rid, released = "tas-release+box", providers["released"]
    ingested(catalog, "tas-release", released, 4, publish=True)
    assert sync(catalog, rid, now=at(DAYS[4])).switched
    released.current, released.offset, released.fetched = "r2", 100.0, []
    before = catalog.get(rid)
    stopped = sync(catalog, rid, now=at(DAYS[4]), cancelled=lambda: len(released.fetched) >= 2)
    assert stopped.cancelled and not stopped.switched and released.fetched == DAYS[:2]
    after = catalog.get(rid)
    assert after.version == before.version and after.metadata == before.metadata
    repo = repository(catalog, rid)
    assert repo.list_branches() == {"main"} and repo.list_tags() == {"release-unknown"}
    with open_product(rid, catalog=catalog) as ds:
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:4]))


# -- release -------------------------------------------------------------------------------


def test_release_rebuilt_beside_and_switched_only_when_it_passes(
    catalog: Catalog, providers: dict[str, Generated], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.catalog._access import record_access

    rid = "tas-release+box"
    released = providers["released"]
    assert isinstance(released, Released)
    ingested(catalog, "tas-release", released, 4, publish=True)
    first = sync(catalog, rid, now=at(DAYS[4]))
    assert first.switched and first.done == DAYS[:4] and first.kept_tag == "release-unknown"
    assert catalog.get(rid).metadata["ingest"]["release"] == "r1"
    assert plan_sync(catalog, rid, now=at(DAYS[4])).action == "up_to_date"

    released.current, released.offset = "r2", 100.0
    plan = plan_sync(catalog, rid, now=at(DAYS[4]))
    assert plan.action == "rematerialize" and plan.missing == DAYS[:4]
    assert "release r2 found (dataset holds r1)" in plan.reasons

    def unchanged(record: Any) -> None:
        now = catalog.get(rid)
        assert now.version == record.version and now.metadata == record.metadata
        repo = repository(catalog, rid)
        assert str(repo.lookup_branch("main")) == record.metadata["convert"]["snapshot"]
        assert repo.list_branches() == {"main"}
        snapshot = record_access(now)["snapshot"]
        with xr.open_zarr(
            repo.readonly_session(snapshot_id=snapshot).store, consolidated=False
        ) as ds:
            xr.testing.assert_equal(ds.load(), concatenated(DAYS[:4]))
        with open_product(rid, catalog=catalog) as ds:
            xr.testing.assert_equal(ds.load(), concatenated(DAYS[:4]))

    # The new release fails a fetch: the old stays published and readable.
    before = catalog.get(rid)
    released.fail = {DAYS[2]}
    broken = sync(catalog, rid, now=at(DAYS[4]))
    assert not broken.switched and [f.period for f in broken.failed] == [DAYS[2]]
    assert not broken.ok and any("left as it was" in r for r in broken.reasons)
    unchanged(before)

    # The new release fails its check: not switched either.
    released.fail = set()
    with monkeypatch.context() as patched:
        patched.setattr(
            "arcodex.ingest._ingestion.check_repository", lambda *a: ("fail", ["made to fail"])
        )
        checked = sync(catalog, rid, now=at(DAYS[4]))
        assert not checked.switched and not checked.ok and "failed its check" in str(checked.error)
    unchanged(before)

    released.fetched = []
    done = sync(catalog, rid, now=at(DAYS[4]))
    assert done.switched and done.check == "pass" and done.kept_tag == "release-r1"
    assert released.fetched == DAYS[:4]
    record = catalog.get(rid)
    assert record.metadata["ingest"]["release"] == "r2"
    assert record.metadata["ingest"]["kept_releases"][-1]["tag"] == "release-r1"
    assert record_access(record)["published"] and record_access(record)["snapshot"] == done.snapshot
    with open_product(rid, catalog=catalog) as ds:
        xr.testing.assert_equal(ds.load(), concatenated(DAYS[:4], 100.0))
    repo = repository(catalog, rid)
    assert committed_periods(repo) == DAYS[:4] and repo.list_branches() == {"main"}
    with xr.open_zarr(repo.readonly_session(tag="release-r1").store, consolidated=False) as old:
        xr.testing.assert_equal(old.load(), concatenated(DAYS[:4]))
    assert SyncResult.model_validate(json.loads(done.model_dump_json())) == done


# -- CLI -----------------------------------------------------------------------------------


def test_cli_plan_and_sync_json(catalog: Catalog, providers: dict[str, Generated]) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    # The provider has periods to DAYS[7]; now (the real clock) is long after.
    providers["generated"].last = DAYS[7]
    ingested(catalog, "tas-daily", providers["generated"], 6)
    base = ["--catalog", str(catalog.root), "sync"]
    runner = CliRunner()
    shown = runner.invoke(app, [*base, RID, "--plan", "--json"])
    assert shown.exit_code == 0, shown.stderr
    plan = json.loads(shown.stdout)
    assert plan["action"] == "append" and plan["missing"] == DAYS[6:8]
    assert providers["generated"].fetched == []

    text = runner.invoke(app, [*base, RID, "--plan", "--end", DAYS[6]])
    assert text.exit_code == 0 and f"{RID}: append {DAYS[6]} to {DAYS[6]}" in text.stdout

    done = runner.invoke(app, [*base, "--all", "--json"])
    assert done.exit_code == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["record_id"] == RID and result["done"] == DAYS[6:8]
    again = runner.invoke(app, [*base, RID])
    assert again.exit_code == 0 and "up to date" in again.stdout

    both = runner.invoke(app, [*base, RID, "--all"])
    assert both.exit_code == 1 and "give a dataset ID or --all" in both.stderr


def test_a_commit_to_main_during_a_rebuild_is_not_overwritten(
    catalog: Catalog, providers: dict[str, Generated]
) -> None:
    import zarr

    rid = "tas-release+box"
    released = providers["released"]
    ingested(catalog, "tas-release", released, 2)
    before = catalog.get(rid)
    repo = repository(catalog, rid)

    def someone_commits() -> None:
        released.during = None
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="r+").attrs["note"] = "someone else"
        session.commit("someone else's change")

    released.during = someone_commits
    result = sync(catalog, rid, now=at(DAYS[4]))
    assert not result.switched and not result.ok and "someone committed" in str(result.error)
    after = catalog.get(rid)
    assert after.version == before.version and after.metadata == before.metadata
    repo = repository(catalog, rid)
    assert repo.list_branches() == {"main"} and repo.list_tags() == set()
    assert next(iter(repo.ancestry(branch="main"))).message == "someone else's change"
