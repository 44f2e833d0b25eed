"""Find ARCO datasets in STAC catalogs and open them as lazy xarray datasets.

Needs xarray, zarr and pystac (plus pystac-client for STAC APIs, icechunk and
fsspec for those stores), imported when a catalog is read or a dataset opened::

    from arcodex.client import Client

    results = Client("https://example.org/stac").search(bbox=(170, -10, -170, 10))
    ds = results.open_dataset(0, variables=["tas"], time=("2001-01-01", None))

The assets that open are Zarr stores, Icechunk repositories (virtual ones
included) and kerchunk references (JSON or Parquet), as the STAC
xarray-assets extension and arcodex's own catalogs describe them.
"""

from __future__ import annotations

from arcodex.client._client import Client, SearchResults
from arcodex.client._open import open_dataset
from arcodex.client._subset import subset

__all__ = ["Client", "SearchResults", "open_dataset", "subset"]
