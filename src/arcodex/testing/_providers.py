"""The contract every ingestion provider passes, as a test class to subclass.

A provider's test module subclasses :class:`ProviderTests` once per provider and
gives its ``case`` fixture: the provider, its params, an extent, periods that
exist (in order), one that does not, and the data a period should come back as::

    from arcodex.testing import ProviderCase, ProviderTests

    class TestFilesProvider(ProviderTests):
        @pytest.fixture
        def case(self, archive):
            return ProviderCase(
                FilesProvider(), {"path": str(archive), "pattern": "tas_{period}.nc",
                "period": "daily"}, extent, present=[...], missing=..., expected=cut)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["ProviderCase", "ProviderTests"]


@dataclass
class ProviderCase:
    """What a provider's contract tests run on."""

    provider: Any
    params: dict[str, Any]
    extent: Any
    #: Periods that exist and fetch, in order (at least two).
    present: list[Any]
    #: A period inside the range of ``present`` or next to it that does not exist.
    missing: Any
    #: The dataset a period should come back as (the source cut to the extent), or None.
    expected: Callable[[Any], Any] | None = None


def _horizontal(ds: Any) -> dict[str, int]:
    from arcodex.client._subset import find_lat_lon

    lat, lon = find_lat_lon(ds)
    return {str(d): int(ds.sizes[d]) for d in (*ds[lat].dims, *ds[lon].dims)}


class ProviderTests:
    """The provider contract (``probe``, ``periods``, ``fetch_period``)."""

    @pytest.fixture
    def case(self) -> ProviderCase:
        raise NotImplementedError("give the provider's case fixture")

    def test_is_a_provider(self, case: ProviderCase) -> None:
        from arcodex.ingest import Provider

        assert isinstance(case.provider, Provider)

    def test_periods_are_those_that_exist_in_the_range(self, case: ProviderCase) -> None:
        first, last = min(case.present[0], case.missing), max(case.present[-1], case.missing)
        found = case.provider.periods(first, last, case.params)
        assert found == sorted(found)
        assert set(case.present) <= set(found)
        assert case.missing not in found
        assert all(first <= p <= last for p in found)
        inner = case.provider.periods(case.present[1], case.present[1], case.params)
        assert inner == [case.present[1]]

    def test_fetch_is_inside_the_period_and_the_extent(self, case: ProviderCase) -> None:
        import numpy as np
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        from arcodex.client._subset import find_lat_lon, find_time, lon_inside

        period = case.present[-1]
        ds = case.provider.fetch_period(period, case.extent, case.params)
        times = pd.DatetimeIndex([pd.Timestamp(str(t)) for t in ds[find_time(ds)].values])
        assert len(times) and times.min() >= period.start_time and times.max() <= period.end_time
        west, south, east, north = case.extent.bbox
        lat, lon = find_lat_lon(ds)
        assert ds[lat].size and ds[lon].size
        assert bool(((ds[lat] >= south) & (ds[lat] <= north)).all())
        assert bool(np.all(lon_inside(ds[lon].values, west, east)))

    def test_fetch_equals_the_source_cut(self, case: ProviderCase) -> None:
        import xarray as xr

        if case.expected is None:
            pytest.skip("the case gives no expected data")
        for period in case.present[:2]:
            got = case.provider.fetch_period(period, case.extent, case.params)
            want = case.expected(period)
            xr.testing.assert_equal(
                got.compute().reset_coords(drop=True), want.reset_coords(drop=True)
            )

    def test_a_missing_period_is_a_fetch_error_naming_it(self, case: ProviderCase) -> None:
        from arcodex.ingest import FetchError, period_id

        pid = period_id(case.missing, case.params["period"])
        with pytest.raises(FetchError, match=f"period {pid}"):
            case.provider.fetch_period(case.missing, case.extent, case.params)

    def test_probe_describes_what_fetch_returns(self, case: ProviderCase) -> None:
        grid = case.provider.probe(case.extent, case.params)
        ds = case.provider.fetch_period(case.present[-1], case.extent, case.params)
        assert {str(v): str(ds[v].dtype) for v in ds.data_vars}.items() <= grid.dtypes.items()
        for dim, size in _horizontal(ds).items():
            assert grid.dims[dim] == size
