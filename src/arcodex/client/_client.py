"""Find datasets in a STAC API or a static STAC catalog, and open them.

``Client`` speaks to a STAC API through pystac-client, or walks a static
catalog (``catalog.json``/``collection.json``, local or over HTTP) and
filters its items in Python with the same parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from arcodex.client._open import asset_kind, open_dataset
from arcodex.errors import NotFoundError, StorageError, ValidationError

if TYPE_CHECKING:
    import pystac
    import xarray as xr

__all__ = ["Client", "SearchResults"]

DatetimeLike = str | datetime | Sequence[str | datetime | None]


class SearchResults(Sequence["pystac.Item"]):
    """The items a search found, in order; a sequence of ``pystac.Item``."""

    def __init__(self, items: Sequence[pystac.Item], source: str | None = None) -> None:
        self.items: list[pystac.Item] = list(items)
        self.source = source

    @overload
    def __getitem__(self, index: int) -> pystac.Item: ...

    @overload
    def __getitem__(self, index: slice) -> SearchResults: ...

    def __getitem__(self, index: int | slice) -> pystac.Item | SearchResults:
        if isinstance(index, slice):
            return SearchResults(self.items[index], self.source)
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[pystac.Item]:
        return iter(self.items)

    def ids(self) -> list[str]:
        """The ids of the items."""
        return [item.id for item in self.items]

    def groups(self) -> dict[str, list[pystac.Item]]:
        """The items that have an openable asset, by collection id (``""`` for none)."""
        out: dict[str, list[pystac.Item]] = {}
        for item in self.items:
            if any(asset_kind(a) for a in item.assets.values()):
                out.setdefault(item.collection_id or "", []).append(item)
        return out

    def open_dataset(self, i: int = 0, **kwargs: Any) -> xr.Dataset:
        """Open item ``i`` (see :func:`arcodex.client.open_dataset` for ``kwargs``).

        Raises:
            NotFoundError: If there is no item ``i``.
        """
        try:
            item = self.items[i]
        except IndexError:
            raise NotFoundError(
                f"the search found {len(self.items)} item(s), there is no item {i}; "
                "widen the search or pick another index"
            ) from None
        return open_dataset(item, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The results as a GeoJSON FeatureCollection."""
        return {
            "type": "FeatureCollection",
            "features": [item.to_dict(transform_hrefs=False) for item in self.items],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResults:
        """Results from a FeatureCollection dict (the inverse of :meth:`to_dict`)."""
        import pystac

        features = data.get("features")
        if data.get("type") != "FeatureCollection" or not isinstance(features, list):
            raise ValidationError("search results are a GeoJSON FeatureCollection with features")
        return cls([pystac.Item.from_dict(f) for f in features])

    def __repr__(self) -> str:
        collections = sorted({i.collection_id or "" for i in self.items} - {""})
        where = f", collections: {', '.join(collections)}" if collections else ""
        return f"SearchResults({len(self.items)} item(s){where})"

    def _repr_html_(self) -> str:
        from arcodex._html import box, code, table

        def row(item: pystac.Item) -> tuple[object, ...]:
            start, end = _item_interval(item)
            if start is None and end is None:
                span = ""
            elif start == end:
                span = _iso(start)
            else:
                span = f"{_iso(start)} – {_iso(end)}"
            types = sorted({a.media_type or "?" for a in item.assets.values()})
            title = item.properties.get("title")
            return (code(item.id), title or "", item.collection_id or "", span, ", ".join(types))

        n = len(self.items)
        where = f" from {code(self.source, 400)}" if self.source else ""
        return box(
            "SearchResults",
            f"{n} item{'s' if n != 1 else ''}{where}",
            table(
                ("id", "title", "collection", "datetime", "asset types"),
                (row(item) for item in self.items),
                total=n,
                limit=RESULT_ROWS,
                what="items",
            ),
        )


#: Items a notebook shows of search results.
RESULT_ROWS = 25


class Client:
    """A STAC API or a static STAC catalog to search and open datasets from.

    Args:
        source: A STAC API URL (``https://…``), a static ``catalog.json`` or
            ``collection.json`` (path or URL), a directory holding one, or an
            arcodex catalog directory (searched through its indexes directly).
        profile: Open S3 assets with this storage profile's credentials (a name
            defined by ``catalog``, or by the arcodex catalog ``source`` is; or an
            :class:`~arcodex.storage.S3ProfileConfig`); default: the AWS variables.
        catalog: The arcodex catalog (or its path) that defines ``profile``.

    Raises:
        NotFoundError: If the path holds no catalog.
        StorageError: If the API or catalog cannot be read.
    """

    def __init__(
        self, source: str | os.PathLike[str], *, profile: Any = None, catalog: Any = None
    ) -> None:
        text = os.fspath(source)
        self.source = text
        self._profile = profile
        self._profile_catalog = catalog
        self._api: Any = None
        self._root: Any = None
        self._catalog: Any = None
        if text.startswith(("http://", "https://")) and not text.split("?", 1)[0].endswith(".json"):
            self._api = _open_api(text)
        elif os.path.isfile(os.path.join(text, "arcodex.yaml")):
            from arcodex.catalog import Catalog

            self._catalog = Catalog.open(text)
        else:
            self._root = _open_static(text)

    @property
    def is_api(self) -> bool:
        """Whether the source is a STAC API (else a static catalog)."""
        return self._api is not None

    def __repr__(self) -> str:
        kind = "api" if self.is_api else "catalog" if self._catalog is not None else "static"
        return f"Client({self.source!r}, {kind})"

    def list_collections(self) -> list[pystac.Collection]:
        """The collections of the catalog (all of them, nested ones included)."""
        import pystac

        if self._catalog is not None:
            return self._catalog_collections()
        if self._api is not None:
            try:
                return list(self._api.get_collections())
            except Exception as exc:  # pystac-client raises APIError and requests' errors
                raise StorageError(f"cannot list the collections of {self.source}: {exc}") from exc
        root = self._root
        out = [root] if isinstance(root, pystac.Collection) else []
        out.extend(root.get_all_collections())
        return out

    def search(
        self,
        collections: str | Sequence[str] | None = None,
        bbox: Sequence[float] | None = None,
        datetime: DatetimeLike | None = None,
        ids: str | Sequence[str] | None = None,
        filter: Mapping[str, Any] | str | None = None,
        query: Mapping[str, Any] | Sequence[str] | None = None,
        variables: str | Sequence[str] | None = None,
        limit: int | None = None,
        max_items: int | None = None,
    ) -> SearchResults:
        """Items matching every criterion given.

        Args:
            collections: Collection ids.
            bbox: ``(west, south, east, north)``; ``west > east`` crosses the antimeridian.
            datetime: An RFC 3339 instant or ``start/end`` interval (``..`` for an
                open end), a ``datetime``, or a ``(start, end)`` pair; items whose
                datetime or start/end interval overlaps it match.
            ids: Item ids.
            filter: A CQL2 filter (STAC APIs only).
            query: A STAC API query (STAC APIs only).
            variables: Keep items whose ``cube:variables`` hold all these names.
            limit: Page size asked from an API.
            max_items: Stop after this many items.

        Returns:
            The matching items.

        Raises:
            ValidationError: If a criterion is malformed, or ``filter``/``query`` are
                given for a static catalog.
            StorageError: If the API cannot be searched.
        """
        collections = [collections] if isinstance(collections, str) else collections
        ids = [ids] if isinstance(ids, str) else ids
        wanted = [variables] if isinstance(variables, str) else list(variables or [])
        box = _check_bbox(bbox) if bbox is not None else None
        interval = _parse_interval(datetime) if datetime is not None else None
        if self._api is not None:
            items = self._search_api(
                collections, box, datetime, ids, filter, query, limit, max_items, wanted
            )
        elif self._catalog is not None:
            if filter is not None or query is not None:
                raise ValidationError(
                    "filter and query need a STAC API: run `arcodex serve` and search its URL"
                )
            records = self._datasets(box, datetime)
            items = []
            for _, item in self._catalog_stac(records):
                if collections is not None and item.collection_id not in collections:
                    continue
                if ids is not None and item.id not in ids:
                    continue
                if wanted and not _has_variables(item, wanted):
                    continue
                items.append(item)
                if max_items is not None and len(items) >= max_items:
                    break
        else:
            if filter is not None or query is not None:
                raise ValidationError(
                    "filter and query need a STAC API; use collections, bbox, datetime, ids "
                    "and variables on a static catalog"
                )
            items = []
            for item in self._walk():
                if collections is not None and item.collection_id not in collections:
                    continue
                if ids is not None and item.id not in ids:
                    continue
                if box is not None and not _bbox_matches(item, box):
                    continue
                if interval is not None and not _datetime_matches(item, interval):
                    continue
                if wanted and not _has_variables(item, wanted):
                    continue
                items.append(item)
                if max_items is not None and len(items) >= max_items:
                    break
        return SearchResults(items, self.source)

    def open_dataset(self, item_or_id: pystac.Item | str, **kwargs: Any) -> xr.Dataset:
        """Open an item (or the item with this id, see :meth:`get_item`); see
        :func:`arcodex.client.open_dataset`, which warns of a subset that selects nothing.

        Raises:
            NotFoundError: If no item has that id.
        """
        if self._profile is not None:
            kwargs.setdefault("profile", self._profile)
            kwargs.setdefault("catalog", self._profile_catalog or self._catalog)
        if isinstance(item_or_id, str):
            return open_dataset(self.get_item(item_or_id), **kwargs)
        return open_dataset(item_or_id, **kwargs)

    def get_item(self, item_id: str) -> pystac.Item:
        """The item with this id; in an arcodex catalog also a unique id prefix, and
        ``ID@TAG`` for the tagged version of an Icechunk product (its snapshot).

        Raises:
            NotFoundError: If no item (or no record, or no such tag) matches.
            ConflictError: If a prefix matches several records.
        """
        if self._catalog is not None:
            return self._catalog_item(item_id)
        found = self.search(ids=[item_id], max_items=1)
        if not found:
            raise NotFoundError(
                f"no item {item_id!r} in {self.source}; "
                f"run `arcodex find --source {self.source}` to list ids"
            )
        return found[0]

    # -- internals -------------------------------------------------------------------------

    def _catalog_item(self, text: str) -> pystac.Item:
        """The Item of a record of the local catalog, by id, prefix or ``ID@TAG``."""
        catalog = self._catalog
        try:
            record = catalog.get(text)
            tag = None
        except NotFoundError:
            base, at, tag = text.rpartition("@")
            if not (at and base and tag):
                raise
            record = catalog.get(base)
        if record.kind != "dataset":
            raise ValidationError(
                f"record {record.id} is a {record.kind}, not a dataset, so it has no data to open; "
                "run `arcodex find` to list the datasets"
            )
        _, item = next(self._catalog_stac(iter([record])))
        if tag is None:
            return item
        from arcodex.stac import version_items

        versions = {v.properties.get("version"): v for v in version_items(record, item, catalog)}
        if tag not in versions:
            if not versions:
                raise NotFoundError(
                    f"record {record.id} has no tags (only Icechunk products have versions); "
                    f"open it as {record.id}"
                )
            raise NotFoundError(
                f"record {record.id} has no tag {tag!r}; its tags are "
                f"{', '.join(sorted(map(str, versions)))}"
            )
        return versions[tag]

    def _datasets(self, box: Any = None, datetime: Any = None) -> Iterator[Any]:
        """Dataset records of a local catalog, through its bbox and time indexes."""
        time = None
        if datetime is not None:
            time = (
                datetime
                if isinstance(datetime, str)
                else "/".join("" if v is None else str(v) for v in _parse_interval(datetime))
            )
        cursor = None
        while True:
            page = self._catalog.search(
                kind="dataset",
                bbox=",".join(str(v) for v in box) if box is not None else None,
                time=time.replace("..", "") if time else None,
                limit=500,
                cursor=cursor,
            )
            yield from page.records
            cursor = page.next_cursor
            if not cursor:
                return

    def _catalog_stac(self, records: Iterator[Any]) -> Iterator[tuple[Any, pystac.Item]]:
        """The record's own Collection and its Item, whose collection may be a group's."""
        from arcodex.stac import Grouping, stac_for

        grouping = Grouping(self._catalog)
        for record in records:
            collection, item = stac_for(record, self._catalog, open_data=False)
            if grouping:
                item.collection_id = grouping.collection_id(record)
            yield collection, item

    def _catalog_collections(self) -> list[pystac.Collection]:
        """The configured groups that have members, then the records in no group."""
        from arcodex.stac import Grouping, group_collection

        grouping = Grouping(self._catalog)
        out = []
        for group_id, group in grouping.groups.items():
            members = list(grouping.members(group_id))
            if members:
                out.append(group_collection(group, members, self._catalog.config.stac_defaults))
        out += [c for c, item in self._catalog_stac(self._datasets()) if item.collection_id == c.id]
        return out

    def _walk(self) -> Iterator[pystac.Item]:
        yield from self._root.get_items(recursive=True)

    def _search_api(
        self,
        collections: Sequence[str] | None,
        box: tuple[float, float, float, float] | None,
        datetime: Any,
        ids: Sequence[str] | None,
        filter: Any,
        query: Any,
        limit: int | None,
        max_items: int | None,
        wanted: list[str],
    ) -> list[pystac.Item]:
        kwargs: dict[str, Any] = {
            "collections": collections,
            # STAC APIs take longitudes in [-180, 180]: 0–360 boxes are folded, west > east kept.
            "bbox": _folded(box) if box is not None else None,
            "datetime": datetime,
            "ids": ids,
            "filter": filter,
            "query": query,
            "limit": limit,
            # Variables are filtered here, so the API may have to give more than max_items.
            "max_items": None if wanted else max_items,
        }
        try:
            search = self._api.search(**{k: v for k, v in kwargs.items() if v is not None})
            items: list[pystac.Item] = []
            for item in search.items():
                if wanted and not _has_variables(item, wanted):
                    continue
                items.append(item)
                if max_items is not None and len(items) >= max_items:
                    break
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"the search is malformed: {exc}; fix its parameters") from exc
        except Exception as exc:  # pystac-client raises APIError and requests' errors
            raise StorageError(f"cannot search {self.source}: {exc}") from exc
        return items


# -- opening the source ----------------------------------------------------------------------


def _open_api(url: str) -> Any:
    import pystac_client

    try:
        return pystac_client.Client.open(url)
    except Exception as exc:  # pystac-client raises APIError and requests' errors
        raise StorageError(
            f"cannot open the STAC API {url}: {exc}; check the URL or give a catalog.json"
        ) from exc


def _open_static(text: str) -> Any:
    import pystac

    path = text
    if "://" not in text or text.startswith("file://"):
        path = text.removeprefix("file://")
        if os.path.isdir(path):
            for name in ("catalog.json", "collection.json"):
                if os.path.exists(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                raise NotFoundError(
                    f"no catalog.json or collection.json in {text}; give the catalog file"
                )
        elif not os.path.exists(path):
            raise NotFoundError(f"no STAC catalog at {text}; check the path")
        path = os.path.abspath(path)
    try:
        root = pystac.read_file(path)
    except (OSError, ValueError, pystac.STACError) as exc:
        raise StorageError(f"cannot read the STAC catalog {text}: {exc}") from exc
    if not isinstance(root, pystac.Catalog):
        raise ValidationError(
            f"{text} is a STAC {type(root).__name__}, not a catalog or collection; give its catalog"
        )
    return root


# -- static filters --------------------------------------------------------------------------


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    from arcodex.client._subset import _check_bbox as check

    return check(bbox)


def _folded(box: Sequence[float]) -> list[float]:
    from arcodex.stac import normalise_bbox

    return normalise_bbox(box)


def _bbox_matches(item: pystac.Item, box: tuple[float, float, float, float]) -> bool:
    if not item.bbox:
        return False
    try:
        own = _check_bbox(item.bbox)
    except ValidationError:
        return False
    return _boxes_intersect(own, box)


def _boxes_intersect(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> bool:
    """Whether two lon/lat boxes meet; each may cross the antimeridian (west > east)."""
    if a[1] > b[3] or b[1] > a[3]:
        return False
    wa, wb = _lon_width(a[0], a[2]), _lon_width(b[0], b[2])
    if wa >= 360.0 or wb >= 360.0:
        return True
    # Two arcs of the circle meet when one starts inside the other.
    return (b[0] - a[0]) % 360.0 <= wa or (a[0] - b[0]) % 360.0 <= wb


def _lon_width(west: float, east: float) -> float:
    return east - west if west <= east else east - west + 360.0


Interval = tuple[datetime | None, datetime | None]


def _parse_interval(value: DatetimeLike) -> Interval:
    if isinstance(value, datetime):
        instant = _aware(value)
        return instant, instant
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) == 1:
            return _parse_instant(parts[0], end=False), _parse_instant(parts[0], end=True)
        if len(parts) != 2:
            raise ValidationError(
                f"a datetime is an instant or start/end, not {value!r}; give e.g. 2001-01-01/.."
            )
        return _parse_instant(parts[0], end=False), _parse_instant(parts[1], end=True)
    bounds = list(value)
    if len(bounds) != 2:
        raise ValidationError(f"a datetime range is (start, end), not {value!r}")
    start, end = (
        _aware(b) if isinstance(b, datetime) else _parse_instant(b or "..", end=i == 1)
        for i, b in enumerate(bounds)
    )
    return start, end


def _parse_instant(text: str, *, end: bool) -> datetime | None:
    """An RFC 3339 instant; a bare year, month or day stands for its whole period."""
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        if len(text) == 4 and text.isdigit():
            first = datetime(int(text), 1, 1, tzinfo=UTC)
            return datetime(int(text) + 1, 1, 1, tzinfo=UTC) - _TICK if end else first
        if len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:])
            first = datetime(year, month, 1, tzinfo=UTC)
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return following - _TICK if end else first
        if len(text) == 10:
            first = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return first + timedelta(days=1) - _TICK if end else first
        return _aware(datetime.fromisoformat(text))
    except ValueError as exc:
        raise ValidationError(
            f"cannot read the datetime {text!r}; give RFC 3339 such as 2001-02-26T00:00:00Z"
        ) from exc


_TICK = timedelta(microseconds=1)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _item_interval(item: pystac.Item) -> Interval:
    props = item.properties
    start = _property_time(props.get("start_datetime"))
    end = _property_time(props.get("end_datetime"))
    instant = _aware(item.datetime) if item.datetime is not None else None
    return (start or instant), (end or instant)


def _property_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def _datetime_matches(item: pystac.Item, interval: Interval) -> bool:
    start, end = _item_interval(item)
    if start is None and end is None:
        return False
    lo, hi = interval
    if lo is not None and end is not None and end < lo:
        return False
    return not (hi is not None and start is not None and start > hi)


def _has_variables(item: pystac.Item, names: Sequence[str]) -> bool:
    cube = item.properties.get("cube:variables")
    if not isinstance(cube, Mapping):
        collection = item.get_collection() if item.collection_id else None
        cube = collection.extra_fields.get("cube:variables") if collection is not None else None
    if not isinstance(cube, Mapping):
        return False
    return all(name in cube for name in names)


def _iso(value: datetime | None) -> str:
    if value is None:
        return ".."
    return value.isoformat().replace("+00:00", "Z")
