"""What a notebook shows (issue 17, part 4): ``_repr_html_`` of a catalog, a record, a
search page, the client's search results, a check report and a group's status.

Each repr is parsed as XML (it is well-formed XHTML) and read for its content: the id,
the title as the user wrote it (so escaped in the markup: no element comes of it), the
verdict, each member's state, and "… N more" where a huge input is cut short.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arcodex._archives import write_archive
from arcodex.backends._postgres_url import split_password
from arcodex.catalog import Catalog
from arcodex.catalog._catalog_html import backend_text
from arcodex.convert import CheckReport, check, convert
from arcodex.groups import GroupStatus, MemberStatus, group_status, init_group, run_group
from arcodex.model import Artifact, ExternalUri, Lineage, LocalPath, Record

pytest.importorskip("xarray")
pytest.importorskip("zarr")

EVIL = "<script>alert(1)</script>"


# -- reading the markup -----------------------------------------------------------------------


def parse(markup: str) -> ET.Element:
    """The repr as a tree; no script element and no event handler in it."""
    root = ET.fromstring(markup)
    for element in root.iter():
        assert element.tag != "script", markup[:500]
        assert not [a for a in element.attrib if a.lower().startswith("on")], element.attrib
    return root


def text(element: ET.Element) -> str:
    return "".join(element.itertext())


def pairs_after(root: ET.Element, heading: str | None = None) -> dict[str, str]:
    """The name → value rows of the first pairs table after the section ``heading`` (the
    first pairs table of the repr without one)."""
    seen = heading is None
    for element in root:
        if element.tag == "p" and heading is not None and text(element).startswith(heading):
            seen = True
        elif seen and element.tag == "table" and "arcodex-pairs" in element.get("class", ""):
            return {text(tr.find("th")): text(tr.find("td")) for tr in element.iter("tr")}  # type: ignore[arg-type]
    raise AssertionError(f"no table after {heading!r}")


def rows(root: ET.Element) -> list[list[str]]:
    """The body rows of the first data table, as the texts of their cells."""
    table = next(t for t in root.iter("table") if "arcodex-table" in t.get("class", ""))
    tbody = table.find("tbody")
    assert tbody is not None
    return [[text(td) for td in tr.iter("td")] for tr in tbody.iter("tr")]


def notes(root: ET.Element) -> list[str]:
    return [text(p) for p in root.iter("p") if p.get("class") == "arcodex-more"]


def heading(root: ET.Element) -> str:
    first = root.find("p")
    assert first is not None
    return text(first)


# -- catalog ---------------------------------------------------------------------------------


def test_catalog_shows_root_backend_and_counts(tmp_path: Path) -> None:
    with Catalog.create(tmp_path / "cat") as cat:
        cat.add_records(
            [
                Record(kind="dataset", title="a"),
                Record(kind="dataset", title="b", status="deprecated"),
                Record(kind="document", title=EVIL),
            ]
        )
        root = parse(cat._repr_html_())
        assert heading(root).endswith("3 records")
        about = pairs_after(root)
        assert about["root"] == str(cat.root)
        url, password = split_password(cat.backend.url)
        if url.startswith("sqlite:"):
            assert about["backend"] == f"SQLite {cat.root / 'catalog.sqlite'}"
        else:
            assert about["backend"].startswith("PostgreSQL ")
        if password:
            assert password not in cat._repr_html_()
        assert pairs_after(root, "Records by kind") == {"dataset": "2", "document": "1"}
        assert pairs_after(root, "Records by status") == {"active": "2", "deprecated": "1"}


def test_a_postgres_backend_shows_host_database_schema_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://alice:s3cret%21@db.example.org:5433/arco?password=other&sslmode=require"
    assert (
        backend_text(url, "team") == "PostgreSQL db.example.org:5433/arco, schema team, user alice"
    )
    assert backend_text("postgresql:///arco?host=/run/postgresql") == (
        "PostgreSQL /run/postgresql/arco"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        monkeypatch.setattr(cat.backend, "url", url)
        markup = cat._repr_html_()
    assert "db.example.org:5433/arco" in pairs_after(parse(markup))["backend"]
    assert "s3cret" not in markup and "other" not in markup and "sslmode" not in markup


# -- record ----------------------------------------------------------------------------------


def test_record_shows_what_it_is_where_when_and_its_artifacts(tmp_path: Path) -> None:
    data = tmp_path / "tas.nc"
    data.write_bytes(b"x" * 3000)
    with Catalog.create(tmp_path / "cat") as cat:
        record = cat.add_file(
            data,
            title=EVIL,
            metadata={
                "bbox": [-10.0, 40.0, 5.0, 60.0],
                "start_datetime": "2020-01-01T00:00:00Z",
                "end_datetime": "2020-12-31T00:00:00Z",
                "site": "MHD",
                "note": "<b>bold</b>",
            },
            tags=["ch4"],
        )
        record = cat.get(record.id)
    markup = record._repr_html_()
    root = parse(markup)
    assert "&lt;script&gt;" in markup and "<b>" not in markup
    assert heading(root) == f"Record {record.id} · {record.kind} · active · version 1"
    about = pairs_after(root)
    assert about["title"] == EVIL
    assert about["bbox"] == "-10.0, 40.0, 5.0, 60.0"
    assert about["time"] == "2020-01-01T00:00:00Z – 2020-12-31T00:00:00Z"
    assert about["tags"] == "ch4"
    meta = pairs_after(root, "Metadata")
    assert meta["site"] == "MHD" and meta["note"] == "<b>bold</b>"
    assert "bbox" not in meta  # shown once, as the extent
    [artifact] = record.artifacts
    role, _format, location, size, hashes, status = rows(root)[0]
    assert role == "primary" and status == artifact.status
    assert isinstance(artifact.locator, LocalPath) and location == artifact.locator.path
    assert cat.path(record.id).endswith(location)  # managed: relative to the catalog root
    assert size == "2.9 KiB"
    digest = artifact.hashes["sha256"]
    assert hashes == f"sha256:{digest[:12]}…" and digest not in markup


def test_a_huge_record_is_cut_short(tmp_path: Path) -> None:
    record = Record(
        title="t" * 10_000,
        description="d" * 100_000,
        metadata={f"key{i}": {"value": i} for i in range(10_000)},
        tags=[f"tag{i}" for i in range(500)],
        artifacts=[
            Artifact(
                role="derived",
                locator=ExternalUri(uri=f"https://user:pw@example.org/f{i}.nc"),
                hashes={"sha256": "f" * 64},
            )
            for i in range(10_000)
        ],
        lineage=[
            Lineage(operation_id=f"op{i}", sources=[f"s{j}" for j in range(50)]) for i in range(30)
        ],
    )
    markup = record._repr_html_()
    assert len(markup) < 40_000, len(markup)
    root = parse(markup)
    assert notes(root) == [
        "… 9980 more metadata keys",
        "… 9980 more artifacts",
        "… 10 more lineage entries",
    ]
    about = pairs_after(root)
    assert len(about["title"]) == 200 and about["title"].endswith("…")
    assert len(about["description"]) == 500
    assert about["tags"].endswith("tag19 … 480 more")
    assert "pw@" not in markup and "https://user@example.org/f0.nc" in markup
    lineage = [r for r in root.iter("tr") if text(r).startswith("op0")]
    assert lineage and text(lineage[0]).endswith("s4 … 45 more")


def test_locators_that_are_not_paths(tmp_path: Path) -> None:
    record = Record(
        artifacts=[
            Artifact(locator=LocalPath(path="data/a.nc"), size_bytes=5 * 2**30),
        ]
    )
    [row] = rows(parse(record._repr_html_()))
    assert row[2] == "data/a.nc" and row[3] == "5.0 GiB"


# -- a search page ---------------------------------------------------------------------------


def test_a_search_page_is_a_bounded_table_with_the_next_cursor(tmp_path: Path) -> None:
    with Catalog.create(tmp_path / "cat") as cat:
        cat.add_records(
            [
                Record(
                    id=f"rec-{i:04d}",
                    title=f"{EVIL} {i}",
                    metadata={"datetime": f"2020-01-{1 + i % 28:02d}T00:00:00Z"},
                )
                for i in range(1000)
            ]
        )
        full = cat.search(limit=1000, sort="id")
        first = cat.search(limit=10, sort="id")
        last = cat.search(limit=10, sort="id", cursor=cat.search(limit=990, sort="id").next_cursor)
    assert len(full.records) == 1000
    root = parse(full._repr_html_())
    assert heading(root) == "Page 1000 records on this page"
    shown = rows(root)
    assert len(shown) == 25
    assert shown[0] == ["rec-0000", f"{EVIL} 0", "dataset", "active", "2020-01-01T00:00:00Z"]
    assert notes(root) == ["… 975 more records on this page"]
    assert first.next_cursor
    page = parse(first._repr_html_())
    assert len(rows(page)) == 10 and not notes(page)
    assert repr(first.next_cursor) in text(page)
    assert last.next_cursor is None and "the last page" in text(parse(last._repr_html_()))


def test_the_client_search_results_are_bounded_and_escaped() -> None:
    pystac = pytest.importorskip("pystac")
    from datetime import UTC, datetime

    from arcodex.client import SearchResults

    items = [
        pystac.Item(
            id=f"item-{i}",
            geometry=None,
            bbox=None,
            datetime=datetime(2020, 1, 1, tzinfo=UTC),
            properties={"title": EVIL},
        )
        for i in range(1000)
    ]
    root = parse(SearchResults(items, source="https://stac.example.org")._repr_html_())
    assert heading(root) == "SearchResults 1000 items from https://stac.example.org"
    shown = rows(root)
    assert len(shown) == 25 and shown[0][:2] == ["item-0", EVIL]
    assert shown[0][3] == "2020-01-01T00:00:00Z"
    assert notes(root) == ["… 975 more items"]


# -- a check report --------------------------------------------------------------------------


def test_a_check_report_says_pass_or_fail_with_each_finding(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "src", "regular", files=2, steps=2)
    with Catalog.create(tmp_path / "cat") as cat:
        result = convert([str(f) for f in files], to="zarr", catalog=cat, cluster="threads")
        record = result.record
        assert record is not None
        report = check(record.id, catalog=cat, cluster="threads")
        assert report.status == "pass"
        root = parse(report._repr_html_())
        assert heading(root).startswith("CheckReport PASS faithful · ")
        assert report.product in heading(root)
        assert "Findings (0)none" in text(root) and not list(root.iter("thead"))
        checked = pairs_after(root, "Checked")
        assert checked["variables"] == str(report.checked["variables"])
        assert checked["seed"] == str(report.checked["seed"])

        # The record of the product: its lineage names the convert operation.
        markup = cat.get(record.id)._repr_html_()
        assert result.operation_id in markup
        assert {"primary", "source", "report"} <= {r[0] for r in rows(parse(markup))}

        shutil.rmtree(Path(cat.path(record.id)) / "tas" / "c")
        broken = check(record.id, catalog=cat, cluster="threads")
    assert broken.status == "fail" and broken.reasons
    root = parse(broken._repr_html_())
    assert heading(root).startswith("CheckReport FAIL NOT faithful · ")
    strong = root.find("p/span/strong")
    assert strong is not None and "arcodex-status-fail" in strong.get("class", "")
    findings = rows(root)
    assert [f[0] for f in findings] == ["fail"] * len(broken.reasons) + ["warn"] * len(
        broken.warnings
    )
    assert [f[1] for f in findings[: len(broken.reasons)]] == broken.reasons


def test_a_report_with_many_findings_is_cut_short() -> None:
    report = CheckReport(
        "warn", "file:///p.zarr", reasons=[], warnings=[f"{EVIL} {i}" for i in range(500)]
    )
    markup = report._repr_html_()
    root = parse(markup)
    assert heading(root).startswith("CheckReport WARN faithful, with warnings")
    assert rows(root)[0] == ["warn", f"{EVIL} 0"]
    assert notes(root) == ["… 480 more findings"]
    assert CheckReport.from_dict(report.to_dict())._repr_html_() == markup


# -- a group's status ------------------------------------------------------------------------


def test_group_status_shows_each_member_and_its_state(tmp_path: Path) -> None:
    for name in ("tas", "bad"):
        write_archive(tmp_path / "src" / name, "regular", files=2, steps=2)
    broken = sorted((tmp_path / "src" / "bad").glob("*.nc"))[-1]
    broken.write_bytes(b"this is not NetCDF")
    (tmp_path / "members.csv").write_text(
        "id,sources,to\ntas,src/tas/*.nc,zarr\nbad,src/bad/*.nc,zarr\n"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        pending = init_group(cat, "arch", tmp_path / "members.csv", title=EVIL)
        root = parse(pending._repr_html_())
        assert heading(root) == "Group arch · 2 members · pending 2"
        assert pairs_after(root)["title"] == EVIL
        assert [r[:2] for r in rows(root)] == [["tas", "pending"], ["bad", "pending"]]
        run_group(cat, "arch", cluster="threads")
        status = group_status(cat, "arch")
    root = parse(status._repr_html_())
    assert heading(root) == "Group arch · 2 members · done 1, failed 1"
    by_member = {r[0]: r for r in rows(root)}
    assert by_member["tas"][1] == "done" and by_member["tas"][6] == status.members[0].product
    assert by_member["bad"][1] == "failed" and by_member["bad"][2] == "scan"
    assert "regular_001.nc" in by_member["bad"][3]


def test_a_group_of_many_members_is_cut_short() -> None:
    members = [MemberStatus(id=f"m{i}", status="running", stale=i == 0) for i in range(1000)]
    root = parse(GroupStatus(name="big", members=members)._repr_html_())
    shown = rows(root)
    assert len(shown) == 20 and shown[0][1] == "running (stale: its run is gone)"
    assert notes(root) == ["… 980 more members"]
