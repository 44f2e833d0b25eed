"""What a dry run shows: the files in order, the product's layout and its size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arcodex.convert._write import shard_shape

if TYPE_CHECKING:
    from arcodex.convert._pipelines import Job
    from arcodex.convert._plan import Plan
    from arcodex.convert._result import ConvertResult

__all__ = ["layout", "preview"]


def preview(job: Job) -> ConvertResult:
    """The result of a dry run: what ``job`` would write, nothing written."""
    from arcodex.convert._result import ConvertResult

    if job.action == "update":
        write = dict(job.provenance.get("parameters", {}).get("write", {}))
        delta = job.delta
        changes: dict[str, Any] = (
            {"unchanged": True} if delta is None or delta.nothing_to_do else delta.changes()
        )
        if delta is not None and not delta.nothing_to_do:
            changes["appended"] = delta.appended_sources()
            changes["overwritten"] = delta.changed_sources()
    else:
        write = job.options.to_dict()
        changes = {"appended_steps": job.plan.length, "sources": len(job.plan.sources)}
    result = ConvertResult(job.action, job.product, job.plan, record=job.record, dry_run=True)
    result.changes = changes
    result.layout = layout(job.plan, write, job.product.format)
    return result


def layout(plan: Plan, write: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The product's variables (dims, shape, dtype, chunks, shards), codec and size."""
    shards = dict(write.get("shards") or {})
    variables: dict[str, Any] = {}
    total = chunks = 0
    for name, var in sorted(plan.variables.items()):
        shard = (
            shard_shape(var.dims, var.chunks, var.shape, shards) if shards and var.dims else None
        )
        nbytes = math.prod(var.shape) * _itemsize(var.dtype)
        count = math.prod(math.ceil(n / c) for n, c in zip(var.shape, var.chunks, strict=True))
        total += nbytes
        chunks += count
        variables[name] = {
            "dims": list(var.dims),
            "shape": list(var.shape),
            "dtype": var.dtype,
            "chunks": list(var.chunks),
            **({"shards": list(shard)} if shard and shard != tuple(var.chunks) else {}),
            "bytes": nbytes,
        }
    virtual = fmt not in ("zarr", "icechunk")
    return {
        "format": fmt,
        "dims": dict(plan.dims),
        "variables": variables,
        **(
            {"references": True}
            if virtual
            else {
                "zarr_format": write.get("zarr_format", 3),
                "codec": write.get("codec", "blosc-zstd"),
                "level": write.get("level"),
            }
        ),
        "size": {
            "uncompressed_bytes": total,
            "chunks": chunks,
            # Virtual products copy nothing: their chunks stay in the sources.
            "written_bytes": 0 if virtual else None,
        },
    }


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        return 8
