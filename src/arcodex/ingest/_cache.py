"""Where remote providers (``http``, ``s3``) keep their downloads.

A download is written under a temporary name and renamed into place only when
it is complete and checked, so a file in the cache is always a whole, readable
NetCDF/HDF5 file and is never fetched twice. The directory is ``params.cache``,
or a temporary one that lives as long as the provider (one per ingestion).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any

__all__ = ["DownloadCache"]


class DownloadCache:
    """One cache directory: a file per source URL, named by a digest of it."""

    def __init__(self, directory: str | os.PathLike[str] | None, owner: Any = None) -> None:
        if directory is not None:
            self.root = Path(directory).expanduser()
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="arcodex-ingest-"))
            # Removed with whatever owns it (the provider), or at exit.
            weakref.finalize(owner if owner is not None else self, shutil.rmtree, self.root, True)

    def path(self, url: str) -> Path:
        """The cached file of ``url`` (its query string counts: it may select the data)."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", tail)[-80:] or "data"
        return self.root / f"{digest}-{safe}"

    def partial(self, final: Path) -> Path:
        """A temporary name beside ``final`` for a download in progress."""
        return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")

    @staticmethod
    def commit(partial: Path, final: Path) -> Path:
        """Put a complete, checked download in place (atomically)."""
        os.replace(partial, final)
        return final
