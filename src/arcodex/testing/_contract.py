"""The contract every catalog backend passes, as a test class to subclass.

Like zarr's ``StoreTests``: a backend's test module subclasses
:class:`BackendContract` once and implements :meth:`~BackendContract.create_backend`;
pytest then runs every test of the contract against it::

    from arcodex.testing import BackendContract

    class TestSQLiteBackend(BackendContract):
        def create_backend(self, path):
            return SQLiteBackend(path / "catalog.sqlite", create=True)

The semantics checked are those documented in :mod:`arcodex.model._query`;
the property tests compare every answer with the brute-force reading in
:mod:`arcodex.testing._reference`.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcodex.backends import CatalogBackend
from arcodex.errors import ConflictError, NotFoundError
from arcodex.model import (
    Artifact,
    Condition,
    ExternalUri,
    FsspecUrl,
    LocalPath,
    Operation,
    OperationError,
    Query,
    Record,
)
from arcodex.testing import strategies
from arcodex.testing._contract_admin import AdminContract
from arcodex.testing._contract_search import SearchContract
from arcodex.testing._reference import reference_fields
from arcodex.testing._support import (
    ALL_STATUSES,
    PROPERTY_SETTINGS,
    T0,
    ContractBase,
    clear_backend,
    full_record,
    ids_of,
    search_ids,
    status_counts,
    where,
)

__all__ = ["BackendContract", "RecordContract"]


class RecordContract(ContractBase):
    """Writing, reading and removing records; fields, stats, operations; concurrency."""

    # -- add and get ------------------------------------------------------------------------

    def test_is_a_catalog_backend(self, backend: CatalogBackend) -> None:
        assert isinstance(backend, CatalogBackend)
        assert isinstance(backend.url, str)
        assert backend.url

    def test_add_get_round_trip(self, backend: CatalogBackend) -> None:
        record = full_record()
        backend.add([record])
        assert backend.get(record.id) == record

    @PROPERTY_SETTINGS
    @given(record=strategies.records())
    def test_add_get_round_trip_any_record(self, backend: CatalogBackend, record: Record) -> None:
        clear_backend(backend)
        backend.add([record])
        got = backend.get(record.id)
        assert got == record
        assert got.model_dump(mode="json") == record.model_dump(mode="json")

    def test_bulk_add_keeps_control_characters_and_backslashes(
        self, backend: CatalogBackend
    ) -> None:
        # Bulk adds may format rows themselves (COPY's text format escapes these): more
        # records than one bulk chunk, every value a character that format gives meaning.
        odd = ["back\\slash", "tab\there", "new\nline", "cr\rhere", "\\N", "\\t", "end\\"]
        words = [value for value in odd if not any(c.isspace() for c in value)]  # tags
        records = [
            Record(
                id=f"odd-{i}",
                title=odd[i % len(odd)],
                tags=[words[i % len(words)]],
                metadata={"v": odd[i % len(odd)], "n": [odd[(i + 2) % len(odd)], i]},
            )
            for i in range(4_321)
        ]
        backend.add(records)
        assert backend.get("odd-4320") == records[-1]
        for value in odd:
            expected = [r.id for r in records if r.metadata["v"] == value]
            found = backend.ids(Query(conditions=[Condition(field="v", value=value)], limit=None))
            assert found == expected, value
            in_list = [r.id for r in records if r.metadata["n"][0] == value]
            assert backend.count(Query(conditions=[Condition(field="n", value=value)])) == len(
                in_list
            )
            tagged = [r.id for r in records if value in r.tags]
            assert backend.count(Query(conditions=[Condition(field="tags", value=value)])) == len(
                tagged
            )

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

    def test_holders_of_content_paths_and_uris(self, backend: CatalogBackend) -> None:
        sha = "ab" * 32
        copied = Artifact(
            locator=LocalPath(path="/store/a.nc"), hashes={"sha256": sha}, managed=True
        )
        in_place = Artifact(locator=LocalPath(path="/data/b.nc"), hashes={"sha256": "cd" * 32})
        uri = Artifact(locator=ExternalUri(uri="https://example.org/c.nc"), status="external")
        backend.add(
            [
                Record(id="copied", artifacts=[copied]),
                Record(id="in-place", artifacts=[in_place]),
                Record(id="external", artifacts=[uri]),
                Record(id="gone", artifacts=[Artifact(locator=LocalPath(path="/data/g.nc"))]),
                Record(
                    id="product",
                    artifacts=[
                        Artifact(locator=LocalPath(path="/store/p.zarr"), managed=True),
                        Artifact(role="source", locator=LocalPath(path="/data/b.nc")),
                    ],
                ),
            ]
        )
        backend.delete("gone")
        found = backend.holders(
            sha256=[sha, "ef" * 32],
            locations=["/data/b.nc", "https://example.org/c.nc", "/data/g.nc", "/data/none.nc"],
        )
        assert sorted(found) == sorted(
            [
                (sha, "copied", "active"),
                ("/data/b.nc", "in-place", "active"),
                ("https://example.org/c.nc", "external", "active"),
                ("/data/g.nc", "gone", "deleted"),
            ]
        )
        assert backend.holders(locations=["/store/a.nc"]) == [("/store/a.nc", "copied", "active")]
        assert backend.holders(locations=["/store/p.zarr"]) == [
            ("/store/p.zarr", "product", "active")
        ], "a product holds its own store, not its sources (found above only as in-place)"
        assert backend.holders() == []
        backend.purge("copied")
        assert backend.holders(sha256=[sha]) == []

    def test_sources_of_copies_and_files_in_place(self, backend: CatalogBackend) -> None:
        copied = Artifact(
            locator=LocalPath(path="/store/a.nc"),
            size_bytes=10,
            managed=True,
            metadata={"source_path": "/data/a.nc", "source_mtime_ns": 1_700_000_000_123_456_789},
        )
        in_place = Artifact(
            locator=LocalPath(path="/data/b.nc"),
            size_bytes=5,
            metadata={"source_path": "/data/b.nc"},
        )
        backend.add(
            [
                Record(id="copied", artifacts=[copied]),
                Record(id="in-place", artifacts=[in_place]),
                Record(
                    id="product",
                    artifacts=[
                        Artifact(locator=LocalPath(path="/store/p.zarr"), managed=True),
                        Artifact(
                            role="source",
                            locator=LocalPath(path="/data/c.nc"),
                            metadata={"source_path": "/data/c.nc"},
                        ),
                    ],
                ),
            ]
        )
        backend.delete("in-place")
        found = backend.sources(["/data/a.nc", "/data/b.nc", "/data/c.nc", "/data/none.nc"])
        assert sorted(found) == [
            ("/data/a.nc", "copied", "active", 10, 1_700_000_000_123_456_789),
            ("/data/b.nc", "in-place", "deleted", 5, None),
        ], "a product's sources are not what it was made from as a file"
        assert backend.sources([]) == []
        assert backend.sources([f"/data/{i}.nc" for i in range(1200)]) == []
        backend.purge("copied")
        assert backend.sources(["/data/a.nc"]) == []

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
        everything = where(ALL_STATUSES)
        assert ids_of(backend, everything) == ["keep"]
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
        assert "s5" not in ids_of(sample, where(ALL_STATUSES))
        assert {f.path: f.count for f in sample.fields()}["site"] == 4

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
                id=f"op-{i}", action="add", inputs=[f"r{i}"], started_at=T0 + timedelta(minutes=i)
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
                "finished_at": T0 + timedelta(hours=1),
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

    @PROPERTY_SETTINGS
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
        assert backend.stats().records_by_status == status_counts(records)


class BackendContract(RecordContract, SearchContract, AdminContract):
    """Tests every :class:`~arcodex.backends.CatalogBackend` must pass.

    Subclass it in a module named ``test_*.py`` with a class named ``Test*``
    and implement :meth:`create_backend`; every test carries the
    ``arcodex_contract`` marker. The property tests draw 60 examples each;
    set ``ARCODEX_CONTRACT_EXAMPLES`` for a longer hunt.

    Sorting is pinned down completely, so that every backend gives the same
    order: text by code point (UTF-8 byte order, whatever the database's
    locale), numbers (booleans as 0 and 1) before text, lists and objects as
    their compact JSON text among the text, dates by their text, nulls and
    missing values last in both directions. Everything else in
    :mod:`arcodex.model._query` is checked here too.
    """
