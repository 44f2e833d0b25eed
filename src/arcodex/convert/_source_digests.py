"""Chunk digests of virtual products, read from the sources: their chunks are the sources'
own, so the values are decoded from the sources on the workers and hashed on the
product's chunk grid (a damaged source chunk is an error naming it)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.convert._cluster import worker_count
from arcodex.convert._digest import ChunkDigest, coordinate_digests, digests_on
from arcodex.convert._write import (
    BLOCK_BUDGET,
    ReadSpec,
    _itemsize,
    group_tasks,
    read_block,
    run_tasks,
)

if TYPE_CHECKING:
    from arcodex.convert._plan import Block, Plan

__all__ = ["digest_task", "source_digests"]


def digest_task(
    blocks: Sequence[Block], spec: ReadSpec, grids: Mapping[str, Any]
) -> tuple[int, list[ChunkDigest]]:
    """Task: read ``blocks`` from the sources and hash their chunks on ``grids``' chunk shapes."""
    out: list[ChunkDigest] = []
    nbytes = 0
    for block in blocks:
        chunks, fill = grids[block.var]
        data = read_block(block, spec)
        nbytes += data.nbytes
        out.extend(digests_on(block.var, block.region, data, chunks, fill))
    return nbytes, out


def source_digests(
    client: Any,
    plan: Plan,
    root: Any,
    names: Sequence[str],
    start: int = 0,
    stop: int | None = None,
) -> list[ChunkDigest]:
    """Digests of ``names`` over concat ``[start, stop)`` read from the sources, on the product's grid.

    For virtual products, whose chunks are the sources' own: the values are
    decoded from the sources (a damaged source chunk is an error naming it).
    """
    variables = dict(plan.variables)
    grids: dict[str, Any] = {}
    blocks: list[Block] = []
    extra: list[ChunkDigest] = []
    for name in names:
        arr = root[name]
        shape = tuple(int(n) for n in arr.shape)
        chunks = tuple(int(c) for c in arr.chunks) if shape else ()
        var = plan.variables[name]
        if name == plan.concat_dim:
            extra.extend(coordinate_digests(name, plan.concat_values, arr))
            continue
        variables[name] = dataclasses.replace(var, chunks=chunks, shards=None)
        grids[name] = (chunks, arr.fill_value)
    local = dataclasses.replace(plan, variables=variables)
    for name in grids:
        var = local.variables[name]
        lo, hi = start, stop
        if var.concat:
            t = var.dims.index(plan.concat_dim)
            c = var.chunks[t]
            lo = (start // c) * c
            hi = None if stop is None else min(var.shape[t], math.ceil(stop / c) * c)
        elif start > 0 or stop is not None:
            continue
        blocks.extend(
            local.blocks(name, lo, hi, budget=BLOCK_BUDGET, itemsize=_itemsize(var.dtype))
        )
    tasks = group_tasks(blocks, local, worker_count(client))
    for _, items in run_tasks(client, digest_task, tasks, ReadSpec.of(local), grids):
        extra.extend(items)
    return extra
