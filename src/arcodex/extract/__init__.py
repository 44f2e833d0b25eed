"""Metadata extractors: what a file says about itself."""

from __future__ import annotations

from pathlib import Path

from arcodex.errors import PluginError, ValidationError
from arcodex.extract._base import Extracted, Extractor
from arcodex.extract._file import FileExtractor

__all__ = ["Extracted", "Extractor", "FileExtractor", "default_extractors", "extract_file"]


def default_extractors() -> list[Extractor]:
    """The built-in extractors, most general first (later ones refine earlier results)."""
    from arcodex.extract._directory import DirectoryExtractor
    from arcodex.extract._netcdf import NetCDFExtractor
    from arcodex.extract._zarr import IcechunkExtractor, ZarrExtractor

    return [
        FileExtractor(),
        DirectoryExtractor(),
        NetCDFExtractor(),
        ZarrExtractor(),
        IcechunkExtractor(),
    ]


def extract_file(
    path: Path, extractors: list[Extractor] | None = None, *, require: bool = False
) -> Extracted:
    """Run every matching extractor over ``path``.

    A failing extractor (unreadable content, missing optional dependency) is
    noted in ``errors`` and the others go on; with ``require`` it is raised.
    """
    result = Extracted()
    for extractor in extractors if extractors is not None else default_extractors():
        if not extractor.matches(path):
            continue
        try:
            extractor.extract(path, result)
        except (ValidationError, PluginError) as exc:
            if require:
                raise
            result.errors.append(f"{extractor.name}: {exc}")
            continue
        result.extractors.append(extractor.name)
    return result
