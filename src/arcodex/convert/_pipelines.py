"""``convert`` and ``update`` as declared pipelines of named steps.

::

    convert: resolve-sources → scan → plan → write → check → register
    update:  resolve-sources → scan → plan (the delta) → write → check → register

Each step is a small function of the pipeline context; what it makes goes into a
:class:`Job` (``ctx.state["job"]``) for the steps after it. The first three change
nothing, so a dry run stops after them with the plan in hand. ``write`` opens the
catalog's unit of work (when there is a catalog), so that a failure in ``write``,
``check`` or ``register`` rolls everything back: the staged product is removed, an
update's backup put back, and nothing is registered. Without a catalog the
caller undoes the same with :meth:`Job.undo`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.catalog import Pipeline, PipelineContext, Step, open_unit, register_pipeline
from arcodex.convert import _memory_source
from arcodex.convert._access import cluster_config, source_options
from arcodex.convert._check import close_sources
from arcodex.convert._cluster import open_client
from arcodex.convert._commit import commit_message
from arcodex.convert._concat_grid import plan_chunks, product_chunks
from arcodex.convert._locate import locate_product, managed, record_of
from arcodex.convert._place import Placed, containers, place
from arcodex.convert._plan import Plan, build_plan, jsonable
from arcodex.convert._product import PROVENANCE_ATTR, Product
from arcodex.convert._progress import Progress, say
from arcodex.convert._provenance import check_against_sources, provenance_of
from arcodex.convert._pyramid import pyramid_group, refuse_update, write_pyramid
from arcodex.convert._record import register as register_record
from arcodex.convert._replace import Staging, guard_destination
from arcodex.convert._result import ConvertResult
from arcodex.convert._scan import scan_all, scan_grid
from arcodex.convert._spec import ConvertSpec
from arcodex.convert._write import WriteOptions
from arcodex.errors import ConversionError, ValidationError
from arcodex.model import new_id

if TYPE_CHECKING:
    import os

    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.convert._sources import SourceRef, SourceScan
    from arcodex.convert._update import Delta
    from arcodex.model import Record

__all__ = ["CONVERT", "UPDATE", "Job", "Runtime"]


@dataclass
class Runtime:
    """What a run needs besides its spec, never stored: options may hold secrets."""

    storage_options: Mapping[str, Any] | None = None
    dest_options: Mapping[str, Any] | None = None
    progress: Progress | None = None
    client: Any = None  # a distributed.Client given instead of spec.cluster
    product: str | os.PathLike[str] | Product | None = None  # what an update updates


@dataclass
class Job:
    """What the steps of one convert or update hand each other (each sets its part)."""

    action: Literal["convert", "update"]
    spec: ConvertSpec
    runtime: Runtime
    cat: Catalog | None
    stack: ExitStack
    #: Undo what was written when there is no unit of work to roll back (no catalog).
    undo: Callable[[], None] = lambda: None
    #: Drop what ``undo`` needs once the run is kept.
    done: Callable[[], None] = lambda: None
    # resolve-sources
    src_options: dict[str, Any] = field(init=False)
    refs: list[SourceRef] = field(init=False)
    product: Product = field(init=False)
    placed: Placed = field(init=False)
    existed: bool = False
    record: Record | None = None  # update: the product's record
    provenance: dict[str, Any] = field(init=False)  # update: the product's as it is
    # scan
    client: Any = field(init=False)
    scans: list[SourceScan] = field(init=False)
    parts: dict[str, Any] = field(init=False)
    grid: SourceScan | None = None
    # plan
    plan: Plan = field(init=False)
    options: WriteOptions = field(init=False)
    parameters: dict[str, Any] = field(init=False)
    delta: Delta | None = None
    # write
    result: ConvertResult | None = None
    record_id: str = ""
    staging: Staging | None = None

    @property
    def virtual(self) -> bool:
        return self.product.format not in ("zarr", "icechunk")

    @property
    def unchanged(self) -> bool:
        """An update with nothing to do: the later steps leave everything as it is."""
        return self.delta is not None and self.delta.nothing_to_do

    def written(self) -> ConvertResult:
        if self.result is None:
            raise ValidationError("step write must run before check and register")
        return self.result


def job_of(ctx: PipelineContext) -> Job:
    """The job the steps share (set by ``convert``/``update``, which run these pipelines)."""
    job = ctx.state.get("job")
    if not isinstance(job, Job):
        raise ValidationError(
            f"pipeline {ctx.pipeline or '?'} runs from `arcodex convert`/`arcodex update` "
            "(or arcodex.convert.convert/update), which give it its spec"
        )
    return job


# -- convert ------------------------------------------------------------------------------


def resolve(ctx: PipelineContext) -> None:
    """The sources, in order, and where the product goes (refused if it may not go there)."""
    job = job_of(ctx)
    spec = job.spec
    fmt = spec.product_format
    # A multi-level product writes its full resolution as group 0 (refused where it cannot).
    group = pyramid_group(spec.pyramid if spec.pyramid > 1 else None, fmt, spec.group)
    job.src_options = source_options(job.cat, spec.source_profile, job.runtime.storage_options)
    job.refs = _sources_of(spec, job.src_options)
    job.placed = place(
        job.cat,
        fmt,
        spec.dest,
        job.runtime.dest_options,
        spec.profile,
        spec.key,
        job.refs,
        spec.dest_profile,
    )
    job.product = Product(
        fmt,
        job.placed.target,
        group=group,
        branch=spec.branch,
        containers=containers(job.refs) if fmt not in ("zarr", "icechunk") else (),
        source_options=job.src_options,
    )
    job.existed = guard_destination(
        job.placed.target, job.refs, overwrite=spec.overwrite, cat=job.cat
    )


def scan(ctx: PipelineContext) -> None:
    """Scan every source on the cluster (started here), and the grid file if any."""
    job = job_of(ctx)
    job.client = _client(job)
    dim = job.provenance.get("concat_dim") if job.action == "update" else job.spec.concat_dim
    say(job.runtime.progress, "scan", 0, len(job.refs))
    job.scans, job.parts = scan_all(
        job.client, job.refs, dim, job.runtime.progress, virtual=job.virtual
    )
    if job.action == "convert" and job.spec.grid:
        job.grid = scan_grid(job.spec.grid, job.src_options)


def plan(ctx: PipelineContext) -> None:
    """Plan the product: its variables, dims, chunks and attributes (refused if they clash)."""
    job = job_of(ctx)
    spec = job.spec
    job.options = WriteOptions(
        zarr_format=spec.zarr_format, codec=spec.codec, level=spec.level, shards=spec.shards or {}
    )
    fixes = spec.attr_fixes()
    job.plan = build_plan(
        job.scans,
        concat_dim=spec.concat_dim,
        variables=spec.variables,
        chunks=spec.chunks or {},
        chunking=spec.chunking,
        chunk_mb=spec.chunk_mb,
        fixes=fixes,
        grid=job.grid,
        grid_coords=spec.grid_coords,
    )
    job.parameters = {
        "to": spec.to,
        "format": job.product.format,
        "product": job.product.to_dict(),
        "concat_dim": job.plan.concat_dim,
        "variables": list(spec.variables) if spec.variables else None,
        "chunks": {k: list(v.chunks) for k, v in job.plan.variables.items()},
        "chunking": spec.chunking,
        "chunk_mb": spec.chunk_mb,
        "write": job.options.to_dict(),
        "attr_fixes": fixes.to_dict(),
        "group": job.product.group,
        "branch": spec.branch,
        "tag": spec.tag,
        "check": spec.check,
        **({"pyramid": spec.pyramid} if spec.pyramid > 1 else {}),
        # The profile's name only: `update` and `check` read the sources with it again.
        "source_profile": spec.source_profile,
        **({"dest_profile": job.placed.dest_profile} if job.placed.dest_profile else {}),
        **(
            {"grid": str(spec.grid), "grid_coords": dict(spec.grid_coords or {})}
            if spec.grid
            else {}
        ),
        "spec": spec.to_dict(),
    }
    if job.virtual:
        # Refused here, before anything is written, when no chunk grid fits the sources.
        job.plan.virtual_parts = job.parts
        job.plan.virtual_chunks = plan_chunks(job.plan, job.parts)


def write(ctx: PipelineContext) -> None:
    """Write the product beside its destination (staged), in the unit of work."""
    job = job_of(ctx)
    uow = _open_unit(ctx, job)
    cat, plan = job.cat, job.plan
    # Replacing a catalogued product replaces its record too (never a second one).
    job.record = record_of(cat, job.product) if job.existed else None
    job.record_id = job.record.id if job.record is not None else new_id()
    staging = job.staging = Staging.beside(job.placed.target, existed=job.existed)
    if uow is not None:
        _planned(uow, job)
        staging.journal(uow, job.placed.profile)
        uow.after_commit(staging.finish)
    else:
        job.undo, job.done = staging.roll_back, staging.finish
    work = dataclasses.replace(job.product, target=staging.work)
    provenance = {**plan.summary(), "parameters": _stored(job)}
    written, snapshot = _write_new(job, work, provenance)
    if job.spec.pyramid > 1:
        snapshot = write_pyramid(work, job.spec.pyramid, job.options, job.spec.message) or snapshot
    job.result = ConvertResult("convert", work, plan, bytes_written=written, snapshot=snapshot)
    job.result.changes = {"appended_steps": plan.length, "sources": len(plan.sources)}


def check(ctx: PipelineContext) -> None:
    """Check the product against its sources, as `arcodex check` would; a failure rolls back."""
    job = job_of(ctx)
    if job.unchanged or not job.spec.check:
        return
    result = job.written()
    progress = job.runtime.progress
    say(progress, "check", 0, 1)
    try:
        # Checked as `arcodex check` checks it: from what the product records.
        result.report = check_against_sources(
            result.product,
            result.plan.scans,
            result.product.provenance(),
            samples=job.spec.samples,
        )
    finally:
        close_sources(result.plan)
    say(progress, "check", 1, 1)
    if result.report.status == "fail":
        reasons = result.report.reasons
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        raise ConversionError(
            f"the product failed its check and was rolled back: {reasons[0]}{more}"
        )


def register(ctx: PipelineContext) -> None:
    """Put the product in place, write its record, and tag its snapshot: in that order,
    so that a failure at any step leaves nothing behind (Icechunk never reuses a tag)."""
    job = job_of(ctx)
    if job.unchanged:
        return
    result = job.written()
    if job.staging is not None:
        job.staging.swap(ctx.uow)
        result.product = job.product
        if result.report is not None:
            # The check ran on the staged copy; what was checked is now at the destination.
            result.report = dataclasses.replace(result.report, product=job.product.target.url)
    if job.cat is not None and ctx.uow is not None:
        title = job.spec.title if job.action == "convert" else None
        if job.action == "update" and job.record is not None:
            title = job.record.title
        register_record(
            result,
            job.cat,
            ctx.uow,
            job.placed,
            job.record_id,
            title,
            ctx.user,
            job.record,
            tag=job.spec.tag,
            metadata=job.spec.metadata,
            tags=job.spec.tags,
        )
    if job.spec.tag and result.snapshot:
        from arcodex.convert._writers import tag_snapshot

        tag_snapshot(result.product, job.spec.tag, result.snapshot)


# -- update -------------------------------------------------------------------------------


def resolve_update(ctx: PipelineContext) -> None:
    """The product (with the profile it records), its record, and the new sources."""
    from arcodex.convert._writers import check_tag_free

    job = job_of(ctx)
    spec, runtime = job.spec, job.runtime
    assert runtime.product is not None
    _, product, options = locate_product(
        job.stack,
        runtime.product,
        job.cat,
        spec.source_profile,
        runtime.storage_options,
        runtime.dest_options,
        spec.group,
        spec.branch,
        spec.dest_profile,
    )
    job.record = record_of(job.cat, product)
    job.product, job.provenance, job.src_options = provenance_of(
        product, job.cat, options, "convert the sources instead"
    )
    check_tag_free(job.product, spec.tag)
    refuse_update(job.product)
    job.refs = _sources_of(spec, job.src_options)
    job.placed = Placed(
        job.product.target, None, None, job.record is not None and managed(job.record)
    )
    job.record_id = job.record.id if job.record is not None else new_id()


def plan_delta(ctx: PipelineContext) -> None:
    """Plan the update against the product: what is appended, rewritten, added or refused."""
    from arcodex.convert import _update
    from arcodex.convert._attrs import AttrFixes
    from arcodex.convert._writers import open_parts

    job = job_of(ctx)
    spec, product = job.spec, job.product
    params = job.provenance.get("parameters", {})
    fixes = spec.attr_fixes() if spec.attrs else AttrFixes.from_dict(params.get("attr_fixes") or {})
    delta = job.delta = _update.prepare(
        product,
        job.provenance,
        job.scans,
        variables=spec.variables,
        chunks=spec.chunks or {},
        fixes=fixes,
    )
    job.plan = delta.plan
    job.parameters = {
        "product": product.to_dict(),
        "sources": len(job.refs),
        "appended": delta.appended_sources(),
        "overwritten": delta.changed_sources(),
        "new_variables": sorted(delta.new_variables),
        "tag": spec.tag,
        "check": spec.check,
        "spec": spec.to_dict(),
    }
    if delta.nothing_to_do:
        job.result = ConvertResult("update", product, delta.plan, record=job.record)
        job.result.changes = {"unchanged": True}
        return
    if job.virtual:
        # Refused here, before anything is written, when no chunk grid fits the sources.
        delta.plan.virtual_parts = job.parts
        # The recorded sources too: their chunks must fit the new ones.
        open_parts(job.client, delta.plan, range(len(delta.plan.sources)), job.runtime.progress)
        delta.plan.virtual_chunks = plan_chunks(
            delta.plan,
            delta.plan.virtual_parts,
            existing=product_chunks(product, delta.plan),
            after=delta.old_length if delta.appended else 0,
        )


def write_update(ctx: PipelineContext) -> None:
    """Write the delta into the product (undoably: a backup, or a branch to reset)."""
    from arcodex.convert import _update

    job = job_of(ctx)
    if job.unchanged:
        return
    assert job.delta is not None
    delta = job.delta
    uow = _open_unit(ctx, job)
    if uow is not None:
        _planned(uow, job)
    else:
        job.undo, job.done = (lambda: delta.undo()), (lambda: delta.cleanup())
    written, snapshot = _update.apply(
        job.client,
        job.product,
        delta,
        uow,
        message=job.spec.message,
        progress=job.runtime.progress,
    )
    job.result = ConvertResult(
        "update", job.product, delta.plan, bytes_written=written, snapshot=snapshot
    )
    job.result.changes = delta.changes()


# -- the pieces the steps share -----------------------------------------------------------


def _sources_of(spec: ConvertSpec, options: dict[str, Any]) -> list[SourceRef]:
    r"""The spec's sources, resolved: files (globs, directories, manifests), URLs, or
    in-memory ``xarray.Dataset``\ s."""
    return _memory_source.resolve(spec.sources, options)


def _client(job: Job) -> Any:
    spec = job.spec
    return job.stack.enter_context(
        open_client(
            job.runtime.client if job.runtime.client is not None else spec.cluster,
            workers=spec.workers,
            threads=spec.threads,
            memory_limit=spec.memory_limit,
            config=cluster_config(job.cat),
        )
    )


def _open_unit(ctx: PipelineContext, job: Job) -> UnitOfWork | None:
    if job.cat is None:
        return None
    uow: UnitOfWork = open_unit(
        ctx,
        job.action,
        inputs=[r.url for r in job.refs][:1000],
        parameters=jsonable(job.parameters),
    )
    return uow


def _planned(uow: UnitOfWork, job: Job) -> None:
    current = job.record
    uow.transition(
        "planned",
        records=[job.record_id] if job.action == "convert" or current else [],
        sources=len(job.refs),
        **({"version": current.version} if current is not None else {}),
    )
    uow.transition("artifact_write_started")


def _stored(job: Job) -> dict[str, Any]:
    """The parameters the product records: the spec with every source it holds, in order
    (so that the product can be made again from it; in-memory ones cannot be)."""
    spec = job.spec.to_dict()
    if not job.spec.in_memory:
        spec["sources"] = [s.url for s in job.plan.sources]
    return {**job.parameters, "spec": spec}


def _write_new(job: Job, product: Product, provenance: Mapping[str, Any]) -> tuple[int, str | None]:
    from arcodex.convert import _writers

    plan, progress = job.plan, job.runtime.progress
    message = job.spec.message or commit_message("convert", plan)
    plan.attrs[PROVENANCE_ATTR] = json.dumps(jsonable(provenance), sort_keys=True)
    if product.format == "zarr":
        return _writers.write_zarr(job.client, product, plan, job.options, progress), None
    if product.format == "icechunk":
        return _writers.write_icechunk(job.client, product, plan, job.options, message, progress)
    return _writers.write_virtual(job.client, product, plan, message, progress)


CONVERT = Pipeline(
    "convert",
    (
        Step("resolve-sources", resolve, changes=False, doc=resolve.__doc__ or ""),
        Step("scan", scan, changes=False, doc=scan.__doc__ or ""),
        Step("plan", plan, changes=False, doc=plan.__doc__ or ""),
        Step("write", write, doc=write.__doc__ or ""),
        Step("check", check, doc=check.__doc__ or ""),
        Step("register", register, doc=(register.__doc__ or "").split("\n")[0]),
    ),
    doc="Convert sources into a checked, registered ARCO product.",
)

UPDATE = Pipeline(
    "update",
    (
        Step("resolve-sources", resolve_update, changes=False, doc=resolve_update.__doc__ or ""),
        Step("scan", scan, changes=False, doc=scan.__doc__ or ""),
        Step("plan", plan_delta, changes=False, doc=plan_delta.__doc__ or ""),
        Step("write", write_update, doc=write_update.__doc__ or ""),
        Step("check", check, doc=check.__doc__ or ""),
        Step("register", register, doc=(register.__doc__ or "").split("\n")[0]),
    ),
    doc="Bring a product up to date with new or changed sources.",
)

# Listed with the other pipelines (inspectable by name); they run through convert/update.
register_pipeline(CONVERT)
register_pipeline(UPDATE)
