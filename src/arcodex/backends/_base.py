"""The seam every catalog backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from arcodex.backends._migrations import SchemaInfo
from arcodex.model import FieldSummary, Operation, Query, Record

__all__ = ["BackendStats", "CatalogBackend", "Page", "SchemaInfo"]


@dataclass(frozen=True)
class Page:
    """One page of search results; ``next_cursor`` is None on the last page."""

    records: list[Record]
    next_cursor: str | None = None

    def _repr_html_(self) -> str:
        from arcodex._html import box, code, esc, period, table

        n = len(self.records)
        rows = (
            (code(r.id), r.title or "", r.kind, r.status, period(r.metadata)) for r in self.records
        )
        if self.next_cursor:
            hint = (
                "<p>more records match: the next page is "
                f"<code>search(…, cursor={esc(repr(self.next_cursor), 400)})</code></p>"
            )
        else:
            hint = "<p>the last page</p>"
        return box(
            "Page",
            f"{n} record{'s' if n != 1 else ''} on this page",
            table(
                ("id", "title", "kind", "status", "period"),
                rows,
                total=n,
                limit=PAGE_ROWS,
                what="records on this page",
            ),
            hint,
        )


#: Rows a page shows in a notebook.
PAGE_ROWS = 25


@dataclass(frozen=True)
class BackendStats:
    """Counts for ``catalog.info()``."""

    records_by_kind: dict[str, int] = field(default_factory=dict)
    records_by_status: dict[str, int] = field(default_factory=dict)
    artifacts_by_format: dict[str, int] = field(default_factory=dict)
    artifacts_by_status: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class CatalogBackend(Protocol):
    """Where records live. Every method is atomic: it fully happens or not at all.

    Implementations raise :class:`~arcodex.errors.NotFoundError` for unknown
    ids, :class:`~arcodex.errors.ConflictError` for duplicate ids and version
    mismatches, :class:`~arcodex.errors.LockTimeoutError` when the store stays
    locked, and :class:`~arcodex.errors.StorageError` when it is unreadable.
    The contract is :class:`arcodex.testing.BackendContract`.
    """

    url: str
    """Where the backend lives, without credentials."""

    def add(self, records: Sequence[Record]) -> None:
        """Insert records in one transaction (all or none)."""
        ...

    def get(self, record_id: str) -> Record:
        """The record with exactly this id, deleted or not."""
        ...

    def holders(
        self, *, sha256: Sequence[str] = (), locations: Sequence[str] = ()
    ) -> list[tuple[str, str, str]]:
        """Who holds these files already: ``(value, record id, record status)`` for each
        primary artifact whose sha256 is one of ``sha256`` or whose path or URI is one of
        ``locations``; deleted records too (other roles, such as a product's sources, hold
        nothing). Indexed: an add asks it of every file it adds."""
        ...

    def sources(self, paths: Sequence[str]) -> list[tuple[str, str, str, int | None, int | None]]:
        """Which records were made from these files: ``(path, record id, record status,
        size_bytes, source mtime in ns)`` for each primary artifact whose
        ``metadata.source_path`` is one of ``paths`` (the mtime is its
        ``metadata.source_mtime_ns``, None when it has none); deleted records too.
        Indexed: a batch ingest asks it of every file it plans, to skip those it holds."""
        ...

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Up to ``limit`` ids starting with ``prefix``, sorted."""
        ...

    def update(self, record: Record, expected_version: int) -> None:
        """Replace a record if its stored version is ``expected_version``."""
        ...

    def delete(self, record_id: str, *, user: str | None = None) -> Record:
        """Tombstone a record (status ``deleted``), remembering its status for restore."""
        ...

    def restore(self, record_id: str, *, user: str | None = None) -> Record:
        """Undo :meth:`delete`: the record gets back the status it had."""
        ...

    def purge(self, record_id: str) -> Record:
        """Remove a record for good and return what it was."""
        ...

    def search(self, query: Query) -> Page:
        """Records matching ``query`` (``deleted`` ones only when asked by status)."""
        ...

    def count(self, query: Query) -> int:
        """How many records match ``query`` (limit and cursor ignored)."""
        ...

    def ids(self, query: Query) -> list[str]:
        """The ids :meth:`search` would give for ``query`` (its order, its limit and cursor),
        all of them in one list, without reading the records."""
        ...

    def fields(self, prefix: str | None = None) -> list[FieldSummary]:
        """Metadata paths seen in records that are not deleted."""
        ...

    def stats(self) -> BackendStats:
        """Counts of records and artifacts."""
        ...

    def save_operation(self, operation: Operation) -> None:
        """Insert or replace an operation."""
        ...

    def operations(self, status: str | None = None, limit: int = 20) -> list[Operation]:
        """Operations, newest first, optionally with one status."""
        ...

    # -- the database itself: schema versions, whole-catalog copies, the schema registry --

    def schema_info(self) -> SchemaInfo:
        """The database's schema version beside the code's, with the migrations applied
        and those pending (see :mod:`arcodex.backends._migrations`)."""
        ...

    def upgrade(self, dry_run: bool = False) -> list[str]:
        """Apply the pending migrations in one transaction (none with ``dry_run``); the
        descriptions of those applied (or that would be), oldest first."""
        ...

    def is_empty(self) -> bool:
        """Whether the database holds no record, operation, registered schema, user or token."""
        ...

    def export_records(self, batch: int = 1000) -> Iterator[list[tuple[Record, str | None]]]:
        """Every record, deleted ones too, with the status a deleted one had (its prior
        status, else None), ordered by id, ``batch`` at a time."""
        ...

    def import_records(self, rows: Sequence[tuple[Record, str | None]]) -> None:
        """Insert records exactly as exported (status, version, timestamps and prior
        status kept) in one transaction; ConflictError for an id already there."""
        ...

    def all_operations(self) -> Iterator[Operation]:
        """Every operation, oldest first (ties by id)."""
        ...

    def put_schema(self, key: str, text: str) -> None:
        """Store (or replace) the JSON Schema document ``text`` as ``key`` (``name@version``)."""
        ...

    def schema_text(self, key: str) -> str | None:
        """The JSON Schema document stored as ``key``, or None."""
        ...

    def schema_keys(self) -> list[str]:
        """Every stored schema key, sorted."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
