"""Shared pieces of the backend contract: sample records, query helpers, the fixture base."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings

from arcodex.backends import CatalogBackend
from arcodex.model import (
    RECORD_STATUSES,
    Artifact,
    BundleMember,
    Condition,
    ExternalUri,
    FsspecUrl,
    Inline,
    Lineage,
    LocalPath,
    PlannedPath,
    Query,
    Record,
)

__all__ = [
    "ALL_STATUSES",
    "PROPERTY_SETTINGS",
    "T0",
    "ContractBase",
    "all_pages",
    "clear_backend",
    "full_record",
    "ids_of",
    "sample_records",
    "search_ids",
    "status_counts",
    "where",
]


T0 = datetime(2020, 1, 1, tzinfo=UTC)
ALL_STATUSES = Condition(field="status", op="in", value=list(RECORD_STATUSES))
# ARCODEX_CONTRACT_EXAMPLES=2000 runs a longer hunt than the default, which keeps the suite fast.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("ARCODEX_CONTRACT_EXAMPLES", "60")),
    deadline=None,
    # differing_executors: every backend's subclass runs the same contract method, in one
    # session when several backends are tested together; their examples share a database
    # key, so a failure found on one backend is also replayed on the other (harmless).
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def search_ids(backend: CatalogBackend, *terms: str, **options: Any) -> list[str]:
    """Ids of every match of a CLI-style query, in result order."""
    options.setdefault("limit", None)
    return [r.id for r in backend.search(Query.parse(list(terms), **options)).records]


def ids_of(backend: CatalogBackend, query: Query) -> list[str]:
    return [r.id for r in backend.search(query.model_copy(update={"limit": None})).records]


def where(*conditions: Condition, **options: Any) -> Query:
    return Query(conditions=list(conditions), limit=None, **options)


def clear_backend(backend: CatalogBackend) -> None:
    """Purge every record, deleted or not."""
    for record in backend.search(Query(conditions=[ALL_STATUSES], limit=None)).records:
        backend.purge(record.id)


def all_pages(backend: CatalogBackend, query: Query, page_size: int) -> list[list[str]]:
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
                created_at=T0,
            ),
            Artifact(
                id=f"{record_id}-a2",
                role="derived",
                locator=FsspecUrl(url="s3://bucket/mhd.zarr", profile="archive"),
                format="zarr",
                created_at=T0,
            ),
            Artifact(
                id=f"{record_id}-a3",
                role="metadata",
                locator=ExternalUri(uri="https://doi.org/10.1234/x"),
                status="external",
                created_at=T0,
            ),
            Artifact(
                id=f"{record_id}-a4",
                role="derived",
                locator=PlannedPath(path="zarr/mhd.zarr", profile="archive"),
                status="planned",
                created_at=T0,
            ),
            Artifact(
                id=f"{record_id}-a5",
                role="preview",
                locator=Inline(data="aGVsbG8=", encoding="base64"),
                created_at=T0,
            ),
            Artifact(
                id=f"{record_id}-a6",
                role="log",
                locator=BundleMember(bundle="bundle-1", member="logs/run.txt"),
                created_at=T0,
            ),
        ],
        status="active",
        version=3,
        lineage=[Lineage(operation_id="op-1", sources=["src-1", "src-2"])],
        created_at=T0,
        updated_at=T0 + timedelta(days=1, microseconds=7),
        created_by="ana",
        updated_by="bo",
        schema_name="obs",
        schema_version="1.0",
    )


def sample_records() -> list[Record]:
    """Records covering every value type and extent form the query tests use, in insertion order."""
    t = T0
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


def status_counts(records: Sequence[Record]) -> dict[str, int]:
    """How many records have each status."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


class ContractBase:
    """The hook and fixtures every part of the contract uses."""

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
