"""The server's root document (``GET /``): where its parts are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

__all__ = ["landing"]


def landing(title: str) -> Callable[[Request], dict[str, Any]]:
    """The endpoint of ``GET /``: the title and a link to each part (the STAC API)."""

    # Request is imported at module level so that FastAPI sees the annotation (a string
    # under postponed evaluation) as the request, not as a query parameter named request.
    def index(request: Request) -> dict[str, Any]:
        base = str(request.base_url)
        return {
            "title": title,
            "links": [
                {"rel": "self", "href": base, "type": "application/json"},
                {"rel": "stac", "href": f"{base}stac/", "type": "application/json"},
                {"rel": "service-desc", "href": f"{base}api", "type": "application/json"},
            ],
        }

    return index
