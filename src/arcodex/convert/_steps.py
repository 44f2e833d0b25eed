"""The steps the public API is made of: where a product goes, scanning, journaling,
checking and registering it, and finding it again."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.convert._attrs import AttrFixes
from arcodex.convert._check import CheckReport, check_product, close_sources
from arcodex.convert._cluster import ClusterConfig, cancel_and_wait
from arcodex.convert._dest import dest_access, reach
from arcodex.convert._plan import Plan, build_plan, jsonable
from arcodex.convert._product import PROVENANCE_ATTR, Product, ProductFormat
from arcodex.convert._sources import SourceRef, SourceScan, resolve_sources, scan_source
from arcodex.convert._target import Target
from arcodex.convert._write import WriteOptions
from arcodex.errors import ConversionError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.convert._api import ConvertResult
    from arcodex.model import Record

    Progress = Callable[[str, int, int], None]

_EXT = {
    "zarr": ".zarr",
    "icechunk": ".icechunk",
    "virtual-icechunk": ".icechunk",
    "kerchunk": ".json",
    "kerchunk-parquet": ".parq",
}


@dataclass
class Placed:
    target: Target
    profile: str | None
    key: str | None
    managed: bool
    locator: Any = None
    dest_profile: str | None = None  # the profile whose credentials reach a --dest


def product_format(to: str, format: str) -> ProductFormat:
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


def attr_fixes(attrs: AttrFixes | Mapping[str, Any] | None) -> AttrFixes:
    if attrs is None:
        return AttrFixes()
    if isinstance(attrs, AttrFixes):
        return attrs
    return AttrFixes.from_dict(attrs)


def open_catalog_arg(catalog: Any, stack: ExitStack) -> Catalog | None:
    if catalog is None:
        return None
    from arcodex.catalog import Catalog

    if isinstance(catalog, Catalog):
        return catalog
    return stack.enter_context(Catalog.open(catalog))


def cluster_config(cat: Catalog | None) -> ClusterConfig | None:
    if cat is None:
        return None
    return cat.config.cluster


def source_options(
    cat: Catalog | None, source_profile: str | None, storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    if storage_options:
        return dict(storage_options)
    if source_profile:
        if cat is None:
            raise ValidationError("--source-profile needs a catalog (--catalog) that defines it")
        return profile_options(cat, source_profile)
    return {}


def profile_options(cat: Catalog, name: str) -> dict[str, Any]:
    store = cat.storage(name)
    fs = getattr(store, "fs", None)
    return dict(getattr(fs, "storage_options", {}) or {})


def place(
    cat: Catalog | None,
    fmt: ProductFormat,
    dest: str | os.PathLike[str] | None,
    dest_options: Mapping[str, Any] | None,
    profile: str | None,
    key: str | None,
    refs: Sequence[SourceRef],
    dest_profile: str | None = None,
) -> Placed:
    if dest is not None:
        options, name = dest_access(cat, os.fspath(dest), dest_profile, dest_options)
        target = Target.of(dest, options)
        reach(target, name, cat, option="--dest-profile NAME")
        return Placed(target, None, None, False, dest_profile=name)
    if cat is None:
        raise ValidationError("say where the product goes: --dest PATH_OR_URL, or use a catalog")
    from arcodex.storage import LocalStore

    name = profile or cat.config.default_profile
    store = cat.storage(name)
    key = key or f"products/{product_name(refs)}{_EXT[fmt]}"
    if isinstance(store, LocalStore):
        return Placed(Target(str(store.full_path(key))), name, key, True, store.locator(key))
    return Placed(
        Target(store.url(key), dict(store.fs.storage_options)), name, key, True, store.locator(key)
    )


def product_name(refs: Sequence[SourceRef]) -> str:
    stems = [r.name.rsplit(".", 1)[0] for r in refs]
    prefix = stems[0] if stems else ""
    for stem in stems[1:]:
        while not stem.startswith(prefix):
            prefix = prefix[:-1]
    prefix = re.sub(r"[_\-.\d]+$", "", prefix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix) or "product"


def containers(refs: Sequence[SourceRef]) -> tuple[str, ...]:
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


def scan_all(
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
            say(progress, "scan", done, len(refs))
    except BaseException:
        cancel_and_wait(client, futures)
        raise
    flat = [item for batch in results for item in batch]
    if not virtual:
        return flat, {}
    return [s for s, _ in flat], {s.ref.url: part for s, part in flat}


def scan_grid(grid: str | os.PathLike[str], options: Mapping[str, Any]) -> SourceScan:
    [ref] = resolve_sources(os.fspath(grid), options)[:1]
    return scan_source(ref, concat_dim="__none__")


def say(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


@contextmanager
def unit(
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


def write_new(
    client: Any,
    product: Product,
    plan: Plan,
    options: WriteOptions,
    provenance: Mapping[str, Any],
    message: str | None,
    progress: Progress | None,
) -> tuple[int, str | None]:
    from arcodex.convert import _writers

    plan.attrs[PROVENANCE_ATTR] = json.dumps(jsonable(provenance), sort_keys=True)
    if product.format == "zarr":
        return _writers.write_zarr(client, product, plan, options, progress), None
    if product.format == "icechunk":
        return _writers.write_icechunk(
            client,
            product,
            plan,
            options,
            message or commit_message("convert", plan),
            progress,
        )
    return _writers.write_virtual(
        client, product, plan, message or commit_message("convert", plan), progress
    )


def commit_message(action: str, plan: Plan) -> str:
    first, last = plan.time_range()
    names = [s.url.rsplit("/", 1)[-1] for s in plan.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"arcodex {action}: {len(names)} sources ({shown}), {plan.concat_dim} {first} to {last}"


def finish(
    result: ConvertResult,
    cat: Catalog | None,
    uow: UnitOfWork | None,
    placed: Placed,
    record_id: str,
    run_check: bool,
    samples: int,
    progress: Progress | None,
    title: str | None,
    user: str | None,
    *,
    current: Record | None = None,
    tag: str | None = None,
    swap: Callable[[ConvertResult], None] | None = None,
) -> None:
    """Check the product, put it in place (``swap``, for a staged product), register it,
    and tag its snapshot: in that order, so that a failure at any step leaves nothing
    behind (Icechunk never reuses a tag name)."""
    if run_check:
        say(progress, "check", 0, 1)
        try:
            # Checked as `arcodex check` checks it: from what the product records.
            result.report = check_against_sources(
                result.product, result.plan.scans, result.product.provenance(), samples=samples
            )
        finally:
            close_sources(result.plan)
        say(progress, "check", 1, 1)
        if result.report.status == "fail":
            raise ConversionError(
                f"the product failed its check and was rolled back: {result.report.reasons[0]}"
                + (
                    f" (and {len(result.report.reasons) - 1} more)"
                    if len(result.report.reasons) > 1
                    else ""
                )
            )
    if swap is not None:
        swap(result)
    if cat is not None and uow is not None:
        register(result, cat, uow, placed, record_id, title, user, current, tag=tag)
    if tag and result.snapshot:
        from arcodex.convert._writers import tag_snapshot

        tag_snapshot(result.product, tag, result.snapshot)


def register(
    result: ConvertResult,
    cat: Catalog,
    uow: UnitOfWork,
    placed: Placed,
    record_id: str,
    title: str | None,
    user: str | None,
    current: Record | None,
    *,
    tag: str | None = None,
) -> None:
    """Write (or replace) the product's record in the unit of work (``tag``: the name the
    new snapshot is about to be given)."""
    from arcodex.convert._record import product_record

    record = product_record(
        result, placed, record_id, title, uow.operation.id, current=current, user=user, tag=tag
    )
    result.operation_id = uow.operation.id
    uow.transition("artifact_write_succeeded")
    if current is None:
        cat._write_records(uow, [record])
    else:
        record = cat._replace_record(uow, current, record)
    result.record = record


def managed(record: Record) -> bool:
    return any(a.managed for a in record.artifacts if a.role == "primary")


def resolve_product(
    product: str | os.PathLike[str] | Product,
    cat: Catalog | None,
    dest_options: Mapping[str, Any] | None,
    src_options: Mapping[str, Any],
    group: str | None,
    branch: str,
    dest_profile: str | None = None,
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
            dest_options = profile_options(cat, name) if name else None
    if "://" in text and not dest_options:
        dest_options, found = dest_access(cat, text, dest_profile, None)
        reach(Target.of(text, dest_options), found, cat, option="--dest-profile NAME")
    prod = Product.detect(
        text, dest_options, group=group, branch=branch, source_options=src_options
    )
    return prod


def locate_product(
    stack: ExitStack,
    product: str | os.PathLike[str] | Product,
    catalog: Any,
    source_profile: str | None,
    storage_options: Mapping[str, Any] | None,
    dest_options: Mapping[str, Any] | None,
    group: str | None,
    branch: str,
    dest_profile: str | None = None,
) -> tuple[Catalog | None, Product, dict[str, Any]]:
    """The catalog (opened on ``stack``), the product, and the options to read its sources."""
    cat = open_catalog_arg(catalog, stack)
    options = source_options(cat, source_profile, storage_options)
    found = resolve_product(product, cat, dest_options, options, group, branch, dest_profile)
    return cat, found, options


def provenance_of(
    product: Product, cat: Catalog | None, options: dict[str, Any], what_else: str
) -> tuple[Product, dict[str, Any], dict[str, Any]]:
    """The product's provenance, with the source profile it records applied.

    Raises:
        ValidationError: the product was not made by arcodex (``what_else`` says what to do).
    """
    provenance = product.provenance()
    if not provenance:
        raise ValidationError(f"{product.target.url} carries no arcodex provenance; {what_else}")
    product, options = recorded_profile(product, provenance, cat, options)
    return product, provenance, options


def recorded_profile(
    product: Product,
    provenance: Mapping[str, Any],
    cat: Catalog | None,
    src_options: dict[str, Any],
) -> tuple[Product, dict[str, Any]]:
    """Read remote sources with the profile the conversion used, unless told otherwise."""
    name = provenance.get("parameters", {}).get("source_profile")
    if src_options or not name or cat is None:
        return product, src_options
    options = profile_options(cat, str(name))
    return dataclasses.replace(product, source_options=options), options


def record_of(cat: Catalog | None, product: Product) -> Record | None:
    if cat is None:
        return None
    found = cat.search(kind="dataset", **{"convert.product.url": product.target.url})  # type: ignore[arg-type]
    records: list[Record] = list(found.records)
    return records[0] if records else None


def recorded_plan(
    scans: Sequence[SourceScan], provenance: Mapping[str, Any], src_options: Mapping[str, Any]
) -> Plan:
    """The plan of a product, as its provenance records it, over the sources ``scans``.

    The one plan a product is checked against: by ``check``, and by ``convert`` and
    ``update`` right after writing (from the product's provenance, as written).
    """
    dim = provenance.get("concat_dim")
    params = provenance.get("parameters", {})
    grid_scan = None
    if params.get("grid"):
        grid_scan = scan_grid(params["grid"], src_options)
    variables = list(provenance.get("variables", {}))
    plan = build_plan(
        scans,
        concat_dim=dim,
        variables=variables or None,
        chunks={},
        fixes=AttrFixes.from_dict(params.get("attr_fixes") or {}),
        grid=grid_scan,
        grid_coords=params.get("grid_coords"),
        concat_units=provenance.get("concat_units"),
    )
    for name, var in plan.variables.items():
        stored = provenance.get("variables", {}).get(name)
        if stored:
            var.chunks = tuple(stored["chunks"])
    if params.get("format") == "zarr":
        from arcodex.convert._write import fill_attrs

        fill_attrs(plan, int(params.get("write", {}).get("zarr_format", 3)))
    plan.attrs[PROVENANCE_ATTR] = ""
    plan.attrs.pop(PROVENANCE_ATTR)
    return plan


def check_against_sources(
    product: Product,
    scans: Sequence[SourceScan],
    provenance: Mapping[str, Any],
    *,
    samples: int = 3,
    seed: int | None = None,
    full: bool = False,
    recorded: Sequence[Mapping[str, Any]] | None = None,
) -> CheckReport:
    """Check ``product`` against the sources ``scans`` describe, with the plan its provenance
    records (the one check path of ``convert``, ``update`` and ``check``)."""
    plan = recorded_plan(scans, provenance, product.source_options)
    try:
        return check_product(
            product, plan, samples=samples, seed=seed, full=full, recorded=recorded
        )
    finally:
        close_sources(plan)
