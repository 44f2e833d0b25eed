"""The contract every catalog backend passes, as a test class to subclass.

Like zarr's ``StoreTests``: a backend's test module subclasses
:class:`BackendContract` once and implements :meth:`~BackendContract.create_backend`;
pytest then runs every test below against it::

    from arcodex.testing import BackendContract

    class TestSQLiteBackend(BackendContract):
        def create_backend(self, path):
            return SQLiteBackend(path / "catalog.sqlite", create=True)

The semantics checked here are those documented in
:mod:`arcodex.model._query`; the property tests compare every answer with the
brute-force reading in :mod:`arcodex.testing._reference`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcodex.backends import CatalogBackend
from arcodex.errors import ConflictError, NotFoundError, QueryError
from arcodex.model import (
    RECORD_STATUSES,
    Artifact,
    BBox,
    BundleMember,
    Condition,
    ExternalUri,
    FsspecUrl,
    Inline,
    Lineage,
    LocalPath,
    Operation,
    OperationError,
    PlannedPath,
    Query,
    Record,
    SortKey,
    TimeRange,
)
from arcodex.testing import strategies
from arcodex.testing._reference import order_problems, reference_fields, reference_search

__all__ = ["BackendContract", "clear_backend", "sample_records", "search_ids"]

_T0 = datetime(2020, 1, 1, tzinfo=UTC)
_ALL_STATUSES = Condition(field="status", op="in", value=list(RECORD_STATUSES))
# ARCODEX_CONTRACT_EXAMPLES=2000 runs a longer hunt than the default, which keeps the suite fast.
_PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("ARCODEX_CONTRACT_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def search_ids(backend: CatalogBackend, *terms: str, **options: Any) -> list[str]:
    """Ids of every match of a CLI-style query, in result order."""
    options.setdefault("limit", None)
    return [r.id for r in backend.search(Query.parse(list(terms), **options)).records]


def _ids(backend: CatalogBackend, query: Query) -> list[str]:
    return [r.id for r in backend.search(query.model_copy(update={"limit": None})).records]


def _where(*conditions: Condition, **options: Any) -> Query:
    return Query(conditions=list(conditions), limit=None, **options)


def clear_backend(backend: CatalogBackend) -> None:
    """Purge every record, deleted or not."""
    for record in backend.search(Query(conditions=[_ALL_STATUSES], limit=None)).records:
        backend.purge(record.id)


def _all_pages(backend: CatalogBackend, query: Query, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = query.cursor
    while True:
        page = backend.search(query.model_copy(update={"limit": page_size, "cursor": cursor}))
        pages.append([r.id for r in page.records])
        assert len(page.records) <= page_size
        if page.next_cursor is None:
            return pages
        assert len(pages) < 10_000, "pagination does not end"
        cursor = page.next_cursor


def full_record(record_id: str = "full-1") -> Record:
    """A record using every field, with one artifact per locator kind."""
    return Record(
        id=record_id,
        kind="dataset",
        title="Mace Head methane",
        description="Hourly CH4 at Mace Head, Ireland",
        metadata={
            "site": "MHD",
            "inlet_height": 10,
            "ratio": 0.25,
            "ok": True,
            "nothing": None,
            "netcdf": {"attrs": {"institution": "NOC", "conventions": ["CF-1.8", "ACDD"]}},
            "levels": [1, 2.5, "top"],
            "bbox": [-9.9, 53.3, -9.8, 53.4],
            "start_datetime": "2020-01-01T00:00:00Z",
            "end_datetime": "2020-12-31T23:00:00Z",
        },
        tags=["ch4", "hourly"],
        artifacts=[
            Artifact(
                id=f"{record_id}-a1",
                locator=LocalPath(path="data/mhd.nc"),
                media_type="application/x-netcdf",
                format="netcdf",
                size_bytes=1234,
                hashes={"sha256": "ab" * 32},
                managed=True,
                metadata={"variables": ["ch4"]},
                created_at=_T0,
            ),
            Artifact(
                id=f"{record_id}-a2",
                role="derived",
                locator=FsspecUrl(url="s3://bucket/mhd.zarr", profile="archive"),
                format="zarr",
                created_at=_T0,
            ),
            Artifact(
                id=f"{record_id}-a3",
                role="metadata",
                locator=ExternalUri(uri="https://doi.org/10.1234/x"),
                status="external",
                created_at=_T0,
            ),
            Artifact(
                id=f"{record_id}-a4",
                role="derived",
                locator=PlannedPath(path="zarr/mhd.zarr", profile="archive"),
                status="planned",
                created_at=_T0,
            ),
            Artifact(
                id=f"{record_id}-a5",
                role="preview",
                locator=Inline(data="aGVsbG8=", encoding="base64"),
                created_at=_T0,
            ),
            Artifact(
                id=f"{record_id}-a6",
                role="log",
                locator=BundleMember(bundle="bundle-1", member="logs/run.txt"),
                created_at=_T0,
            ),
        ],
        status="active",
        version=3,
        lineage=[Lineage(operation_id="op-1", sources=["src-1", "src-2"])],
        created_at=_T0,
        updated_at=_T0 + timedelta(days=1, microseconds=7),
        created_by="ana",
        updated_by="bo",
        schema_name="obs",
        schema_version="1.0",
    )


def sample_records() -> list[Record]:
    """Records covering every value type and extent form the query tests use, in insertion order."""
    t = _T0
    return [
        Record(
            id="s1",
            kind="dataset",
            title="Mace Head methane",
            description="hourly ch4 at MHD",
            metadata={
                "site": "MHD",
                "year": 2020,
                "ratio": 0.5,
                "ok": True,
                "obs": "2020-06-15",
                "inst": {"name": "NOC", "code": 7},
                "vars": ["ch4", "co2"],
                "bbox": [-10, 50, -9, 54],
                "datetime": "2020-06-15T12:00:00Z",
            },
            tags=["ch4"],
            version=1,
            created_at=t,
            created_by="ana",
        ),
        Record(
            id="s2",
            kind="dataset",
            title="Tacolneston nitrous oxide",
            metadata={
                "site": "TAC",
                "year": 2021,
                "ratio": 1.5,
                "ok": False,
                "obs": "2021-01-01T00:00:00Z",
                "inst": {"name": "UoB"},
                "vars": ["n2o"],
                "bbox": [170, -20, -170, 20],
                "start_datetime": "2021-01",
                "end_datetime": "2021-03",
            },
            tags=["co2", "n2o"],
            version=2,
            created_at=t + timedelta(days=200),
            created_by="bo",
            schema_name="obs",
        ),
        Record(
            id="s3",
            kind="document",
            title=None,
            description="a lower-case mhd station",
            metadata={
                "site": "mhd",
                "year": 2019,
                "ratio": 2,
                "vars": [],
                "inst": {"name": "noc lab"},
                "bbox": [350, 0, 359, 10],
                "datetime": "2019-12",
            },
            version=3,
            created_at=t + timedelta(days=400),
        ),
        Record(
            id="s4",
            kind="run",
            title="Station list",
            metadata={
                "year": "2020",
                "ok": None,
                "stations": [{"code": "A"}, {"code": "B", "height": 5}],
                "title": "shadowed",
            },
            tags=["meta"],
            status="deprecated",
            version=1,
            created_at=t - timedelta(days=1),
        ),
        Record(
            id="s5",
            kind="dataset",
            title="Deleted MHD copy",
            metadata={
                "site": "MHD",
                "year": 2020,
                "bbox": [-10, 50, -9, 54],
                "datetime": "2020-06",
            },
            tags=["ch4"],
            status="deleted",
            created_at=t + timedelta(days=1),
        ),
        Record(
            id="s6",
            kind="dataset",
            title="Planned product",
            metadata={"site": "MHD", "ratio": 0.5, "obs": "2020-12"},
            status="planned",
            version=1,
            created_at=t + timedelta(days=2),
        ),
    ]


class BackendContract:
    """Tests every :class:`~arcodex.backends.CatalogBackend` must pass.

    Subclass it in a module named ``test_*.py`` with a class named ``Test*``
    and implement :meth:`create_backend`.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.arcodex_contract]

    def create_backend(self, path: Path) -> CatalogBackend:
        """A new, empty backend keeping its data under ``path``.

        Calling it again with the same ``path`` must open the same store (a
        second handle, as a second process would).
        """
        raise NotImplementedError("subclasses return a new backend for `path`")

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[CatalogBackend]:
        """A fresh, empty backend, closed afterwards."""
        backend = self.create_backend(tmp_path)
        try:
            yield backend
        finally:
            backend.close()

    @pytest.fixture
    def sample(self, backend: CatalogBackend) -> CatalogBackend:
        """The backend holding :func:`sample_records`."""
        backend.add(sample_records())
        return backend

    # -- add and get ------------------------------------------------------------------------

    def test_is_a_catalog_backend(self, backend: CatalogBackend) -> None:
        assert isinstance(backend, CatalogBackend)
        assert isinstance(backend.url, str)
        assert backend.url

    def test_add_get_round_trip(self, backend: CatalogBackend) -> None:
        record = full_record()
        backend.add([record])
        assert backend.get(record.id) == record

    @_PROPERTY_SETTINGS
    @given(record=strategies.records())
    def test_add_get_round_trip_any_record(self, backend: CatalogBackend, record: Record) -> None:
        clear_backend(backend)
        backend.add([record])
        got = backend.get(record.id)
        assert got == record
        assert got.model_dump(mode="json") == record.model_dump(mode="json")

    def test_add_nothing(self, backend: CatalogBackend) -> None:
        backend.add([])
        assert backend.count(Query()) == 0

    def test_duplicate_id_conflicts(self, backend: CatalogBackend) -> None:
        first = Record(id="dup", title="first")
        backend.add([first])
        with pytest.raises(ConflictError):
            backend.add([Record(id="dup", title="second")])
        assert backend.get("dup") == first

    def test_batch_is_atomic(self, backend: CatalogBackend) -> None:
        backend.add([Record(id="taken")])
        with pytest.raises(ConflictError):
            backend.add([Record(id="new-1"), Record(id="new-2"), Record(id="taken")])
        with pytest.raises(ConflictError):
            backend.add([Record(id="twice"), Record(id="twice")])
        for missing in ("new-1", "new-2", "twice"):
            with pytest.raises(NotFoundError):
                backend.get(missing)
        assert search_ids(backend) == ["taken"]
        assert backend.fields() == []

    def test_batch_with_reused_artifact_id_adds_nothing(self, backend: CatalogBackend) -> None:
        art = Artifact(id="art-1", locator=LocalPath(path="a.nc"))
        backend.add([Record(id="first", artifacts=[art])])
        with pytest.raises(ConflictError):
            backend.add([Record(id="second", metadata={"k": 1}, artifacts=[art])])
        with pytest.raises(NotFoundError):
            backend.get("second")
        assert search_ids(backend, "k:exists") == []

    def test_get_unknown(self, backend: CatalogBackend) -> None:
        with pytest.raises(NotFoundError) as info:
            backend.get("nope")
        assert isinstance(info.value, LookupError)
        assert "nope" in str(info.value)

    def test_ids_with_prefix(self, backend: CatalogBackend) -> None:
        backend.add([Record(id=i) for i in ("abc2", "abc1", "abd", "b", "ab")])
        assert backend.ids_with_prefix("ab") == ["ab", "abc1", "abc2", "abd"]
        assert backend.ids_with_prefix("abc") == ["abc1", "abc2"]
        assert backend.ids_with_prefix("ab", limit=2) == ["ab", "abc1"]
        assert backend.ids_with_prefix("abc1") == ["abc1"]
        assert backend.ids_with_prefix("z") == []
        assert backend.ids_with_prefix("AB") == []

    # -- update -----------------------------------------------------------------------------

    def test_update_with_expected_version(self, backend: CatalogBackend) -> None:
        record = full_record()
        backend.add([record])
        changed = record.model_copy(update={"title": "new title", "version": record.version + 1})
        backend.update(changed, expected_version=record.version)
        assert backend.get(record.id) == changed

    def test_update_with_wrong_version_changes_nothing(self, backend: CatalogBackend) -> None:
        record = Record(id="r", title="old", metadata={"k": "old"}, version=2)
        backend.add([record])
        for wrong in (1, 3):
            changed = record.model_copy(
                update={"title": "new", "metadata": {"k": "new"}, "version": 3}
            )
            with pytest.raises(ConflictError):
                backend.update(changed, expected_version=wrong)
        assert backend.get("r") == record
        assert search_ids(backend, "k=old") == ["r"]
        assert search_ids(backend, "k=new") == []

    def test_update_unknown(self, backend: CatalogBackend) -> None:
        with pytest.raises(NotFoundError):
            backend.update(Record(id="ghost", version=2), expected_version=1)

    def test_indexes_follow_update(self, backend: CatalogBackend) -> None:
        old = Record(
            id="r",
            title="alpha",
            metadata={
                "k": "old",
                "n": 1,
                "only_old": True,
                "bbox": [0, 0, 1, 1],
                "datetime": "2001-01-01",
            },
            tags=["before"],
        )
        backend.add([old, Record(id="other", metadata={"k": "keep"})])
        new = old.model_copy(
            update={
                "title": "omega",
                "metadata": {
                    "k": "new",
                    "n": 2,
                    "only_new": "x",
                    "bbox": [50, 50, 51, 51],
                    "datetime": "2030-01-01",
                },
                "tags": ["after"],
                "version": 2,
            }
        )
        backend.update(new, expected_version=1)
        gone = ["k=old", "n=1", "only_old:exists", "tag=before"]
        for term in gone:
            assert search_ids(backend, term) == [], term
        for term in ["k=new", "n=2", "only_new=x", "tag=after"]:
            assert search_ids(backend, term) == ["r"], term
        assert search_ids(backend, "only_old:missing") == ["r", "other"]
        assert search_ids(backend, text="alpha") == []
        assert search_ids(backend, text="omega") == ["r"]
        assert search_ids(backend, bbox="0,0,1,1") == []
        assert search_ids(backend, bbox="50,50,51,51") == ["r"]
        assert search_ids(backend, time="2001") == []
        assert search_ids(backend, time="2030") == ["r"]
        paths = {f.path: f for f in backend.fields()}
        assert "only_old" not in paths
        assert paths["only_new"].count == 1
        assert paths["k"].count == 2

    # -- delete, restore, purge ------------------------------------------------------------

    def test_delete_tombstones(self, sample: CatalogBackend) -> None:
        before = sample.get("s1")
        deleted = sample.delete("s1", user="carol")
        assert deleted.status == "deleted"
        assert deleted.version > before.version
        assert sample.get("s1") == deleted
        assert "s1" not in search_ids(sample)
        assert "s1" not in search_ids(sample, "site=MHD")
        assert "s1" not in search_ids(sample, text="methane")
        assert "s1" not in search_ids(sample, bbox="-10,50,-9,54")
        assert search_ids(sample, "status=deleted") == ["s1", "s5"]
        assert search_ids(sample, "status=deleted", "site=MHD", text="methane") == ["s1"]
        assert sample.count(Query.parse(["status=deleted"])) == 2

    def test_restore_brings_back_prior_status(self, sample: CatalogBackend) -> None:
        sample.delete("s4")
        restored = sample.restore("s4")
        assert restored.status == "deprecated"
        assert sample.get("s4").status == "deprecated"
        assert "s4" in search_ids(sample, "stations.code=A")
        sample.delete("s6")
        assert sample.restore("s6").status == "planned"

    def test_delete_and_restore_errors(self, sample: CatalogBackend) -> None:
        with pytest.raises(NotFoundError):
            sample.delete("nope")
        with pytest.raises(NotFoundError):
            sample.restore("nope")
        with pytest.raises(ConflictError):
            sample.delete("s5")
        with pytest.raises(ConflictError):
            sample.restore("s1")

    def test_purge_removes_everything(self, backend: CatalogBackend) -> None:
        record = full_record()
        backend.add([record, Record(id="keep", metadata={"site": "TAC"})])
        assert backend.purge(record.id) == record
        with pytest.raises(NotFoundError):
            backend.get(record.id)
        with pytest.raises(NotFoundError):
            backend.purge(record.id)
        everything = _where(_ALL_STATUSES)
        assert _ids(backend, everything) == ["keep"]
        assert search_ids(backend, "site=MHD") == []
        assert search_ids(backend, "ratio:exists") == []
        assert search_ids(backend, text="methane") == []
        assert search_ids(backend, "tag=ch4") == []
        assert search_ids(backend, bbox="-180,-90,180,90") == []
        assert search_ids(backend, time="../..") == []
        assert backend.ids_with_prefix("full") == []
        assert [f.path for f in backend.fields()] == ["site"]
        stats = backend.stats()
        assert stats.records_by_status == {"active": 1}
        assert stats.artifacts_by_format == {}
        # The id and the artifact ids are free again.
        backend.add([record])
        assert backend.get(record.id) == record

    def test_purge_deleted_record(self, sample: CatalogBackend) -> None:
        sample.purge("s5")
        assert "s5" not in _ids(sample, _where(_ALL_STATUSES))
        assert {f.path: f.count for f in sample.fields()}["site"] == 4

    # -- conditions on metadata --------------------------------------------------------------

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["site=MHD"], ["s1", "s6"]),
            (["site=mhd"], ["s3"]),
            (["site=XXX"], []),
            (["year=2020"], ["s1"]),
            (["year=2020.0"], ["s1"]),
            (["year='2020'"], ["s4"]),
            (["ratio=0.5"], ["s1", "s6"]),
            (["ratio=2"], ["s3"]),
            (["ok=true"], ["s1"]),
            (["ok=false"], ["s2"]),
            (["ok=null"], ["s4"]),
            (["ok=1"], []),
            (["inst.name=NOC"], ["s1"]),
            (["inst.code=7"], ["s1"]),
            (["vars=co2"], ["s1"]),
            (["stations.code=B"], ["s4"]),
            (["stations.height=5"], ["s4"]),
            (["obs=2020-06-15"], ["s1"]),
            (["metadata.title=shadowed"], ["s4"]),
            (["metadata.site=TAC"], ["s2"]),
            (["site=[TAC,mhd]"], ["s2", "s3"]),
            (["year=[2019,2021]"], ["s2", "s3"]),
            (["vars=[n2o,zzz]"], ["s2"]),
            (["site=MHD", "ratio=0.5"], ["s1", "s6"]),
            (["site=MHD", "year=2020"], ["s1"]),
        ],
    )
    def test_equality(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            # ne is "not eq": records without the field match, deleted ones never do.
            (["site!=MHD"], ["s2", "s3", "s4"]),
            (["vars!=ch4"], ["s2", "s3", "s4", "s6"]),
            (["year!=2020"], ["s2", "s3", "s4", "s6"]),
            (["ok!=true"], ["s2", "s3", "s4", "s6"]),
            (["inst.name!=NOC"], ["s2", "s3", "s4", "s6"]),
            (["site:exists"], ["s1", "s2", "s3", "s6"]),
            (["site:missing"], ["s4"]),
            (["vars:exists"], ["s1", "s2", "s3"]),
            (["inst:exists"], ["s1", "s2", "s3"]),
            (["inst.code:exists"], ["s1"]),
            (["inst.code:missing"], ["s2", "s3", "s4", "s6"]),
            (["ok:exists"], ["s1", "s2", "s4"]),
            (["stations.height:exists"], ["s4"]),
            (["never=1"], []),
            (["never!=1"], ["s1", "s2", "s3", "s4", "s6"]),
            (["never:exists"], []),
            (["never:missing"], ["s1", "s2", "s3", "s4", "s6"]),
            (["never~*"], []),
            (["never>1"], []),
        ],
    )
    def test_negation_and_presence(
        self, sample: CatalogBackend, terms: list[str], expected: list[str]
    ) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["year>2019"], ["s1", "s2"]),
            (["year>=2020"], ["s1", "s2"]),
            (["year<2021"], ["s1", "s3"]),
            (["year<=2019"], ["s3"]),
            (["ratio<1"], ["s1", "s6"]),
            (["ratio<=1.5"], ["s1", "s2", "s6"]),
            (["ratio>0.5"], ["s2", "s3"]),
            (["ratio>=2"], ["s3"]),
            (["ratio>-1.5e3"], ["s1", "s2", "s3", "s6"]),
            (["inst.code>6.5"], ["s1"]),
            (["year>=2019", "year<2021"], ["s1", "s3"]),
            # Dates compare by whole periods.
            (["obs>2020"], ["s2"]),
            (["obs>=2020"], ["s1", "s2", "s6"]),
            (["obs<2021"], ["s1", "s6"]),
            (["obs<=2020-06"], ["s1"]),
            (["obs>2020-06"], ["s2", "s6"]),
            (["obs<2020-06-15"], []),
            (["obs<=2020-06-15"], ["s1"]),
            (["obs>=2020-06-15T12:00:00Z"], ["s2", "s6"]),
            (["obs>2020-12-31T23:59:59Z"], ["s2"]),
            (["obs>=2021-01-01T01:00:00+01:00"], ["s2"]),
            (["obs<2021-01-01T01:00:00+01:00"], ["s1", "s6"]),
            (["datetime<=2019"], ["s3"]),
            (["start_datetime>=2021-01"], ["s2"]),
            # A bare year compared with a date field means that year.
            (["obs>=2021"], ["s2"]),
            (["obs<=2020"], ["s1", "s6"]),
            (["start_datetime>=2021"], ["s2"]),
        ],
    )
    def test_ordering(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["site~M*"], ["s1", "s6"]),
            (["site~m*"], ["s3"]),
            (["site~?HD"], ["s1", "s6"]),
            (["site~[mT]*"], ["s2", "s3"]),
            (["site~[^M]*"], ["s2", "s3"]),
            (["site~*"], ["s1", "s2", "s3", "s6"]),
            (["inst.name~*o*"], ["s2", "s3"]),
            (["vars~c*"], ["s1"]),
            (["stations.code~[AB]"], ["s4"]),
            (["obs~2020-*"], ["s1", "s6"]),
            (["year~20*"], ["s4"]),
            (["site~/^m/"], ["s3"]),
            (["site~/(?i)^mhd$/"], ["s1", "s3", "s6"]),
            (["inst.name~/^[A-Z]+$/"], ["s1"]),
            (["vars~/o$/"], ["s2"]),
            (["obs~/T00/"], ["s2"]),
            (["site~/HD/"], ["s1", "s6"]),
        ],
    )
    def test_patterns(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    # -- conditions on record fields -------------------------------------------------------------

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["kind=dataset"], ["s1", "s2", "s6"]),
            (["kind!=dataset"], ["s3", "s4"]),
            (["kind=[run,document]"], ["s3", "s4"]),
            (["id=s2"], ["s2"]),
            (["id~s[12]"], ["s1", "s2"]),
            (["title~Mace*"], ["s1"]),
            (["title~/nitrous/"], ["s2"]),
            (["title:missing"], ["s3"]),
            (["title!=Station list"], ["s1", "s2", "s3", "s6"]),
            (["description:exists"], ["s1", "s3"]),
            (["created_by=ana"], ["s1"]),
            (["created_by!=ana"], ["s2", "s3", "s4", "s6"]),
            (["created_by:missing"], ["s3", "s4", "s6"]),
            (["updated_by:missing"], ["s1", "s2", "s3", "s4", "s6"]),
            (["schema_name=obs"], ["s2"]),
            (["schema_version:exists"], []),
            (["version>=2"], ["s2", "s3"]),
            (["version=1"], ["s1", "s4", "s6"]),
            (["version<3"], ["s1", "s2", "s4", "s6"]),
            (["status=deprecated"], ["s4"]),
            (["status=[planned,deprecated]"], ["s4", "s6"]),
            (["status!=active"], ["s4", "s6"]),
            (["created_at>=2020-07"], ["s2", "s3"]),
            (["created_at<2020-01-01T00:00:00Z"], ["s4"]),
            (["created_at<=2020-01-01"], ["s1", "s4"]),
            (["created_at=2020-01"], ["s1", "s6"]),
            (["created_at=2020-01-01T00:00:00Z"], ["s1"]),
            (["created_at!=2020-01"], ["s2", "s3", "s4"]),
            (["updated_at:exists"], ["s1", "s2", "s3", "s4", "s6"]),
        ],
    )
    def test_record_fields(
        self, sample: CatalogBackend, terms: list[str], expected: list[str]
    ) -> None:
        assert search_ids(sample, *terms) == expected

    def test_record_time_fields_take_a_bare_year(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "created_at>=2021") == ["s3"]
        assert search_ids(sample, "created_at<2020") == ["s4"]
        assert search_ids(sample, "created_at=2020") == ["s1", "s2", "s6"]
        assert search_ids(sample, "created_at>2020") == ["s3"]
        assert search_ids(sample, "created_at=[2019,2021]") == ["s3", "s4"]

    def test_record_time_fields_refuse_other_values(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            search_ids(sample, "created_at=yesterday")

    def test_deleted_only_when_asked(self, sample: CatalogBackend) -> None:
        assert "s5" not in search_ids(sample)
        assert "s5" not in search_ids(sample, "status!=active")
        assert "s5" not in search_ids(sample, "status~d*")
        assert search_ids(sample, "status=deleted") == ["s5"]
        assert search_ids(sample, "status=[active,deleted]") == ["s1", "s2", "s3", "s5"]
        assert sample.count(Query()) == 5

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["tag=ch4"], ["s1"]),
            (["tags=ch4"], ["s1"]),
            (["tag=[n2o,meta]"], ["s2", "s4"]),
            (["tag!=ch4"], ["s2", "s3", "s4", "s6"]),
            (["tag:exists"], ["s1", "s2", "s4"]),
            (["tag:missing"], ["s3", "s6"]),
            (["tag~n*"], ["s2"]),
            (["tag~/^c/"], ["s1", "s2"]),
            (["tag=CH4"], []),
            (["tag=ch4", "tag=co2"], []),
            (["tag=co2", "tag=n2o"], ["s2"]),
        ],
    )
    def test_tags(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    def test_tags_field_name_is_tag(self, sample: CatalogBackend) -> None:
        """``tags`` names the record's tags in a Condition as it does in a CLI term."""
        assert _ids(sample, _where(Condition(field="tags", value="ch4"))) == ["s1"]
        assert _ids(sample, _where(Condition(field="tags", op="missing"))) == ["s3", "s6"]

    def test_tags_do_not_order(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            search_ids(sample, "tag>1")

    # -- full text ----------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("methane", ["s1"]),
            ("METHANE", ["s1"]),
            ("mace head", ["s1"]),
            ("head mace", ["s1"]),
            ("mace nitrous", []),
            ("mhd", ["s1", "s3", "s6"]),
            ("noc", ["s1", "s3"]),
            ("lab", ["s3"]),
            ("n2o", ["s2"]),
            ("ma*", ["s1"]),
            ("tac*", ["s2"]),
            ("station*", ["s3", "s4"]),
            ("shadowed", ["s4"]),
            ("zebra", []),
            ("meth", []),
        ],
    )
    def test_full_text(self, sample: CatalogBackend, text: str, expected: list[str]) -> None:
        assert search_ids(sample, text=text) == expected

    def test_full_text_combines_with_conditions(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "kind=document", text="mhd") == ["s3"]
        assert sample.count(Query(text="mhd")) == 3

    def test_full_text_without_words(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            sample.search(Query(text="*"))

    # -- space and time -----------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("bbox", "expected"),
        [
            ("-180,-90,180,90", ["s1", "s2", "s3"]),
            ("0,-90,360,90", ["s1", "s2", "s3"]),
            ("-11,49,-10.5,55", []),
            ("-9.5,52,0,53", ["s1"]),
            ("-9,54,0,60", ["s1"]),  # closed boxes: touching counts
            ("175,-5,180,5", ["s2"]),
            ("-180,-5,-175,5", ["s2"]),
            ("179,-1,-179,1", ["s2"]),  # query across the antimeridian
            ("160,-90,169,90", []),
            ("-169,-90,-160,90", []),
            ("-5,0,-2,5", ["s3"]),  # record given in 0..360
            ("355,0,358,5", ["s3"]),  # query given in 0..360
            ("-0.5,11,0.5,12", []),
            ("90,-1,-90,1", ["s2"]),
            ("-90,-1,90,1", ["s3"]),
        ],
    )
    def test_bbox(self, sample: CatalogBackend, bbox: str, expected: list[str]) -> None:
        assert search_ids(sample, bbox=bbox) == expected
        assert sample.count(Query.parse(bbox=bbox)) == len(expected)

    def test_bbox_meets_across_the_antimeridian_seam(self, backend: CatalogBackend) -> None:
        """180 and -180 are one meridian: boxes touching it from both sides meet, as touching boxes do elsewhere."""
        backend.add([Record(id="east", metadata={"bbox": [170, 0, 180, 10]})])
        backend.add([Record(id="west", metadata={"bbox": [-180, 0, -170, 10]})])
        assert search_ids(backend, bbox="-180,0,-175,10") == ["east", "west"]
        assert search_ids(backend, bbox="175,0,180,10") == ["east", "west"]

    @pytest.mark.parametrize(
        ("time", "expected"),
        [
            ("../..", ["s1", "s2", "s3"]),
            ("2020", ["s1"]),
            ("2020-06", ["s1"]),
            ("2020-06-15T12:00:00Z", ["s1"]),
            ("2020-06-15T12:00:01Z", []),
            ("2020-06-16/2020-12-31", []),
            ("2020-12-31/2021-01-01", ["s2"]),
            ("2021-03-31T23:59:59Z/..", ["s2"]),
            ("2021-04/..", []),
            ("../2019-12-01", ["s3"]),
            ("../2019-11", []),
            ("2019-12-31", ["s3"]),
            ("2019/2021", ["s1", "s2", "s3"]),
            ("2021-02", ["s2"]),
        ],
    )
    def test_time(self, sample: CatalogBackend, time: str, expected: list[str]) -> None:
        assert search_ids(sample, time=time) == expected

    def test_space_time_text_and_terms_combine(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "site=MHD", bbox="-11,49,-8,55", time="2020", text="methane") == [
            "s1"
        ]
        assert search_ids(sample, "status=deleted", bbox="-11,49,-8,55", time="2020-06") == ["s5"]

    # -- sort, limit, cursor --------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("sort", "expected"),
        [
            ("ok", ["s2", "s1", "s3", "s4", "s6"]),  # JSON null sorts with the missing
            ("-ok", ["s1", "s2", "s3", "s4", "s6"]),
            ("ratio", ["s1", "s6", "s2", "s3", "s4"]),
            ("-ratio", ["s3", "s2", "s1", "s6", "s4"]),
            ("obs", ["s1", "s6", "s2", "s3", "s4"]),
            ("-obs", ["s2", "s6", "s1", "s3", "s4"]),
            ("inst.name", ["s1", "s2", "s3", "s4", "s6"]),
            ("-inst.name", ["s3", "s2", "s1", "s4", "s6"]),
            ("site", ["s1", "s6", "s2", "s3", "s4"]),
            ("title", ["s1", "s6", "s4", "s2", "s3"]),
            ("-title", ["s2", "s4", "s6", "s1", "s3"]),
            ("metadata.title", ["s4", "s1", "s2", "s3", "s6"]),
            ("created_at", ["s4", "s1", "s6", "s2", "s3"]),
            ("-created_at", ["s3", "s2", "s6", "s1", "s4"]),
            ("kind,-version", ["s2", "s1", "s6", "s3", "s4"]),
            ("-version,title", ["s3", "s2", "s1", "s6", "s4"]),
            ("never", ["s1", "s2", "s3", "s4", "s6"]),
            ("created_by", ["s1", "s2", "s3", "s4", "s6"]),
            ("-created_by", ["s2", "s1", "s3", "s4", "s6"]),
        ],
    )
    def test_sort(self, sample: CatalogBackend, sort: str, expected: list[str]) -> None:
        """Nulls last in both directions, ties in insertion order.

        Text sorts by code point. How values of different JSON types order
        among themselves is left to the backend (SQL engines differ).
        """
        assert search_ids(sample, sort=sort) == expected

    def test_limit(self, sample: CatalogBackend) -> None:
        page = sample.search(Query(limit=2))
        assert [r.id for r in page.records] == ["s1", "s2"]
        assert page.next_cursor is not None
        page = sample.search(Query(limit=5))
        assert len(page.records) == 5
        assert page.next_cursor is None
        assert sample.search(Query.parse(["site=XXX"], limit=3)).records == []

    @pytest.mark.parametrize(
        "sort", ["", "year", "-year", "title,-created_at", "-ratio,kind", "obs", "-vars"]
    )
    @pytest.mark.parametrize("page_size", [1, 2, 3, 5])
    def test_cursor_pagination(self, sample: CatalogBackend, sort: str, page_size: int) -> None:
        query = Query.parse(["status=[active,deprecated,planned,deleted]"], sort=sort)
        expected = _ids(sample, query)
        pages = _all_pages(sample, query, page_size)
        assert [i for page in pages for i in page] == expected
        assert all(pages), "no empty page"
        assert all(len(page) == page_size for page in pages[:-1])

    def test_pagination_survives_writes_elsewhere(self, sample: CatalogBackend) -> None:
        query = Query.parse(sort="ratio", limit=2)
        first = sample.search(query)
        sample.add(
            [Record(id="s0", metadata={"ratio": 0.1}), Record(id="s7", metadata={"ratio": 9})]
        )
        rest = _all_pages(sample, query.model_copy(update={"cursor": first.next_cursor}), 2)
        seen = [r.id for r in first.records] + [i for page in rest for i in page]
        assert seen == ["s1", "s6", "s2", "s3", "s7", "s4"]

    @pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJ4IjogMX0=", ""])
    def test_bad_cursor(self, sample: CatalogBackend, cursor: str) -> None:
        if not cursor:
            return  # an empty cursor means "from the start"
        with pytest.raises(QueryError):
            sample.search(Query(cursor=cursor))

    def test_cursor_of_another_sort(self, sample: CatalogBackend) -> None:
        page = sample.search(Query.parse(sort="year,title", limit=1))
        assert page.next_cursor is not None
        with pytest.raises(QueryError):
            sample.search(Query.parse(sort="year", cursor=page.next_cursor))

    @pytest.mark.parametrize(
        "terms",
        [
            [],
            ["site=MHD"],
            ["site!=MHD"],
            ["status=deleted"],
            ["year>2000", "tag:missing"],
            ["never=1"],
        ],
    )
    def test_count(self, sample: CatalogBackend, terms: list[str]) -> None:
        query = Query.parse(terms, limit=1)
        assert sample.count(query) == len(search_ids(sample, *terms))

    # -- fields, stats, operations ------------------------------------------------------------------

    def test_fields(self, sample: CatalogBackend) -> None:
        fields = {f.path: f for f in sample.fields()}
        assert fields["site"].types == ["string"]
        assert fields["site"].count == 4  # s5 is deleted
        assert set(fields["site"].examples) <= {"MHD", "TAC", "mhd"}
        assert fields["site"].examples
        assert fields["year"].types == ["integer", "string"]
        assert fields["year"].count == 4
        assert fields["ratio"].types == ["integer", "number"]
        assert fields["ok"].types == ["boolean", "null"]
        assert fields["obs"].types == ["date"]
        assert fields["inst"].types == ["object"]
        assert fields["inst.code"].types == ["integer"]
        assert fields["inst.code"].examples == [7]
        assert fields["vars"].types == ["array", "string"]
        assert fields["vars"].count == 3
        assert fields["stations"].types == ["array", "object"]
        assert fields["stations.code"].count == 1
        assert fields["bbox"].types == ["array"]  # extent parts are not metadata values
        assert list(fields) == sorted(fields)
        for summary in fields.values():
            assert len(summary.examples) <= 5
        assert [f.path for f in sample.fields("inst")] == ["inst", "inst.code", "inst.name"]
        assert [f.path for f in sample.fields("stations")] == [
            "stations",
            "stations.code",
            "stations.height",
        ]
        assert sample.fields("nothing-here") == []

    def test_fields_follow_delete_and_restore(self, sample: CatalogBackend) -> None:
        sample.delete("s4")
        fields = {f.path: f for f in sample.fields()}
        assert "stations" not in fields
        assert fields["year"].types == ["integer"]
        assert set(fields["year"].examples) <= {2019, 2020, 2021}
        sample.restore("s4")
        fields = {f.path: f for f in sample.fields()}
        assert fields["stations"].count == 1
        assert fields["year"].types == ["integer", "string"]

    def test_stats(self, backend: CatalogBackend) -> None:
        nc = Artifact(locator=LocalPath(path="a.nc"), format="netcdf")
        zarr = Artifact(locator=FsspecUrl(url="s3://b/a.zarr"), format="zarr", status="planned")
        bare = Artifact(locator=ExternalUri(uri="https://example.org"), status="external")
        backend.add(
            [
                Record(id="a", kind="dataset", artifacts=[nc, zarr]),
                Record(id="b", kind="dataset", artifacts=[bare]),
                Record(id="c", kind="document", status="failed"),
                Record(
                    id="d",
                    kind="run",
                    artifacts=[Artifact(locator=LocalPath(path="x.nc"), format="netcdf")],
                ),
            ]
        )
        backend.delete("d")
        stats = backend.stats()
        assert stats.records_by_kind == {"dataset": 2, "document": 1}
        assert stats.records_by_status == {"active": 2, "failed": 1, "deleted": 1}
        assert stats.artifacts_by_format == {"netcdf": 1, "zarr": 1, "unknown": 1}
        assert stats.artifacts_by_status == {"available": 1, "planned": 1, "external": 1}

    def test_operations(self, backend: CatalogBackend) -> None:
        ops = [
            Operation(
                id=f"op-{i}", action="add", inputs=[f"r{i}"], started_at=_T0 + timedelta(minutes=i)
            )
            for i in range(5)
        ]
        for op in ops:
            backend.save_operation(op)
        assert [o.id for o in backend.operations()] == ["op-4", "op-3", "op-2", "op-1", "op-0"]
        assert backend.operations()[0] == ops[4]
        assert [o.id for o in backend.operations(limit=2)] == ["op-4", "op-3"]
        failed = ops[1].model_copy(
            update={
                "status": "failed",
                "finished_at": _T0 + timedelta(hours=1),
                "error": OperationError(type="StorageError", message="disk full"),
                "parameters": {"profile": "archive", "nested": {"n": [1, 2.5]}},
            }
        )
        backend.save_operation(failed)
        assert backend.operations(status="failed") == [failed]
        assert [o.id for o in backend.operations(status="running")] == [
            "op-4",
            "op-3",
            "op-2",
            "op-0",
        ]
        assert backend.operations(status="succeeded") == []
        assert len(backend.operations(limit=100)) == 5

    # -- values the index must carry exactly ---------------------------------------------------------

    def test_64_bit_integers(self, backend: CatalogBackend) -> None:
        """Integers keep every digit, and leave no index rows behind when they change."""
        big, low, odd = 2**63 - 1, -(2**63), 2**53 + 1
        record = Record(
            id="big",
            metadata={"n": big, "m": low, "p": odd},
            version=2**62,
            artifacts=[Artifact(locator=LocalPath(path="huge.nc"), size_bytes=2**63 - 1)],
        )
        backend.add([record])
        assert backend.get("big") == record
        assert search_ids(backend, "n>1e18") == ["big"]
        assert search_ids(backend, "m<-1e18") == ["big"]
        assert search_ids(backend, "p>9e15") == ["big"]
        changed = record.model_copy(update={"metadata": {"n": 1}, "version": 2**62 + 1})
        backend.update(changed, expected_version=2**62)
        assert search_ids(backend, "n>1e18") == []
        assert search_ids(backend, "p:exists") == []
        backend.purge("big")
        backend.add([Record(id="after")])
        assert search_ids(backend, "n:exists") == []
        assert backend.fields() == []

    def test_long_text_values(self, backend: CatalogBackend) -> None:
        """Equality, patterns and sorting see the whole of a long string, not its first characters."""
        base = "x" * 300
        a, b = base + "A", base + "B"
        backend.add(
            [
                Record(id="a", metadata={"s": a}),
                Record(id="b", metadata={"s": b, "other": a}),
                Record(id="u", metadata={"s": "é" * 300}),
            ]
        )
        assert _ids(backend, _where(Condition(field="s", value=a))) == ["a"]
        assert _ids(backend, _where(Condition(field="s", op="ne", value=a))) == ["b", "u"]
        assert _ids(backend, _where(Condition(field="s", op="in", value=[a, "short"]))) == ["a"]
        assert _ids(backend, _where(Condition(field="s", value="é" * 300))) == ["u"]
        assert _ids(backend, _where(Condition(field="s", op="glob", value="*B"))) == ["b"]
        assert _ids(backend, _where(Condition(field="s", op="glob", value="x" * 300))) == []
        assert _ids(backend, _where(Condition(field="s", op="regex", value="A$"))) == ["a"]
        assert _ids(backend, _where(sort=[SortKey(field="s", descending=True)])) == ["u", "b", "a"]

    def test_date_equality_means_within_the_period(self, sample: CatalogBackend) -> None:
        """``d=P`` agrees with ``d>=P d<=P``, and with how ``created_at=P`` reads."""
        for period in ["2020-06", "2020", "2020-06-15", "2021-01-01T00:00:00Z"]:
            both = search_ids(sample, f"obs>={period}", f"obs<={period}")
            assert search_ids(sample, f"obs={period}") == both, period
            assert search_ids(sample, f"obs=[{period},none]") == both, period
            others = [i for i in search_ids(sample) if i not in both]
            assert search_ids(sample, f"obs!={period}") == others, period

    # -- concurrency ----------------------------------------------------------------------------------

    def test_two_threads_adding(self, backend: CatalogBackend) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work(name: str) -> None:
            try:
                barrier.wait(timeout=10)
                for batch in range(10):
                    records = [
                        Record(
                            id=f"{name}-{batch}-{i}", metadata={"worker": name, "n": batch * 5 + i}
                        )
                        for i in range(5)
                    ]
                    backend.add(records)
                    backend.search(Query.parse([f"worker={name}"], limit=3))
            except BaseException as exc:
                errors.append(exc)
            finally:
                backend.close()

        threads = [threading.Thread(target=work, args=(name,)) for name in ("t1", "t2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert backend.count(Query()) == 100
        assert backend.count(Query.parse(["worker=t1"])) == 50
        assert {f.path: f.count for f in backend.fields()} == {"worker": 100, "n": 100}

    def test_second_handle_sees_writes(self, backend: CatalogBackend, tmp_path: Path) -> None:
        other = self.create_backend(tmp_path)
        try:
            backend.add([Record(id="one", metadata={"k": 1})])
            assert other.get("one").metadata == {"k": 1}
            other.add([Record(id="two", metadata={"k": 2})])
            assert search_ids(backend, "k>=1") == ["one", "two"]
            record = backend.get("two")
            backend.update(record.model_copy(update={"version": 2}), expected_version=1)
            with pytest.raises(ConflictError):
                other.update(record.model_copy(update={"version": 2}), expected_version=1)
        finally:
            other.close()

    # -- property tests ---------------------------------------------------------------------------------

    @_PROPERTY_SETTINGS
    @given(case=strategies.search_cases(), page_size=st.integers(1, 4))
    def test_search_agrees_with_reference(
        self, backend: CatalogBackend, case: tuple[list[Record], Query], page_size: int
    ) -> None:
        records, query = case
        clear_backend(backend)
        backend.add(records)
        expected = reference_search(records, query)
        got = _ids(backend, query)
        assert sorted(got) == sorted(expected)
        assert len(set(got)) == len(got)
        assert order_problems(records, query, got) == []
        assert backend.count(query) == len(expected)
        pages = _all_pages(backend, query, page_size)
        assert [i for page in pages for i in page] == got

    @_PROPERTY_SETTINGS
    @given(records=strategies.search_records(), deletions=st.sets(st.integers(0, 9), max_size=3))
    def test_fields_agree_with_reference(
        self, backend: CatalogBackend, records: list[Record], deletions: set[int]
    ) -> None:
        clear_backend(backend)
        backend.add(records)
        for index in sorted(deletions):
            if index < len(records) and records[index].status != "deleted":
                records[index] = backend.delete(records[index].id)
        expected = reference_fields(records)
        got = backend.fields()
        assert [f.path for f in got] == sorted(expected)
        for summary in got:
            want = expected[summary.path]
            assert (summary.types, summary.count) == (want.types, want.count), summary.path
            assert len(summary.examples) <= 5
        assert backend.stats().records_by_status == _status_counts(records)


def _status_counts(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


# Referenced so that the names used only in type positions stay imported for readers.
_ = (BBox, TimeRange)
