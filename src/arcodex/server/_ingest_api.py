"""The ingestion catalogue: ``/templates`` and ``/extents``, what can be ingested and where.

Answers are built from :func:`arcodex.ingest.load_templates` and
:func:`~arcodex.ingest.load_extents`, which read the catalog's YAML files again
only when one changed (no restart after an edit). They show public metadata
only (:mod:`arcodex.ingest._public`: no file paths, no provider secrets). When
the files stop loading, the last set that loaded is still served and each
problem is logged with its file and line; with none loaded yet, the answer
is a 503 saying to read the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from arcodex.errors import NotFoundError
from arcodex.ingest import Availability, Display, LoadError, Transforms, VariableSpec
from arcodex.server._errors import error_response

if TYPE_CHECKING:
    from fastapi import FastAPI

    from arcodex.catalog import Catalog

__all__ = ["ExtentList", "TemplateList", "add_ingest_api"]

logger = logging.getLogger("arcodex.server")


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None


class PublicProvider(BaseModel):
    name: str = Field(description="the provider that fetches the periods")
    params: dict[str, Any] = Field(
        default_factory=dict, description="its parameters, without paths and secrets"
    )


class PublicTarget(BaseModel):
    format: str = Field(description="icechunk or zarr")
    profile: str | None = Field(None, description="the storage profile written to")
    chunks: dict[str, int] | None = None


class TemplateOut(BaseModel):
    id: str
    name: str
    description: str
    variables: dict[str, VariableSpec]
    period: str = Field(description="hourly, daily, monthly or yearly")
    provider: PublicProvider
    sync: str = Field(description="temporal, release or static")
    availability: Availability
    transforms: Transforms
    target: PublicTarget
    display: Display
    links: list[Link]


class ExtentOut(BaseModel):
    id: str
    name: str
    description: str
    bbox: list[float] = Field(description="[west, south, east, north] in degrees")
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry, if any")
    links: list[Link]


class TemplateList(BaseModel):
    kind: str = "templates"
    items: list[TemplateOut]
    links: list[Link]


class ExtentList(BaseModel):
    kind: str = "extents"
    items: list[ExtentOut]
    links: list[Link]


_UNAVAILABLE = {
    503: {
        "description": "The files do not load (the server's log names each problem)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/STACError"}}},
    }
}


class _LastGood:
    """What a loader gave last time it worked (served while the files are broken)."""

    def __init__(self, load: Callable[[], dict[str, Any]], what: str) -> None:
        self.load, self.what = load, what
        self._lock = threading.Lock()
        self._good: dict[str, Any] | None = None
        self._logged: tuple[str, ...] = ()

    def get(self) -> dict[str, Any] | None:
        try:
            found = self.load()
        except LoadError as exc:
            with self._lock:
                if tuple(exc.problems) != self._logged:  # each new set of problems once
                    self._logged = tuple(exc.problems)
                    for problem in exc.problems:
                        logger.error("%s do not load: %s", self.what, problem)
                return self._good
        with self._lock:
            self._good, self._logged = found, ()
        return found


def add_ingest_api(app: FastAPI, catalog: Catalog) -> None:
    """Add ``/templates`` and ``/extents`` over ``catalog``'s ingestion files to ``app``."""
    from arcodex.ingest import load_extents, load_templates
    from arcodex.ingest._public import public_extent, public_template

    router = APIRouter(tags=["ingest"])
    templates = _LastGood(lambda: load_templates(catalog), "templates")
    extents = _LastGood(lambda: load_extents(catalog), "extents")

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def unavailable(what: str) -> Any:
        return error_response(
            503,
            "ServiceUnavailable",
            f"the {what} do not load; the server's log names each problem",
        )

    def template_out(template: Any, base: str) -> dict[str, Any]:
        link = Link(href=f"{base}/templates/{template.id}", rel="self", type="application/json")
        return {**public_template(template), "links": [link]}

    def extent_out(extent: Any, base: str) -> dict[str, Any]:
        link = Link(href=f"{base}/extents/{extent.id}", rel="self", type="application/json")
        return {**public_extent(extent), "links": [link]}

    def listing(request: Request) -> list[Link]:
        return [Link(href=str(request.url), rel="self", type="application/json")]

    @router.get(
        "/templates",
        response_model=TemplateList,
        summary="The dataset templates",
        responses=_UNAVAILABLE,  # type: ignore[arg-type]
    )
    def list_templates(request: Request) -> Any:
        found = templates.get()
        if found is None:
            return unavailable("templates")
        base = base_of(request)
        items = [template_out(t, base) for t in found.values()]
        return {"kind": "templates", "items": items, "links": listing(request)}

    @router.get(
        "/templates/{template_id}",
        response_model=TemplateOut,
        summary="One dataset template",
        responses=_UNAVAILABLE,  # type: ignore[arg-type]
    )
    def get_template(request: Request, template_id: str) -> Any:
        found = templates.get()
        if found is None:
            return unavailable("templates")
        if template_id not in found:
            raise NotFoundError(f"no template {template_id!r}; GET /templates lists them")
        return template_out(found[template_id], base_of(request))

    @router.get(
        "/extents",
        response_model=ExtentList,
        summary="The extents templates are ingested over",
        responses=_UNAVAILABLE,  # type: ignore[arg-type]
    )
    def list_extents(request: Request) -> Any:
        found = extents.get()
        if found is None:
            return unavailable("extents")
        base = base_of(request)
        items = [extent_out(e, base) for e in found.values()]
        return {"kind": "extents", "items": items, "links": listing(request)}

    @router.get(
        "/extents/{extent_id}",
        response_model=ExtentOut,
        summary="One extent",
        responses=_UNAVAILABLE,  # type: ignore[arg-type]
    )
    def get_extent(request: Request, extent_id: str) -> Any:
        found = extents.get()
        if found is None:
            return unavailable("extents")
        if extent_id not in found:
            raise NotFoundError(f"no extent {extent_id!r}; GET /extents lists them")
        return extent_out(found[extent_id], base_of(request))

    app.include_router(router)
