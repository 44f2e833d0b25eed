"""The catalog record of an ingested dataset: one per (template, extent).

It has the shape of a converted Icechunk product's record (``convert`` metadata
with the product, its check and snapshot; the repository as the primary
artifact), so every reader of products (``open_product``, the catalog store,
``/zarr``, STAC) reads it as one; ``ingest`` metadata says what it was ingested
from and which periods it holds.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arcodex.convert._place import Placed
    from arcodex.convert._product import Product
    from arcodex.ingest._model import Extent, Template
    from arcodex.model import Record

__all__ = ["INGEST_KEY", "Appended", "dataset_record", "record_id"]

#: The record metadata key of what an ingestion made.
INGEST_KEY = "ingest"


@dataclass(frozen=True)
class Appended:
    """Time steps appended after the last one a record describes, and nothing else
    changed (:class:`~arcodex.ingest._repository.Written`): the dataset's steps now,
    the time values from the last described step on, as stored (``raw``, with the
    ``attrs`` of the time array) and decoded, and the dataset's global attributes."""

    steps: int
    raw: Any
    decoded: Any
    attrs: dict[str, Any]
    global_attrs: dict[str, Any]


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
    appended: Appended | None = None,
) -> Record:
    """The record of the dataset as its repository now is (``current``: the one it replaces;
    ``placed``: where a new repository went, else ``current``'s artifact is kept;
    ``stored``: the dataset as stored, ``decode_cf=False``, when the caller has it open;
    ``appended``: all that changed since ``current``, which is then updated with it
    instead of the dataset being described again, when it can be).

    """
    from arcodex.convert._product import MEDIA_TYPES
    from arcodex.extract._datacube import DATACUBE
    from arcodex.model import Artifact, ExternalUri, Lineage, LocalPath, Record, utcnow

    merged = None
    if appended is not None and current is not None:
        merged = _appended_description(current, appended)
    desc = merged if merged is not None else _description(product, stored)
    described = product.to_dict()
    cube = desc["cube"]
    metadata: dict[str, Any] = {
        **({"title": template.name} if template.name else {}),
        **({"description": template.description} if template.description else {}),
        **desc["top"],
        "dims": desc["dims"],
        "variables": desc["variables"],
        **({DATACUBE: cube} if cube is not None else {}),
        "convert": {
            **described,
            "product": described,
            "concat_dim": "time",
            "steps": desc["steps"],
            "first": desc["first"],
            "last": desc["last"],
            "chunks": desc["chunks"],
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


def _description(product: Product, stored: Any) -> dict[str, Any]:
    """What a record says of the dataset, read from it (``stored``: opened already)."""
    import xarray as xr

    from arcodex.extract._datacube import datacube_or_none
    from arcodex.extract._netcdf import _describe as describe

    with nullcontext(stored) if stored is not None else product.open(raw=True) as ds:
        info: dict[str, Any] = describe(ds, "zarr", [], True)
        cube = datacube_or_none(ds)
        steps = int(ds.sizes.get("time", 0))
        chunks = {str(k): list(v.encoding.get("chunks") or ()) for k, v in ds.data_vars.items()}
        ends = ds[["time"]].isel(time=[0, -1]) if steps and "time" in ds.variables else None
        times: Any = [] if ends is None else xr.decode_cf(ends)["time"].values
    return {
        "top": info.get("_top", {}),
        "dims": info.get("dims", {}),
        "variables": info.get("variables", {}),
        "cube": cube,
        "steps": steps,
        "chunks": chunks,
        "first": str(times[0])[:19] if len(times) else None,
        "last": str(times[-1])[:19] if len(times) else None,
    }


def _appended_description(current: Record, appended: Appended) -> dict[str, Any] | None:
    """:func:`_description` of the dataset ``current`` describes with ``appended`` after
    its last step, from ``current`` and the appended steps alone; None when it cannot
    be told so (then the dataset is described again).

    What an append changes of a description: the time steps, the time extent's end
    (the last step: the time axis is strictly increasing, as the check says) and the
    datacube's time step (kept only while every step is as far from the one before).
    The rest (variables, grid, bbox, attributes) is as it was, since only the arrays
    with time were written, after their last step.
    """
    import xarray as xr

    from arcodex.extract._datacube import DATACUBE, _duration, _time
    from arcodex.extract._netcdf import _describe, _time_coverage

    meta = current.metadata
    convert = meta.get("convert") or {}
    before = convert.get("steps")
    variables = meta.get("variables") or {}
    cube = copy.deepcopy(meta.get(DATACUBE))
    dims = dict(meta.get("dims") or {})
    times = [
        name
        for name, v in variables.items()
        if " since " in str(v.get("units", "")) and len(v.get("dims") or ()) == 1
    ]
    if (
        not isinstance(before, int)
        or before < 1
        or times != ["time"]
        or "time" not in dims
        or "bounds" in appended.attrs
        or not meta.get("start_datetime")
        or not isinstance(cube, dict)
        or len(appended.decoded) < 2
    ):
        return None
    entry = next(
        (
            d
            for d in cube.get("dimensions") or ()
            if isinstance(d, dict) and d.get("name") == "time"
        ),
        None,
    )
    coverage = _time_coverage(xr.Dataset(coords={"time": ("time", appended.raw, appended.attrs)}))
    if entry is None or entry.get("type") != "temporal" or coverage is None:
        return None
    dims["time"] = appended.steps
    entry["extent"] = [entry["extent"][0], _time(appended.decoded[-1])]
    # Regular before (or one step), and the seam and the new steps at that step too.
    step = _duration(appended.decoded)
    if step is None or (before > 1 and entry.get("step") != step):
        entry.pop("step", None)
    else:
        entry["step"] = step
    # The attributes a description lifts to the top (title, keywords...), as it lifts them.
    lifted = _describe(xr.Dataset(attrs=appended.global_attrs), "zarr", [], True)["_top"]
    return {
        "top": {**lifted, "end_datetime": coverage[1]},
        "dims": dims,
        "variables": variables,
        "cube": cube,
        "steps": appended.steps,
        "chunks": convert.get("chunks") or {},
        "first": convert.get("first"),
        "last": str(appended.decoded[-1])[:19],
    }


def _publication(current: Record, snapshot: str, check: str) -> dict[str, Any]:
    """A published dataset's access block moved to the new snapshot if its check passed
    (what is served is the newest good version; one published at a tag stays there)."""
    from arcodex.catalog._access import ACCESS_KEY, is_published, record_access
    from arcodex.catalog._publishing import PASSED

    access = record_access(current)
    if not is_published(current) or access.get("tag") or check not in PASSED:
        return {}
    return {ACCESS_KEY: {**access, "snapshot": snapshot}}
