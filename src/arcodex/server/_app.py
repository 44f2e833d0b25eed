"""The arcodex HTTP server: one FastAPI app, the STAC API under ``/stac``.

More parts (datasets, Zarr, OGC API) join as routers of :func:`create_app`,
under their own prefixes, and share its OpenAPI document (``/api``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app_from_environment", "create_app", "serve"]

#: The catalog root a worker process serves (the CLI's own variable).
ENV_CATALOG = "ARCODEX_CATALOG"
#: The other :func:`create_app` arguments of a worker process, as a JSON object.
ENV_APP = "ARCODEX_SERVE_APP"


def create_app(
    catalog_path: str | os.PathLike[str],
    *,
    root_path: str = "",
    title: str = "arcodex",
    forwarded_allow_ips: Sequence[str] | None = None,
) -> FastAPI:
    """The server app over the catalog at ``catalog_path``.

    STAC documents are built from the catalog's metadata only: answering a
    request never opens a dataset nor makes an outbound request. Every request
    is bounded by the catalog's ``server`` settings before it is parsed.

    Args:
        catalog_path: The catalog root (``arcodex init`` made it).
        root_path: The path prefix a reverse proxy serves the app under.
        title: Title of the API (landing pages, OpenAPI).
        forwarded_allow_ips: The proxies (IPs, networks, ``*``) whose ``Forwarded``
            and ``X-Forwarded-*`` headers are trusted; default: the catalog's
            ``server.forwarded_allow_ips`` (none unless configured).
    """
    import logging
    import warnings

    from fastapi import FastAPI

    # stac-fastapi reads settings from the environment at import and warns that the title and
    # version are its defaults; add_stac_api passes arcodex's own, so the warning is noise.
    logging.getLogger("stac_fastapi.types.config").setLevel(logging.ERROR)
    # geojson-pydantic warns of every bbox that crosses the antimeridian, which STAC allows.
    warnings.filterwarnings("ignore", "BBOX crossing the Antimeridian", UserWarning)

    from arcodex.catalog import Catalog
    from arcodex.server._errors import add_error_handlers
    from arcodex.server._guard import RequestGuard, TrustedProxies
    from arcodex.server._landing import landing
    from arcodex.server._openapi import document_errors
    from arcodex.server._stac_api import add_stac_api

    catalog = Catalog.open(catalog_path)
    limits = catalog.config.server

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
    app.add_api_route("/", landing("/stac"), methods=["GET"], include_in_schema=False)
    add_stac_api(app, catalog, prefix="/stac", title=title, limits=limits)
    from arcodex.server._ogc import add_ogc_api

    add_ogc_api(app, catalog, prefix="/ogcapi", title=title)
    add_error_handlers(app)
    document_errors(app)
    # Added last, so outermost: the peer is judged, then the body bounded, before anything else.
    app.add_middleware(RequestGuard, limits=limits)
    trusted = limits.forwarded_allow_ips if forwarded_allow_ips is None else forwarded_allow_ips
    app.add_middleware(TrustedProxies, trusted=list(trusted))
    return app


def app_from_environment() -> FastAPI:
    """The app of one server worker: :func:`create_app` of ``$ARCODEX_CATALOG``.

    ``serve(workers=N)`` hands uvicorn this factory by name, since each worker
    process builds its own app (and opens the catalog itself: its own SQLite
    connections, or its own PostgreSQL pool). The other arguments of
    :func:`create_app` come as a JSON object in ``$ARCODEX_SERVE_APP``.
    """
    from arcodex.errors import ValidationError

    root = os.environ.get(ENV_CATALOG)
    if not root:
        raise ValidationError(f"${ENV_CATALOG} names no catalog; set it to the catalog root")
    kwargs = json.loads(os.environ.get(ENV_APP) or "{}")
    return create_app(root, **kwargs)


def serve(
    catalog_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    **kwargs: Any,
) -> None:
    """Run the server with uvicorn until interrupted (``kwargs`` go to :func:`create_app`).

    With ``workers`` > 1, uvicorn runs that many processes on one socket, each
    with its own app over the same catalog (:func:`app_from_environment`), and
    stops them all on Ctrl-C or SIGTERM. The app judges forwarded headers
    itself (``forwarded_allow_ips``), so uvicorn's own proxy handling, which
    would trust 127.0.0.1, is off.
    """
    import uvicorn

    from arcodex.errors import ValidationError

    if workers < 1:
        raise ValidationError(f"--workers {workers}: give 1 or more server processes")
    options: dict[str, Any] = {"host": host, "port": port, "proxy_headers": False}
    if workers == 1:
        uvicorn.run(create_app(catalog_path, **kwargs), **options)
        return
    from arcodex.catalog import Catalog

    Catalog.open(catalog_path).close()  # a catalog that cannot be opened fails here, once
    # The workers are spawned: they read the catalog and the arguments from the environment.
    os.environ[ENV_CATALOG] = str(Path(catalog_path).resolve())
    os.environ[ENV_APP] = json.dumps(
        {
            k: list(v) if k == "forwarded_allow_ips" and v is not None else v
            for k, v in kwargs.items()
        }
    )
    uvicorn.run(
        "arcodex.server._app:app_from_environment", factory=True, workers=workers, **options
    )
