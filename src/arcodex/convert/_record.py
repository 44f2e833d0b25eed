"""The catalog record of a product (the product, its sources and its check report),
and writing it in the operation's unit of work."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from arcodex.convert._plan import jsonable
from arcodex.convert._product import MEDIA_TYPES
from arcodex.convert._sources import DATASET_SCHEME
from arcodex.storage import content_size

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.convert._place import Placed
    from arcodex.convert._result import ConvertResult
    from arcodex.model import Record

__all__ = ["product_record", "register"]

#: The largest report kept inline in the record; bigger ones are cut to their reasons.
_INLINE_LIMIT = 256 * 1024
_SOURCE_TYPES = {
    False: ("application/x-netcdf", "netcdf"),
    True: ("application/x-xarray-dataset", "xarray-dataset"),
}


def _levels(product: Any) -> dict[str, Any]:
    """``levels`` of a multi-level product (``convert --pyramid``), for STAC and stores."""
    from arcodex.convert._pyramid import levels_of, product_layout

    levels = levels_of(product_layout(product))
    return {"levels": levels} if levels else {}


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
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> None:
    """Write (or replace) the product's record in the unit of work (``tag``: the name the
    new snapshot is about to be given; ``metadata`` and ``tags``: the spec's, for a new
    record)."""
    record = product_record(
        result,
        placed,
        record_id,
        title,
        uow.operation.id,
        current=current,
        user=user,
        tag=tag,
        metadata=metadata,
        tags=tags,
    )
    result.operation_id = uow.operation.id
    uow.transition("artifact_write_succeeded")
    if current is None:
        (record,) = cat._write_records(uow, [record])
    else:
        record = cat._replace_record(uow, current, record)
    result.record = record


def product_record(
    result: ConvertResult,
    placed: Placed,
    record_id: str,
    title: str | None,
    operation_id: str,
    *,
    current: Record | None = None,
    user: str | None = None,
    tag: str | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> Record:
    """The record of a product just written (replacing ``current``, for an update).

    ``metadata`` and ``tags`` (a spec's) are the new record's besides what is read
    from the product; what is read wins a clash.

    Its metadata holds what STAC needs, read from the product now so that no
    reader has to open it: the datacube (:data:`~arcodex.extract._datacube.DATACUBE`)
    and, for Icechunk, every tag with its own (``convert.tags``; ``tag`` is the
    one about to be given to ``result.snapshot``).
    """
    from arcodex.extract._datacube import DATACUBE
    from arcodex.model import Artifact, ExternalUri, Inline, Lineage, LocalPath, Record, utcnow

    product, plan = result.product, result.plan
    described = _describe(result)
    top = described.pop("_top", {})
    cube = described.pop(DATACUBE, None)
    first, last = plan.time_range()
    given = dict(metadata or {})
    metadata = {
        **given,
        **top,
        "dims": described.get("dims", dict(plan.dims)),
        "variables": described.get("variables", {}),
        **({DATACUBE: cube} if cube is not None else {}),
        **_levels(product),
        "convert": {
            **product.to_dict(),
            "product": product.to_dict(),
            "concat_dim": plan.concat_dim,
            "steps": plan.length,
            "sources": len(plan.sources),
            "first": first,
            "last": last,
            "chunks": {k: list(v.chunks) for k, v in plan.variables.items()},
            "check": result.status,
            "group": product.group,
            # Where the sources are read from, without secrets: how readers of references reach them.
            **_source_options(product),
            **({"snapshot": result.snapshot} if result.snapshot else {}),
            **({"warnings": plan.warnings} if plan.warnings else {}),
            **_tags(result, cube, current, tag),
        },
    }
    locator: Any
    if placed.locator is not None:
        locator = placed.locator
    elif product.target.is_local:
        locator = LocalPath(path=product.target.url)
    else:
        locator = ExternalUri(uri=product.target.url)
    if current is not None:
        old = next((a for a in current.artifacts if a.role == "primary"), None)
        if old is not None:
            locator = old.locator
    artifacts = [
        Artifact(
            role="primary",
            locator=locator,
            media_type=MEDIA_TYPES[product.format],
            format=product.format,
            size_bytes=_size(product),
            managed=placed.managed,
            metadata=jsonable(product.to_dict()),
        )
    ]
    for source in plan.sources:
        in_memory = source.url.startswith(DATASET_SCHEME)
        artifacts.append(
            Artifact(
                role="source",
                locator=ExternalUri(uri=source.url)
                if "://" in source.url
                else LocalPath(path=source.url),
                # An in-memory dataset has no path: its URL is its digest.
                media_type=_SOURCE_TYPES[in_memory][0],
                format=_SOURCE_TYPES[in_memory][1],
                size_bytes=source.size,
                metadata={
                    "fingerprint": source.fingerprint,
                    "start": source.start,
                    "length": source.length,
                    "first": source.first,
                    "last": source.last,
                },
            )
        )
    if result.report is not None:
        report = result.report.to_dict()
        text = json.dumps(report, sort_keys=True)
        if len(text) > _INLINE_LIMIT:
            report["reasons"] = report["reasons"][:20]
            text = json.dumps(report, sort_keys=True)[:_INLINE_LIMIT]
        artifacts.append(
            Artifact(
                role="report",
                locator=Inline(data=text),
                media_type="application/json",
                format="check-report",
                size_bytes=len(text.encode()),
                metadata={"status": result.report.status},
            )
        )
    lineage = [Lineage(operation_id=operation_id, relation="derived_from")]
    if current is not None:
        kept = {k: v for k, v in current.metadata.items() if k != DATACUBE}
        kept.update(_publication_follows(current, result))
        return Record.model_validate(
            {
                **current.model_dump(),
                "metadata": {**kept, **metadata},
                "artifacts": [a.model_dump() for a in artifacts],
                "lineage": [*(x.model_dump() for x in current.lineage), lineage[0].model_dump()],
                "updated_by": user or current.updated_by,
                "version": current.version + 1,
                "updated_at": utcnow(),
            }
        )
    return Record(
        id=record_id,
        kind="dataset",
        title=title or top.get("title") or product.target.url.rsplit("/", 1)[-1],
        metadata=metadata,
        tags=[product.format, *(t for t in tags or () if t != product.format)],
        artifacts=artifacts,
        lineage=lineage,
        created_by=user,
        updated_by=user,
    )


def _describe(result: ConvertResult) -> dict[str, Any]:
    """Dims, variables, bbox, time coverage and datacube of the product as written."""
    from arcodex.extract._datacube import DATACUBE, datacube_or_none
    from arcodex.extract._netcdf import _describe as describe

    try:
        ds = result.product.open(raw=True)
    except Exception:
        return {}
    with ds:
        info: dict[str, Any] = describe(ds, "zarr", [], True)
        cube = datacube_or_none(ds)
    info.pop("attrs", None)
    info.pop("_plain_hdf5", None)
    if cube is not None:
        info[DATACUBE] = cube
    return info


def _tags(
    result: ConvertResult, cube: dict[str, Any] | None, current: Record | None, tag: str | None
) -> dict[str, Any]:
    """``{"tags": [...]}``: each tag of an Icechunk product with its snapshot's cube and times.

    Tags the record already describes (same snapshot) are kept as they are; the
    one being made now is this write's; any other (made outside arcodex, or by
    an older one) is read from its snapshot, once, here.
    """
    from arcodex.extract._datacube import datacube, tag_entry

    product = result.product
    if "icechunk" not in product.format:
        return {}
    old = (current.metadata.get("convert") or {}).get("tags") if current is not None else None
    known = {str(t.get("tag")): t for t in old or () if isinstance(t, dict)}
    try:
        repo = product.repository()
        snapshots = {str(name): str(repo.lookup_tag(name)) for name in repo.list_tags()}
    except Exception:  # icechunk raises its own errors; the STAC then lists no versions
        return {}
    if tag and result.snapshot:
        snapshots[tag] = result.snapshot
    entries = []
    for name, snapshot in sorted(snapshots.items()):
        if name == tag and cube is not None:
            entries.append(tag_entry(name, snapshot, cube))
        elif known.get(name, {}).get("snapshot") == snapshot:
            entries.append(known[name])
        else:
            try:
                with product.open(snapshot=snapshot) as ds:
                    entries.append(tag_entry(name, snapshot, datacube(ds)))
            except Exception:  # a snapshot that cannot be read: listed, described as the latest
                entries.append({"tag": name, "snapshot": snapshot})
    return {"tags": entries}


def _source_options(product: Any) -> dict[str, Any]:
    from arcodex.storage._access import without_secrets

    options = without_secrets(product.source_options)
    return {"source_options": options} if options else {}


def _size(product: Any) -> int | None:
    try:
        fs, path = product.target.fs()
        return content_size(fs, path, product.format)
    except (OSError, ValueError):
        return None


def _publication_follows(current: Any, result: ConvertResult) -> dict[str, Any]:
    """The access block of an updated, published product moved to its new snapshot.

    What is served is the newest version that passed its check: an update whose check
    passed moves the publication on, one that failed leaves it where it was, and one
    published at a tag stays at that tag.
    """
    from arcodex.catalog._access import ACCESS_KEY, is_published, record_access
    from arcodex.catalog._publishing import PASSED

    access = record_access(current)
    if not is_published(current) or access.get("tag") or not result.snapshot:
        return {}
    if result.status not in PASSED:
        return {}
    return {ACCESS_KEY: {**access, "snapshot": result.snapshot}}
