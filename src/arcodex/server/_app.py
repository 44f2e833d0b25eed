"""The arcodex HTTP server: one FastAPI app, the STAC API under ``/stac``.

More parts (datasets, Zarr, OGC API) join as routers of :func:`create_app`,
under their own prefixes, and share its OpenAPI document (``/api``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "serve"]


def create_app(
    catalog_path: str | os.PathLike[str],
    *,
    root_path: str = "",
    title: str = "arcodex",
    open_data: bool = True,
) -> FastAPI:
    """The server app over the catalog at ``catalog_path``.

    Args:
        catalog_path: The catalog root (``arcodex init`` made it).
        root_path: The path prefix a reverse proxy serves the app under.
        title: Title of the API (landing pages, OpenAPI).
        open_data: Open each dataset once to describe its datacube in STAC
            (cached per record version); False builds STAC from metadata only.
    """
    import logging

    from fastapi import FastAPI, Request

    # stac-fastapi reads settings from the environment at import and warns that the title and
    # version are its defaults; add_stac_api passes arcodex's own, so the warning is noise.
    logging.getLogger("stac_fastapi.types.config").setLevel(logging.ERROR)

    from arcodex.catalog import Catalog
    from arcodex.server._stac_api import add_stac_api

    catalog = Catalog.open(catalog_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            catalog.close()

    # One OpenAPI document for the whole server; the STAC landing page links to it.
    app = FastAPI(
        title=title,
        root_path=root_path,
        lifespan=lifespan,
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
    )
    app.state.catalog = catalog

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> dict[str, Any]:
        base = str(request.base_url)
        return {
            "title": title,
            "links": [
                {"rel": "self", "href": base, "type": "application/json"},
                {"rel": "stac", "href": f"{base}stac/", "type": "application/json"},
            ],
        }

    add_stac_api(app, catalog, prefix="/stac", title=title, open_data=open_data)
    return app


def serve(
    catalog_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    **kwargs: Any,
) -> None:
    """Run the server with uvicorn until interrupted (``kwargs`` go to :func:`create_app`)."""
    import uvicorn

    uvicorn.run(create_app(catalog_path, **kwargs), host=host, port=port)
