"""Scanning sources: each file's structure, read on the cluster's workers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from arcodex.convert._cluster import cancel_and_wait, worker_count
from arcodex.convert._progress import Progress, say
from arcodex.convert._sources import SourceScan, resolve_sources, scan_source

if TYPE_CHECKING:
    from arcodex.convert._sources import SourceRef

__all__ = ["scan_all", "scan_grid", "scans_remembered"]


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
    Inside :func:`scans_remembered`, a local file scanned before with the same size
    and modification time is not scanned again.
    """
    keys = _MEMO.keys(refs, concat_dim, virtual)
    known = _MEMO.get(keys)
    missing = [ref for ref, scanned in zip(refs, known, strict=True) if scanned is None]
    fresh = iter(_scan(client, missing, concat_dim, progress, virtual=virtual) if missing else ())
    flat = [scanned if scanned is not None else next(fresh) for scanned in known]
    _MEMO.put(keys, flat)
    if not virtual:
        return [s for s, _ in flat], {}
    return [s for s, _ in flat], {s.ref.url: part for s, part in flat}


def _scan(
    client: Any,
    refs: Sequence[SourceRef],
    concat_dim: str | None,
    progress: Progress | None,
    *,
    virtual: bool,
) -> list[tuple[SourceScan, Any]]:
    """``(scan, references or None)`` of each of ``refs``, scanned on the cluster."""
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
    return flat if virtual else [(s, None) for s in flat]


class _ScanMemo:
    """Scans of local files, kept while at least one :func:`scans_remembered` is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._scans: dict[tuple[Any, ...], tuple[SourceScan, Any]] = {}

    def keys(
        self, refs: Sequence[SourceRef], concat_dim: str | None, virtual: bool
    ) -> list[tuple[Any, ...] | None]:
        if not self._users:
            return [None] * len(refs)
        return [_memo_key(ref, concat_dim, virtual) for ref in refs]

    def get(self, keys: Sequence[tuple[Any, ...] | None]) -> list[tuple[SourceScan, Any] | None]:
        with self._lock:
            return [self._scans.get(k) if k is not None else None for k in keys]

    def put(self, keys: Sequence[tuple[Any, ...] | None], scans: Sequence[Any]) -> None:
        with self._lock:
            if self._users:
                self._scans.update((k, s) for k, s in zip(keys, scans, strict=True) if k)

    @contextmanager
    def open(self) -> Iterator[None]:
        with self._lock:
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if not self._users:
                    self._scans.clear()


_MEMO = _ScanMemo()


def _memo_key(ref: SourceRef, concat_dim: str | None, virtual: bool) -> tuple[Any, ...] | None:
    """What a local file's scan depends on (None: not remembered)."""
    if not ref.is_local or ref.dataset is not None or ref.in_memory:
        return None
    try:
        st = os.stat(ref.url)
    except OSError:
        return None  # scanning it says what is wrong
    return (ref.url, st.st_size, st.st_mtime_ns, st.st_ino, concat_dim, virtual)


def scans_remembered() -> Any:
    """While open, a local source scanned once is not scanned again unless its size,
    modification time or inode changed (a group's phases scan the same files three
    times otherwise: scan, compute and validate)."""
    return _MEMO.open()


def scan_grid(grid: str | os.PathLike[str], options: Mapping[str, Any]) -> SourceScan:
    """The grid file's structure (read here: one file, its coordinates only)."""
    [ref] = resolve_sources(os.fspath(grid), options)[:1]
    return scan_source(ref, concat_dim="__none__")
