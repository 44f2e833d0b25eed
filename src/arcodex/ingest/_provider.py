"""The provider seam: where an ingested dataset's periods come from.

A provider says what grid a source has (:meth:`Provider.probe`), which
periods exist (:meth:`Provider.periods`), and fetches one period clipped to an
extent (:meth:`Provider.fetch_period`). Built-in providers (``files``,
``http``, ``s3``, ``remote-zarr``) and plugins' (the ``provider`` kind)
implement it; the ingestion engine calls only these three methods.

``params`` are the template's ``provider.params`` with ``params["period"]`` set
by the engine to the template's period type (``daily``, ``monthly``…): a
provider needs it to read periods from file names, keys and listings. The
template's availability (lag, cutoff) is applied by the engine, not by
providers: :meth:`Provider.periods` answers what exists at the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from arcodex.errors import ArcodexError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = ["FetchError", "Grid", "Provider"]


class FetchError(ArcodexError):
    """One period could not be fetched or failed its checks; the message names the period."""


@dataclass(frozen=True)
class Grid:
    """What :meth:`Provider.probe` finds: the source's dimensions, coordinates and types."""

    dims: dict[str, int]
    #: Each horizontal/vertical coordinate's first and last value (time excluded).
    coords: dict[str, tuple[float, float]]
    dtypes: dict[str, str]
    crs: str = "EPSG:4326"
    attrs: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """A source of periods. ``params`` are the template's ``provider.params``."""

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        """The grid the provider's data has over ``extent``."""
        ...

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        """The periods from ``start`` to ``end`` (included) that exist at the source."""
        ...

    def fetch_period(
        self, period: pd.Period, extent: Extent, params: dict[str, Any]
    ) -> xr.Dataset | list[Path]:
        """One period, clipped to ``extent``: a dataset, or local files holding it.

        Raises:
            FetchError: the period is missing, truncated, not data, or does not cover
                what was asked.
        """
        ...
