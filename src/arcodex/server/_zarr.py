"""Raw Zarr over HTTP: ``GET``/``HEAD /zarr/{id}/{key}`` (``/zarr/{id}@{tag}/{key}``).

Any Zarr client opens ``/zarr/ID`` with no storage options
(``xr.open_zarr("https://host/zarr/ID")``): every product format is served as a
plain Zarr store (:mod:`arcodex.server._products`). HTTP is done properly:
byte ranges (206, 416, suffix ranges), strong ETags and 304, Cache-Control by
immutability, bounded-memory streaming of large chunks, gzip of metadata.
Absent keys answer 404, which Zarr clients read as "chunk not written".
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from arcodex.errors import NotFoundError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from arcodex.catalog import Catalog
    from arcodex.server._products import ProductCache, ServedProduct

__all__ = ["add_zarr"]

#: Reads of a chunk larger than this are streamed in parts of this size.
PART = 4 * 1024 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=0, must-revalidate"


def safe_key(key: str) -> str:
    """``key`` if it is a store key (relative, no ``.``/``..``, no backslash or NUL), else 404."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _SEGMENT.match(p) for p in parts):
        raise NotFoundError(f"no key {key[:80]!r} in this store")
    return key


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` of a single-range ``Range`` header; None if it is not one.

    Raises:
        ValueError: the range is not satisfiable (HTTP 416).
    """
    match = _RANGE.match(header.strip())
    if match is None or match.group(0) == "bytes=-":
        return None
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(size - length, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or end <= start:
        raise ValueError("range outside the value")
    return start, end


def add_zarr(app: FastAPI, catalog: Catalog, *, prefix: str = "/zarr") -> None:
    """Mount the raw-Zarr routes on ``app`` under ``prefix``."""
    from starlette.requests import Request
    from starlette.responses import Response

    from arcodex.server._products import ProductCache

    cache = ProductCache()

    async def zarr_key(request: Request, dataset: str, key: str) -> Response:
        return await _answer(request, catalog, cache, dataset, key)

    # The annotations are strings (postponed); FastAPI needs the class to inject the request.
    zarr_key.__annotations__.update(
        {"request": Request, "dataset": str, "key": str, "return": Response}
    )
    # The routes document the keys (and answer what the fast path passes on); the fast path
    # answers them without FastAPI's routing and dependency solving, a third of a chunk's cost.
    app.add_middleware(ZarrFastPath, catalog=catalog, cache=cache, prefix=prefix)
    for method in ("GET", "HEAD"):  # two routes: one OpenAPI operation id each
        app.add_api_route(
            prefix + "/{dataset}/{key:path}",
            zarr_key,
            methods=[method],
            response_model=None,
            response_class=Response,
            tags=["Zarr"],
            summary="A key of a published dataset's Zarr store",
            operation_id=f"zarr_key_{method.lower()}",
            include_in_schema=method == "GET",
        )


class ZarrFastPath:
    """ASGI middleware: ``GET``/``HEAD {prefix}/{dataset}/{key}`` answered directly.

    It sits inside authentication (the principal is on the scope) and answers exactly
    as the routes would, errors included (:func:`~arcodex.server._errors.error_for`);
    any other request goes on to the app.
    """

    def __init__(self, app: Any, *, catalog: Catalog, cache: ProductCache, prefix: str) -> None:
        self.app = app
        self.catalog = catalog
        self.cache = cache
        self.prefix = prefix.rstrip("/") + "/"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path, root = scope["path"], scope.get("root_path") or ""
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(self.prefix):
                dataset, sep, key = path[len(self.prefix) :].partition("/")
                if dataset and sep:
                    await self._answer(scope, receive, send, dataset, key)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Any, receive: Any, send: Any, dataset: str, key: str) -> None:
        from starlette.requests import Request

        from arcodex.server._errors import error_for

        request = Request(scope, receive)
        try:
            response = await _answer(request, self.catalog, self.cache, dataset, key)
        except Exception as exc:  # answered as the app's own error handlers answer it
            response = error_for(request, exc)
        await response(scope, receive, send)


def _split(dataset: str) -> tuple[str, str | None]:
    name, sep, tag = dataset.partition("@")
    if sep and not tag:
        raise NotFoundError(f"no dataset {dataset!r}; give ID or ID@TAG")
    return name, tag or None


async def _answer(
    request: Request, catalog: Catalog, cache: ProductCache, dataset: str, key: str
) -> Response:
    from starlette.responses import Response

    from arcodex.catalog._access import is_published
    from arcodex.server._identity import principal_of
    from arcodex.server._published import visible_dataset

    name, tag = _split(dataset)
    record = visible_dataset(catalog, name, principal_of(request))
    if not is_published(record):
        raise NotFoundError(f"no dataset {name!r}; GET /datasets lists the datasets you may see")
    key = safe_key(key)
    served = await cache.get(catalog, record, tag)
    head = request.method == "HEAD"
    from arcodex.server._products import METADATA_KEYS, read_key

    leaf = key.rsplit("/", 1)[-1]
    if leaf in METADATA_KEYS or key in served.synthesized:
        data = await read_key(served, key)
        if data is None:
            raise NotFoundError(f"no key {key!r} in dataset {dataset!r}")
        headers = _cache_headers(served, served.etag(key, data), metadata=True)
        if _not_modified(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "") and len(data) > 200:
            data = gzip.compress(data, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        headers["Content-Length"] = str(len(data))
        body = b"" if head else data
        return Response(body, headers=headers, media_type="application/json")
    return await _chunk(request, served, key, head)


def _cache_headers(served: ServedProduct, etag: str, *, metadata: bool) -> dict[str, str]:
    control = IMMUTABLE if served.immutable else REVALIDATE
    return {"ETag": etag, "Cache-Control": control, "Accept-Ranges": "bytes"}


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    return wanted.strip() == "*" or etag in [
        t.strip().removeprefix("W/") for t in wanted.split(",")
    ]


async def _size(served: ServedProduct, key: str) -> int | None:
    stat = served.stat(key)
    if stat is not None:
        return int(stat.st_size)
    absent: tuple[type[Exception], ...] = (FileNotFoundError, KeyError, *served.bad_key)
    try:
        if not await served.store.exists(key):
            return None
        return int(await served.store.getsize(key))
    except absent:
        return None


async def _chunk(request: Request, served: ServedProduct, key: str, head: bool) -> Response:
    from starlette.responses import Response, StreamingResponse

    from arcodex.server._products import read_key

    size = await _size(served, key)
    if size is None:
        raise NotFoundError(f"no key {key!r} in this store")
    data: bytes | None = None
    if size <= PART:  # small: read whole (a reference store's sizes may be of the reference)
        data = await read_key(served, key)
        if data is None:
            raise NotFoundError(f"no key {key!r} in this store")
        size = len(data)
    etag = served.etag(key, data) if data is not None else served.etag(f"{key}\0{size}")
    headers = _cache_headers(served, etag, metadata=False)
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size, 200
    wanted = request.headers.get("range")
    if wanted and request.headers.get("if-range", etag) == etag:
        try:
            found = parse_range(wanted, size)
        except ValueError:
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
        if found is not None:
            start, end = found
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    media = "application/octet-stream"
    if head:
        return Response(b"", status_code=status, headers=headers, media_type=media)
    if data is not None:
        return Response(data[start:end], status_code=status, headers=headers, media_type=media)
    return StreamingResponse(
        _parts(served, key, start, end), status_code=status, headers=headers, media_type=media
    )


async def _parts(served: ServedProduct, key: str, start: int, end: int) -> AsyncIterator[bytes]:
    """The bytes ``[start, end)`` of ``key``, read :data:`PART` bytes at a time."""
    from zarr.abc.store import RangeByteRequest
    from zarr.core.buffer import default_buffer_prototype

    at = start
    while at < end:
        stop = min(at + PART, end)
        buf: Any = await served.store.get(
            key, prototype=default_buffer_prototype(), byte_range=RangeByteRequest(at, stop)
        )
        if buf is None:
            return
        yield bytes(buf.to_bytes())
        at = stop
