"""The backend contract's administrative part: schema versions, whole-catalog export and
import (what ``arcodex db copy`` is made of), and the storage of the schema registry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from arcodex.backends import CatalogBackend
from arcodex.errors import ConflictError, NotFoundError
from arcodex.model import Operation, Query, Record
from arcodex.testing._support import (
    ALL_STATUSES,
    T0,
    ContractBase,
    full_record,
    ids_of,
    sample_records,
    search_ids,
    where,
)

__all__ = ["AdminContract"]

#: Ids whose order differs between code points and most collations (case, punctuation).
_IDS = ["b-2", "B-1", "a-3", "Z-5", "9-6", "a.30", "a-30", "a_31"]


def _exported(backend: CatalogBackend, batch: int = 1000) -> list[tuple[Record, str | None]]:
    return [row for rows in backend.export_records(batch=batch) for row in rows]


class AdminContract(ContractBase):
    """Schema versions, export and import of every record, the schema registry's storage."""

    def _second(self, tmp_path: Path) -> CatalogBackend:
        """Another, independent and empty backend."""
        other = tmp_path / "second"
        other.mkdir()
        return self.create_backend(other)

    # -- schema versions --------------------------------------------------------------------

    def test_a_new_backend_is_at_the_code_schema(self, backend: CatalogBackend) -> None:
        info = backend.schema_info()
        assert info.version == info.code_version >= 1
        assert info.up_to_date and info.pending == []
        assert info.applied, "a new database records the migrations it was made with"
        assert max(m.version for m in info.applied) == info.code_version
        assert all(m.description for m in info.applied)
        assert info.to_dict()["version"] == info.version

    def test_upgrading_an_up_to_date_backend_does_nothing(self, backend: CatalogBackend) -> None:
        before = backend.schema_info()
        assert backend.upgrade(dry_run=True) == []
        assert backend.upgrade() == []
        assert backend.schema_info() == before

    # -- empty or not -----------------------------------------------------------------------

    def test_is_empty(self, backend: CatalogBackend, tmp_path: Path) -> None:
        assert backend.is_empty()
        backend.add([Record(id="one")])
        assert not backend.is_empty()
        backend.purge("one")
        assert backend.is_empty()
        backend.save_operation(Operation(action="add"))
        assert not backend.is_empty()
        other = self._second(tmp_path)
        try:
            assert other.is_empty()
            other.put_schema("obs@1", '{"type": "object"}')
            assert not other.is_empty()
        finally:
            other.close()

    # -- export and import ------------------------------------------------------------------

    def test_export_gives_every_record_by_id_with_prior_status(
        self, backend: CatalogBackend
    ) -> None:
        backend.add([Record(id=i, metadata={"n": n}) for n, i in enumerate(_IDS)])
        backend.add(sample_records())
        backend.delete("B-1")
        backend.update(
            backend.get("a-3").model_copy(update={"status": "deprecated", "version": 2}), 1
        )
        backend.delete("a-3")
        pages = list(backend.export_records(batch=3))
        assert all(1 <= len(page) <= 3 for page in pages)
        rows = [row for page in pages for row in page]
        ids = [record.id for record, _ in rows]
        assert ids == sorted(_IDS + [r.id for r in sample_records()]), "code point order"
        prior = {record.id: p for record, p in rows}
        assert prior["B-1"] == "active" and prior["a-3"] == "deprecated"
        assert prior["s5"] is None, "a record added as deleted has no status to go back to"
        assert {k for k, v in prior.items() if v is not None} == {"B-1", "a-3"}
        for record, _ in rows:
            assert record == backend.get(record.id)

    def test_export_of_an_empty_backend(self, backend: CatalogBackend) -> None:
        assert list(backend.export_records()) == []

    def test_import_keeps_records_exactly(self, backend: CatalogBackend, tmp_path: Path) -> None:
        backend.add([full_record(), *sample_records()])
        backend.delete("s1", user="ana")
        backend.delete("s4")
        exported = _exported(backend, batch=2)
        other = self._second(tmp_path)
        try:
            for start in range(0, len(exported), 3):
                other.import_records(exported[start : start + 3])
            assert _exported(other) == exported
            assert other.get("full-1") == full_record()
            everything = where(ALL_STATUSES)
            assert ids_of(other, everything) == ids_of(backend, everything)
            for terms in (["site=MHD"], ["year>=2020"], ["kind=dataset"], ["tags=ch4"]):
                assert search_ids(other, *terms) == search_ids(backend, *terms), terms
            assert search_ids(other, text="mhd") == search_ids(backend, text="mhd")
            box = {"bbox": (-11.0, 49.0, -8.0, 55.0)}
            assert search_ids(other, **box) == search_ids(backend, **box) != []
            assert other.fields() == backend.fields()
            assert other.stats() == backend.stats()
            assert other.count(Query()) == backend.count(Query())
            assert other.restore("s1").status == "active"
            assert other.restore("s4").status == "deprecated"
            record = other.get("s2")
            other.update(record.model_copy(update={"title": "x", "version": 3}), 2)
            assert other.get("s2").version == 3, "versions go on from where they were"
        finally:
            other.close()

    def test_import_of_a_taken_id_conflicts_and_adds_nothing(self, backend: CatalogBackend) -> None:
        backend.add([Record(id="taken", title="first")])
        with pytest.raises(ConflictError):
            backend.import_records([(Record(id="new"), None), (Record(id="taken"), None)])
        with pytest.raises(NotFoundError):
            backend.get("new")
        assert backend.get("taken").title == "first"
        backend.import_records([])
        assert backend.count(where(ALL_STATUSES)) == 1

    # -- operations -------------------------------------------------------------------------

    def test_all_operations_oldest_first(self, backend: CatalogBackend) -> None:
        assert list(backend.all_operations()) == []
        ops = [
            Operation(id=f"op-{n}", action="add", started_at=T0 + timedelta(minutes=n % 5))
            for n in range(12)
        ]
        for op in ops:
            backend.save_operation(op)
        got = list(backend.all_operations())
        assert got == sorted(ops, key=lambda o: (o.started_at, o.id))
        done = ops[3].model_copy(update={"status": "succeeded"})
        backend.save_operation(done)
        assert len(list(backend.all_operations())) == 12
        assert done in list(backend.all_operations())

    # -- the schema registry's storage ------------------------------------------------------

    def test_schemas_are_stored(self, backend: CatalogBackend, tmp_path: Path) -> None:
        assert backend.schema_keys() == []
        assert backend.schema_text("obs@1") is None
        backend.put_schema("obs@2", '{"type": "object", "title": "two"}')
        backend.put_schema("obs@1", '{"type": "object"}')
        backend.put_schema("Obs@1", '{"type": "string"}')
        assert backend.schema_keys() == ["Obs@1", "obs@1", "obs@2"]
        assert backend.schema_text("obs@1") == '{"type": "object"}'
        backend.put_schema("obs@1", '{"type": "array"}')
        assert backend.schema_text("obs@1") == '{"type": "array"}', "replaced"
        assert len(backend.schema_keys()) == 3
        other = self.create_backend(tmp_path)
        try:
            assert other.schema_text("obs@2") == '{"type": "object", "title": "two"}'
        finally:
            other.close()
