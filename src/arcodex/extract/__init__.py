"""Metadata extractors: what a file says about itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arcodex.errors import PluginError, ValidationError
from arcodex.extract._base import Extracted, Extractor
from arcodex.extract._file import FileExtractor

__all__ = ["Extracted", "Extractor", "FileExtractor", "default_extractors", "extract_file"]


def default_extractors(*, plugins: bool = True) -> list[Extractor]:
    """The built-in extractors, most general first (later ones refine earlier results),
    then those of plugins (``plugins=False`` leaves them out)."""
    from arcodex.extract._directory import DirectoryExtractor
    from arcodex.extract._netcdf import NetCDFExtractor
    from arcodex.extract._zarr import IcechunkExtractor, ZarrExtractor

    built_in: list[Extractor] = [
        FileExtractor(),
        DirectoryExtractor(),
        NetCDFExtractor(),
        ZarrExtractor(),
        IcechunkExtractor(),
    ]
    if not plugins:
        return built_in
    from arcodex.plugins import registry

    return built_in + [_PluginExtractor(x) for x in registry().extractors()]


class _PluginExtractor:
    """A plugin's extractor, whose every failure is a PluginError naming it (never a crash)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = str(inner.name)

    def matches(self, path: Path) -> bool:
        try:
            return bool(self.inner.matches(path))
        except Exception as exc:
            raise PluginError(f"plugin extractor failed: {type(exc).__name__}: {exc}") from exc

    def extract(self, path: Path, into: Extracted) -> None:
        try:
            self.inner.extract(path, into)
        except (ValidationError, PluginError):
            raise
        except Exception as exc:
            raise PluginError(f"plugin extractor failed: {type(exc).__name__}: {exc}") from exc


def extract_file(
    path: Path, extractors: list[Extractor] | None = None, *, require: bool = False
) -> Extracted:
    """Run every matching extractor over ``path``.

    A failing extractor (unreadable content, missing optional dependency) is
    noted in ``errors`` and the others go on; with ``require`` it is raised.
    """
    result = Extracted()
    for extractor in extractors if extractors is not None else default_extractors():
        try:
            if not extractor.matches(path):
                continue
            extractor.extract(path, result)
        except (ValidationError, PluginError) as exc:
            if require:
                raise
            result.errors.append(f"{extractor.name}: {exc}")
            continue
        result.extractors.append(extractor.name)
    return result
