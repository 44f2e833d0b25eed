"""Metadata extractors: what a file says about itself."""

from __future__ import annotations

from pathlib import Path

from arcodex.extract._base import Extracted, Extractor
from arcodex.extract._file import FileExtractor

__all__ = ["Extracted", "Extractor", "FileExtractor", "default_extractors", "extract_file"]


def default_extractors() -> list[Extractor]:
    """The built-in extractors, most general first (later ones refine earlier results)."""
    from arcodex.extract._netcdf import NetCDFExtractor

    return [FileExtractor(), NetCDFExtractor()]


def extract_file(path: Path, extractors: list[Extractor] | None = None) -> Extracted:
    """Run every matching extractor over ``path``."""
    result = Extracted()
    for extractor in extractors if extractors is not None else default_extractors():
        if extractor.matches(path):
            extractor.extract(path, result)
            result.extractors.append(extractor.name)
    return result
