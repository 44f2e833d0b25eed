"""Scanning sources: each file's structure, read on the cluster's workers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.convert._cluster import cancel_and_wait, worker_count
from arcodex.convert._progress import Progress, say
from arcodex.convert._sources import SourceScan, resolve_sources, scan_source

if TYPE_CHECKING:
    from arcodex.convert._sources import SourceRef

__all__ = ["scan_all", "scan_grid"]


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

    workers = worker_count(client)
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
    """The grid file's structure (read here: one file, its coordinates only)."""
    [ref] = resolve_sources(os.fspath(grid), options)[:1]
    return scan_source(ref, concat_dim="__none__")
