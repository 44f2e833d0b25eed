"""The arcodex HTTP server (FastAPI): a STAC API over a live catalog, under ``/stac``.

Needs fastapi, uvicorn and stac-fastapi, imported when the app is made::

    from arcodex.server import create_app, serve

    app = create_app("path/to/catalog")  # an ASGI app: /stac/, /stac/search …
    serve("path/to/catalog", port=8000)
"""

from __future__ import annotations

from arcodex.server._app import create_app, serve

__all__ = ["create_app", "serve"]
