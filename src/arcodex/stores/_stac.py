"""``stac``: the items of any STAC API or static STAC catalog, through :class:`arcodex.client.Client`.

Data ids are item ids. A description opens the item's data asset lazily and
reads its metadata (and 1-D coordinates) only; search goes to the API (or
walks the static catalog) with the client's own filters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from arcodex.errors import NotFoundError
from arcodex.stores._base import OpenParams, Params, SearchParams, StoreBase
from arcodex.stores._descriptor import DatasetDescriptor, describe_dataset, matches

if TYPE_CHECKING:
    import pystac
    import xarray as xr

__all__ = ["StacStore"]


class StacParams(Params):
    url: str = Field(
        description="A STAC API URL, or a static catalog.json / collection.json (path or URL)."
    )
    collections: list[str] | None = Field(None, description="Only items of these collections.")


class StacStore(StoreBase):
    """Datasets published as STAC items; read-only."""

    kind: ClassVar[str] = "stac"
    Config: ClassVar[type[Params]] = StacParams
    config: StacParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from arcodex.client import Client

            self._client = Client(self.config.url)
        return self._client

    def _items(self, **criteria: Any) -> list[pystac.Item]:
        found = self.client.search(collections=self.config.collections, **criteria)
        return list(found)

    def list_data_ids(self, **params: Any) -> list[Any]:
        """The item ids; with ``include_attrs`` (id, {name: property}) pairs."""
        wanted = self._check("list_data_ids", params)
        items = self._items()
        if not wanted.include_attrs:
            return [item.id for item in items]
        return [
            (item.id, {k: item.properties.get(k) for k in wanted.include_attrs}) for item in items
        ]

    def _item(self, data_id: str) -> pystac.Item:
        item: pystac.Item = self.client.get_item(data_id)
        return item

    def has_data(self, data_id: str) -> bool:
        try:
            self._item(data_id)
        except NotFoundError:
            return False
        return True

    def describe_data(self, data_id: str, **params: Any) -> DatasetDescriptor:
        """The item's dataset, described from its metadata (opened lazily, no data read)."""
        self._check("describe_data", params)
        item = self._item(data_id)
        with self.client.open_dataset(item) as ds:
            described = describe_dataset(ds, item.id, self.kind)
        if described.bbox is None and item.bbox and len(item.bbox) == 4:
            described.bbox = tuple(float(v) for v in item.bbox)  # type: ignore[assignment]
        for key in ("title", "description"):
            if item.properties.get(key) and key not in described.attrs:
                described.attrs[key] = item.properties[key]
        return described

    def search_data(self, **params: Any) -> list[DatasetDescriptor]:
        """Descriptors of the items the client's search finds (text matched here)."""
        wanted: SearchParams = self._check("search_data", params)
        criteria: dict[str, Any] = {"bbox": wanted.bbox, "variables": wanted.variables}
        if wanted.time is not None:
            parts = wanted.time.split("/", 1) if isinstance(wanted.time, str) else wanted.time
            criteria["datetime"] = "/".join(".." if p in (None, "") else str(p) for p in parts)
        rest = SearchParams(text=wanted.text, variables=wanted.variables)
        out: list[DatasetDescriptor] = []
        for item in self._items(**{k: v for k, v in criteria.items() if v is not None}):
            described = self.describe_data(item.id)
            if matches(described, rest):
                out.append(described)
                if wanted.limit is not None and len(out) >= wanted.limit:
                    break
        return out

    def open_data(self, data_id: str, **params: Any) -> xr.Dataset:
        """The item's data asset, lazily, subset as ``params`` say (``level`` is not offered)."""
        wanted: OpenParams = self._check("open_data", params)
        if wanted.level not in (None, 0):
            from arcodex.errors import ValidationError

            raise ValidationError(f"stac store items have one level; drop level={wanted.level}")
        ds: xr.Dataset = self.client.open_dataset(
            self._item(data_id),
            variables=wanted.variables,
            bbox=wanted.bbox,
            time=wanted.time,
            chunks=wanted.chunks,
        )
        return ds
