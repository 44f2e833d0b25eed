"""``convert``, ``update`` and ``check``: the conversion engine's public API.

``convert`` and ``update`` take a :class:`~arcodex.convert.ConvertSpec` (their
keywords build one) and run it as a pipeline of named steps
(:mod:`arcodex.convert._pipelines`): resolve the sources, scan them on Dask
workers, plan the product, write it (chunks on the workers, metadata on the
client), check it against its sources and, with a catalog, register it, all in
one unit of work: a ``dataset`` record with the product, its sources and the
check report as artifacts, and lineage to the operation. A failure (or a
failed check) rolls everything back: the partial product is removed and
nothing is registered. A dry run stops after the plan.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Literal

from arcodex.catalog import Pipeline, PipelineContext, run_pipeline
from arcodex.convert._access import cluster_config, open_catalog_arg
from arcodex.convert._attrs import AttrFixes
from arcodex.convert._check import CheckReport, check_product
from arcodex.convert._chunking import ChunkPattern
from arcodex.convert._cluster import open_client
from arcodex.convert._locate import locate_product
from arcodex.convert._pipelines import CONVERT, UPDATE, Job, Runtime
from arcodex.convert._preview import preview
from arcodex.convert._product import Product
from arcodex.convert._progress import Progress
from arcodex.convert._provenance import check_against_sources, provenance_of
from arcodex.convert._pyramid import at_level
from arcodex.convert._result import ConvertResult
from arcodex.convert._scan import scan_all
from arcodex.convert._sources import SourceRef, resolve_sources
from arcodex.convert._spec import ConvertSpec
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = ["ConvertResult", "check", "convert", "open_product", "update"]

#: Files, a glob, a directory, a manifest or URLs; or an ``xarray.Dataset`` (or a list).
SourceSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Any
TargetKind = Literal["zarr", "icechunk", "virtual"]


# -- the public API -----------------------------------------------------------------------


def convert(
    sources: SourceSpec | ConvertSpec,
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
    pyramid: int | None = None,
    progress: Progress | None = None,
    user: str | None = None,
    dry_run: bool = False,
) -> ConvertResult:
    """Convert NetCDF/HDF5 ``sources`` into an ARCO product.

    Args:
        sources: Files, a glob, a directory, a manifest (CSV/YAML/TXT) or URLs; or a
            :class:`ConvertSpec` holding everything below but the runtime arguments
            (``catalog``, ``storage_options``, ``dest_options``, ``progress``, ``user``,
            ``dry_run``, and ``cluster`` when it is a ``distributed.Client``).
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
        pyramid: Write this many resolution levels (groups ``0``, ``1``, …, each
            coarsened 2x along the spatial dims; zarr and icechunk).
        progress: ``progress(stage, done, total)`` callback.
        user: Who to record as the operation's user.
        dry_run: Resolve, scan and plan only: nothing is written or registered, and the
            result describes the product that would be made (``result.layout``).

    Returns:
        A :class:`ConvertResult`.
    """
    runtime = Runtime(storage_options, dest_options, progress, _client_arg(cluster))
    spec = _spec_of(
        sources,
        to=to,
        dest=dest,
        profile=profile,
        key=key,
        format=format,
        concat_dim=concat_dim,
        variables=variables,
        chunks=chunks,
        chunking=chunking,
        chunk_mb=chunk_mb,
        zarr_format=zarr_format,
        codec=codec,
        level=level,
        shards=shards,
        attrs=attrs,
        grid=grid,
        grid_coords=grid_coords,
        group=group,
        branch=branch,
        tag=tag,
        message=message,
        cluster=None if runtime.client is not None else cluster,
        workers=workers,
        threads=threads,
        memory_limit=memory_limit,
        check=check,
        samples=samples,
        overwrite=overwrite,
        title=title,
        source_profile=source_profile,
        dest_profile=dest_profile,
        pyramid=pyramid or 1,
    )
    return _run(CONVERT, spec, catalog, runtime, user, dry_run)


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
    sources: SourceSpec | ConvertSpec,
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
    dry_run: bool = False,
) -> ConvertResult:
    """Bring a product up to date with ``sources``: append, overwrite changed, add variables.

    Incompatible sources (other dims, dtypes or packing, steps before the product's
    start or between its steps, other chunks) are refused and nothing is written.
    Running the same update again changes nothing. An ``s3://`` product is
    reached with ``dest_profile``'s credentials, else as :func:`convert` does.

    ``sources`` may be a :class:`ConvertSpec` instead (its sources, variables, chunks,
    attrs, group, branch, tag, message, check, samples, cluster and profiles are used;
    the rest the product already records). ``dry_run`` plans the update and writes
    nothing.
    """
    runtime = Runtime(storage_options, dest_options, progress, _client_arg(cluster), product)
    spec = _spec_of(
        sources,
        variables=variables,
        chunks=chunks,
        attrs=attrs,
        group=group,
        branch=branch,
        tag=tag,
        message=message,
        cluster=None if runtime.client is not None else cluster,
        workers=workers,
        threads=threads,
        memory_limit=memory_limit,
        check=check,
        samples=samples,
        source_profile=source_profile,
        dest_profile=dest_profile,
    )
    return _run(UPDATE, spec, catalog, runtime, user, dry_run)


def _run(
    pipeline: Pipeline,
    spec: ConvertSpec,
    catalog: Catalog | str | os.PathLike[str] | None,
    runtime: Runtime,
    user: str | None,
    dry_run: bool,
) -> ConvertResult:
    """Run ``pipeline`` (convert or update) for ``spec``, undoing its writes on failure."""
    started = time.perf_counter()
    action: Literal["convert", "update"] = "update" if pipeline is UPDATE else "convert"
    with ExitStack() as stack:
        cat = open_catalog_arg(catalog, stack)
        job = Job(action, spec, runtime, cat, stack)
        ctx = PipelineContext(
            catalog=cat, params={"spec": spec}, dry_run=dry_run, user=user, state={"job": job}
        )
        try:
            run_pipeline(pipeline, ctx)
        except BaseException:
            job.undo()
            raise
        job.done()
        result = job.result if job.result is not None and not dry_run else preview(job)
        result.steps = [(name, round(seconds, 6)) for name, seconds in ctx.timings]
        result.skipped = list(ctx.skipped)
        result.seconds = time.perf_counter() - started
        return result


def _spec_of(sources: Any, **fields: Any) -> ConvertSpec:
    """The spec ``sources`` is, or the one the keywords make (not both)."""
    if not isinstance(sources, ConvertSpec):
        return ConvertSpec(sources=sources, **fields)
    defaults = ConvertSpec.model_fields
    given = [k for k, v in fields.items() if v is not None and v != defaults[k].default]
    if given:
        raise ValidationError(
            f"pass a ConvertSpec or keywords, not both ({given[0]}=…); "
            f"use spec.replace({given[0]}=…)"
        )
    return sources


def _client_arg(cluster: Any) -> Any:
    """A ``distributed.Client`` passed as ``cluster`` (used as it is, never stored)."""
    return None if cluster is None or isinstance(cluster, str) else cluster
