"""The STAC API over a live catalog, with stac-fastapi.

A dataset record is an Item (its id), followed by one Item per tagged version
of an Icechunk product (``{record}@{tag}``). The Item is in the record's own
Collection (same id), or in the first configured group (``stac_collections``)
whose terms the record matches. Searches
become :class:`~arcodex.model.Query` objects answered by the catalog backend's
indexes (terms, bbox, time range, keyset cursor); the page token is the
backend's cursor. A CQL2 filter with ``OR`` runs one indexed query per branch
and merges them by id (see :mod:`arcodex.server._cql2`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import attr
from stac_fastapi.extensions.filter.client import BaseFiltersClient
from stac_fastapi.types.core import BaseCoreClient
from stac_fastapi.types.errors import NotFoundError as StacNotFoundError
from stac_fastapi.types.requests import get_base_url

from arcodex.catalog._access import ANONYMOUS, Principal
from arcodex.catalog._config import ServerConfig
from arcodex.errors import QueryError
from arcodex.model import BBox, Condition, Query, SortKey, TimeRange
from arcodex.server._cql2 import Branch, branches_for, check_geometry, geometry_bbox, parse_filter
from arcodex.server._documents import DocumentCache, apply_fields
from arcodex.server._identity import principal_of
from arcodex.server._limits import load_json

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["CatalogClient", "FiltersClient", "add_stac_api"]

#: Statuses of the records the API publishes (planned and failed ones have no data yet).
PUBLISHED = ["active", "deprecated"]
#: The shapes of the paging tokens this API makes: a backend cursor (base64url), an Item
#: offset into a record page (``v{skip}~{cursor}``), a Collection offset (``c{skip}~{cursor}``)
#: or an offset into a union of OR branches (``u.{offset}``).
_TOKEN = re.compile(
    r"^(?:u\.(?P<union>\d{1,6})|(?P<kind>[vc])(?P<skip>\d{1,6})~(?P<cursor>[A-Za-z0-9_=-]*)|[A-Za-z0-9_=-]+)$"
)
#: An offset deeper than this into an OR search is refused (each page reads offset+limit).
MAX_UNION_OFFSET = 10_000
#: Most sort keys a search may give (each is an index lookup and a check that records hold it).
MAX_SORT_KEYS = 8
Fields = tuple[set[str] | None, set[str]]
_SORT_FIELDS = {
    "id": "id",
    "collection": "id",
    "title": "title",
    "datetime": "start_datetime",
    "start_datetime": "start_datetime",
    "end_datetime": "end_datetime",
    "arcodex:check": "convert.check",
    "created": "created_at",
    "updated": "updated_at",
}
_QUERYABLES: dict[str, Any] = {
    "id": {"title": "Item ID", "type": "string"},
    "collection": {"title": "Collection ID", "type": "string"},
    "title": {"title": "Title", "type": "string"},
    "description": {"title": "Description", "type": "string"},
    "datetime": {
        "title": "Datetime (the start/end range)",
        "type": "string",
        "format": "date-time",
    },
    "start_datetime": {"title": "Start", "type": "string", "format": "date-time"},
    "end_datetime": {"title": "End", "type": "string", "format": "date-time"},
    "geometry": {"title": "Footprint", "$ref": "https://geojson.org/schema/Geometry.json"},
    "arcodex:check": {"title": "Product check", "type": "string", "enum": ["pass", "fail"]},
}


@attr.s
class FiltersClient(BaseFiltersClient):
    """Queryables: the item properties a filter can name (any other is a metadata path)."""

    #: Raises the API's NotFoundError for a Collection id that is not one.
    check_collection: Callable[[str, Principal], None] = attr.ib(
        kw_only=True, default=lambda _, __: None
    )

    def get_queryables(self, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        request: Request = kwargs["request"]
        if collection_id is not None:
            self.check_collection(collection_id, principal_of(request))
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": str(request.url),
            "type": "object",
            "title": f"Queryables of {collection_id}" if collection_id else "Queryables",
            "description": "Item properties; other names are read as catalog metadata paths.",
            "properties": _QUERYABLES,
            "additionalProperties": True,
        }


@attr.s
class CatalogClient(BaseCoreClient):
    """The core STAC API endpoints, answered by a :class:`~arcodex.catalog.Catalog`."""

    cache: DocumentCache = attr.ib(kw_only=True)
    limits: ServerConfig = attr.ib(kw_only=True, factory=ServerConfig)

    @property
    def catalog(self) -> Catalog:
        return self.cache.catalog

    # -- collections --------------------------------------------------------------------

    def all_collections(self, **kwargs: Any) -> Any:
        request: Request = kwargs["request"]
        base = get_base_url(request)
        principal = principal_of(request)
        limit = min(_int(request.query_params.get("limit"), 100), self.limits.max_limit)
        entries, next_token = self._collection_page(
            limit, request.query_params.get("token"), principal
        )
        collections = [
            self.cache.group(entry, base, _published(principal))
            if isinstance(entry, str)
            else self.cache.collection(entry, base)
            for entry in entries
        ]
        links = [
            {"rel": "self", "href": str(request.url), "type": "application/json"},
            {"rel": "root", "href": base, "type": "application/json"},
            {"rel": "parent", "href": base, "type": "application/json"},
        ]
        if next_token:
            href = str(request.url.include_query_params(token=next_token))
            links.append({"rel": "next", "href": href, "type": "application/json"})
        return {
            "collections": collections,
            "links": links,
            "numberReturned": len(collections),
        }

    def _collection_page(
        self, limit: int, token: str | None, principal: Principal
    ) -> tuple[list[str | Record], str | None]:
        """``limit`` Collections from ``token`` on: the groups' ids, then records of their own.

        The Collections at a records cursor are the groups (at the start only),
        then the records of that page that are in no group; a token
        ``c{skip}~{cursor}`` skips that many of them, so every page holds
        ``limit`` Collections until the last.
        """
        skip, cursor = 0, None
        if token:
            parts = self._token(token)
            if parts["union"] is not None or parts["kind"] == "v":
                raise QueryError("the token belongs to an item search; start again without it")
            if parts["kind"] == "c":
                skip, cursor = int(parts["skip"] or 0), parts["cursor"] or None
            else:
                cursor = token
        out: list[str | Record] = []
        size = max(limit, 100)
        while True:
            page = self.catalog.search(
                Query(conditions=_published(principal), limit=size, cursor=cursor)
            )
            entries: list[str | Record] = []
            if cursor is None:
                entries.extend(
                    g for g in self.cache.grouping.groups if self._has_members(g, principal)
                )
            entries.extend(r for r in page.records if self.cache.collection_of(r) == r.id)
            wanted = limit - len(out)
            if len(entries) - skip > wanted:
                out.extend(entries[skip : skip + wanted])
                return out, f"c{skip + wanted}~{cursor or ''}"
            out.extend(entries[skip:])
            skip = 0
            if not page.next_cursor:
                return out, None
            cursor = page.next_cursor
            if len(out) == limit:
                return out, cursor

    def _token(self, token: str) -> dict[str, str | None]:
        """The parts of a paging token; QueryError when it is none this API makes."""
        found = _TOKEN.match(token) if len(token) <= self.limits.max_token_length else None
        if found is None:
            raise QueryError("bad token: this API did not make it; start again without it")
        return found.groupdict()

    def get_collection(self, collection_id: str, **kwargs: Any) -> Any:
        request: Request = kwargs["request"]
        principal = principal_of(request)
        if collection_id in self.cache.grouping.groups and self._has_members(
            collection_id, principal
        ):
            return self.cache.group(collection_id, get_base_url(request), _published(principal))
        record = self._own_collection(collection_id, principal)
        return self.cache.collection(record, get_base_url(request))

    def _has_members(self, group_id: str, principal: Principal) -> bool:
        conditions = [*_published(principal), *self.cache.grouping.conditions(group_id)]
        return bool(self.catalog.search(Query(conditions=conditions, limit=1)).records)

    def _own_collection(self, record_id: str, principal: Principal) -> Record:
        """The record whose own Collection has this id (one in no group)."""
        record = self._record(record_id, principal)
        group = self.cache.collection_of(record)
        if group != record.id:
            raise StacNotFoundError(
                f"no collection {record_id!r}: that dataset is an Item of collection {group!r}"
            )
        return record

    def _record(self, record_id: str, principal: Principal) -> Record:
        """The published record with exactly this id (no prefix matching), from the index."""
        query = Query(
            conditions=[*_published(principal), Condition(field="id", value=record_id)], limit=1
        )
        found = self.catalog.search(query).records
        if not found:
            raise StacNotFoundError(
                f"no collection {record_id!r}; GET /collections lists the collections"
            )
        return found[0]

    def _check_collection(self, collection_id: str, principal: Principal) -> None:
        if collection_id in self.cache.grouping.groups and self._has_members(
            collection_id, principal
        ):
            return
        self._own_collection(collection_id, principal)

    # -- items --------------------------------------------------------------------------

    def get_item(self, item_id: str, collection_id: str, **kwargs: Any) -> Any:
        request: Request = kwargs["request"]
        principal = principal_of(request)
        self._check_collection(collection_id, principal)
        missing = StacNotFoundError(
            f"collection {collection_id!r} has no item {item_id!r}; "
            f"GET /collections/{collection_id}/items lists them"
        )
        try:
            record = self._record(item_id.partition("@")[0], principal)
        except StacNotFoundError:
            raise missing from None
        if self.cache.collection_of(record) != collection_id:
            raise missing
        if item_id != record.id:
            version = self.cache.version(record, item_id, get_base_url(request))
            if version is None:
                raise missing
            return geojson_response(version)
        return geojson_response(self.cache.item(record, get_base_url(request)))

    def item_collection(
        self,
        collection_id: str,
        bbox: Sequence[float] | None = None,
        datetime: str | None = None,
        limit: int = 10,
        token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        self._check_collection(collection_id, principal_of(kwargs["request"]))
        return geojson_response(
            self._search(
                kwargs["request"],
                collections=[collection_id],
                bbox=bbox,
                datetime=datetime,
                limit=limit,
                token=token,
                filter_expr=kwargs.get("filter_expr"),
                filter_lang=kwargs.get("filter_lang"),
                sortby=_get_sort(kwargs.get("sortby")),
                fields=_get_fields(kwargs.get("fields"), kwargs["request"]),
            )
        )

    # -- search -------------------------------------------------------------------------

    def get_search(
        self,
        collections: list[str] | None = None,
        ids: list[str] | None = None,
        bbox: Sequence[float] | None = None,
        intersects: Any = None,  # the GeoJSON text of GET, typed as a geometry upstream
        datetime: str | None = None,
        limit: int | None = 10,
        **kwargs: Any,
    ) -> Any:
        geometry = None
        if intersects:
            geometry = load_json(intersects, self.limits, what="intersects")
            if isinstance(geometry, dict) and geometry.get("type") == "Feature":
                geometry = geometry.get("geometry") or {}
            geometry = check_geometry(geometry)
        if bbox is not None and geometry is not None:
            raise QueryError("bbox and intersects exclude each other; send one of them")
        return geojson_response(
            self._search(
                kwargs["request"],
                collections=collections,
                ids=ids,
                bbox=bbox,
                intersects=geometry,
                datetime=datetime,
                limit=limit or 10,
                token=kwargs.get("token"),
                filter_expr=kwargs.get("filter_expr"),
                filter_lang=kwargs.get("filter_lang"),
                sortby=_get_sort(kwargs.get("sortby")),
                fields=_get_fields(kwargs.get("fields"), kwargs["request"]),
            )
        )

    def post_search(self, search_request: Any, **kwargs: Any) -> Any:
        geometry = None
        if search_request.intersects is not None:
            geometry = json.loads(search_request.intersects.model_dump_json(exclude_none=True))
            geometry = check_geometry(geometry)
        sortby = [
            (str(s.field), str(getattr(s.direction, "value", s.direction)) == "desc")
            for s in getattr(search_request, "sortby", None) or []
        ]
        body = search_request.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return geojson_response(
            self._search(
                kwargs["request"],
                collections=search_request.collections,
                ids=search_request.ids,
                bbox=search_request.bbox,
                intersects=geometry,
                datetime=search_request.datetime,
                limit=search_request.limit or 10,
                token=getattr(search_request, "token", None),
                filter_expr=getattr(search_request, "filter_expr", None),
                filter_lang=getattr(search_request, "filter_lang", None),
                sortby=sortby,
                fields=_post_fields(search_request),
                post_body=body,
            )
        )

    def _search(
        self,
        request: Request,
        *,
        collections: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        bbox: Sequence[float] | None = None,
        intersects: Mapping[str, Any] | None = None,
        datetime: str | None = None,
        limit: int = 10,
        token: str | None = None,
        filter_expr: str | Mapping[str, Any] | None = None,
        filter_lang: str | None = None,
        sortby: Sequence[tuple[str, bool]] = (),
        fields: Fields | None = None,
        post_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        limit = min(limit, self.limits.max_limit)  # larger is cut, as OGC API Features asks
        for name, values in (("ids", ids), ("collections", collections)):
            if values and len(values) > self.limits.max_list:
                raise QueryError(
                    f"{name} has {len(values)} values, more than the server's "
                    f"{self.limits.max_list} (server.max_list); split the search"
                )
        if len(sortby) > MAX_SORT_KEYS:
            raise QueryError(f"sortby has {len(sortby)} keys; give at most {MAX_SORT_KEYS}")
        if fields is not None and len(fields[0] or ()) + len(fields[1]) > self.limits.max_list:
            raise QueryError(
                f"fields names more than the server's {self.limits.max_list} paths "
                "(server.max_list); name fewer"
            )
        if token:
            self._token(token)
        principal = principal_of(request)
        base = Branch(conditions=tuple(_published(principal)))
        if ids:
            # A version Item ({record}@{tag}) is found through its record.
            records = sorted({*ids, *(i.partition("@")[0] for i in ids if "@" in i)})
            base = _and(base, Branch(conditions=(Condition(field="id", op="in", value=records),)))
        if bbox is not None:
            box = list(bbox)
            box = [box[0], box[1], box[3], box[4]] if len(box) == 6 else box
            base = _and(base, Branch(boxes=((box[0], box[1], box[2], box[3]),)))
        if intersects is not None:
            base = _and(base, Branch(boxes=(geometry_bbox(intersects),), shapes=(intersects,)))
        if datetime:
            base = _and(base, Branch(time=_interval(datetime)))
        branches = [base]
        if collections:
            branches = [
                m
                for b in self._collection_branches(collections)
                if (m := base.merge(b)) is not None
            ]
        if filter_expr:
            expr = parse_filter(filter_expr, filter_lang, self.limits)
            branches = [
                m for a in branches for b in branches_for(expr) if (m := a.merge(b)) is not None
            ]
        sort = [SortKey(field=self._sort_field(name), descending=desc) for name, desc in sortby]
        base_url = get_base_url(request)
        found, next_token = self._features(
            branches, sort, limit, token, ids, collections, principal=principal
        )
        features = [
            self.cache.item(record, base_url)
            if item_id == record.id
            else self.cache.version(record, item_id, base_url) or {}
            for record, item_id in found
        ]
        if fields is not None:
            features = [apply_fields(f, fields[0], fields[1]) for f in features]
        links: list[dict[str, Any]] = [
            {"rel": "root", "href": base_url, "type": "application/json"},
        ]
        if post_body is None:
            links.append({"rel": "self", "href": str(request.url), "type": "application/geo+json"})
            if next_token:
                href = str(request.url.include_query_params(token=next_token))
                links.append(
                    {"rel": "next", "href": href, "type": "application/geo+json", "method": "GET"}
                )
        elif next_token:
            links.append(
                {
                    "rel": "next",
                    "href": str(request.url),
                    "type": "application/geo+json",
                    "method": "POST",
                    "body": {**post_body, "token": next_token},
                    "merge": False,
                }
            )
        return {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberReturned": len(features),
        }

    def _features(
        self,
        branches: list[Branch],
        sort: list[SortKey],
        limit: int,
        token: str | None,
        ids: Sequence[str] | None,
        collections: Sequence[str] | None = None,
        *,
        principal: Principal = ANONYMOUS,
    ) -> tuple[list[tuple[Record, str]], str | None]:
        """One page of Items as (record, item id): each record's Item, then its versions.

        Pages are counted in Items. A record whose versions do not fit on the page
        is read again by the next one, whose token is ``v{skip}~{records' token}``:
        the records from the same place, less the Items already sent.
        """
        skip, cursor = 0, token
        if token:
            parts = self._token(token)
            if parts["kind"] == "c":
                raise QueryError("the token belongs to /collections; start again without it")
            if parts["kind"] == "v":
                skip, cursor = int(parts["skip"] or 0), parts["cursor"] or None
        records, next_cursor = self._run(branches, sort, skip + limit, cursor, principal)
        wanted = set(ids or ())
        within = set(collections or ())
        found = [
            (record, item_id)
            for record in records
            if not within or self.cache.collection_of(record) in within
            for item_id in self._item_ids(record)
            if not wanted or item_id in wanted
        ]
        if len(found) > skip + limit:
            return found[skip : skip + limit], f"v{skip + limit}~{cursor or ''}"
        return found[skip:], next_cursor

    def _collection_branches(self, collections: Sequence[str]) -> list[Branch]:
        """Where the Items of these Collections are: one branch per group, one for the rest.

        A record in a group matches its record-id branch too; the Items found are
        kept only when their Collection is one asked for.
        """
        groups = self.cache.grouping.groups
        own = [c for c in collections if c not in groups]
        out = [
            Branch(conditions=tuple(self.cache.grouping.conditions(c)))
            for c in dict.fromkeys(collections)
            if c in groups
        ]
        if own:
            out.append(Branch(conditions=(Condition(field="id", op="in", value=own),)))
        return out

    def _item_ids(self, record: Record) -> list[str]:
        """The record's Item, then those of its tagged versions, newest first."""
        return [record.id, *(doc["id"] for doc in self.cache.versions(record))]

    def _run(
        self,
        branches: list[Branch],
        sort: list[SortKey],
        limit: int,
        token: str | None,
        principal: Principal = ANONYMOUS,
    ) -> tuple[list[Record], str | None]:
        """One page of records matching any branch, and the token of the next page."""
        if not branches:
            return [], None
        if len(branches) == 1:
            if token and token.startswith("u."):
                raise QueryError("the token belongs to another search; start again without it")
            page = self.catalog.search(_query(branches[0], sort, limit, token))
            records = [r for r in page.records if self._fits(r, branches[0])]
            return records, page.next_cursor
        offset = 0
        if token:
            at = self._token(token)["union"]
            if at is None:  # a token of one query given to a union of several
                raise QueryError("the token belongs to another search; start again without it")
            offset = int(at)
            if offset > MAX_UNION_OFFSET:
                raise QueryError(
                    f"the token is more than {MAX_UNION_OFFSET} Items into an OR search; "
                    "narrow the filter"
                )
        # Every branch in the same order: the first offset+limit records of the union are
        # among the first offset+limit of each branch, so each query stays bounded.
        want = offset + limit + 1
        order = [*sort, SortKey(field="id")]
        found: dict[str, Record] = {}
        for branch in branches:
            page = self.catalog.search(_query(branch, order, want, None))
            for record in page.records:
                if record.id not in found and self._fits(record, branch):
                    found[record.id] = record
        if sort and found:
            # The backend orders the candidates, exactly as it orders any one query.
            union = Query(
                conditions=[
                    *_published(principal),
                    Condition(field="id", op="in", value=list(found)),
                ],
                sort=order,
                limit=want,
            )
            keys = [r.id for r in self.catalog.search(union).records]
        else:
            keys = sorted(found)
        ordered = [found[k] for k in keys][offset : offset + limit + 1]
        more = len(ordered) > limit
        return ordered[:limit], (f"u.{offset + limit}" if more else None)

    def _fits(self, record: Record, branch: Branch) -> bool:
        """The exact test of the shapes the bbox index only approximated."""
        shapes = list(branch.shapes)
        if len(branch.boxes) > 1:
            from arcodex.stac import bbox_geometry, normalise_bbox

            shapes.extend(bbox_geometry(normalise_bbox(b)) for b in branch.boxes[1:])
        if not shapes:
            return True
        try:
            from shapely.geometry import shape  # type: ignore[import-untyped]  # no stubs
        except ImportError:  # without shapely the bbox index is the answer
            return True
        footprint = shape(self.cache.documents(record)[1]["geometry"])
        try:
            return all(footprint.intersects(shape(s)) for s in shapes)
        except (ValueError, TypeError, AttributeError) as exc:  # shapely refuses the geometry
            raise QueryError(
                f"the geometry cannot be used ({exc}); send a valid geometry"
            ) from None

    def _sort_field(self, name: str) -> str:
        """The catalog field to sort by: an Item property, or a metadata path records hold."""
        name = name.removeprefix("properties.")
        if name in _SORT_FIELDS:
            return _SORT_FIELDS[name]
        try:
            field = SortKey(field=name).field
        except ValueError:
            field = ""
        if field and self._known_field(field):
            return field
        raise QueryError(
            f"cannot sort by {name!r}; sort by {', '.join(sorted(_SORT_FIELDS))} "
            "or a metadata path that records hold"
        )

    def _known_field(self, field: str) -> bool:
        path = field.removeprefix("metadata.")
        return any(f.path == path for f in self.catalog.fields(path))


def geojson_response(doc: Mapping[str, Any]) -> Response:
    """``doc`` as the GeoJSON body of a response, serialised once, by orjson when installed.

    Returning a response skips FastAPI's ``jsonable_encoder``, which walks every
    value of the answer in Python before serialising it: for a page of Items
    that walk cost more than finding them. The documents are plain JSON already.
    """
    from starlette.responses import Response

    try:
        import orjson

        body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (ImportError, TypeError):  # no orjson, or a value it refuses: the stdlib's encoder
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return Response(body, media_type="application/geo+json")


def _and(left: Branch, right: Branch) -> Branch:
    merged = left.merge(right)
    if merged is None:
        return Branch(conditions=(Condition(field="id", op="in", value=[""]),))
    return merged


def _published(principal: Principal) -> list[Condition]:
    """The dataset records ``principal`` may see (anonymous: published public ones only)."""
    return [
        Condition(field="kind", value="dataset"),
        Condition(field="status", op="in", value=list(PUBLISHED)),
        *principal.query_conditions(),
    ]


def _query(branch: Branch, sort: list[SortKey], limit: int, cursor: str | None) -> Query:
    box = BBox.parse(list(branch.boxes[0])) if branch.boxes else None
    return Query(
        conditions=list(branch.conditions),
        bbox=box,
        time=branch.time_range(),
        sort=sort,
        limit=limit,
        cursor=cursor,
    )


def _interval(text: str) -> tuple[datetime | None, datetime | None]:
    from stac_fastapi.types.rfc3339 import str_to_interval

    try:
        parsed = str_to_interval(text)
    except Exception as exc:  # FastAPI's HTTPException or ValueError, depending on the input
        detail = getattr(exc, "detail", str(exc))
        raise QueryError(f"bad datetime {text!r}: {detail}") from None
    if isinstance(parsed, tuple):
        start, end = parsed
    else:
        start = end = parsed
    try:
        TimeRange(start=start, end=end)
    except ValueError:
        raise QueryError(f"bad datetime {text!r}: it starts after it ends") from None
    return start, end


def _get_sort(values: Iterable[str] | None) -> list[tuple[str, bool]]:
    return [(v.strip().lstrip("+-"), v.strip().startswith("-")) for v in values or () if v.strip()]


def _get_fields(values: Iterable[str] | None, request: Request) -> Fields | None:
    """GET ``fields``: None when absent; given, its include set (empty: the default set)."""
    if values is None:
        # stac-fastapi reads an empty ``fields=`` as absent; the spec gives it the default set.
        return (set(), set()) if "fields" in request.query_params else None
    include: set[str] = set()
    exclude: set[str] = set()
    for value in values:
        value = value.strip()
        if value.startswith("-"):
            exclude.add(value[1:])
        elif value:
            include.add(value.lstrip("+"))
    return include, exclude


def _post_fields(search_request: Any) -> Fields | None:
    """POST ``fields``: None when absent; a missing ``include`` (None) keeps every field."""
    fields = getattr(search_request, "fields", None)
    if fields is None or "fields" not in search_request.model_fields_set:
        return None
    include = set(fields.include or ()) if "include" in fields.model_fields_set else None
    return include, set(fields.exclude or ())


def _int(text: str | None, default: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        raise QueryError(f"bad limit {text!r}: give a positive number") from None
    if value < 1:
        raise QueryError(f"bad limit {text!r}: give a positive number")
    return value


def add_stac_api(
    app: FastAPI,
    catalog: Catalog,
    *,
    prefix: str = "/stac",
    title: str = "arcodex",
    description: str | None = None,
    limits: ServerConfig | None = None,
    uncompressed: list[str] | None = None,
) -> DocumentCache:
    """Add the STAC API to ``app`` under ``prefix`` (its landing page is ``{prefix}/``); the
    cache of its documents (:class:`~arcodex.server._reload.Reloader` resets it).

    stac-fastapi compresses every response of the app (brotli, else gzip); ``uncompressed``
    are regular expressions of paths it must leave alone (raw Zarr: chunks are compressed
    already, and a byte range must stay a range of the stored bytes)."""
    from fastapi import APIRouter
    from stac_fastapi.api.app import StacApi
    from stac_fastapi.api.models import (
        ItemCollectionUri,
        create_get_request_model,
        create_post_request_model,
        create_request_model,
    )
    from stac_fastapi.extensions import (
        FieldsExtension,
        ItemCollectionFilterExtension,
        SearchFilterExtension,
        SortExtension,
        TokenPaginationExtension,
    )
    from stac_fastapi.extensions.fields.fields import FieldsConformanceClasses
    from stac_fastapi.extensions.filter.filter import FilterConformanceClasses
    from stac_fastapi.extensions.sort.sort import SortConformanceClasses
    from stac_fastapi.types.config import ApiSettings
    from stac_fastapi.types.search import APIRequest

    from arcodex import __version__
    from arcodex.server._errors import status_codes
    from arcodex.stac import STAC_VERSION

    limits = limits or catalog.config.server
    cache = DocumentCache(catalog, open_data=False)
    client = CatalogClient(cache=cache, limits=limits, landing_page_id="arcodex")
    filters = FiltersClient(check_collection=client._check_collection)
    cql2 = [
        FilterConformanceClasses.FILTER,
        FilterConformanceClasses.BASIC_CQL2,
        FilterConformanceClasses.CQL2_JSON,
        FilterConformanceClasses.CQL2_TEXT,
        FilterConformanceClasses.ADVANCED_COMPARISON_OPERATORS,
        FilterConformanceClasses.BASIC_SPATIAL_FUNCTIONS,
    ]
    search_extensions = [
        SearchFilterExtension(
            client=filters, conformance_classes=[*cql2, FilterConformanceClasses.SEARCH]
        ),
        # Sort and Fields 1.1 also conform to 1.0, the version pystac-client looks for.
        SortExtension(
            conformance_classes=[
                SortConformanceClasses.ITEM_SEARCH_SORT,
                "https://api.stacspec.org/v1.0.0/item-search#sort",
            ]
        ),
        FieldsExtension(
            conformance_classes=[
                FieldsConformanceClasses.SEARCH,
                "https://api.stacspec.org/v1.0.0/item-search#fields",
            ]
        ),
        TokenPaginationExtension(),
    ]
    item_extensions = [
        ItemCollectionFilterExtension(
            client=filters, conformance_classes=[*cql2, FilterConformanceClasses.ITEMS]
        ),
        SortExtension(conformance_classes=[SortConformanceClasses.FEATURES_SORT]),
        FieldsExtension(conformance_classes=[FieldsConformanceClasses.ITEMS]),
        TokenPaginationExtension(),
    ]
    settings = ApiSettings(
        _env_file=None,  # no .env of the working directory
        stac_fastapi_title=title,
        stac_fastapi_description=description
        # Not the catalog's path: public documents never name where things are kept.
        or "STAC API of an arcodex catalog",
        stac_fastapi_landing_id="arcodex",
        stac_fastapi_version=__version__,
    )
    from brotli_asgi import BrotliMiddleware
    from stac_fastapi.api.middleware import ProxyHeaderMiddleware
    from starlette.middleware import Middleware

    StacApi(
        app=app,
        router=APIRouter(prefix=prefix),
        settings=settings,
        # stac-fastapi's defaults less its CORS for every origin: the app's own CORS is
        # `server.cors_origins` (none by default), for every route alike.
        middlewares=[
            Middleware(BrotliMiddleware, excluded_handlers=list(uncompressed or ())),
            Middleware(ProxyHeaderMiddleware),
        ],
        title=title,
        stac_version=STAC_VERSION,
        client=client,
        extensions=[*search_extensions, *item_extensions],
        exceptions=status_codes(),
        search_get_request_model=create_get_request_model(search_extensions),
        search_post_request_model=create_post_request_model(search_extensions),
        items_get_request_model=cast(
            type[APIRequest],
            create_request_model(
                "ItemCollectionUri",
                base_model=ItemCollectionUri,
                extensions=item_extensions,
                request_type="GET",
            ),
        ),
    )
    return cache
