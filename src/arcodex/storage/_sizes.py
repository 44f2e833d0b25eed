"""The size of a product's content: what must not change while its record stands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# What an Icechunk repository rewrites when a tag or a branch moves (its repo info file,
# the copies it keeps of older ones, the refs). Snapshots, manifests and chunks are
# immutable, so a new commit still changes the size; a new tag does not.
MUTABLE_ENTRIES: dict[str, frozenset[str]] = {
    "icechunk": frozenset({"repo", "overwritten", "refs"}),
    "virtual-icechunk": frozenset({"repo", "overwritten", "refs"}),
}


def content_size(fs: Any, path: str, format: str | None = None) -> int:
    """Bytes of the file at ``path``, or of every file under it but the entries its
    ``format`` rewrites in place (:data:`MUTABLE_ENTRIES`)."""
    if not fs.isdir(path):
        return int(fs.size(path))
    skip = MUTABLE_ENTRIES.get(format or "", frozenset())
    root = path.rstrip("/") + "/"
    total = 0
    for name, info in fs.find(path, detail=True).items():
        relative = name[len(root) :] if name.startswith(root) else name
        if relative.split("/", 1)[0] in skip:
            continue
        total += int(info.get("size") or 0)
    return total


def local_content_size(path: Path, format: str | None = None) -> int:
    """:func:`content_size` of a local path, without fsspec (the core does not need it)."""
    if not path.is_dir():
        return path.stat().st_size
    skip = MUTABLE_ENTRIES.get(format or "", frozenset())
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and p.relative_to(path).parts[0] not in skip
    )
