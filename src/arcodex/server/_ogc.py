"""OGC API (Coverages, EDR) under ``/ogcapi``: pygeoapi in-process, its collections the catalog's.

pygeoapi's own web apps read one configuration file when they are imported;
here its :class:`pygeoapi.api.API` is built from a configuration made in
memory (:func:`pygeoapi_config`): one collection per dataset published to
anonymous readers, each served by :class:`~arcodex.server._ogc_provider.ArcodexProvider`
with the record id as its ``data``. The routes below hand requests to pygeoapi's
API functions, as its Starlette app does.

The configuration is made again when the catalog changed (:meth:`OgcService.signature`:
the visible ids and the newest update among datasets, two indexed queries),
so publishing, unpublishing or updating a dataset shows at the next request,
without a restart. Every request naming a collection is checked with
:func:`~arcodex.server._published.visible_dataset` first, so a hidden or
missing dataset is the same 404 whatever the configuration holds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from arcodex.catalog._access import ANONYMOUS
from arcodex.errors import NotFoundError
from arcodex.model import Condition, Query

if TYPE_CHECKING:
    from contextlib import ExitStack

    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["OgcService", "add_ogc_api", "pygeoapi_config"]

logger = logging.getLogger("arcodex.server")

PROVIDER = "arcodex.server._ogc_provider.ArcodexProvider"
#: Statuses of the datasets the OGC API serves (planned and failed ones have no data).
SERVED = ["active", "deprecated"]
#: How many API objects (one per base URL the server is reached at) are kept.
APIS_KEPT = 8
#: ``f=`` values accepted case-insensitively, as pygeoapi names them.
_FORMATS = {"netcdf": "NetCDF", "nc": "NetCDF", "covjson": "json", "coveragejson": "json"}


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def collection_of(record: Record, source: str) -> dict[str, Any]:
    """The pygeoapi resource of one dataset record."""
    md = record.metadata
    bbox = md.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        bbox = [-180.0, -90.0, 180.0, 90.0]
    extents: dict[str, Any] = {"spatial": {"bbox": [float(v) for v in bbox], "crs": CRS84}}
    begin, end = _when(md.get("start_datetime")), _when(md.get("end_datetime"))
    if begin or end:
        extents["temporal"] = {"begin": begin, "end": end}
    options = {"source": source, "version": f"{record.version}"}
    provider = {"name": PROVIDER, "data": record.id, "options": options}
    title = record.title or str(md.get("title") or record.id)
    return {
        "type": "collection",
        "title": title,
        "description": record.description or title,
        "keywords": list(record.tags) or ["dataset"],
        "extents": extents,
        "links": [],
        "providers": [
            {
                **provider,
                "type": "coverage",
                "format": {"name": "NetCDF", "mimetype": "application/x-netcdf"},
            },
            {**provider, "type": "edr"},
        ],
    }


CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def pygeoapi_config(
    records: list[Record], *, url: str, source: str, title: str = "arcodex"
) -> dict[str, Any]:
    """The pygeoapi configuration serving ``records`` at ``url`` (nothing is written)."""
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": 0},
            "url": url,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 1000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": f"{title} OGC API",
                "description": "Coverages and EDR queries of the published datasets",
                "keywords": ["coverages", "edr"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": url,
            },
            "license": {"name": "see each dataset", "url": url},
            "provider": {"name": title, "url": url},
            "contact": {"name": title, "url": url},
        },
        "resources": {r.id: collection_of(r, source) for r in records},
    }


class OgcService:
    """pygeoapi's API over a catalog's published datasets, rebuilt when they change."""

    def __init__(self, catalog: Catalog, *, title: str = "arcodex") -> None:
        from arcodex.server._ogc_provider import register_opener

        self.catalog = catalog
        self.title = title
        self.source = uuid.uuid4().hex
        register_opener(self.source, self._open)
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._records: list[Record] = []
        self._apis: OrderedDict[str, Any] = OrderedDict()
        self._openapi: dict[str, Any] = {}

    def _open(self, record_id: str, stack: ExitStack) -> Any:
        """The product of a dataset (at its published Icechunk snapshot when it has one),
        with lazily indexed arrays, not Dask: a point query reads only its own chunks.
        What it opens is closed with ``stack``."""
        from arcodex.catalog._access import record_access
        from arcodex.convert._locate import locate_product

        record = self.catalog.backend.get(record_id)
        if "convert" not in record.metadata:
            from arcodex.server._published import open_served

            # A catalogued file: opened as the other routes open it.
            return open_served(stack, self.catalog, record)
        snapshot = record_access(record).get("snapshot")
        # What open_product does, less its Dask chunks.
        _, product, _ = locate_product(
            stack, record_id, self.catalog, None, None, None, None, "main"
        )
        if isinstance(snapshot, str) and product.format in ("icechunk", "virtual-icechunk"):
            ds = product.open(snapshot=snapshot)
        else:
            ds = product.open()
        stack.callback(ds.close)
        return ds

    def close(self) -> None:
        """Close the datasets this service opened (the server stops)."""
        from arcodex.server._ogc_provider import close_opened

        close_opened(self.source)

    def _query(self) -> Query:
        served = Condition(field="status", op="in", value=SERVED)
        return Query(conditions=[*ANONYMOUS.query_conditions(), served], limit=None)

    def signature(self) -> tuple[Any, ...]:
        """What the configuration depends on: the ids served and the newest dataset update."""
        ids = self.catalog.ids(self._query(), kind="dataset")
        newest = self.catalog.search(kind="dataset", sort="-updated_at", limit=1)
        latest = [(r.id, r.version, r.updated_at.isoformat()) for r in newest.records]
        return (tuple(ids), tuple(latest))

    def api(self, base_url: str) -> Any:
        """pygeoapi's API at ``base_url`` over the datasets served now."""
        from pygeoapi.api import API

        signature = self.signature()
        with self._lock:
            if signature != self._signature:
                page = self.catalog.search(self._query(), kind="dataset", sort="id")
                self._records = [r for r in page.records if _has_product(r)]
                self._apis.clear()
                self._openapi = {}
                self._signature = signature
            api = self._apis.get(base_url)
            if api is None:
                _translate_afresh()
                config = pygeoapi_config(
                    self._records, url=base_url, source=self.source, title=self.title
                )
                api = API(config, self._openapi)
                self._apis[base_url] = api
                while len(self._apis) > APIS_KEPT:
                    self._apis.popitem(last=False)
            return api

    def openapi(self, api: Any) -> dict[str, Any]:
        """pygeoapi's OpenAPI document of ``api`` (made once per configuration)."""
        from pygeoapi.openapi import get_oas

        with self._lock:
            if not api.openapi:
                api.openapi.update(get_oas(api.config, fail_on_invalid_collection=False))
            return dict(api.openapi)


class _NeverKept(dict[Any, Any]):
    """A cache that keeps nothing (see :func:`_translate_afresh`)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


def _translate_afresh() -> None:
    """Make pygeoapi translate its configuration for each HTML page.

    pygeoapi keeps the configuration translated per locale once per process
    (``l10n._cfg_cache``), whatever configuration it was: once datasets are published or
    another base URL is served, HTML pages were rendered from the first one (a 500 for a
    collection it lacks, links to another host).
    """
    import pygeoapi.l10n as l10n

    if not isinstance(l10n._cfg_cache, _NeverKept):
        l10n._cfg_cache = _NeverKept()


def _has_product(record: Record) -> bool:
    return any(a.role == "primary" for a in record.artifacts) and has_grid(record)


def has_grid(record: Record) -> bool:
    """Whether ``record``'s data has the latitude/longitude grid coverages and EDR need,
    from its datacube (kept when it was catalogued; a record without one is tried)."""
    from arcodex.extract._datacube import DATACUBE

    cube = record.metadata.get(DATACUBE)
    if not isinstance(cube, dict):
        return True
    axes = {d.get("axis") for d in cube.get("dimensions") or () if isinstance(d, dict)}
    auxiliary = [v for v in cube.get("variables") or () if v.get("type") == "auxiliary"]
    return {"x", "y"} <= axes or len(auxiliary) >= 2


def _quiet_pygeoapi() -> None:
    """pygeoapi's API configures the root logger (logging.basicConfig) and logs every
    refusal as an error; arcodex configures logging itself and logs its own failures."""
    import warnings

    import pygeoapi.api

    with warnings.catch_warnings():
        # pygeoapi's models use pydantic's deprecated class Config; import them all now,
        # once, rather than at a first OpenAPI request.
        warnings.simplefilter("ignore", DeprecationWarning)
        pygeoapi.api.all_apis()
    pygeoapi.api.setup_logger = lambda _config: None
    logging.getLogger("pygeoapi").setLevel(logging.CRITICAL)


def add_ogc_api(app: FastAPI, catalog: Catalog, *, prefix: str = "/ogcapi", title: str) -> None:
    """Add pygeoapi's OGC API (landing, conformance, OpenAPI, collections, coverage, EDR)."""
    import asyncio

    import pygeoapi.api as core
    import pygeoapi.api.coverages as coverages
    import pygeoapi.api.environmental_data_retrieval as edr
    from pygeoapi.api import APIRequest
    from starlette.responses import Response

    from arcodex.server._errors import error_response
    from arcodex.server._identity import principal_of
    from arcodex.server._published import visible_dataset

    _quiet_pygeoapi()
    service = OgcService(catalog, title=title)
    app.state.ogc = service

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    async def run(request: Request, call: Callable[..., Any], *args: Any) -> Response:
        api = await asyncio.to_thread(service.api, base_url(request))
        api_request = await APIRequest.from_starlette(request, api.locales)
        params = api_request.params
        if "rangeSubset" in params and "properties" not in params:
            # OGC API – Coverages names it rangeSubset; pygeoapi reads properties.
            api_request._args = {**dict(params), "properties": params["rangeSubset"]}
        fmt = api_request.format
        if fmt and fmt.lower() in _FORMATS:
            api_request._format = _FORMATS[fmt.lower()]
        if not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            headers, status, content = await asyncio.to_thread(call, api, api_request, *args)
        if status >= 500:
            logger.error("%s %s: pygeoapi answered %s", request.method, request.url.path, status)
        response = Response(content, status_code=int(status))
        response.headers.update(headers or {})
        return response

    def collection(request: Request) -> str:
        name = str(request.path_params["collection_id"])
        record = visible_dataset(catalog, name, principal_of(request))
        if not has_grid(record):
            raise NotFoundError(
                f"dataset {name} has no latitude/longitude grid, which OGC API coverages and "
                f"EDR need; read it at /zarr/{name} or /datasets/{name}/download"
            )
        return name

    def handler(call: Callable[..., Any], *extra: Any) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await run(request, call, *extra)

        return endpoint

    async def collections(request: Request) -> Response:
        return await run(request, _visible_collections(catalog, principal_of(request)))

    async def one_collection(request: Request) -> Response:
        return await run(request, core.describe_collections, collection(request))

    async def coverage(request: Request) -> Response:
        name = collection(request)
        bbox = request.query_params.get("bbox")
        if bbox is not None:
            bad = _bad_bbox(bbox)
            if bad:
                return error_response(400, "InvalidParameterValue", bad)
        return await run(request, coverages.get_collection_coverage, name)

    def edr_query(query_type: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            name = collection(request)
            return await run(request, edr.get_collection_edr_query, name, None, query_type)

        return endpoint

    async def openapi(request: Request) -> Response:
        api = await asyncio.to_thread(service.api, base_url(request))
        if request.query_params.get("f") == "html":
            return await run(request, core.openapi_)
        document = await asyncio.to_thread(service.openapi, api)
        from starlette.responses import JSONResponse

        return JSONResponse(document, media_type="application/vnd.oai.openapi+json;version=3.0")

    routes: list[tuple[str, Callable[..., Awaitable[Response]]]] = [
        ("", handler(core.landing_page)),
        ("/", handler(core.landing_page)),
        ("/conformance", handler(core.conformance)),
        ("/openapi", openapi),
        ("/collections", collections),
        ("/collections/{collection_id}", one_collection),
        ("/collections/{collection_id}/coverage", coverage),
        ("/collections/{collection_id}/position", edr_query("position")),
        ("/collections/{collection_id}/area", edr_query("area")),
        ("/collections/{collection_id}/cube", edr_query("cube")),
    ]
    for path, endpoint in routes:
        # pygeoapi documents these routes in its own OpenAPI document (/ogcapi/openapi).
        app.add_route(prefix + path, endpoint, methods=["GET"], include_in_schema=False)


def _visible_collections(catalog: Catalog, principal: Any) -> Callable[..., Any]:
    """pygeoapi's collections list, less any the principal may not see (the configuration
    can be a request old)."""
    import json

    import pygeoapi.api as core

    from arcodex.server._published import visible_dataset

    def call(api: Any, request: Any) -> tuple[dict[str, Any], int, Any]:
        headers, status, content = core.describe_collections(api, request)
        if status != 200 or not str(headers.get("Content-Type", "")).startswith("application/json"):
            return headers, status, content
        body = json.loads(content)
        kept = []
        for entry in body.get("collections", []):
            try:
                visible_dataset(catalog, str(entry.get("id")), principal)
            except LookupError:
                continue
            kept.append(entry)
        body["collections"] = kept
        return headers, status, json.dumps(body)

    return call


def _bad_bbox(text: str) -> str | None:
    """Why ``bbox`` is not four or six numbers in order, or None (pygeoapi's coverages
    answer 500 for what its validate_bbox refuses)."""
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return f"bbox {text!r}: give minx,miny,maxx,maxy as numbers"
    if len(values) not in (4, 6) or any(v != v for v in values):
        return f"bbox {text!r}: give minx,miny,maxx,maxy as numbers"
    if values[1] > values[len(values) // 2 + 1]:
        return f"bbox {text!r}: miny is greater than maxy; give minx,miny,maxx,maxy"
    if len(values) == 6 and values[2] > values[5]:
        return f"bbox {text!r}: minz is greater than maxz; give minx,miny,minz,maxx,maxy,maxz"
    return None
