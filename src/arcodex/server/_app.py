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
    reload_interval: float = 2.0,
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
        reload_interval: At most how often (seconds) the server looks whether groups and
            STAC settings changed (:mod:`arcodex.server._reload`).
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
    from arcodex.server._access_log import AccessLog
    from arcodex.server._datasets import add_datasets_api
    from arcodex.server._errors import add_error_handlers
    from arcodex.server._guard import RequestGuard, RootPath, TrustedProxies
    from arcodex.server._health import add_health
    from arcodex.server._landing import landing
    from arcodex.server._openapi import document_errors
    from arcodex.server._reload import Reloader, ReloadMiddleware
    from arcodex.server._stac_api import add_stac_api

    catalog = Catalog.open(catalog_path)
    limits = catalog.config.server

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            app.state.ogc.close()  # the datasets it keeps open between requests
            readiness.close()
            catalog.close()

    # One OpenAPI document for the whole server; the STAC landing page links to it.
    app = FastAPI(
        title=title,
        lifespan=lifespan,
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
    )
    app.state.catalog = catalog
    app.add_api_route("/", landing("/stac"), methods=["GET"], include_in_schema=False)
    import re

    raw = [f"^{re.escape(root_path.rstrip('/'))}/zarr/"]
    documents = add_stac_api(
        app, catalog, prefix="/stac", title=title, limits=limits, uncompressed=raw
    )
    readiness = add_health(app, catalog)
    add_datasets_api(
        app, catalog, max_limit=limits.max_limit, max_download=limits.download_max_bytes
    )
    from arcodex.server._ingest_api import add_ingest_api

    add_ingest_api(app, catalog)
    from arcodex.server._ingestions import add_ingestions_api

    add_ingestions_api(app, catalog, max_limit=limits.max_limit)
    from arcodex.server._zarr import add_zarr

    add_zarr(app, catalog, prefix="/zarr")
    from arcodex.server._ogc import add_ogc_api

    add_ogc_api(app, catalog, prefix="/ogcapi", title=title)
    add_error_handlers(app)
    document_errors(app)
    from arcodex.server._auth import Authentication

    # Inside the guard: a request is bounded before its token is looked up.
    app.add_middleware(Authentication, catalog=catalog, config=limits.auth)
    if limits.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        # Outside authentication: a preflight carries no token, and a 401 must be readable.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(limits.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Range", "If-None-Match"],
            expose_headers=["Content-Length", "Content-Range", "ETag", "Accept-Ranges"],
            max_age=600,
        )
    # Added last, so outermost: the peer is judged, then the body bounded, before anything else.
    app.add_middleware(
        ReloadMiddleware, reloader=Reloader(catalog, documents, interval=reload_interval)
    )
    app.add_middleware(RequestGuard, limits=limits)
    trusted = limits.forwarded_allow_ips if forwarded_allow_ips is None else forwarded_allow_ips
    app.add_middleware(TrustedProxies, trusted=list(trusted))
    app.add_middleware(RootPath, root_path=root_path)
    # Outermost: a request refused by the guard is logged too, with the client proxies name.
    app.add_middleware(AccessLog)
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
    log_level: str = "info",
    access_log: str = "text",
    graceful_timeout: float = 30.0,
    **kwargs: Any,
) -> None:
    """Run the server with uvicorn until interrupted (``kwargs`` go to :func:`create_app`).

    With ``workers`` > 1, uvicorn runs that many processes on one socket, each
    with its own app over the same catalog (:func:`app_from_environment`), and
    stops them all on Ctrl-C or SIGTERM. The app judges forwarded headers
    itself (``forwarded_allow_ips``), so uvicorn's own proxy handling, which
    would trust 127.0.0.1, is off.

    Args:
        log_level: ``critical``, ``error``, ``warning``, ``info``, ``debug`` or ``trace``.
        access_log: ``text`` (uvicorn's lines), ``json`` (one JSON object per request and
            per log record, :mod:`arcodex.server._access_log`) or ``off``.
        graceful_timeout: On SIGTERM or Ctrl-C, how long (seconds) requests under way may
            take to finish before they are cut.
    """
    import uvicorn

    from arcodex.errors import ValidationError
    from arcodex.server._access_log import log_config

    if workers < 1:
        raise ValidationError(f"--workers {workers}: give 1 or more server processes")
    if graceful_timeout < 0:
        raise ValidationError(f"--graceful-timeout {graceful_timeout:g}: give 0 or more seconds")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "proxy_headers": False,
        "log_config": log_config(access_log, log_level),
        "log_level": log_level,
        "access_log": access_log == "text",
        "timeout_graceful_shutdown": graceful_timeout,
    }
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
