"""CF-correct products: time bounds, packed fill values, attribute fixes of the time axis, gaps.

Each test makes an archive in a way real archives are made (files of one series
written with different epochs, packed integers, a missing day) and reads the
product back with plain xarray, zarr and icechunk, so it fails when the product
decodes otherwise than its sources, or when `check` passes a product that does.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arcodex._archives import write_archive
from arcodex.convert import AttrFixes, check, convert, update
from arcodex.convert._gaps import concat_gaps
from arcodex.errors import ConversionError, ValidationError
from arcodex.testing import sources_dataset

xr = pytest.importorskip("xarray")
zarr = pytest.importorskip("zarr")
icechunk = pytest.importorskip("icechunk")
cftime = pytest.importorskip("cftime")

TARGETS = {
    "zarr": ("zarr", "icechunk", ".zarr"),
    "icechunk": ("icechunk", "icechunk", ".icechunk"),
    "virtual-icechunk": ("virtual", "icechunk", ".icechunk"),
    "kerchunk": ("virtual", "kerchunk", ".json"),
}
HOURS = "hours since 2010-01-01"


def _convert(src: Any, target: str, dest: Path, **kwargs: Any) -> Any:
    to, fmt, _ = TARGETS[target]
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 1)
    return convert(src, to=to, format=fmt, dest=dest, **kwargs)


def _mixed_units(tmp_path: Path, *, other: tuple[int, ...] = (2,), files: int = 3) -> list[Path]:
    """A multivar archive (time + time_bnds) whose files ``other`` count hours since 2010."""
    out = write_archive(tmp_path / "src", "multivar", files=files, steps=3)
    hours = write_archive(tmp_path / "hours", "multivar", files=files, steps=3, time_units=HOURS)
    for i in other:
        shutil.move(hours[i], out[i])
    return out


def _decoded(ds: Any, name: str) -> np.ndarray:
    return np.asarray(ds[name].values)


def _assert_times_equal(product: Any, files: list[Path]) -> None:
    want = sources_dataset(files, raw=False)
    for name in ("time", "time_bnds"):
        np.testing.assert_array_equal(_decoded(product, name), _decoded(want, name), err_msg=name)


def _open(target: str, dest: Path) -> Any:
    from arcodex.convert import open_product

    return open_product(dest)


# -- 1. bounds follow their coordinate ----------------------------------------------------------


def test_sources_in_other_units_really_differ(tmp_path: Path) -> None:
    files = _mixed_units(tmp_path)
    units = []
    for f in files:
        with xr.open_dataset(f, decode_cf=False) as ds:
            units.append(ds["time"].attrs["units"])
            assert "units" not in ds["time_bnds"].attrs  # CF: bounds inherit them
    assert units == ["days since 2000-01-01", "days since 2000-01-01", HOURS]


@pytest.mark.parametrize("target", list(TARGETS))
def test_bounds_are_reencoded_with_their_coordinate(tmp_path: Path, target: str) -> None:
    files = _mixed_units(tmp_path)
    dest = tmp_path / f"out{TARGETS[target][2]}"
    result = _convert([str(f) for f in files], target, dest)
    assert result.status == "pass", result.report.reasons
    with _open(target, dest) as ds:
        _assert_times_equal(ds.load(), files)
    if target == "zarr":
        with xr.open_zarr(dest) as ds:  # plain xarray, no arcodex
            _assert_times_equal(ds.load(), files)


@pytest.mark.parametrize("target", ["zarr", "icechunk", "virtual-icechunk"])
def test_update_reencodes_the_bounds_it_appends(tmp_path: Path, target: str) -> None:
    files = _mixed_units(tmp_path)
    dest = tmp_path / f"out{TARGETS[target][2]}"
    first = _convert([str(f) for f in files[:2]], target, dest)
    assert first.status == "pass"
    result = update(dest, [str(files[2])], cluster="threads", workers=1)
    assert result.status == "pass", result.report.reasons
    assert result.changes["appended_steps"] == 3
    with _open(target, dest) as ds:
        _assert_times_equal(ds.load(), files)


def test_update_in_other_units_than_the_product(tmp_path: Path) -> None:
    """The product counts hours; the appended files days: bounds still line up."""
    files = _mixed_units(tmp_path, other=(0, 1))
    dest = tmp_path / "out.zarr"
    _convert([str(f) for f in files[:2]], "zarr", dest)
    result = update(dest, [str(files[2])], cluster="threads", workers=1)
    assert result.status == "pass", result.report.reasons
    with xr.open_zarr(dest) as ds:
        assert ds["time"].encoding["units"] == HOURS
        _assert_times_equal(ds.load(), files)


def test_check_fails_when_bounds_decode_wrong(tmp_path: Path) -> None:
    files = _mixed_units(tmp_path)
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest).status == "pass"
    # Put the third file's bounds back as stored (hours since 2010), as arcodex once did.
    with xr.open_dataset(files[2], decode_cf=False) as ds:
        raw = ds["time_bnds"].values
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        root = zarr.open_group(str(dest), mode="r+")
        root["time_bnds"][6:9] = raw
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("time_bnds" in r and "decodes to" in r for r in report.reasons), report.reasons


def test_check_decodes_bounds_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that copies bounds raw (as arcodex once did) is caught even though the check's
    own reads share the writer's code: the check decodes each source's bounds itself."""
    from arcodex.convert._times import TimeCode

    monkeypatch.setattr(TimeCode, "encode", lambda self, values, source, where: values)
    files = _mixed_units(tmp_path)
    with pytest.raises(ConversionError, match=r"failed its check.*time_bnds of multivar_002\.nc"):
        _convert([str(f) for f in files], "zarr", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


# -- 2. packed variables: a missing chunk reads as missing -----------------------------------------


def _missing_value_archive(tmp_path: Path) -> list[Path]:
    """Packed int16 marking missing points with ``missing_value`` only (no _FillValue)."""
    out = []
    for i in range(2):
        time = np.arange(4.0) + 4 * i
        tas = 280.0 + np.arange(4 * 3 * 5, dtype="f4").reshape(4, 3, 5) / 10
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), tas, {"units": "K"})},
            coords={
                "time": ("time", time, {"units": "days since 2000-01-01", "axis": "T"}),
                "lat": ("lat", np.arange(3.0)),
                "lon": ("lon", np.arange(5.0)),
            },
        )
        path = tmp_path / "mv" / f"mv_{i}.nc"
        path.parent.mkdir(exist_ok=True)
        enc = {
            "tas": {
                "dtype": "int16",
                "scale_factor": 0.01,
                "add_offset": 280.0,
                "missing_value": np.int16(-32767),
                "_FillValue": None,
            },
            "time": {"_FillValue": None},
            "lat": {"_FillValue": None},
            "lon": {"_FillValue": None},
        }
        ds.to_netcdf(path, encoding=enc, unlimited_dims=["time"])
        out.append(path)
    return out


def _delete_chunk(dest: Path, target: str, zarr_format: int) -> None:
    """Delete the chunk of tas holding steps 4..7 (chunks of 4 steps)."""
    if target == "zarr":
        key = dest / "tas" / ("c/1/0/0" if zarr_format == 3 else "1.0.0")
        assert key.exists(), sorted(p.name for p in (dest / "tas").rglob("*"))
        key.unlink()
        return
    from zarr.core.sync import sync

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(dest)))
    session = repo.writable_session("main")
    sync(session.store.delete("tas/c/1/0/0"))
    session.commit("lose a chunk")


def _open_plain(dest: Path, target: str) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        if target == "zarr":
            return xr.open_zarr(dest)
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(dest)))
        return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


@pytest.mark.parametrize(
    ("target", "zarr_format", "marker"),
    [
        ("zarr", 3, "_FillValue"),
        ("zarr", 2, "_FillValue"),
        ("icechunk", 3, "_FillValue"),
        ("zarr", 3, "missing_value"),
        ("zarr", 2, "missing_value"),
        ("icechunk", 3, "missing_value"),
    ],
)
def test_missing_packed_chunk_reads_as_missing(
    tmp_path: Path, target: str, zarr_format: int, marker: str
) -> None:
    if marker == "_FillValue":
        files = write_archive(tmp_path / "src", "packed", files=3, steps=4)
    else:
        files = _missing_value_archive(tmp_path)
    dest = tmp_path / f"out{TARGETS[target][2]}"
    result = _convert(
        [str(f) for f in files], target, dest, zarr_format=zarr_format, chunks={"time": 4}
    )
    assert result.status == "pass", result.report.reasons
    assert check(dest, cluster="threads").status == "pass"
    with _open_plain(dest, target) as ds:
        assert ds["tas"].encoding["dtype"] == np.dtype("int16")
        before = ds["tas"].values
    assert np.isfinite(before[4:8]).any()
    _delete_chunk(dest, target, zarr_format)
    with _open_plain(dest, target) as ds:
        after = ds["tas"].values
    assert np.isnan(after[4:8]).all(), np.unique(after[4:8])[:5]
    np.testing.assert_array_equal(after[:4], before[:4])


# -- 3. attribute fixes of the time axis ------------------------------------------------------------


def test_time_units_fix_reencodes_the_values(tmp_path: Path) -> None:
    files = _mixed_units(tmp_path)
    dest = tmp_path / "out.zarr"
    fixes = {"variables": {"time": {"set": {"units": "minutes since 1990-01-01 00:00:00"}}}}
    result = _convert([str(f) for f in files], "zarr", dest, attrs=fixes)
    assert result.status == "pass", result.report.reasons
    with xr.open_zarr(dest, decode_times=False) as raw:
        assert raw["time"].attrs["units"] == "minutes since 1990-01-01 00:00:00"
    with xr.open_zarr(dest) as ds:
        _assert_times_equal(ds.load(), files)
    assert check(dest, cluster="threads").status == "pass"


@pytest.mark.parametrize("fix", [{"set": {"calendar": "standard"}}, {"delete": ["calendar"]}])
def test_time_calendar_fix_keeps_the_dates(tmp_path: Path, fix: dict[str, Any]) -> None:
    files = write_archive(tmp_path / "src", "noleap", files=2, steps=3)
    dest = tmp_path / "out.zarr"
    result = _convert([str(f) for f in files], "zarr", dest, attrs={"variables": {"time": fix}})
    assert result.status == "pass", result.report.reasons
    want = sources_dataset(files, raw=False)
    with xr.open_zarr(dest, decode_times=False) as raw:
        assert raw["time"].attrs.get("calendar") == fix.get("set", {}).get("calendar")
    with xr.open_zarr(dest, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        assert ds["time"].values[0].calendar == "standard"
        got = [t.isoformat() for t in ds["time"].values]
    assert got == [t.isoformat() for t in want["time"].values]
    assert check(dest, cluster="threads").status == "pass"


def test_calendar_fix_to_a_calendar_without_the_dates_is_refused(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=1, steps=4, start="2000-02-27")
    fixes = {"variables": {"time": {"set": {"calendar": "noleap"}}}}
    with pytest.raises(ConversionError, match=r"2000-02-29.*noleap calendar lacks"):
        _convert([str(f) for f in files], "zarr", tmp_path / "out.zarr", attrs=fixes)
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    ("fix", "message"),
    [
        ({"delete": ["units"]}, "cannot delete time:units"),
        ({"rename": {"units": "old_units"}}, "cannot rename time:units"),
        ({"rename": {"calendar": "cal"}}, "cannot rename time:calendar"),
        ({"set": {"units": "days"}}, "are no time units"),
        ({"set": {"calendar": "martian"}}, "is no CF calendar"),
    ],
)
def test_time_fixes_that_would_change_the_dates_are_refused(
    tmp_path: Path, fix: dict[str, Any], message: str
) -> None:
    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    with pytest.raises(ValidationError, match=message):
        _convert(
            [str(f) for f in files],
            "zarr",
            tmp_path / "out.zarr",
            attrs={"variables": {"time": fix}},
        )
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    ("fix", "message"),
    [
        ({"global": {"delete": ["no_such"]}}, "cannot delete no_such: no source has it"),
        (
            {"variables": {"tas": {"rename": {"nope": "x"}}}},
            "cannot rename tas:nope: no source has it",
        ),
        (
            {"variables": {"tas": {"rename": {"long_name": "standard_name"}}}},
            "tas:standard_name is already there",
        ),
    ],
)
def test_fixes_that_do_nothing_or_overwrite_need_force(
    tmp_path: Path, fix: dict[str, Any], message: str
) -> None:
    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    sources = [str(f) for f in files]
    with pytest.raises(ValidationError, match=message):
        _convert(sources, "zarr", tmp_path / "refused.zarr", attrs=fix)
    forced = json.loads(json.dumps(fix))
    for block in [forced.get("global"), *forced.get("variables", {}).values()]:
        if block is not None:
            block["force"] = True
    dest = tmp_path / "forced.zarr"
    result = _convert(sources, "zarr", dest, attrs=forced)
    assert result.status == "pass", result.report.reasons
    assert check(dest, cluster="threads").status == "pass"
    if "standard_name" in message:
        with xr.open_zarr(dest) as ds:
            assert ds["tas"].attrs["standard_name"] == "near-surface air temperature"
            assert "long_name" not in ds["tas"].attrs


def test_force_attrs_round_trips() -> None:
    fixes = AttrFixes.parse(del_attrs=["history"], rename_attrs=["tas:a=b"], force=True)
    assert all(fix.force for fix in fixes.targets.values())
    assert AttrFixes.from_dict(fixes.to_dict()).to_dict() == fixes.to_dict()
    assert fixes.apply("tas", {"b": 1}) == {"b": 1}


def test_force_attrs_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from arcodex.cli import app

    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    monkeypatch.delenv("ARCODEX_CATALOG", raising=False)
    base = ["convert", str(tmp_path / "src" / "*.nc"), "--cluster", "threads", "--no-catalog"]
    base += ["--del-attr", "tas:no_such"]
    refused = CliRunner().invoke(app, [*base, "--dest", str(tmp_path / "a.zarr")])
    assert refused.exit_code != 0
    assert "cannot delete tas:no_such: no source has it" in refused.output
    assert not (tmp_path / "a.zarr").exists()
    done = CliRunner().invoke(app, [*base, "--dest", str(tmp_path / "b.zarr"), "--force-attrs"])
    assert done.exit_code == 0, done.output
    assert len(files) == 2


def test_deleted_attributes_leave_the_varying_record(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=3, steps=2)
    dest = tmp_path / "out.zarr"
    kept = _convert([str(f) for f in files], "zarr", tmp_path / "kept.zarr")
    assert "history" in kept.plan.varying_attrs
    result = _convert(
        [str(f) for f in files], "zarr", dest, attrs={"global": {"delete": ["history"]}}
    )
    assert result.status == "pass", result.report.reasons
    with xr.open_zarr(dest) as ds:
        assert "history" not in ds.attrs
        varying = json.loads(ds.attrs.get("arcodex_varying_attrs", "{}"))
    assert "history" not in varying
    renamed = _convert(
        [str(f) for f in files],
        "zarr",
        tmp_path / "renamed.zarr",
        attrs={"global": {"rename": {"history": "old_history"}}},
    )
    assert set(renamed.plan.varying_attrs) == {"old_history"}


def test_update_cannot_reencode_the_existing_steps(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=3, steps=2)
    dest = tmp_path / "out.zarr"
    _convert([str(f) for f in files[:2]], "zarr", dest)
    fixes = {"variables": {"time": {"set": {"units": HOURS}}}}
    with pytest.raises(ConversionError, match="cannot re-encode the existing steps"):
        update(dest, [str(files[2])], attrs=fixes, cluster="threads", workers=1)


# -- 4. gaps in the concat axis -------------------------------------------------------------------


def test_a_missing_day_is_a_named_warning(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=3, steps=4)
    files[1].unlink()  # 2000-01-05 .. 2000-01-08: the sources lack them too
    dest = tmp_path / "out.zarr"
    result = _convert([str(files[0]), str(files[2])], "zarr", dest)
    want = "time: gap between 2000-01-04 and 2000-01-09 (expected step 1 day)"
    assert result.status == "warn", result.report.to_dict()
    assert want in result.report.warnings
    report = check(dest, cluster="threads")
    assert report.status == "warn" and want in report.warnings


def test_contiguous_archives_warn_of_no_gap(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "noleap", files=3, steps=4)  # crosses February
    result = _convert([str(f) for f in files], "zarr", tmp_path / "out.zarr")
    assert result.status == "pass", result.report.to_dict()


def _monthly(calendar: str, months: list[int]) -> list[list[Any]]:
    dates = [cftime.datetime(2000 + m // 12, m % 12 + 1, 1, calendar=calendar) for m in months]
    return [dates[: len(dates) // 2], dates[len(dates) // 2 :]]


@pytest.mark.parametrize("calendar", ["standard", "noleap", "360_day"])
def test_monthly_steps_are_no_gap(calendar: str) -> None:
    assert concat_gaps("time", _monthly(calendar, list(range(36)))) == []


def test_a_missing_month_is_named() -> None:
    months = [m for m in range(24) if m != 13]
    assert concat_gaps("time", _monthly("noleap", months)) == [
        "time: gap between 2001-01-01 and 2001-03-01 (expected step 1 month)"
    ]


def test_gaps_of_sub_daily_and_yearly_steps() -> None:
    hours = [cftime.datetime(2000, 1, 1, h, calendar="360_day") for h in (0, 6, 12, 18)]
    hours += [cftime.datetime(2000, 1, 2, h, calendar="360_day") for h in (12, 18)]
    assert concat_gaps("t", [hours]) == [
        "t: gap between 2000-01-01T18:00:00 and 2000-01-02T12:00:00 (expected step 6 hours)"
    ]
    years = [cftime.datetime(y, 7, 1, calendar="standard") for y in (2000, 2001, 2002, 2004)]
    assert concat_gaps("time", [years]) == [
        "time: gap between 2002-07-01 and 2004-07-01 (expected step 1 year)"
    ]
    assert concat_gaps("depth", [[5.0, 15.0, 30.0, 60.0, 120.0]]) == []
