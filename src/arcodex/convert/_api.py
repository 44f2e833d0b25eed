"""``convert``, ``update`` and ``check``: the conversion engine's public API.

Each call scans the sources on Dask workers, plans the product, writes it
(chunks on the workers, metadata on the client), checks it against its
sources and, with a catalog, registers it as one unit of work: a
``dataset`` record with the product, its sources and the check report as
artifacts, and lineage to the operation. A failure (or a failed check)
rolls everything back: the partial product is removed and nothing is
registered.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.convert._attrs import AttrFixes
from arcodex.convert._check import CheckReport, check_product
from arcodex.convert._chunking import ChunkPattern, parse_chunks
from arcodex.convert._cluster import open_client
from arcodex.convert._concat_grid import plan_chunks, product_chunks
from arcodex.convert._memory_source import resolve
from arcodex.convert._plan import Plan, build_plan
from arcodex.convert._product import Product
from arcodex.convert._pyramid import at_level, pyramid_group, refuse_update, write_pyramid
from arcodex.convert._replace import Staging, guard_destination
from arcodex.convert._sources import SourceRef, resolve_sources
from arcodex.convert._steps import (
    Placed,
    attr_fixes,
    check_against_sources,
    cluster_config,
    containers,
    finish,
    locate_product,
    managed,
    open_catalog_arg,
    place,
    product_format,
    provenance_of,
    record_of,
    say,
    scan_all,
    scan_grid,
    source_options,
    unit,
    write_new,
)
from arcodex.convert._write import WriteOptions
from arcodex.convert._writers import check_tag_free, open_parts
from arcodex.errors import ValidationError
from arcodex.model import new_id

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.model import Record

__all__ = ["ConvertResult", "check", "convert", "open_product", "update"]

Progress = Callable[[str, int, int], None]
#: Files, a glob, a directory, a manifest or URLs; or an ``xarray.Dataset`` (or a list).
SourceSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Any
TargetKind = Literal["zarr", "icechunk", "virtual"]


@dataclass
class ConvertResult:
    """What a conversion or update did."""

    action: Literal["convert", "update"]
    product: Product
    plan: Plan
    report: CheckReport | None = None
    record: Record | None = None
    operation_id: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0
    snapshot: str | None = None

    @property
    def status(self) -> str:
        return self.report.status if self.report else "unchecked"

    def to_dict(self) -> dict[str, Any]:
        first, last = self.plan.time_range()
        return {
            "action": self.action,
            "product": self.product.to_dict(),
            "status": self.status,
            "record": self.record.id if self.record else None,
            "operation": self.operation_id,
            "sources": len(self.plan.sources),
            "steps": self.plan.length,
            "first": first,
            "last": last,
            "variables": sorted(self.plan.variables),
            "changes": self.changes,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 3),
            **({"snapshot": self.snapshot} if self.snapshot else {}),
            **({"check": self.report.to_dict()} if self.report else {}),
        }


# -- the public API -----------------------------------------------------------------------


def convert(
    sources: SourceSpec,
    *,
    to: TargetKind = "zarr",
    dest: str | os.PathLike[str] | None = None,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    profile: str | None = None,
    key: str | None = None,
    format: Literal["icechunk", "kerchunk", "kerchunk-parquet"] = "icechunk",
    concat_dim: str | None = None,
    variables: Sequence[str] | None = None,
    chunks: Mapping[str, int | str] | str | None = None,
    chunking: ChunkPattern = "balanced",
    chunk_mb: float = 8.0,
    zarr_format: Literal[2, 3] = 3,
    codec: str = "blosc-zstd",
    level: int | None = None,
    shards: Mapping[str, int | str] | str | None = None,
    attrs: AttrFixes | Mapping[str, Any] | None = None,
    grid: str | os.PathLike[str] | None = None,
    grid_coords: Mapping[str, str] | None = None,
    group: str | None = None,
    branch: str = "main",
    tag: str | None = None,
    message: str | None = None,
    cluster: Any = None,
    workers: int | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    check: bool = True,
    samples: int = 3,
    overwrite: bool = False,
    title: str | None = None,
    source_profile: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    dest_profile: str | None = None,
    progress: Progress | None = None,
    user: str | None = None,
    pyramid: int | None = None,
) -> ConvertResult:
    """Convert NetCDF/HDF5 ``sources`` into an ARCO product.

    Args:
        sources: Files, a glob, a directory, a manifest (CSV/YAML/TXT) or URLs.
        to: ``zarr``, ``icechunk`` or ``virtual`` (references to the sources' chunks).
        dest: Where to write the product (path or URL); with a catalog, defaults to
            ``products/<name>`` in the catalog's storage profile.
        catalog: Register the product in this catalog (a Catalog or its path).
        profile: The catalog storage profile to write to (default: the catalog's).
        key: The product's key in the profile (default ``products/<name><ext>``).
        format: For ``virtual``: ``icechunk``, ``kerchunk`` (JSON) or ``kerchunk-parquet``.
        concat_dim: The dimension to concatenate along (default: detected).
        variables: The variables to keep (their coordinates come along).
        chunks: Explicit chunk sizes (``{"time": 24}`` or ``"time=24,lat=180"``).
        chunking: ``map``, ``timeseries`` or ``balanced``, for the dims not given.
        chunk_mb: The size chunks are derived for.
        zarr_format: 3 (default) or 2.
        codec: ``blosc-zstd`` (default), ``zstd``, ``blosc-lz4``, ``zlib`` or ``none``.
        level: The codec's level.
        shards: Shard sizes by dim (Zarr 3), multiples of the chunks.
        attrs: Attribute corrections (:class:`AttrFixes` or its dict form).
        grid: A grid file holding replacement coordinates.
        grid_coords: Which product variable to replace with which grid variable.
        group: Write into this group of the store.
        branch: Icechunk branch to commit to.
        tag: Icechunk tag to create on the new snapshot.
        message: Icechunk commit message (default: generated from the sources).
        cluster: ``local`` (default), ``threads``, ``tcp://host:port``, ``slurm``,
            ``pbs`` or a ``distributed.Client``.
        workers: Workers of a local cluster (default: the cores).
        threads: Threads per worker.
        memory_limit: Memory limit per worker.
        check: Check the product against its sources (a failed check rolls back).
        samples: Random sources whose values the check compares (besides first and last).
        overwrite: Replace an existing product at ``dest``.
        title: The record's title.
        source_profile: Read ``s3://`` sources with this catalog profile's credentials.
        storage_options: fsspec options to read remote sources.
        dest_options: fsspec options to write a remote ``dest``.
        dest_profile: Write an ``s3://`` ``dest`` with this catalog profile's credentials
            (default: the profile whose bucket holds ``dest``, else the AWS variables).
        progress: ``progress(stage, done, total)`` callback.
        user: Who to record as the operation's user.
        pyramid: Write this many resolution levels (groups ``0``, ``1``, …, each
            coarsened 2x along the spatial dims; zarr and icechunk).

    Returns:
        A :class:`ConvertResult`.
    """
    started = time.perf_counter()
    fmt = product_format(to, format)
    group = pyramid_group(pyramid, fmt, group)
    fixes = attr_fixes(attrs)
    options = WriteOptions(
        zarr_format=zarr_format, codec=codec, level=level, shards=parse_chunks(shards)
    )
    if fmt in ("icechunk",) and zarr_format == 2:
        raise ValidationError("Icechunk stores Zarr format 3 only; drop --zarr-format 2")
    with ExitStack() as stack:
        cat = open_catalog_arg(catalog, stack)
        src_options = source_options(cat, source_profile, storage_options)
        refs = resolve(sources, src_options)  # files, or in-memory datasets
        placed = place(cat, fmt, dest, dest_options, profile, key, refs, dest_profile)
        product = Product(
            fmt,
            placed.target,
            group=group,
            branch=branch,
            containers=containers(refs) if fmt != "zarr" and fmt != "icechunk" else (),
            source_options=src_options,
        )
        existed = guard_destination(placed.target, refs, overwrite=overwrite, cat=cat)
        client = stack.enter_context(
            open_client(
                cluster,
                workers=workers,
                threads=threads,
                memory_limit=memory_limit,
                config=cluster_config(cat),
            )
        )
        say(progress, "scan", 0, len(refs))
        virtual = fmt not in ("zarr", "icechunk")
        scans, parts = scan_all(client, refs, concat_dim, progress, virtual=virtual)
        grid_scan = scan_grid(grid, src_options) if grid else None
        plan = build_plan(
            scans,
            concat_dim=concat_dim,
            variables=variables,
            chunks=parse_chunks(chunks),
            chunking=chunking,
            chunk_mb=chunk_mb,
            fixes=fixes,
            grid=grid_scan,
            grid_coords=grid_coords,
        )
        parameters = {
            "to": to,
            "format": fmt,
            "product": product.to_dict(),
            "concat_dim": plan.concat_dim,
            "variables": list(variables) if variables else None,
            "chunks": {k: list(v.chunks) for k, v in plan.variables.items()},
            "chunking": chunking,
            "chunk_mb": chunk_mb,
            "write": options.to_dict(),
            "attr_fixes": fixes.to_dict(),
            "group": group,
            "branch": branch,
            "tag": tag,
            "check": check,
            **({"pyramid": pyramid} if pyramid else {}),
            # The profile's name only: `update` and `check` read the sources with it again.
            "source_profile": source_profile,
            **({"dest_profile": placed.dest_profile} if placed.dest_profile else {}),
            **({"grid": str(grid), "grid_coords": dict(grid_coords or {})} if grid else {}),
        }
        if virtual:
            # Refused here, before anything is written, when no chunk grid fits the sources.
            plan.virtual_parts = parts
            plan.virtual_chunks = plan_chunks(plan, parts)
        provenance = {**plan.summary(), "parameters": parameters}
        with unit(cat, "convert", refs, parameters, user) as uow:
            # Replacing a catalogued product replaces its record too (never a second one).
            current = record_of(cat, product) if existed else None
            record_id = current.id if current is not None else new_id()
            staging = Staging.beside(placed.target, existed=existed)
            if uow is not None:
                uow.transition(
                    "planned",
                    records=[record_id],
                    sources=len(refs),
                    **({"version": current.version} if current is not None else {}),
                )
                uow.transition("artifact_write_started")
                staging.journal(uow, placed.profile)
                uow.after_commit(staging.finish)
            try:
                work = dataclasses.replace(product, target=staging.work)
                written, snapshot = write_new(
                    client, work, plan, options, provenance, message, progress
                )
                if pyramid:
                    snapshot = write_pyramid(work, pyramid, options, message) or snapshot
                result = ConvertResult(
                    "convert", work, plan, bytes_written=written, snapshot=snapshot
                )
                result.changes = {"appended_steps": plan.length, "sources": len(plan.sources)}
                finish(
                    result,
                    cat,
                    uow,
                    placed,
                    record_id,
                    check,
                    samples,
                    progress,
                    title,
                    user,
                    current=current,
                    tag=tag,
                    swap=lambda r: _swap_in(r, staging, product, uow),
                )
            except BaseException:
                if uow is None:
                    staging.roll_back()
                raise
        if uow is None:
            staging.finish()
        result.seconds = time.perf_counter() - started
        return result


def _swap_in(
    result: ConvertResult, staging: Staging, product: Product, uow: UnitOfWork | None
) -> None:
    """Once the staged product passed its check: put it at its destination."""
    staging.swap(uow)
    result.product = product
    if result.report is not None:
        # The check ran on the staged copy; what was checked is now at the destination.
        result.report = dataclasses.replace(result.report, product=product.target.url)


def check(
    product: str | os.PathLike[str] | Product,
    *,
    sources: SourceSpec | None = None,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    samples: int = 3,
    seed: int | None = None,
    full: bool = False,
    cluster: Any = "threads",
    source_profile: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    group: str | None = None,
    branch: str = "main",
) -> CheckReport:
    """Check a product against its sources (by default the sources it records).

    Every chunk is read and compared with the digest recorded when it was
    written, the recorded sources' fingerprints with the files as they are,
    and a sample of values (drawn with ``seed``, fresh by default) with the
    sources; ``full`` compares every value.
    """
    with ExitStack() as stack:
        cat, prod, src_options = locate_product(
            stack, product, catalog, source_profile, storage_options, dest_options, group, branch
        )
        prod, provenance, src_options = provenance_of(
            prod, cat, src_options, "pass --sources to check it against files"
        )
        recorded = list(provenance.get("sources", []))
        if sources is None:
            urls = [s["url"] for s in recorded]
            refs = [SourceRef(u, src_options if "://" in u else {}) for u in urls]
            if not all(_present(r) for r in refs):
                # Without every source no plan can be made: the chunks and fingerprints still tell.
                return check_product(prod, None, seed=seed, recorded=recorded)
        else:
            refs = resolve_sources(sources, src_options)
            given = {r.url for r in refs}
            recorded = [s for s in recorded if s.get("url") in given]
        client = stack.enter_context(open_client(cluster, config=cluster_config(cat)))
        scans, _ = scan_all(client, refs, provenance.get("concat_dim"), None)
        return check_against_sources(
            prod, scans, provenance, samples=samples, seed=seed, full=full, recorded=recorded
        )


def _present(ref: SourceRef) -> bool:
    from arcodex.convert._sources import _fingerprint

    try:
        _fingerprint(ref)
    except OSError:
        return False
    return True


def open_product(
    product: str | os.PathLike[str] | Product,
    *,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    chunks: Any = None,
    source_profile: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    group: str | None = None,
    branch: str = "main",
    level: int | None = None,
) -> Any:
    """Open a product (path, URL, record id with a catalog) as an ``xarray.Dataset``
    (``level``: that level of a multi-level product; default its full resolution)."""
    with ExitStack() as stack:
        _, prod, _ = locate_product(
            stack, product, catalog, source_profile, storage_options, dest_options, group, branch
        )
        if level is not None:
            prod = at_level(prod, level)
        if chunks is None:
            # Whole source chunks become one task each: open with the product's chunks instead.
            return prod.open(chunks={} if prod.format in ("zarr", "icechunk") else "auto")
        return prod.open(chunks=chunks)


# -- update -----------------------------------------------------------------------------


def update(
    product: str | os.PathLike[str] | Product,
    sources: SourceSpec,
    *,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    variables: Sequence[str] | None = None,
    chunks: Mapping[str, int | str] | str | None = None,
    attrs: AttrFixes | Mapping[str, Any] | None = None,
    group: str | None = None,
    branch: str = "main",
    tag: str | None = None,
    message: str | None = None,
    cluster: Any = None,
    workers: int | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    check: bool = True,
    samples: int = 3,
    source_profile: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    dest_profile: str | None = None,
    progress: Progress | None = None,
    user: str | None = None,
) -> ConvertResult:
    """Bring a product up to date with ``sources``: append, overwrite changed, add variables.

    Incompatible sources (other dims, dtypes or packing, steps before the product's
    start or between its steps, other chunks) are refused and nothing is written.
    Running the same update again changes nothing. An ``s3://`` product is
    reached with ``dest_profile``'s credentials, else as :func:`convert` does.
    """
    from arcodex.convert import _update as run_update

    started = time.perf_counter()
    with ExitStack() as stack:
        cat, prod, src_options = locate_product(
            stack,
            product,
            catalog,
            source_profile,
            storage_options,
            dest_options,
            group,
            branch,
            dest_profile,
        )
        record = record_of(cat, prod)
        prod, provenance, src_options = provenance_of(
            prod, cat, src_options, "convert the sources instead"
        )
        check_tag_free(prod, tag)
        refuse_update(prod)
        refs = resolve(sources, src_options)  # files, or in-memory datasets
        client = stack.enter_context(
            open_client(
                cluster,
                workers=workers,
                threads=threads,
                memory_limit=memory_limit,
                config=cluster_config(cat),
            )
        )
        virtual = prod.format not in ("zarr", "icechunk")
        scans, parts = scan_all(
            client, refs, provenance.get("concat_dim"), progress, virtual=virtual
        )
        params = provenance.get("parameters", {})
        fixes = attr_fixes(attrs) if attrs else AttrFixes.from_dict(params.get("attr_fixes") or {})
        explicit = parse_chunks(chunks)
        delta = run_update.prepare(
            prod, provenance, scans, variables=variables, chunks=explicit, fixes=fixes
        )
        if delta.nothing_to_do:
            plan = delta.plan
            result = ConvertResult("update", prod, plan, record=record)
            result.changes = {"unchanged": True}
            result.seconds = time.perf_counter() - started
            return result
        if virtual:
            # Refused here, before anything is written, when no chunk grid fits the sources.
            delta.plan.virtual_parts = parts
            # The recorded sources too: their chunks must fit the new ones.
            open_parts(client, delta.plan, range(len(delta.plan.sources)), progress)
            delta.plan.virtual_chunks = plan_chunks(
                delta.plan,
                delta.plan.virtual_parts,
                existing=product_chunks(prod, delta.plan),
                after=delta.old_length if delta.appended else 0,
            )
        parameters = {
            "product": prod.to_dict(),
            "sources": len(refs),
            "appended": delta.appended_sources(),
            "overwritten": delta.changed_sources(),
            "new_variables": sorted(delta.new_variables),
            "tag": tag,
            "check": check,
        }
        placed = Placed(prod.target, None, None, record is not None and managed(record))
        with unit(cat, "update", refs, parameters, user) as uow:
            if uow is not None:
                uow.transition(
                    "planned",
                    records=[record.id] if record else [],
                    sources=len(refs),
                    **({"version": record.version} if record else {}),
                )
                uow.transition("artifact_write_started")
            try:
                written, snapshot = run_update.apply(
                    client, prod, delta, uow, message=message, progress=progress
                )
                result = ConvertResult(
                    "update", prod, delta.plan, bytes_written=written, snapshot=snapshot
                )
                result.changes = delta.changes()
                finish(
                    result,
                    cat,
                    uow,
                    placed,
                    record.id if record else new_id(),
                    check,
                    samples,
                    progress,
                    record.title if record else None,
                    user,
                    current=record,
                    tag=tag,
                )
            except BaseException:
                if uow is None:
                    delta.undo()
                raise
        delta.cleanup()
        result.seconds = time.perf_counter() - started
        return result
