"""``arcodex.convert.update``: append a new period, rewrite changed sources, add variables.

Every test converts the first files of a small archive written by
:func:`arcodex._archives.write_archive`, updates the product with more files
(or changed ones) and compares it with the sources as xarray concatenates
them, so a test fails when an update is not faithful, changes a product it
should have left alone, or leaves it half-written after a failure or a kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.catalog._journal import FAIL_AT_ENV, KILL_AT_ENV, InjectedFailure
from arcodex.convert import Product, check, convert, update
from arcodex.errors import ConversionError, ValidationError
from arcodex.testing import assert_same_values, sources_dataset

xr = pytest.importorskip("xarray")
zarr = pytest.importorskip("zarr")
icechunk = pytest.importorskip("icechunk")

#: (to, format) of each product kind.
TARGETS = {
    "zarr": ("zarr", "icechunk"),
    "icechunk": ("icechunk", "icechunk"),
    "virtual-icechunk": ("virtual", "icechunk"),
    "kerchunk": ("virtual", "kerchunk"),
}
EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
}
REFUSED = (ConversionError, ValidationError)
# -- helpers ----------------------------------------------------------------------------------


@dataclass
class Periods:
    """An archive of 5 files: the first 3 under ``src/``, the last 2 (its new period) under ``new/``."""

    root: Path
    files: list[Path]  # all 5, in time order (pristine copies under all/)

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def new(self) -> Path:
        return self.root / "new"

    @property
    def src_glob(self) -> str:
        return str(self.src / "*.nc")

    @property
    def new_glob(self) -> str:
        return str(self.new / "*.nc")


def _periods(tmp_path: Path, kind: str = "regular", **kwargs: Any) -> Periods:
    files = write_archive(tmp_path / "all", kind, files=5, steps=4, **kwargs)
    (tmp_path / "src").mkdir()
    (tmp_path / "new").mkdir()
    for f in files[:3]:
        shutil.copy(f, tmp_path / "src")
    for f in files[3:]:
        shutil.copy(f, tmp_path / "new")
    return Periods(tmp_path, files)


@pytest.fixture
def periods(tmp_path: Path) -> Periods:
    return _periods(tmp_path)


def _convert(src: str | list[str], target: str, dest: Path, **kwargs: Any) -> Any:
    to, fmt = TARGETS[target]
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 2)
    return convert(src, to=to, format=fmt, dest=dest, **kwargs)


def _update(product: Any, sources: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 2)
    return update(product, sources, **kwargs)


def _assert_product_equals(product: Any, files: list[Path], steps: int) -> None:
    with product.open(raw=True) as ds:
        assert ds.sizes["time"] == steps
        assert_same_values(ds, sources_dataset(files))


def _tree(path: Path) -> dict[str, str]:
    """The sha256 of every file of a product (a directory or one file)."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _mtimes(path: Path) -> dict[str, int]:
    if path.is_file():
        return {path.name: path.stat().st_mtime_ns}
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*")}


def _backups(path: Path) -> list[str]:
    """Update backups left beside a product."""
    return sorted(p.name for p in path.parent.glob("*arcodex-backup*"))


def _snapshots(path: Path) -> int:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return len(list(repo.ancestry(branch="main")))


def _rewrite(path: Path, change: Callable[[Any], Any]) -> None:
    """Replace a NetCDF file by ``change(its dataset)``, atomically, with a later mtime."""
    before = path.stat()
    with xr.open_dataset(path, decode_cf=False) as ds:
        changed = change(ds.load())
    tmp = path.with_name(f".{path.name}.tmp")
    _to_netcdf(changed, tmp)
    os.replace(tmp, path)
    later = before.st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(later, later))
    after = path.stat()
    assert (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size)


def _warmer(ds: Any) -> Any:
    ds["tas"] = ds["tas"] + np.float32(1)
    return ds


def _copy_as(source: Path, dest: Path, change: Callable[[Any], Any]) -> None:
    with xr.open_dataset(source, decode_cf=False) as ds:
        changed = change(ds.load())
    _to_netcdf(changed, dest)


def _to_netcdf(ds: Any, path: Path) -> None:
    """Write as the archive does: no _FillValue where the source has none."""
    for var in ds.variables.values():
        if "_FillValue" not in var.attrs:
            var.encoding["_FillValue"] = None
    ds.to_netcdf(path, unlimited_dims=["time"])


# -- 1. append a new period ------------------------------------------------------------------


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_append_new_period(tmp_path: Path, periods: Periods, target: str) -> None:
    dest = tmp_path / f"out{EXT[target]}"
    first = _convert(periods.src_glob, target, dest)
    assert first.status == "pass", first.report.reasons
    _assert_product_equals(first.product, periods.files[:3], 12)

    result = _update(dest, periods.new_glob)
    assert result.action == "update"
    assert result.status == "pass", result.report.reasons
    assert result.changes == {
        "appended_steps": 8,
        "appended_sources": 2,
        "overwritten_sources": 0,
        "new_variables": [],
    }
    assert result.plan.length == 20
    _assert_product_equals(result.product, periods.files, 20)
    with result.product.open(raw=True) as ds:
        assert np.all(np.diff(ds["time"].values) > 0)
    assert check(dest, cluster="threads").status == "pass"

    # The same update again: nothing to do, nothing written.
    tree, mtimes = _tree(dest), _mtimes(dest)
    snapshots = _snapshots(dest) if target in ("icechunk", "virtual-icechunk") else None
    again = _update(dest, periods.new_glob)
    assert again.changes == {"unchanged": True}
    assert _tree(dest) == tree
    assert _mtimes(dest) == mtimes
    if snapshots is not None:
        assert _snapshots(dest) == snapshots
    # All the sources given at once are just as much up to date.
    again = _update(dest, [periods.src_glob, periods.new_glob])
    assert again.changes == {"unchanged": True}
    assert _mtimes(dest) == mtimes
    _assert_product_equals(again.product, periods.files, 20)


def test_append_one_file_at_a_time(tmp_path: Path, periods: Periods) -> None:
    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest).status == "pass"
    for n, f in enumerate(sorted(periods.new.glob("*.nc")), start=4):
        result = _update(dest, str(f))
        assert result.status == "pass", result.report.reasons
        assert result.changes["appended_steps"] == 4
        _assert_product_equals(result.product, periods.files[:n], 4 * n)
    assert _backups(dest) == []


# -- 2. appends that start mid-chunk --------------------------------------------------------


@pytest.mark.parametrize("target", ["zarr", "icechunk"])
@pytest.mark.parametrize("size", [3, 5, 7])
def test_append_with_explicit_time_chunks(
    tmp_path: Path, periods: Periods, target: str, size: int
) -> None:
    dest = tmp_path / f"out{EXT[target]}"
    assert _convert(periods.src_glob, target, dest, chunks=f"time={size}").status == "pass"
    result = _update(dest, periods.new_glob)
    assert result.status == "pass", result.report.reasons
    assert result.changes["appended_steps"] == 8
    _assert_product_equals(result.product, periods.files, 20)
    assert result.plan.variables["tas"].chunks[0] == size
    if target == "zarr":
        group = zarr.open_group(str(dest), mode="r", use_consolidated=False)
        assert group["tas"].chunks[0] == size
        assert group["tas"].shape == (20, 12, 16)
        assert _backups(dest) == []
    # The same chunks given again are fine.
    again = _update(dest, periods.new_glob, chunks=f"time={size}")
    assert again.changes == {"unchanged": True}


# -- 3. a changed source is rewritten -------------------------------------------------------


@pytest.mark.parametrize("target", ["zarr", "icechunk"])
def test_changed_source_is_overwritten(tmp_path: Path, periods: Periods, target: str) -> None:
    dest = tmp_path / f"out{EXT[target]}"
    assert _convert(periods.src_glob, target, dest).status == "pass"
    changed = periods.src / "regular_001.nc"
    _rewrite(changed, _warmer)

    result = _update(dest, periods.src_glob)
    assert result.status == "pass", result.report.reasons
    assert result.changes == {
        "appended_steps": 0,
        "appended_sources": 0,
        "overwritten_sources": 1,
        "new_variables": [],
    }
    want = [periods.files[0], changed, periods.files[2]]
    _assert_product_equals(result.product, want, 12)
    with result.product.open(raw=True) as ds:
        orig = sources_dataset(periods.files[:3])
        np.testing.assert_array_equal(
            ds["tas"].values[4:8], orig["tas"].values[4:8] + np.float32(1)
        )
        np.testing.assert_array_equal(ds["tas"].values[:4], orig["tas"].values[:4])
        np.testing.assert_array_equal(ds["tas"].values[8:], orig["tas"].values[8:])
    assert check(dest, cluster="threads").status == "pass"
    assert _update(dest, periods.src_glob).changes == {"unchanged": True}
    if target == "zarr":
        assert _backups(dest) == []


@pytest.mark.parametrize(
    "target",
    [
        "zarr",
        "icechunk",
    ],
)
def test_changed_source_and_new_period_at_once(
    tmp_path: Path, periods: Periods, target: str
) -> None:
    dest = tmp_path / f"out{EXT[target]}"
    assert _convert(periods.src_glob, target, dest, chunks="time=5").status == "pass"
    changed = periods.src / "regular_002.nc"  # its steps 8..11 share a chunk with the new ones
    _rewrite(changed, _warmer)
    result = _update(dest, [periods.src_glob, periods.new_glob])
    assert result.status == "pass", result.report.reasons
    assert result.changes["overwritten_sources"] == 1
    assert result.changes["appended_steps"] == 8
    want = [*periods.files[:2], changed, *periods.files[3:]]
    _assert_product_equals(result.product, want, 20)


def test_changed_source_not_given_is_still_rewritten(tmp_path: Path, periods: Periods) -> None:
    """The recorded sources are rescanned: a changed one is rewritten even if only new files are given."""
    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest).status == "pass"
    changed = periods.src / "regular_000.nc"
    _rewrite(changed, _warmer)
    result = _update(dest, periods.new_glob)
    assert result.status == "pass", result.report.reasons
    assert result.changes["overwritten_sources"] == 1
    assert result.changes["appended_steps"] == 8
    _assert_product_equals(result.product, [changed, *periods.files[1:]], 20)


# -- 4. a new variable --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["zarr", "icechunk"])
def test_new_variable_is_added(tmp_path: Path, target: str) -> None:
    periods = _periods(tmp_path, "multivar")
    dest = tmp_path / f"out{EXT[target]}"
    first = _convert(periods.src_glob, target, dest, variables=["tas"])
    assert first.status == "pass", first.report.reasons
    with first.product.open(raw=True) as ds:
        assert "pr" not in ds.variables

    result = _update(dest, periods.src_glob, variables=["pr"])
    assert result.status == "pass", result.report.reasons
    assert result.changes == {
        "appended_steps": 0,
        "appended_sources": 0,
        "overwritten_sources": 0,
        "new_variables": ["pr"],
    }
    want = sources_dataset(periods.files[:3])
    with result.product.open(raw=True) as ds:
        assert ds.sizes["time"] == 12
        assert_same_values(ds, want[["tas", "pr"]])
        assert "orog" not in ds.variables
    assert check(dest, cluster="threads").status == "pass"
    assert _update(dest, periods.src_glob, variables=["pr"]).changes == {"unchanged": True}

    # Later appends carry both variables.
    more = _update(dest, periods.new_glob)
    assert more.status == "pass", more.report.reasons
    assert more.changes["new_variables"] == []
    with more.product.open(raw=True) as ds:
        assert_same_values(ds, sources_dataset(periods.files)[["tas", "pr"]])
    if target == "zarr":
        assert _backups(dest) == []


def test_new_variable_needs_every_source(tmp_path: Path) -> None:
    periods = _periods(tmp_path, "multivar")
    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest, variables=["tas"]).status == "pass"
    for f in periods.src.glob("*.nc"):
        f.unlink()  # the product's sources are gone: pr cannot be filled in
    before = _tree(dest)
    with pytest.raises(REFUSED):
        _update(dest, periods.new_glob, variables=["pr"])
    assert _tree(dest) == before
    assert _backups(dest) == []


# -- 5. refusals change nothing ------------------------------------------------------------


def _prepend(p: Periods) -> tuple[str, str, dict[str, Any]]:
    """The product holds files 1..4; file 0 comes before its start."""
    shutil.copy(p.files[3], p.src)
    shutil.copy(p.files[4], p.src)
    (p.src / "regular_000.nc").rename(p.new / "regular_000.nc")
    for f in p.files[3:]:
        (p.new / f.name).unlink()
    return p.src_glob, p.new_glob, {}


def _insert(p: Periods) -> tuple[str, str, dict[str, Any]]:
    """The product holds files 0, 1, 3, 4; file 2 falls between its steps."""
    (p.src / "regular_002.nc").rename(p.new / "regular_002.nc")
    for f in p.files[3:]:
        shutil.move(p.new / f.name, p.src / f.name)
    return p.src_glob, p.new_glob, {}


def _fewer_lats(p: Periods) -> tuple[str, str, dict[str, Any]]:
    target = p.new / "regular_003.nc"
    target.unlink()
    _copy_as(p.files[3], target, lambda ds: ds.isel(lat=slice(0, -1)))
    return p.src_glob, p.new_glob, {}


def _fewer_lats_in_tas(p: Periods) -> tuple[str, str, dict[str, Any]]:
    """Only tas loses a lat row (on a dim of its own): the coordinate keeps its 12."""
    target = p.new / "regular_003.nc"
    target.unlink()

    def change(ds: Any) -> Any:
        tas = ds["tas"].isel(lat=slice(0, -1)).rename(lat="lat_short")
        return ds.drop_vars("tas").assign(tas=tas)

    _copy_as(p.files[3], target, change)
    return p.src_glob, p.new_glob, {}


def _float64(p: Periods) -> tuple[str, str, dict[str, Any]]:
    target = p.new / "regular_003.nc"
    target.unlink()

    def change(ds: Any) -> Any:
        tas = ds["tas"].astype("float64")
        tas.attrs = {k: v for k, v in ds["tas"].attrs.items() if k != "_FillValue"}
        tas.encoding = {}
        ds["tas"] = tas
        return ds

    _copy_as(p.files[3], target, change)
    return p.src_glob, p.new_glob, {}


def _other_chunks(p: Periods) -> tuple[str, str, dict[str, Any]]:
    return p.src_glob, p.new_glob, {"chunks": "time=7"}


def _overlap(p: Periods) -> tuple[str, str, dict[str, Any]]:
    """A copy of the product's last file under a new name."""
    shutil.copy(p.files[2], p.new / "regular_002b.nc")
    return p.src_glob, p.new_glob, {}


def _plain(p: Periods) -> tuple[str, str, dict[str, Any]]:
    return p.src_glob, p.src_glob, {}


def _shorter(p: Periods) -> None:
    """A recorded source rewritten with fewer steps (after the conversion)."""
    _rewrite(p.src / "regular_001.nc", lambda ds: ds.isel(time=slice(0, 3)))


def _longer(p: Periods) -> None:
    """The product's last source rewritten with a fifth step (after the conversion)."""

    def change(ds: Any) -> Any:
        extra = ds.isel(time=[-1])
        extra["time"] = extra["time"] + 1.0
        return xr.concat([ds, extra], dim="time", data_vars="minimal", coords="minimal")

    _rewrite(p.src / "regular_002.nc", change)


def _moved(p: Periods) -> None:
    """A recorded source rewritten to hold steps after the product's end."""

    def change(ds: Any) -> Any:
        ds["time"] = ds["time"] + 100.0
        return ds

    _rewrite(p.src / "regular_001.nc", change)


Setup = Callable[[Periods], tuple[str, str, dict[str, Any]]]
#: How to get there: (before the conversion, after it, the refusal's message).
REFUSALS: dict[str, tuple[Setup, Callable[[Periods], None] | None, str]] = {
    "prepend": (_prepend, None, "before"),
    "insert": (_insert, None, "between|overlap|gap"),
    "fewer-lats": (_fewer_lats, None, "lat"),
    "fewer-lats-in-tas": (_fewer_lats_in_tas, None, "lat"),
    "dtype": (_float64, None, "f8|float64"),
    "chunks": (_other_chunks, None, "chunk"),
    "overlap": (_overlap, None, "overlap|between|before"),
    "shorter-source": (_plain, _shorter, "now holds 3 steps"),
    "longer-source": (_plain, _longer, "now holds 5 steps"),
    "moved-source": (_plain, _moved, "regular_00[12]"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_incompatible_update_is_refused(tmp_path: Path, periods: Periods, case: str) -> None:
    before_convert, after_convert, message = REFUSALS[case]
    product_glob, update_glob, kwargs = before_convert(periods)
    dest = tmp_path / "out.zarr"
    first = _convert(product_glob, "zarr", dest, chunks="time=4")
    # "insert" leaves a period out on purpose: the check warns of that gap.
    status = "warn" if case == "insert" else "pass"
    assert first.status == status, first.report.to_dict()
    if after_convert is not None:
        after_convert(periods)
    before = _tree(dest)
    with pytest.raises(REFUSED, match=message):
        _update(dest, update_glob, **kwargs)
    assert _tree(dest) == before
    assert _backups(dest) == []
    if after_convert is None:
        assert check(dest, cluster="threads").status == status


def test_source_with_shifted_times_is_rewritten_or_refused(
    tmp_path: Path, periods: Periods
) -> None:
    """Times moved within the gap to the next source keep the order: either way, never half-done."""
    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest).status == "pass"
    changed = periods.src / "regular_001.nc"

    def change(ds: Any) -> Any:
        ds["time"] = ds["time"] + 0.5
        return ds

    _rewrite(changed, change)
    before = _tree(dest)
    try:
        result = _update(dest, periods.src_glob)
    except REFUSED:
        assert _tree(dest) == before
        return
    assert result.changes["overwritten_sources"] == 1
    _assert_product_equals(result.product, [periods.files[0], changed, periods.files[2]], 12)
    assert check(dest, cluster="threads").status == "pass"


def test_refused_update_leaves_icechunk_alone(tmp_path: Path, periods: Periods) -> None:
    dest = tmp_path / "out.icechunk"
    assert _convert(periods.src_glob, "icechunk", dest).status == "pass"
    snapshots, tree = _snapshots(dest), _tree(dest)
    _float64(periods)
    with pytest.raises(REFUSED, match=r"f8|float64"):
        _update(dest, periods.new_glob)
    assert _snapshots(dest) == snapshots
    assert _tree(dest) == tree


def test_update_of_a_foreign_store_is_refused(tmp_path: Path, periods: Periods) -> None:
    dest = tmp_path / "plain.zarr"
    with xr.open_dataset(periods.files[0], decode_cf=False) as ds:
        ds.load().to_zarr(dest, consolidated=False)
    before = _tree(dest)
    with pytest.raises(ValidationError, match="provenance"):
        _update(dest, periods.new_glob)
    assert _tree(dest) == before


# -- 6. a failed Zarr update is rolled back --------------------------------------------------


def _catalog_product(tmp_path: Path, periods: Periods, **kwargs: Any) -> tuple[Path, str, Path]:
    """A catalog with the product of ``src/``: (catalog root, record id, product path)."""
    root = tmp_path / "cat"
    with Catalog.create(root) as cat:
        result = convert(periods.src_glob, to="zarr", catalog=cat, cluster="threads", **kwargs)
        assert result.status == "pass", result.report.reasons
        assert result.record is not None
        return root, result.record.id, Path(result.product.target.url)


@pytest.mark.parametrize(
    "state",
    [
        "artifact_backup",
        "artifact_write_succeeded",
        "catalog_write_started",
        "catalog_write_succeeded",
    ],
)
def test_failed_zarr_update_is_rolled_back(
    tmp_path: Path, periods: Periods, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    root, record_id, path = _catalog_product(tmp_path, periods, chunks="time=5")
    before = _tree(path)
    with Catalog.open(root) as cat:
        original = cat.get(record_id)
        monkeypatch.setenv(FAIL_AT_ENV, state)
        with pytest.raises(InjectedFailure):
            _update(record_id, periods.new_glob, catalog=cat)
        monkeypatch.delenv(FAIL_AT_ENV)
        record = cat.get(record_id)
        if state != "catalog_write_succeeded":
            assert record.version == original.version
        # Once written, the record is put back as a newer version with the old content.
        assert record.metadata == original.metadata
        assert record.artifacts == original.artifacts
        assert record.metadata["end_datetime"].startswith("2000-01-12")
        assert sorted(o.status for o in cat.operations()) == ["failed", "succeeded"]
        assert cat.journal.open_operations() == []
        _assert_product_equals_path(path, periods.files[:3], 12)
        assert cat.doctor().incomplete_operations == []
    assert _tree(path) == before
    assert _backups(path) == []
    # The next try goes through.
    with Catalog.open(root) as cat:
        result = _update(record_id, periods.new_glob, catalog=cat)
        assert result.status == "pass", result.report.reasons
        assert result.record is not None and result.record.version > record.version
        _assert_product_equals(result.product, periods.files, 20)
    assert _backups(path) == []


def test_failed_check_rolls_back_without_catalog(
    tmp_path: Path, periods: Periods, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcodex.convert import _provenance
    from arcodex.convert._check import CheckReport

    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest, chunks="time=5").status == "pass"
    before = _tree(dest)

    def failing(product: Any, plan: Any, **kwargs: Any) -> CheckReport:
        return CheckReport("fail", str(product.target.url), reasons=["made to fail"])

    # The check is the step after the writes: make it fail to see the update undone.
    monkeypatch.setattr(_provenance, "check_product", failing)
    with pytest.raises(ConversionError, match="made to fail"):
        _update(dest, periods.new_glob)
    monkeypatch.undo()
    assert _tree(dest) == before
    assert _backups(dest) == []
    result = _update(dest, periods.new_glob)
    assert result.status == "pass", result.report.reasons
    _assert_product_equals(result.product, periods.files, 20)


# -- 7. killed during a Zarr update -------------------------------------------------------

_KILLED = """
import sys
from arcodex.catalog import Catalog
from arcodex.convert import update
with Catalog.open(sys.argv[1]) as cat:
    update(sys.argv[2], sys.argv[3], catalog=cat, cluster="threads", workers=1)
"""

#: The state the update is killed after, and whether recover keeps it (roll forward).
KILLS = {
    "artifact_backup": False,
    "artifact_write_succeeded": False,
    "catalog_write_started": False,
    "catalog_write_succeeded": True,
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "state",
    sorted(KILLS),
)
def test_killed_zarr_update_is_recovered(tmp_path: Path, periods: Periods, state: str) -> None:
    root, record_id, path = _catalog_product(tmp_path, periods, chunks="time=5")
    before = _tree(path)
    with Catalog.open(root) as cat:
        version = cat.get(record_id).version
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    env[KILL_AT_ENV] = state
    done = subprocess.run(
        [sys.executable, "-c", _KILLED, str(root), record_id, periods.new_glob],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    assert _backups(path), "the killed update left its backup"
    with Catalog.open(root) as cat:
        assert cat.journal.open_operations()
        cat.recover()
        assert cat.journal.open_operations() == []
        assert _backups(path) == []
        record = cat.get(record_id)
        if KILLS[state]:
            assert record.version == version + 1
            assert record.metadata["end_datetime"].startswith("2000-01-20")
            assert check(record_id, catalog=cat).status == "pass"
        else:
            assert record.version == version
            assert record.metadata["end_datetime"].startswith("2000-01-12")
            assert _tree(path) == before
            assert check(record_id, catalog=cat).status == "pass"
        assert cat.doctor().incomplete_operations == []
        result = _update(record_id, periods.new_glob, catalog=cat)
        if KILLS[state]:
            assert result.changes == {"unchanged": True}
        else:
            assert result.status == "pass", result.report.reasons
            assert result.changes["appended_steps"] == 8
        _assert_product_equals(result.product, periods.files, 20)
    assert _backups(path) == []


def test_doctor_is_clean_with_a_converted_product(tmp_path: Path, periods: Periods) -> None:
    root, record_id, _ = _catalog_product(tmp_path, periods)
    with Catalog.open(root) as cat:
        report = cat.doctor()
        assert report.clean, report.to_dict()
        assert _update(record_id, periods.new_glob, catalog=cat).status == "pass"
        report = cat.doctor()
        assert report.clean, report.to_dict()


# -- 8. the command line ------------------------------------------------------------------


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from arcodex.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_convert_update_check(tmp_path: Path, periods: Periods) -> None:
    root = tmp_path / "cat"
    Catalog.create(root).close()
    cat = ["--catalog", str(root)]

    done = _cli(*cat, "convert", periods.src_glob, "--to", "zarr", "--cluster", "threads", "--json")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    data = json.loads(done.stdout)
    assert data["action"] == "convert" and data["status"] == "pass"
    assert data["steps"] == 12
    record_id = data["record"]
    assert record_id

    done = _cli(*cat, "update", record_id, periods.new_glob, "--cluster", "threads", "--json")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    data = json.loads(done.stdout)
    assert data["action"] == "update" and data["status"] == "pass"
    assert data["steps"] == 20
    assert data["record"] == record_id
    assert data["changes"]["appended_steps"] == 8

    done = _cli(*cat, "update", record_id, periods.new_glob, "--cluster", "threads", "--json")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["changes"] == {"unchanged": True}

    done = _cli(*cat, "check", record_id, "--json")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["status"] == "pass"

    with Catalog.open(root) as catalog:
        path = Path(catalog.path(record_id))
        record = catalog.get(record_id)
        assert record.metadata["end_datetime"].startswith("2000-01-20")
    _assert_product_equals_path(path, periods.files, 20)

    # Damage the product: the check fails with exit code 1.
    tas = zarr.open_group(str(path), mode="r+", use_consolidated=False)["tas"]
    tas[0] = tas[0] + np.float32(1)
    done = _cli(*cat, "check", record_id, "--json")
    assert done.exit_code == 1, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert report["status"] == "fail"
    assert any("differs from its sources" in r for r in report["reasons"]), report["reasons"]
    done = _cli("check", str(path))
    assert done.exit_code == 1, (done.stdout, done.stderr)


def test_cli_update_refusal_exits_non_zero(tmp_path: Path, periods: Periods) -> None:
    dest = tmp_path / "out.zarr"
    assert _convert(periods.src_glob, "zarr", dest).status == "pass"
    before = _tree(dest)
    _float64(periods)
    done = _cli("update", str(dest), periods.new_glob, "--cluster", "threads", "--json")
    assert done.exit_code != 0, (done.stdout, done.stderr)
    assert "f8" in done.stderr or "float64" in done.stderr, done.stderr
    assert _tree(dest) == before


def _assert_product_equals_path(path: Path, files: list[Path], steps: int) -> None:
    from arcodex.convert._product import Product

    _assert_product_equals(Product.detect(str(path)), files, steps)


# -- Icechunk: commits that are undone, tags that come last ---------------------------------


@pytest.mark.parametrize("target", ["icechunk", "virtual-icechunk"])
def test_failed_icechunk_update_resets_the_branch_and_tags_nothing(
    tmp_path: Path, periods: Periods, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    from arcodex.convert import _provenance
    from arcodex.convert._check import CheckReport

    dest = tmp_path / f"out{EXT[target]}"
    assert _convert(periods.src_glob, target, dest, tag="v1").status == "pass"
    product = Product.detect(dest)
    repo = product.repository()
    before = repo.lookup_branch("main")
    assert set(repo.list_tags()) == {"v1"}

    def failing(product: Any, plan: Any, **kwargs: Any) -> CheckReport:
        return CheckReport("fail", str(product.target.url), reasons=["made to fail"])

    monkeypatch.setattr(_provenance, "check_product", failing)
    with pytest.raises(ConversionError, match="made to fail"):
        _update(dest, periods.new_glob, tag="v2")
    monkeypatch.undo()
    repo = product.repository()
    assert repo.lookup_branch("main") == before, "the branch is back at its snapshot"
    assert set(repo.list_tags()) == {"v1"}, "the tag of a rolled-back update is never made"
    # The same update, tag included, goes through afterwards.
    result = _update(dest, periods.new_glob, tag="v2")
    assert result.status == "pass"
    repo = product.repository()
    assert repo.lookup_tag("v2") == result.snapshot == repo.lookup_branch("main")


def test_taken_tag_is_refused_before_writing(tmp_path: Path, periods: Periods) -> None:
    dest = tmp_path / "out.icechunk"
    assert _convert(periods.src_glob, "icechunk", dest, tag="v1").status == "pass"
    repo = Product.detect(dest).repository()
    before = repo.lookup_branch("main")
    with pytest.raises(ValidationError, match="already has a tag 'v1'"):
        _update(dest, periods.new_glob, tag="v1")
    assert Product.detect(dest).repository().lookup_branch("main") == before
