"""``catalog``: the dataset records of an arcodex catalog.

Data ids are record ids (a unique prefix works too). Descriptions come from each record's extracted metadata, so
describing and listing never open a product; search goes through the
catalog's bbox, time and text indexes. ``write_data`` converts a dataset into a
checked, registered product through the conversion pipeline; ``delete_data``
purges a record whose product arcodex wrote, never one that points at files of
someone else's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from arcodex.errors import ConflictError, NotFoundError, ValidationError
from arcodex.stores._base import OpenParams, Params, SearchParams, StoreBase
from arcodex.stores._descriptor import (
    DatasetDescriptor,
    describe_dataset,
    describe_record,
    matches,
    multiscale_levels,
    record_levels,
)

if TYPE_CHECKING:
    import xarray as xr

    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["CatalogStore"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PAGE = 1000


class CatalogParams(Params):
    root: str = Field(description="The catalog directory (holding arcodex.yaml).")
    profile: str | None = Field(None, description="The storage profile write_data writes to.")
    cluster: str = Field(
        "threads", description="Where write_data converts: threads, local, tcp://…"
    )
    check: bool = Field(True, description="Check each written product against its dataset.")


class CatalogStore(StoreBase):
    """The datasets of an arcodex catalog; writable through ``convert``."""

    kind: ClassVar[str] = "catalog"
    Config: ClassVar[type[Params]] = CatalogParams
    writable: bool = True
    config: CatalogParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from arcodex.catalog import Catalog

            self._catalog = Catalog.open(self.config.root)
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    # -- reading -----------------------------------------------------------------------------

    def _records(self, **query: Any) -> Any:
        cursor = None
        while True:
            page = self.catalog.search(kind="dataset", limit=_PAGE, cursor=cursor, **query)
            yield from page.records
            cursor = page.next_cursor
            if not cursor:
                return

    def list_data_ids(self, **params: Any) -> list[Any]:
        """The ids of the catalog's dataset records; with ``include_attrs`` (id, {name: value})."""
        wanted = self._check("list_data_ids", params)
        if not wanted.include_attrs:
            return self.catalog.ids(kind="dataset")
        out = []
        for record in self._records():
            attrs = {"title": record.title, **record.metadata}
            out.append((record.id, {k: attrs.get(k) for k in wanted.include_attrs}))
        return out

    def _record(self, data_id: str) -> Record:
        record = self.catalog.get(data_id)
        if record.kind != "dataset" or record.status == "deleted":
            raise NotFoundError(
                f"record {record.id} is a {record.status} {record.kind}, not a dataset; "
                "run `arcodex store list catalog -p root=…` to list the datasets"
            )
        return record

    def has_data(self, data_id: str) -> bool:
        try:
            self._record(data_id)
        except (NotFoundError, ConflictError, ValidationError):
            return False
        return True

    def describe_data(self, data_id: str, **params: Any) -> DatasetDescriptor:
        """The record's descriptor, from its extracted metadata (the product is not opened)."""
        self._check("describe_data", params)
        record = self._record(data_id)
        described = describe_record(record, self.kind)
        if described is not None:
            return described
        with self._open_record(record, None, None) as ds:  # metadata extracted by nothing
            return describe_dataset(ds, record.id, self.kind)

    def search_data(self, **params: Any) -> list[DatasetDescriptor]:
        """Descriptors of matching datasets, found through the catalog's indexes."""
        wanted: SearchParams = self._check("search_data", params)
        query: dict[str, Any] = {}
        if wanted.bbox is not None:
            query["bbox"] = ",".join(str(v) for v in wanted.bbox)
        if wanted.time is not None:
            parts = wanted.time.split("/", 1) if isinstance(wanted.time, str) else wanted.time
            query["time"] = "/".join("" if p in (None, "..") else str(p) for p in parts)
        if wanted.text:
            query["text"] = wanted.text
        rest = SearchParams(variables=wanted.variables)
        out: list[DatasetDescriptor] = []
        for record in self._records(**query):
            described = describe_record(record, self.kind)
            if described is None or not matches(described, rest):
                continue
            out.append(described)
            if wanted.limit is not None and len(out) >= wanted.limit:
                break
        return out

    def open_data(self, data_id: str, **params: Any) -> xr.Dataset:
        """The record's product (or file), lazily, subset as ``params`` say."""
        from arcodex.client import subset

        wanted: OpenParams = self._check("open_data", params)
        record = self._record(data_id)
        group = None
        if wanted.level is not None:
            levels = record_levels(record)  # convert --pyramid records them
            if not levels and "convert" not in record.metadata:
                with self._open_record(record, None, None) as root:
                    levels = multiscale_levels(root.attrs) if not root.data_vars else []
            if wanted.level >= max(len(levels), 1):
                raise ValidationError(
                    f"{record.id} has {max(len(levels), 1)} level(s); "
                    f"ask for level 0 to {max(len(levels), 1) - 1}"
                )
            group = levels[wanted.level] if levels else None
        ds = self._open_record(record, wanted.chunks, group)
        if wanted.variables is None and wanted.bbox is None and wanted.time is None:
            return ds
        return subset(ds, variables=wanted.variables, bbox=wanted.bbox, time=wanted.time)

    def _open_record(self, record: Record, chunks: Any, group: str | None) -> xr.Dataset:
        if "convert" in record.metadata:
            from arcodex.convert import open_product

            ds: xr.Dataset = open_product(
                record.id, catalog=self.catalog, chunks=chunks, group=group
            )
            return ds
        from arcodex.client import open_dataset

        primary = next((a for a in record.artifacts if a.role == "primary"), None)
        if primary is None:
            raise NotFoundError(f"record {record.id} has no primary artifact to open")
        asset = {
            "href": self.catalog.path(record.id),
            "type": primary.media_type or "",
            "roles": ["data"],
        }
        return open_dataset(asset, chunks=chunks)

    # -- writing -----------------------------------------------------------------------------

    def write_data(self, dataset: xr.Dataset, data_id: str, **params: Any) -> str:
        """Convert ``dataset`` into a checked product registered as a record titled ``data_id``.

        The product goes to ``products/<data_id>.zarr`` in the catalog's (or the
        ``profile``'s) storage; ``replace`` replaces the product arcodex made there,
        written beside and swapped in once checked. Returns the record's id.

        Raises:
            ConflictError: If a product is there and ``replace`` is not given.
        """
        wanted = self._check("write_data", params)
        if not _NAME.match(data_id):
            raise ValidationError(
                f"data id {data_id!r} is not a name (letters, digits, '_', '.', '-'); "
                "the catalog store names products by it"
            )
        from arcodex.convert import convert

        result = convert(
            dataset,
            catalog=self.catalog,
            title=data_id,
            profile=self.config.profile,
            key=f"products/{data_id}.zarr",
            overwrite=wanted.replace,
            check=self.config.check,
            cluster=self.config.cluster,
        )
        record = result.record
        if record is None:
            raise ConflictError(f"converting {data_id!r} registered no record")
        return record.id

    def delete_data(self, data_id: str, **params: Any) -> None:
        """Purge a dataset record and the product arcodex wrote for it.

        Raises:
            ConflictError: If the record's data is not a product arcodex wrote.
        """
        self._check("delete_data", params)
        record = self._record(data_id)
        primary = next((a for a in record.artifacts if a.role == "primary"), None)
        if primary is None or not primary.managed:
            raise ConflictError(
                f"record {record.id} points at data arcodex did not write, so the store never "
                f"deletes it; `arcodex delete {record.id}` removes the record alone"
            )
        self.catalog.purge(record.id)
