"""A group's phases scan each source once: ``scans_remembered`` keeps a local file's
scan while its size, modification time and inode stay the same, and only then."""

from __future__ import annotations

import os
from pathlib import Path

from arcodex.convert._cluster import open_client
from arcodex.convert._scan import scan_all, scans_remembered
from arcodex.convert._sources import resolve_sources
from arcodex.samples import write_sample_netcdf


def _files(tmp_path: Path) -> list[Path]:
    return [
        write_sample_netcdf(tmp_path / f"day{i}.nc", start=f"2020-0{i + 1}-01", days=5, seed=i)
        for i in range(3)
    ]


def test_a_source_is_scanned_once_while_remembered(tmp_path: Path) -> None:
    _files(tmp_path)
    refs = resolve_sources(str(tmp_path / "*.nc"))
    with open_client("threads", workers=1) as client:
        with scans_remembered():
            first, _ = scan_all(client, refs, None, None)
            again, _ = scan_all(client, refs, None, None)
            assert all(a is b for a, b in zip(first, again, strict=True))
        after, _ = scan_all(client, refs, None, None)
    assert not any(a is b for a, b in zip(first, after, strict=True))
    assert [s.length("time") for s in after] == [s.length("time") for s in first] == [5, 5, 5]


def test_a_changed_source_is_scanned_again(tmp_path: Path) -> None:
    files = _files(tmp_path)
    refs = resolve_sources(str(tmp_path / "*.nc"))
    with open_client("threads", workers=1) as client, scans_remembered():
        first, _ = scan_all(client, refs, None, None)
        # The same name, now ten days long, written beside and moved in (a new inode).
        write_sample_netcdf(tmp_path / "new.nc", start="2020-02-01", days=10, seed=1)
        os.replace(tmp_path / "new.nc", files[1])
        again, _ = scan_all(client, refs, None, None)
    assert again[0] is first[0] and again[2] is first[2]
    assert again[1] is not first[1]
    assert (first[1].length("time"), again[1].length("time")) == (5, 10)


def test_nothing_is_remembered_by_default(tmp_path: Path) -> None:
    _files(tmp_path)
    refs = resolve_sources(str(tmp_path / "*.nc"))
    with open_client("threads", workers=1) as client:
        first, _ = scan_all(client, refs, None, None)
        again, _ = scan_all(client, refs, None, None)
    assert not any(a is b for a, b in zip(first, again, strict=True))
