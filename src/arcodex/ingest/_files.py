"""``files``: periods held by NetCDF/HDF5 files in a directory or matched by a glob.

Params:
    path: A directory (its files, not its subdirectories) or a glob
        (``/data/tas/**/*.nc``). Relative paths are under the catalog's root,
        or the working directory without a catalog.
    pattern: The file name of a period: a template (``tas_{period}.nc``,
        ``tas_{period:%Y%m%d}.nc``) or a regex with a group ``period``
        (see :mod:`arcodex.ingest._names`). Several files of one period are
        combined by their coordinates.
    period: The period type; the engine sets it from the template.
"""

from __future__ import annotations

import glob
import threading
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import ValidationError
from arcodex.ingest._clip import open_period, probe_newest
from arcodex.ingest._names import PeriodNames, period_type_of
from arcodex.ingest._periods import period_id
from arcodex.ingest._provider import FetchError, Grid

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = ["FilesProvider"]


class FilesProvider:
    """The ``files`` provider (see the module's docstring for its params)."""

    name = "files"

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog
        self._scans: dict[tuple[str, str, str], dict[pd.Period, list[Path]]] = {}
        self._lock = threading.Lock()

    def _root(self) -> Path:
        root = getattr(self.catalog, "root", None)
        return Path(root) if root is not None else Path.cwd()

    def _scan(
        self, params: dict[str, Any], *, refresh: bool = False
    ) -> dict[pd.Period, list[Path]]:
        """Every period the files hold, each with its files (sorted); read once per
        provider unless ``refresh`` (a backfill fetches many periods of one scan)."""
        where = params.get("path")
        pattern = params.get("pattern")
        if not where or not pattern:
            raise ValidationError(
                "the files provider needs params.path (a directory or glob) and "
                "params.pattern (tas_{period}.nc, or a regex with a group period)"
            )
        names = PeriodNames(str(pattern), period_type_of(params, self.name))
        memo = (str(where), str(pattern), names.period_type)
        with self._lock:
            known = None if refresh else self._scans.get(memo)
        if known is not None:
            return known
        base = Path(str(where)).expanduser()
        if not base.is_absolute():
            base = self._root() / base
        if base.is_dir():
            found = [p for p in base.iterdir() if p.is_file()]
        else:
            found = [Path(p) for p in glob.glob(str(base), recursive=True) if Path(p).is_file()]
        periods: dict[pd.Period, list[Path]] = defaultdict(list)
        for path in found:
            period = names.period_of(path.name)
            if period is not None:
                periods[period].append(path)
        scanned = {p: sorted(files) for p, files in periods.items()}
        with self._lock:
            self._scans[memo] = scanned
        return scanned

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        """The periods from ``start`` to ``end`` that have a file."""
        return sorted(p for p in self._scan(params, refresh=True) if start <= p <= end)

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        """The grid over ``extent`` of the newest period whose files fetch."""
        scanned = self._scan(params)
        if not scanned:
            raise FetchError(
                f"no file under {params.get('path')} matches {params.get('pattern')!r}; "
                "check the template's provider path and pattern"
            )
        return probe_newest(list(scanned), lambda p: self.fetch_period(p, extent, params))

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        """The files of ``period``, clipped to ``extent`` and checked."""
        paths = self._scan(params).get(period) or self._scan(params, refresh=True).get(period)
        what = self._what(period, params)
        if paths and len(paths) == 1:
            what = f"{what[:-1]} {paths[0]})"
        if not paths:
            raise FetchError(
                f"{what}: no file under {params.get('path')} matches {params.get('pattern')!r}"
            )
        return open_period(paths, period, extent, what)

    def _what(self, period: pd.Period, params: dict[str, Any]) -> str:
        return f"period {period_id(period, period_type_of(params, self.name))} (files)"
