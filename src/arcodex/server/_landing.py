"""The server's root (``GET /``): a redirect to the STAC API's landing page, which links
every part of the API (its conformance, collections, search and the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse

__all__ = ["landing"]


def landing(prefix: str = "/stac") -> Callable[[Request], RedirectResponse]:
    """The endpoint of ``GET /``: a 307 to ``{prefix}/`` under the app's own base URL.

    The base URL carries the proxy's ``root_path`` and (from trusted proxies only) the
    forwarded host and scheme, so the redirect leads where the client came from.
    """

    # Request is imported at module level so that FastAPI sees the annotation (a string
    # under postponed evaluation) as the request, not as a query parameter named request.
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.base_url}{prefix.strip('/')}/", status_code=307)

    return index
