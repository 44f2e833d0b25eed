"""The catalog record of an ingested dataset: one per (template, extent).

It has the shape of a converted Icechunk product's record (``convert`` metadata
with the product, its check and snapshot; the repository as the primary
artifact), so every reader of products (``open_product``, the catalog store,
``/zarr``, STAC) reads it as one; ``ingest`` metadata says what it was ingested
from and which periods it holds.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arcodex.convert._place import Placed
    from arcodex.convert._product import Product
    from arcodex.ingest._model import Extent, Template
    from arcodex.model import Record

__all__ = ["INGEST_KEY", "dataset_record", "record_id"]

#: The record metadata key of what an ingestion made.
INGEST_KEY = "ingest"


def record_id(template: Template, extent: Extent) -> str:
    """The id of the dataset of ``template`` over ``extent`` (``+``: in neither id, and not ``@``, which names a tag in ``ID@TAG``)."""
    return f"{template.id}+{extent.id}"


def dataset_record(
    template: Template,
    extent: Extent,
    product: Product,
    placed: Placed | None,
    *,
    periods: list[str],
    snapshot: str,
    check: str,
    operation_id: str,
    user: str | None,
    current: Record | None,
    stored: Any = None,
) -> Record:
    """The record of the dataset as its repository now is (``current``: the one it replaces;
    ``placed``: where a new repository went, else ``current``'s artifact is kept;
    ``stored``: the dataset as stored, ``decode_cf=False``, when the caller has it open)."""
    import xarray as xr

    from arcodex.convert._product import MEDIA_TYPES
    from arcodex.extract._datacube import DATACUBE, datacube_or_none
    from arcodex.extract._netcdf import _describe as describe
    from arcodex.model import Artifact, ExternalUri, Lineage, LocalPath, Record, utcnow

    with nullcontext(stored) if stored is not None else product.open(raw=True) as ds:
        info: dict[str, Any] = describe(ds, "zarr", [], True)
        cube = datacube_or_none(ds)
        steps = int(ds.sizes.get("time", 0))
        chunks = {str(k): list(v.encoding.get("chunks") or ()) for k, v in ds.data_vars.items()}
        ends = ds[["time"]].isel(time=[0, -1]) if steps and "time" in ds.variables else None
        times: Any = [] if ends is None else xr.decode_cf(ends)["time"].values
        first = str(times[0])[:19] if len(times) else None
        last = str(times[-1])[:19] if len(times) else None
    top = info.pop("_top", {})
    info.pop("attrs", None)
    info.pop("_plain_hdf5", None)
    described = product.to_dict()
    metadata: dict[str, Any] = {
        **({"title": template.name} if template.name else {}),
        **({"description": template.description} if template.description else {}),
        **top,
        "dims": info.get("dims", {}),
        "variables": info.get("variables", {}),
        **({DATACUBE: cube} if cube is not None else {}),
        "convert": {
            **described,
            "product": described,
            "concat_dim": "time",
            "steps": steps,
            "first": first,
            "last": last,
            "chunks": chunks,
            "check": check,
            "snapshot": snapshot,
        },
        INGEST_KEY: {
            "template": template.id,
            "extent": extent.id,
            "period_type": template.period,
            "provider": template.provider.name,
            "sync": template.sync,
            "periods": periods,
            "first_period": periods[0] if periods else None,
            "last_period": periods[-1] if periods else None,
            "bbox": list(extent.bbox),
            **(
                {"display": template.display.model_dump(exclude_none=True)}
                if template.display.model_dump(exclude_none=True)
                else {}
            ),
        },
    }
    locator: Any
    managed = False
    if placed is not None:
        managed = placed.managed
        if placed.locator is not None:
            locator = placed.locator
        elif product.target.is_local:
            locator = LocalPath(path=product.target.url)
        else:
            locator = ExternalUri(uri=product.target.url)
    else:
        assert current is not None
        old = next(a for a in current.artifacts if a.role == "primary")
        locator, managed = old.locator, old.managed
    artifact = Artifact(
        role="primary",
        locator=locator,
        media_type=MEDIA_TYPES["icechunk"],
        format="icechunk",
        managed=managed,
        metadata=described,
    )
    lineage = Lineage(operation_id=operation_id, relation="derived_from")
    if current is None:
        return Record(
            id=record_id(template, extent),
            kind="dataset",
            title=template.name or f"{template.id} over {extent.name or extent.id}",
            description=template.description,
            metadata=metadata,
            tags=["icechunk", "ingest", template.id, extent.id],
            artifacts=[artifact],
            lineage=[lineage],
            created_by=user,
            updated_by=user,
        )
    kept = {k: v for k, v in current.metadata.items() if k != DATACUBE}
    return Record.model_validate(
        {
            **current.model_dump(),
            "metadata": {**kept, **metadata, **_publication(current, snapshot, check)},
            "artifacts": [artifact.model_dump()],
            "lineage": [*(x.model_dump() for x in current.lineage), lineage.model_dump()],
            "updated_by": user or current.updated_by,
            "version": current.version + 1,
            "updated_at": utcnow(),
        }
    )


def _publication(current: Record, snapshot: str, check: str) -> dict[str, Any]:
    """A published dataset's access block moved to the new snapshot if its check passed
    (what is served is the newest good version; one published at a tag stays there)."""
    from arcodex.catalog._access import ACCESS_KEY, is_published, record_access
    from arcodex.catalog._publishing import PASSED

    access = record_access(current)
    if not is_published(current) or access.get("tag") or check not in PASSED:
        return {}
    return {ACCESS_KEY: {**access, "snapshot": snapshot}}
