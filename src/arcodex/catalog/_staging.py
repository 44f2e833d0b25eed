"""The copies of one add's write-artifact step, staged at once.

A small file's copy into managed storage costs little but its fsync, which waits on
the disk, not the CPU: staging many at once (threads) lets the filesystem group them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from arcodex.errors import ArcodexError, StorageError
from arcodex.storage import FsspecStore, LocalStore
from arcodex.storage._local import fsync_dir

__all__ = ["StagedCopies"]

#: Copies staged at once (threads: the time of a small file's copy is its fsync, which
#: waits on the disk, not the CPU; overlapping them lets the filesystem group them).
_STAGING_THREADS = 8


class StagedCopies:
    """The copies of one write-artifact step: for a local profile with no artifact-write
    hooks, every file is copied to a temporary file at once (fsync'd, in threads) when
    the step starts, and :meth:`write` then gives each its key in order, journaled one by
    one as before; the directories are fsync'd once, when the step ends. Otherwise
    :meth:`write` copies the file there and then. A temporary file not placed is removed
    (and one a kill leaves is removed by recover)."""

    def __init__(
        self,
        catalog: Any,
        store: LocalStore | FsspecStore | None,
        todo: Sequence[tuple[Path, Any]],
    ) -> None:
        self.store = store
        self.staged: dict[int, Any] = {}
        self.dirs: set[Path] = set()
        hooked = catalog.hooks.names("before_artifact_write") or catalog.hooks.names(
            "after_artifact_write"
        )
        self.concurrent = isinstance(store, LocalStore) and not hooked and len(todo) > 1
        self.todo = todo

    def __enter__(self) -> StagedCopies:
        if self.concurrent:
            from concurrent.futures import ThreadPoolExecutor

            store = self.store
            assert isinstance(store, LocalStore)

            def stage(pair: tuple[Path, Any]) -> Any:
                try:
                    return store.stage_file(pair[0], str(pair[1].key))
                except (ArcodexError, OSError) as exc:
                    return exc

            with ThreadPoolExecutor(min(_STAGING_THREADS, len(self.todo))) as pool:
                for (_, item), got in zip(self.todo, pool.map(stage, self.todo), strict=True):
                    self.staged[id(item)] = got
        return self

    def write(self, item: object, file: Path, key: str) -> tuple[str, int, str]:
        """Put ``file`` (of ``item``) at ``key`` (or ``key-N``): (key used, size, sha256)."""
        assert self.store is not None
        got = self.staged.pop(id(item), None)
        if got is None:
            return self.store.write_file(file, key)
        if isinstance(got, BaseException):
            raise got
        tmp, size, sha = got
        assert isinstance(self.store, LocalStore)
        used = self.store.place(tmp, key, sync=False)
        self.dirs.add(self.store.full_path(used).parent)
        return used, size, sha

    def __exit__(self, *exc: object) -> None:
        for got in self.staged.values():
            if isinstance(got, tuple):
                with suppress(FileNotFoundError):
                    got[0].unlink()
        self.staged.clear()
        try:
            for directory in sorted(self.dirs):
                fsync_dir(directory)
        except OSError as error:
            raise StorageError(f"could not make {directory} durable: {error}") from error
