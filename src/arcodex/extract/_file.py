"""Facts every file has: name, suffix, media type."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path

from arcodex.extract._base import Extracted

__all__ = ["FileExtractor"]

_KNOWN = {
    ".nc": ("application/netcdf", "netcdf"),
    ".nc4": ("application/netcdf", "netcdf"),
    ".netcdf": ("application/netcdf", "netcdf"),
    ".cdf": ("application/netcdf", "netcdf"),
    ".h5": ("application/x-hdf5", "hdf5"),
    ".hdf5": ("application/x-hdf5", "hdf5"),
    ".he5": ("application/x-hdf5", "hdf5"),
    ".zarr": ("application/vnd+zarr", "zarr"),
    ".csv": ("text/csv", "csv"),
    ".json": ("application/json", "json"),
    ".parquet": ("application/vnd.apache.parquet", "parquet"),
    ".grib": ("application/x-grib", "grib"),
    ".grib2": ("application/x-grib", "grib"),
    ".tif": ("image/tiff", "geotiff"),
    ".tiff": ("image/tiff", "geotiff"),
}


class FileExtractor:
    """Name, suffix, media type and format from the file name."""

    name = "file"

    def matches(self, path: Path) -> bool:
        return True

    def extract(self, path: Path, into: Extracted) -> None:
        suffix = "".join(path.suffixes[-1:]).lower()
        media_type, fmt = _KNOWN.get(suffix, (None, None))
        if media_type is None and path.is_dir():
            # A directory's nature comes from its content (the directory and store extractors).
            into.metadata.setdefault("file", {}).update({"name": path.name, "suffix": suffix})
            return
        if media_type is None:
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            fmt = suffix.lstrip(".") or None
        into.media_type = into.media_type or media_type
        into.format = into.format or fmt
        facts: dict[str, object] = {"name": path.name, "suffix": suffix}
        if path.is_file():
            stat = path.stat()
            facts.update(
                size=stat.st_size, mtime=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
            )
        into.metadata.setdefault("file", {}).update(facts)
        if into.kind is None:
            into.kind = (
                "dataset" if fmt in ("netcdf", "hdf5", "zarr", "grib", "geotiff") else "document"
            )
