"""The datasets API: ``/datasets``, one page per dataset, publishing over HTTP.

Every answer is built from the catalog's metadata through its Python API
(``Catalog.search``, ``Catalog.publish``); the request's principal filters what is
listed and counted (``Principal.query_conditions``), and a dataset it may not see
is answered as a missing one (:func:`~arcodex.server._published.visible_dataset`).
Nothing in an answer names a filesystem path, an artifact or storage options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from arcodex.catalog._access import Principal, is_published, record_access, visibility_of
from arcodex.errors import QueryError
from arcodex.model import BBox, Condition, TimeRange
from arcodex.model import Query as CatalogQuery
from arcodex.server._identity import principal_of, require
from arcodex.server._published import visible_dataset

if TYPE_CHECKING:
    from fastapi import FastAPI

    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["DatasetDetail", "DatasetList", "add_datasets_api"]


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class Extent(BaseModel):
    bbox: list[float] | None = Field(None, description="[west, south, east, north] in degrees")
    start: str | None = None
    end: str | None = None


class Publication(BaseModel):
    published: bool
    visibility: str = Field(description="public, private or project:NAME")
    published_at: str | None = None
    published_by: str | None = None
    snapshot: str | None = Field(None, description="Icechunk: the snapshot served")
    tag: str | None = None


class Version(BaseModel):
    kind: str = Field(description="snapshot (an Icechunk tag) or change (a catalog operation)")
    name: str | None = None
    snapshot: str | None = None
    at: str | None = None
    user: str | None = None
    event: str | None = None


class DatasetSummary(BaseModel):
    id: str
    title: str | None = None
    description: str | None = None
    format: str | None = None
    extent: Extent
    check: str | None = Field(None, description="the product's check: pass, warn, fail")
    publication: Publication
    links: list[Link]


class DatasetDetail(DatasetSummary):
    variables: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(description="the record's version")
    versions: list[Version] = Field(default_factory=list)


class DatasetList(BaseModel):
    kind: str = "datasets"
    items: list[DatasetSummary]
    links: list[Link]
    next: str | None = Field(None, description="token of the next page, if any")


def _convert(record: Record) -> Mapping[str, Any]:
    conv = record.metadata.get("convert")
    return conv if isinstance(conv, Mapping) else {}


def _format(record: Record) -> str | None:
    product = _convert(record).get("product")
    if isinstance(product, Mapping) and product.get("format"):
        return str(product["format"])
    primary = next((a for a in record.artifacts if a.role == "primary"), None)
    return primary.format if primary is not None else None


def _extent(record: Record) -> Extent:
    meta = record.metadata
    conv = _convert(record)
    bbox = meta.get("bbox")
    start = meta.get("start_datetime") or meta.get("datetime") or conv.get("first")
    end = meta.get("end_datetime") or meta.get("datetime") or conv.get("last")
    return Extent(
        bbox=[float(v) for v in bbox] if isinstance(bbox, list) else None,
        start=str(start) if start is not None else None,
        end=str(end) if end is not None else None,
    )


def _publication(record: Record) -> Publication:
    access = record_access(record)
    return Publication(
        published=is_published(record),
        visibility=visibility_of(record),
        **{
            k: str(access[k])
            for k in ("published_at", "published_by", "snapshot", "tag")
            if access.get(k) is not None
        },
    )


def _links(record: Record, base: str, collection: str) -> list[Link]:
    rid = record.id
    return [
        Link(href=f"{base}/datasets/{rid}", rel="self", type="application/json"),
        Link(href=f"{base}/zarr/{rid}", rel="zarr", title="the dataset as Zarr"),
        Link(
            href=f"{base}/stac/collections/{collection}/items/{rid}",
            rel="stac-item",
            type="application/geo+json",
        ),
        Link(href=f"{base}/ogcapi/collections/{rid}", rel="ogcapi-collection"),
        Link(href=f"{base}/datasets/{rid}/download", rel="download", title="a subset"),
    ]


def _summary(record: Record, base: str, collection: str) -> dict[str, Any]:
    check = _convert(record).get("check")
    return {
        "id": record.id,
        "title": record.title,
        "description": record.description,
        "format": _format(record),
        "extent": _extent(record),
        "check": str(check) if check is not None else None,
        "publication": _publication(record),
        "links": _links(record, base, collection),
    }


def _variables(record: Record) -> dict[str, Any]:
    """Each variable's dims, dtype and attributes as described at conversion (no encodings)."""
    found = record.metadata.get("variables")
    if not isinstance(found, Mapping):
        return {}
    keep = ("dims", "dtype", "shape", "units", "long_name", "standard_name", "attrs")
    return {
        str(name): {k: v for k, v in info.items() if k in keep} if isinstance(info, Mapping) else {}
        for name, info in found.items()
    }


def _versions(catalog: Catalog, record: Record) -> list[Version]:
    versions = [
        Version(kind="snapshot", name=str(t.get("tag")), snapshot=str(t.get("snapshot")))
        for t in _convert(record).get("tags") or ()
        if isinstance(t, Mapping)
    ]
    for event in catalog.logs(record=record.id, limit=200):
        name = str(event.get("event") or "")
        if not name.startswith("record.") and not name.startswith("operation."):
            continue
        versions.append(
            Version(
                kind="change",
                event=name,
                at=str(event.get("ts") or event.get("time") or "") or None,
                user=str(event["user"]) if event.get("user") else None,
            )
        )
    return versions


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise QueryError(f"published={value!r}: give true or false")


def add_datasets_api(
    app: FastAPI, catalog: Catalog, *, max_limit: int = 1_000, max_download: int = 1 << 30
) -> None:
    """Add the ``/datasets`` routes over ``catalog`` to ``app``."""
    from arcodex.stac._groups import Grouping

    router = APIRouter(prefix="/datasets", tags=["datasets"])
    needs_writer = require("writer")

    # require()'s dependency annotates its request only for type checkers (Request is not
    # imported at run time there), so FastAPI would take it for a query parameter: this
    # one names the type FastAPI needs and asks require() itself.
    def writer(request: Request) -> Principal:
        return needs_writer(request)

    grouping = Grouping(catalog)

    def collection_of(record: Record) -> str:
        return grouping.collection_id(record) if grouping else record.id

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @router.get("", response_model=DatasetList, summary="The datasets you may see")
    def list_datasets(
        request: Request,
        q: str | None = Query(None, description="words in the title, description or metadata"),
        bbox: str | None = Query(None, description="W,S,E,N in degrees"),
        datetime: str | None = Query(None, description="an interval START/END (.. open)"),
        format: str | None = Query(None, description="product format: zarr, icechunk …"),
        published: str | None = Query(None, description="true or false"),
        limit: int = Query(20, ge=1),
        token: str | None = Query(None, description="the `next` of the previous page"),
    ) -> dict[str, Any]:
        principal = principal_of(request)
        conditions = [
            Condition(field="kind", value="dataset"),
            Condition(field="status", op="in", value=["active", "deprecated"]),
            *principal.query_conditions(),
        ]
        wanted = _flag(published)
        if wanted is True:
            conditions.append(Condition(field="access.published", value=True))
        elif wanted is False:
            conditions.append(Condition(field="access.published", op="ne", value=True))
        if format:
            conditions.append(Condition(field="convert.product.format", value=format))
        query = CatalogQuery(
            conditions=conditions,
            text=q or None,
            bbox=BBox.parse(bbox) if bbox else None,
            time=TimeRange.parse(datetime) if datetime else None,
            limit=min(limit, max_limit),
            cursor=token,
        )
        page = catalog.search(query)
        base = base_of(request)
        links = [Link(href=str(request.url), rel="self", type="application/json")]
        if page.next_cursor:
            links.append(
                Link(
                    href=str(request.url.include_query_params(token=page.next_cursor)),
                    rel="next",
                    type="application/json",
                )
            )
        return {
            "kind": "datasets",
            "items": [_summary(r, base, collection_of(r)) for r in page.records],
            "links": links,
            "next": page.next_cursor,
        }

    @router.get("/{dataset_id}", response_model=DatasetDetail, summary="One dataset")
    def get_dataset(request: Request, dataset_id: str) -> dict[str, Any]:
        record = visible_dataset(catalog, dataset_id, principal_of(request))
        return _detail(record, base_of(request))

    def _detail(record: Record, base: str) -> dict[str, Any]:
        return {
            **_summary(record, base, collection_of(record)),
            "variables": _variables(record),
            "version": record.version,
            "versions": _versions(catalog, record),
        }

    @router.post("/{dataset_id}/publish", response_model=DatasetDetail, summary="Publish")
    def publish(
        request: Request,
        dataset_id: str,
        tag: str | None = Query(None, description="Icechunk: serve this tag"),
        visibility: str | None = Query(None, description="public, private or project:NAME"),
        principal: Principal = Depends(writer),
    ) -> dict[str, Any]:
        record = visible_dataset(catalog, dataset_id, principal)
        done = catalog.publish(record.id, tag=tag, visibility=visibility, user=principal.name)
        return _detail(done, base_of(request))

    @router.post("/{dataset_id}/unpublish", response_model=DatasetDetail, summary="Withdraw")
    def unpublish(
        request: Request,
        dataset_id: str,
        principal: Principal = Depends(writer),
    ) -> dict[str, Any]:
        record = visible_dataset(catalog, dataset_id, principal)
        done = catalog.unpublish(record.id, user=principal.name)
        return _detail(done, base_of(request))

    from arcodex.server._download import add_download

    add_download(router, catalog, max_bytes=max_download)
    app.include_router(router)
