"""A summary of a directory that is not a known store."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from arcodex.extract._base import Extracted
from arcodex.extract._zarr import is_icechunk, is_zarr

__all__ = ["DirectoryExtractor"]


class DirectoryExtractor:
    """File count, total size, newest change and the commonest suffixes."""

    name = "directory"

    def matches(self, path: Path) -> bool:
        return path.is_dir()

    def extract(self, path: Path, into: Extracted) -> None:
        files = 0
        size = 0
        newest = 0.0
        suffixes: Counter[str] = Counter()
        for root, _, names in os.walk(path):
            for name in names:
                stat = (Path(root) / name).stat()
                files += 1
                size += stat.st_size
                newest = max(newest, stat.st_mtime)
                suffix = Path(name).suffix.lower().lstrip(".")
                # Metadata keys cannot hold dots; long "suffixes" are parts of generated names.
                suffixes[suffix if suffix and len(suffix) <= 8 else "(none)"] += 1
        into.metadata["directory"] = {
            "files": files,
            "size": size,
            "newest_mtime": newest,
            "suffixes": dict(suffixes.most_common(10)),
        }
        if not (is_zarr(path) or is_icechunk(path)):
            into.kind = into.kind or "collection"
            into.format = into.format or "directory"
            into.media_type = into.media_type or "inode/directory"
