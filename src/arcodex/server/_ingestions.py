"""``/ingestions`` and ``/sync``: ingestion and sync as jobs outside the request.

``POST /ingestions`` checks the request (the writer role, a known template and
extent, periods that parse), saves a queued job and starts its process
(:mod:`arcodex.server._ingestion_job`), then answers 202 with the job's id. The
job is a catalog operation, so every server worker sees the same
``GET /ingestions/{id}``; ``DELETE /ingestions/{id}`` asks it to stop after its
current period (an ingestion keeps what it committed, a sync leaves its dataset as
it was). A job whose process was killed is ``interrupted``; the same request again
resumes it. ``GET /sync/{id}/plan`` is the sync planner's dry run;
``POST /sync/{id}`` runs the plan as a job, or answers the plan at once when
there is nothing to do. Answers name no path, profile option or secret: a job's
texts have their file paths cut to file names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from arcodex.catalog._access import Principal
from arcodex.errors import ConflictError, NotFoundError
from arcodex.server._identity import principal_of, require
from arcodex.server._ingestion_job import (
    FINAL,
    as_dict,
    cancel_requested,
    find_job,
    jobs,
    launch,
    new_job,
    public_result,
    public_text,
    request_cancel,
    state_of,
)
from arcodex.server._published import visible_dataset

if TYPE_CHECKING:
    from fastapi import FastAPI

    from arcodex.catalog import Catalog
    from arcodex.model import Operation

__all__ = ["IngestionRequest", "add_ingestions_api"]


class IngestionRequest(BaseModel):
    """What to ingest: a template over an extent, from one period to another."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=200, description="a template id")
    extent: str = Field(min_length=1, max_length=200, description="an extent id")
    start: str = Field(min_length=1, max_length=64, description="the first period (or a date)")
    end: str = Field(min_length=1, max_length=64, description="the last period (or a date)")
    overwrite: bool = Field(False, description="rebuild the dataset beside the old one")
    publish: bool = Field(False, description="publish it once its check passes")


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None


class PeriodError(BaseModel):
    period: str
    message: str


class Progress(BaseModel):
    periods_done: int = 0
    periods_total: int | None = None
    current_period: str | None = None
    errors: list[PeriodError] = Field(default_factory=list)


class IngestionOut(BaseModel):
    id: str
    kind: str = Field(description="ingest or sync")
    status: str = Field(
        description="queued, running, done, failed (some periods or the job failed), "
        "cancelled, or interrupted (its process was killed: start it again to resume)"
    )
    user: str | None = None
    request: dict[str, Any] = Field(description="what was asked for")
    progress: Progress
    cancel_requested: bool = False
    dataset: str | None = Field(None, description="the dataset record it made or updated")
    error: str | None = None
    result: dict[str, Any] | None = Field(None, description="what the job did, once it ended")
    created_at: str
    finished_at: str | None = None
    links: list[Link]


class Accepted(BaseModel):
    id: str
    status: str
    links: list[Link]


class IngestionList(BaseModel):
    kind: str = "ingestions"
    items: list[IngestionOut]
    links: list[Link]
    next: str | None = Field(None, description="token of the next page, if any")


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/STACError"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "The job was started"}
}


def add_ingestions_api(app: FastAPI, catalog: Catalog, *, max_limit: int = 1_000) -> None:
    """Add ``/ingestions`` and ``/sync`` over ``catalog`` to ``app``."""
    router = APIRouter(tags=["ingest"])
    needs_writer = require("writer")

    def writer(request: Request) -> Principal:
        return needs_writer(request)

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def links_of(job: Operation, base: str) -> list[Link]:
        links = [Link(href=f"{base}/ingestions/{job.id}", rel="self", type="application/json")]
        for rid in _dataset_of(job):
            links.append(
                Link(href=f"{base}/datasets/{rid}", rel="dataset", type="application/json")
            )
        return links

    def out(job: Operation, base: str) -> dict[str, Any]:
        state, error = state_of(catalog, job)
        progress = job.parameters.get("progress") or {}
        result = job.parameters.get("result")
        datasets = _dataset_of(job)
        return {
            "id": job.id,
            "kind": job.parameters.get("kind", "ingest"),
            "status": state,
            "user": job.user,
            "request": job.parameters.get("request") or {},
            "progress": {
                "periods_done": int(progress.get("periods_done") or 0),
                "periods_total": progress.get("periods_total"),
                "current_period": progress.get("current_period"),
                "errors": [
                    {"period": str(e.get("period")), "message": public_text(str(e.get("message")))}
                    for e in progress.get("errors") or ()
                    if isinstance(e, dict)
                ],
            },
            "cancel_requested": state not in FINAL and cancel_requested(catalog, job),
            "dataset": datasets[0] if datasets else None,
            "error": error,
            "result": result if isinstance(result, dict) else None,
            "created_at": job.started_at.isoformat().replace("+00:00", "Z"),
            "finished_at": (
                job.finished_at.isoformat().replace("+00:00", "Z") if job.finished_at else None
            ),
            "links": links_of(job, base),
        }

    def may_see(principal: Principal, job: Operation) -> bool:
        return principal.at_least("admin") or (
            principal.name is not None and job.user == principal.name
        )

    def visible_job(principal: Principal, job_id: str) -> Operation:
        job = find_job(catalog, job_id) if not principal.anonymous else None
        if job is None or not may_see(principal, job):
            raise NotFoundError(f"no ingestion {job_id!r}; GET /ingestions lists yours")
        return job

    def accepted(job: Operation, base: str) -> JSONResponse:
        body = Accepted(id=job.id, status="queued", links=links_of(job, base))
        return JSONResponse(body.model_dump(mode="json"), status_code=202)

    def busy(record: str) -> Operation | None:
        """An unfinished job that writes ``record`` (two would race for its repository)."""
        for job in jobs(catalog):
            if state_of(catalog, job)[0] in FINAL:
                continue
            if record in _targets(job):
                return job
        return None

    @router.post(
        "/ingestions",
        status_code=202,
        response_model=Accepted,
        summary="Start an ingestion (writer)",
        responses=_ACCEPTED,
    )
    def start_ingestion(
        request: Request, body: IngestionRequest, principal: Principal = Depends(writer)
    ) -> Any:
        from arcodex.ingest import get_extent, get_template, parse_period
        from arcodex.ingest._record import record_id

        template = get_template(catalog, body.template)
        extent = get_extent(catalog, body.extent)
        for value in (body.start, body.end):
            parse_period(value, template.period)  # a bad period is the request's 400, now
        rid = record_id(template, extent)
        running = busy(rid)
        if running is not None:
            raise ConflictError(
                f"ingestion {running.id} of {rid!r} has not ended; wait for it "
                f"(GET /ingestions/{running.id}) or cancel it (DELETE)"
            )
        job = new_job(catalog, "ingest", {**body.model_dump(), "record": rid}, principal.name)
        launch(catalog, job)
        return accepted(job, base_of(request))

    @router.get("/ingestions", response_model=IngestionList, summary="Your ingestions")
    def list_ingestions(
        request: Request,
        limit: int = Query(20, ge=1),
        token: str | None = Query(None, description="the `next` of the previous page"),
    ) -> Any:
        principal = principal_of(request)
        limit = min(limit, max_limit)
        try:
            offset = int(token) if token else 0
        except ValueError:
            offset = -1
        if offset < 0:
            from arcodex.errors import QueryError

            raise QueryError(f"token={token!r}: give the `next` of the previous page")
        page: list[Operation] = []
        more = False
        if not principal.anonymous:
            seen = 0
            for job in jobs(catalog):
                if not may_see(principal, job):
                    continue
                if seen >= offset + limit:
                    more = True
                    break
                if seen >= offset:
                    page.append(job)
                seen += 1
        base = base_of(request)
        links = [Link(href=str(request.url), rel="self", type="application/json")]
        following = str(offset + limit) if more else None
        if following:
            href = str(request.url.include_query_params(token=following))
            links.append(Link(href=href, rel="next", type="application/json"))
        return {
            "kind": "ingestions",
            "items": [out(job, base) for job in page],
            "links": links,
            "next": following,
        }

    @router.get("/ingestions/{ingestion_id}", response_model=IngestionOut, summary="One job")
    def get_ingestion(request: Request, ingestion_id: str) -> Any:
        job = visible_job(principal_of(request), ingestion_id)
        return out(job, base_of(request))

    @router.delete(
        "/ingestions/{ingestion_id}",
        response_model=IngestionOut,
        status_code=202,
        summary="Cancel a job (its writer, or an admin)",
        responses={
            403: _error("The user's role does not allow this"),
            409: _error("The job has ended"),
        },
    )
    def cancel_ingestion(
        request: Request, ingestion_id: str, principal: Principal = Depends(writer)
    ) -> Any:
        job = find_job(catalog, ingestion_id)
        if job is None or not may_see(principal, job):
            # Another writer's job is answered as a missing one: only its user or an admin
            # may see it, or cancel it.
            raise NotFoundError(f"no ingestion {ingestion_id!r}; GET /ingestions lists yours")
        state, _ = state_of(catalog, job)
        if state in FINAL:
            raise ConflictError(f"ingestion {job.id} has ended ({state}); nothing to cancel")
        request_cancel(catalog, job, principal.name)
        body = IngestionOut.model_validate(out(job, base_of(request)))
        return JSONResponse(body.model_dump(mode="json"), status_code=202)

    @router.get("/sync/{dataset_id}/plan", summary="What a sync would do (a dry run)")
    def sync_plan(
        request: Request,
        dataset_id: str,
        end: str | None = Query(None, description="sync up to this period (default: now)"),
    ) -> dict[str, Any]:
        record = visible_dataset(catalog, dataset_id, principal_of(request))
        return _plan(catalog, record.id, end)

    @router.post(
        "/sync/{dataset_id}",
        summary="Sync a dataset (writer): a job, or the plan when there is nothing to do",
        responses=_ACCEPTED,
    )
    def start_sync(
        request: Request,
        dataset_id: str,
        end: str | None = Query(None, description="sync up to this period (default: now)"),
        principal: Principal = Depends(writer),
    ) -> Any:
        record = visible_dataset(catalog, dataset_id, principal)
        plan = _plan(catalog, record.id, end)
        if plan.get("action") in ("up_to_date", "not_syncable"):
            return plan
        running = busy(record.id)
        if running is not None:
            raise ConflictError(
                f"job {running.id} of {record.id!r} has not ended; wait for it "
                f"(GET /ingestions/{running.id})"
            )
        job = new_job(catalog, "sync", {"record": record.id, "end": end}, principal.name)
        launch(catalog, job)
        return accepted(job, base_of(request))

    app.include_router(router)


def _plan(catalog: Catalog, record_id: str, end: str | None) -> dict[str, Any]:
    from arcodex.ingest._sync import plan_sync

    return public_result(as_dict(plan_sync(catalog, record_id, end=end)))


def _targets(job: Operation) -> list[str]:
    request = job.parameters.get("request") or {}
    return [str(request["record"])] if request.get("record") else []


def _dataset_of(job: Operation) -> list[str]:
    """The dataset the job made or updates (once known)."""
    return list(job.outputs) or (_targets(job) if job.parameters.get("kind") == "sync" else [])
