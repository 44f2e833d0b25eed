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
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from arcodex.convert._attrs import AttrFixes
from arcodex.convert._check import CheckReport, check_product, close_sources
from arcodex.convert._chunking import ChunkPattern, parse_chunks
from arcodex.convert._cluster import ClusterConfig, open_client
from arcodex.convert._plan import Plan, build_plan, jsonable
from arcodex.convert._product import PROVENANCE_ATTR, Product, ProductFormat
from arcodex.convert._sources import SourceRef, SourceScan, resolve_sources, scan_source
from arcodex.convert._target import Target
from arcodex.convert._write import WriteOptions
from arcodex.errors import ConflictError, ConversionError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.model import Record

__all__ = ["ConvertResult", "check", "convert", "open_product", "update"]

Progress = Callable[[str, int, int], None]
SourceSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
TargetKind = Literal["zarr", "icechunk", "virtual"]
_EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
    "kerchunk-parquet": ".parq",
}


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
    progress: Progress | None = None,
    user: str | None = None,
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
        progress: ``progress(stage, done, total)`` callback.
        user: Who to record as the operation's user.

    Returns:
        A :class:`ConvertResult`.
    """
    started = time.perf_counter()
    fmt = _format(to, format)
    fixes = _fixes(attrs)
    options = WriteOptions(
        zarr_format=zarr_format, codec=codec, level=level, shards=parse_chunks(shards)
    )
    if fmt in ("icechunk",) and zarr_format == 2:
        raise ValidationError("Icechunk stores Zarr format 3 only; drop --zarr-format 2")
    with ExitStack() as stack:
        cat = _open_catalog(catalog, stack)
        src_options = _source_options(cat, source_profile, storage_options)
        refs = resolve_sources(sources, src_options)
        placed = _place(cat, fmt, dest, dest_options, profile, key, refs)
        product = Product(
            fmt,
            placed.target,
            group=group,
            branch=branch,
            containers=_containers(refs) if fmt != "zarr" and fmt != "icechunk" else (),
            source_options=src_options,
        )
        if placed.target.exists() and not overwrite:
            raise ConflictError(
                f"a product already exists at {placed.target.url}; run `arcodex update` to add sources, or pass --overwrite"
            )
        client = stack.enter_context(
            open_client(
                cluster,
                workers=workers,
                threads=threads,
                memory_limit=memory_limit,
                config=_cluster_config(cat),
            )
        )
        _say(progress, "scan", 0, len(refs))
        virtual = fmt not in ("zarr", "icechunk")
        scans, parts = _scan(client, refs, concat_dim, progress, virtual=virtual)
        grid_scan = _grid(grid, src_options) if grid else None
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
            # The profile's name only: `update` and `check` read the sources with it again.
            "source_profile": source_profile,
            **({"grid": str(grid), "grid_coords": dict(grid_coords or {})} if grid else {}),
        }
        plan.virtual_parts = parts
        provenance = {**plan.summary(), "parameters": parameters}
        with _unit(cat, "convert", refs, parameters, user) as uow:
            record_id = _new_id()
            if uow is not None:
                uow.transition("planned", records=[record_id], sources=len(refs))
                uow.transition("artifact_write_started")
                _journal_target(uow, placed, product)
            try:
                if overwrite and placed.target.exists():
                    placed.target.remove()
                written, snapshot = _write_new(
                    client, product, plan, options, provenance, message, tag, progress
                )
                result = ConvertResult(
                    "convert", product, plan, bytes_written=written, snapshot=snapshot
                )
                result.changes = {"appended_steps": plan.length, "sources": len(plan.sources)}
                _finish(result, cat, uow, placed, record_id, check, samples, progress, title, user)
            except BaseException:
                if uow is None:
                    placed.target.remove()
                raise
        result.seconds = time.perf_counter() - started
        return result


def check(
    product: str | os.PathLike[str] | Product,
    *,
    sources: SourceSpec | None = None,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    samples: int = 3,
    seed: int = 0,
    cluster: Any = "threads",
    source_profile: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    group: str | None = None,
    branch: str = "main",
) -> CheckReport:
    """Check a product against its sources (by default the sources it records)."""
    with ExitStack() as stack:
        cat = _open_catalog(catalog, stack)
        src_options = _source_options(cat, source_profile, storage_options)
        prod = _resolve_product(product, cat, dest_options, src_options, group, branch)
        provenance = prod.provenance()
        if not provenance:
            raise ValidationError(
                f"{prod.target.url} carries no arcodex provenance; pass --sources to check it against files"
            )
        prod, src_options = _recorded_profile(prod, provenance, cat, src_options)
        if sources is None:
            urls = [s["url"] for s in provenance.get("sources", [])]
            refs = [SourceRef(u, src_options if "://" in u else {}) for u in urls]
        else:
            refs = resolve_sources(sources, src_options)
        plan = _replan(stack, cat, refs, provenance, cluster, src_options)
        try:
            return check_product(prod, plan, samples=samples, seed=seed)
        finally:
            close_sources(plan)


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
) -> Any:
    """Open a product (path, URL, record id with a catalog) as an ``xarray.Dataset``."""
    with ExitStack() as stack:
        cat = _open_catalog(catalog, stack)
        src_options = _source_options(cat, source_profile, storage_options)
        prod = _resolve_product(product, cat, dest_options, src_options, group, branch)
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
    progress: Progress | None = None,
    user: str | None = None,
) -> ConvertResult:
    """Bring a product up to date with ``sources``: append, overwrite changed, add variables.

    Incompatible sources (other dims, dtypes or packing, steps before the product's
    start or between its steps, other chunks) are refused and nothing is written.
    Running the same update again changes nothing.
    """
    from arcodex.convert import _update as run_update

    started = time.perf_counter()
    with ExitStack() as stack:
        cat = _open_catalog(catalog, stack)
        src_options = _source_options(cat, source_profile, storage_options)
        prod = _resolve_product(product, cat, dest_options, src_options, group, branch)
        record = _record_of(cat, prod)
        provenance = prod.provenance()
        if not provenance:
            raise ValidationError(
                f"{prod.target.url} was not made by arcodex (no provenance); convert the sources instead"
            )
        prod, src_options = _recorded_profile(prod, provenance, cat, src_options)
        refs = resolve_sources(sources, src_options)
        client = stack.enter_context(
            open_client(
                cluster,
                workers=workers,
                threads=threads,
                memory_limit=memory_limit,
                config=_cluster_config(cat),
            )
        )
        scans, _ = _scan(client, refs, provenance.get("concat_dim"), progress)
        params = provenance.get("parameters", {})
        fixes = _fixes(attrs) if attrs else AttrFixes.from_dict(params.get("attr_fixes") or {})
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
        parameters = {
            "product": prod.to_dict(),
            "sources": len(refs),
            "appended": delta.appended_sources(),
            "overwritten": delta.changed_sources(),
            "new_variables": sorted(delta.new_variables),
            "tag": tag,
            "check": check,
        }
        placed = _Placed(prod.target, None, None, record is not None and _managed(record))
        with _unit(cat, "update", refs, parameters, user) as uow:
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
                    client, prod, delta, uow, message=message, tag=tag, progress=progress
                )
                result = ConvertResult(
                    "update", prod, delta.plan, bytes_written=written, snapshot=snapshot
                )
                result.changes = delta.changes()
                _finish(
                    result,
                    cat,
                    uow,
                    placed,
                    record.id if record else _new_id(),
                    check,
                    samples,
                    progress,
                    record.title if record else None,
                    user,
                    current=record,
                )
            except BaseException:
                if uow is None:
                    delta.undo()
                raise
        delta.cleanup()
        result.seconds = time.perf_counter() - started
        return result


# -- pieces -------------------------------------------------------------------------------


@dataclass
class _Placed:
    target: Target
    profile: str | None
    key: str | None
    managed: bool
    locator: Any = None


def _format(to: str, format: str) -> ProductFormat:
    if to == "zarr":
        return "zarr"
    if to == "icechunk":
        return "icechunk"
    if to == "virtual":
        if format == "icechunk":
            return "virtual-icechunk"
        if format in ("kerchunk", "kerchunk-parquet"):
            return format  # type: ignore[return-value]
        raise ValidationError(
            f"unknown virtual format {format!r}; use icechunk, kerchunk or kerchunk-parquet"
        )
    raise ValidationError(f"unknown target {to!r}; use zarr, icechunk or virtual")


def _fixes(attrs: AttrFixes | Mapping[str, Any] | None) -> AttrFixes:
    if attrs is None:
        return AttrFixes()
    if isinstance(attrs, AttrFixes):
        return attrs
    return AttrFixes.from_dict(attrs)


def _open_catalog(catalog: Any, stack: ExitStack) -> Catalog | None:
    if catalog is None:
        return None
    from arcodex.catalog import Catalog

    if isinstance(catalog, Catalog):
        return catalog
    return stack.enter_context(Catalog.open(catalog))


def _cluster_config(cat: Catalog | None) -> ClusterConfig | None:
    if cat is None:
        return None
    return cat.config.cluster


def _source_options(
    cat: Catalog | None, source_profile: str | None, storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    if storage_options:
        return dict(storage_options)
    if source_profile:
        if cat is None:
            raise ValidationError("--source-profile needs a catalog (--catalog) that defines it")
        return _profile_options(cat, source_profile)
    return {}


def _profile_options(cat: Catalog, name: str) -> dict[str, Any]:
    store = cat.storage(name)
    fs = getattr(store, "fs", None)
    return dict(getattr(fs, "storage_options", {}) or {})


def _place(
    cat: Catalog | None,
    fmt: ProductFormat,
    dest: str | os.PathLike[str] | None,
    dest_options: Mapping[str, Any] | None,
    profile: str | None,
    key: str | None,
    refs: Sequence[SourceRef],
) -> _Placed:
    if dest is not None:
        return _Placed(Target.of(dest, dest_options), None, None, False)
    if cat is None:
        raise ValidationError("say where the product goes: --dest PATH_OR_URL, or use a catalog")
    from arcodex.storage import LocalStore

    name = profile or cat.config.default_profile
    store = cat.storage(name)
    key = key or f"products/{_product_name(refs)}{_EXT[fmt]}"
    if isinstance(store, LocalStore):
        return _Placed(Target(str(store.full_path(key))), name, key, True, store.locator(key))
    return _Placed(
        Target(store.url(key), dict(store.fs.storage_options)), name, key, True, store.locator(key)
    )


def _product_name(refs: Sequence[SourceRef]) -> str:
    stems = [r.name.rsplit(".", 1)[0] for r in refs]
    prefix = stems[0] if stems else ""
    for stem in stems[1:]:
        while not stem.startswith(prefix):
            prefix = prefix[:-1]
    prefix = re.sub(r"[_\-.\d]+$", "", prefix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix) or "product"


def _containers(refs: Sequence[SourceRef]) -> tuple[str, ...]:
    """The virtual chunk container prefixes that cover the sources."""
    prefixes: set[str] = set()
    for ref in refs:
        if ref.is_local:
            # The top directory: updates may bring files from other directories below it.
            top = Path(ref.url).parts[1] if len(Path(ref.url).parts) > 2 else ""
            prefixes.add(f"file:///{top}/" if top else "file:///")
    for ref in refs:
        if not ref.is_local:
            protocol, rest = ref.url.split("://", 1)
            prefixes.add(f"{protocol}://{rest.split('/', 1)[0]}/")
    return tuple(sorted(prefixes))


def _scan(
    client: Any,
    refs: Sequence[SourceRef],
    concat_dim: str | None,
    progress: Progress | None,
    *,
    virtual: bool = False,
) -> tuple[list[SourceScan], dict[str, Any]]:
    """Scan every source on the cluster (and, for virtual targets, make its references too).

    Sources go in batches, a few per worker, so that a task is worth its scheduling.
    """
    from distributed import as_completed

    from arcodex.convert._writers import scan_batch

    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    size = max(1, min(16, len(refs) // (workers * 3)))
    batches = [list(refs[i : i + size]) for i in range(0, len(refs), size)]
    futures = client.map(scan_batch, batches, concat_dim=concat_dim, virtual=virtual, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(batches)
    done = 0
    try:
        for future in as_completed(futures, loop=client.loop):
            results[index[future.key]] = future.result()
            done += len(batches[index[future.key]])
            _say(progress, "scan", done, len(refs))
    except BaseException:
        client.cancel(futures)
        raise
    flat = [item for batch in results for item in batch]
    if not virtual:
        return flat, {}
    return [s for s, _ in flat], {s.ref.url: part for s, part in flat}


def _grid(grid: str | os.PathLike[str], options: Mapping[str, Any]) -> SourceScan:
    [ref] = resolve_sources(os.fspath(grid), options)[:1]
    return scan_source(ref, concat_dim="__none__")


def _say(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _new_id() -> str:
    from arcodex.model import new_id

    return new_id()


@contextmanager
def _unit(
    cat: Catalog | None,
    action: str,
    refs: Sequence[SourceRef],
    parameters: Mapping[str, Any],
    user: str | None,
) -> Iterator[UnitOfWork | None]:
    if cat is None:
        yield None
        return
    with cat.unit_of_work(
        action, user=user, inputs=[r.url for r in refs][:1000], parameters=jsonable(parameters)
    ) as uow:
        yield uow


def _journal_target(uow: UnitOfWork, placed: _Placed, product: Product) -> None:
    """Journal the product before writing it: a crash leaves it listed for `recover`."""
    if placed.profile is not None and placed.key is not None:
        uow.on_rollback(f"remove {placed.key}", placed.target.remove, key=placed.key)
        uow.transition("artifact_written", profile=placed.profile, key=placed.key)
    else:
        uow.on_rollback(f"remove {placed.target.url}", placed.target.remove, url=placed.target.url)
        uow.transition("artifact_written", url=placed.target.url, format=product.format)


def _write_new(
    client: Any,
    product: Product,
    plan: Plan,
    options: WriteOptions,
    provenance: Mapping[str, Any],
    message: str | None,
    tag: str | None,
    progress: Progress | None,
) -> tuple[int, str | None]:
    from arcodex.convert import _writers

    plan.attrs[PROVENANCE_ATTR] = json.dumps(jsonable(provenance), sort_keys=True)
    if product.format == "zarr":
        return _writers.write_zarr(client, product, plan, options, progress), None
    if product.format == "icechunk":
        return _writers.write_icechunk(
            client, product, plan, options, message or _message("convert", plan), tag, progress
        )
    return _writers.write_virtual(
        client, product, plan, message or _message("convert", plan), tag, progress
    )


def _message(action: str, plan: Plan) -> str:
    first, last = plan.time_range()
    names = [s.url.rsplit("/", 1)[-1] for s in plan.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"arcodex {action}: {len(names)} sources ({shown}), {plan.concat_dim} {first} to {last}"


def _finish(
    result: ConvertResult,
    cat: Catalog | None,
    uow: UnitOfWork | None,
    placed: _Placed,
    record_id: str,
    run_check: bool,
    samples: int,
    progress: Progress | None,
    title: str | None,
    user: str | None,
    *,
    current: Record | None = None,
) -> None:
    if run_check:
        _say(progress, "check", 0, 1)
        try:
            result.report = check_product(result.product, result.plan, samples=samples)
        finally:
            close_sources(result.plan)
        _say(progress, "check", 1, 1)
        if result.report.status == "fail":
            raise ConversionError(
                f"the product failed its check and was rolled back: {result.report.reasons[0]}"
                + (
                    f" (and {len(result.report.reasons) - 1} more)"
                    if len(result.report.reasons) > 1
                    else ""
                )
            )
    if cat is None or uow is None:
        return
    from arcodex.convert._record import product_record

    record = product_record(
        result, placed, record_id, title, uow.operation.id, current=current, user=user
    )
    result.operation_id = uow.operation.id
    uow.transition("artifact_write_succeeded")
    if current is None:
        cat._write_records(uow, [record])
    else:
        record = cat._replace_record(uow, current, record)
    result.record = record


def _managed(record: Record) -> bool:
    return any(a.managed for a in record.artifacts if a.role == "primary")


def _resolve_product(
    product: str | os.PathLike[str] | Product,
    cat: Catalog | None,
    dest_options: Mapping[str, Any] | None,
    src_options: Mapping[str, Any],
    group: str | None,
    branch: str,
) -> Product:
    if isinstance(product, Product):
        return product
    text = os.fspath(product)
    if cat is not None and "/" not in text and not Path(text).exists():
        record = cat.get(text)
        primary = next((a for a in record.artifacts if a.role == "primary"), None)
        if primary is None:
            raise ValidationError(f"record {record.id} has no product artifact")
        text = cat.locate(primary)
        conv = record.metadata.get("convert", {})
        group = group or conv.get("group")
        if not dest_options and "://" in text:
            name = getattr(primary.locator, "profile", None)
            dest_options = _profile_options(cat, name) if name else None
    prod = Product.detect(
        text, dest_options, group=group, branch=branch, source_options=src_options
    )
    return prod


def _recorded_profile(
    product: Product,
    provenance: Mapping[str, Any],
    cat: Catalog | None,
    src_options: dict[str, Any],
) -> tuple[Product, dict[str, Any]]:
    """Read remote sources with the profile the conversion used, unless told otherwise."""
    name = provenance.get("parameters", {}).get("source_profile")
    if src_options or not name or cat is None:
        return product, src_options
    options = _profile_options(cat, str(name))
    return dataclasses.replace(product, source_options=options), options


def _record_of(cat: Catalog | None, product: Product) -> Record | None:
    if cat is None:
        return None
    found = cat.search(kind="dataset", **{"convert.product.url": product.target.url})  # type: ignore[arg-type]
    records: list[Record] = list(found.records)
    return records[0] if records else None


def _replan(
    stack: ExitStack,
    cat: Catalog | None,
    refs: Sequence[SourceRef],
    provenance: Mapping[str, Any],
    cluster: Any,
    src_options: Mapping[str, Any],
) -> Plan:
    """The plan the product was made with, from its sources as they are now."""
    client = stack.enter_context(open_client(cluster, config=_cluster_config(cat)))
    dim = provenance.get("concat_dim")
    scans, _ = _scan(client, refs, dim, None)
    params = provenance.get("parameters", {})
    grid_scan = None
    if params.get("grid"):
        grid_scan = _grid(params["grid"], src_options)
    variables = list(provenance.get("variables", {}))
    plan = build_plan(
        scans,
        concat_dim=dim,
        variables=variables or None,
        chunks={},
        fixes=AttrFixes.from_dict(params.get("attr_fixes") or {}),
        grid=grid_scan,
        grid_coords=params.get("grid_coords"),
    )
    for name, var in plan.variables.items():
        stored = provenance.get("variables", {}).get(name)
        if stored:
            var.chunks = tuple(stored["chunks"])
    plan.attrs[PROVENANCE_ATTR] = ""
    plan.attrs.pop(PROVENANCE_ATTR)
    return plan
