"""One period fetched and judged before it is written: the provider's dataset (or its
files, read), its times inside the period, the template's transforms, and the
variables and grid every period of the dataset shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.ingest._provider import FetchError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.convert._product import Product
    from arcodex.ingest._model import Extent, Template
    from arcodex.ingest._provider import Provider
    from arcodex.ingest._repository import Opened

__all__ = ["PeriodShape", "fetched", "shaped"]


def fetched(
    provider: Provider, period: pd.Period, extent: Extent, params: dict[str, Any], pid: str
) -> xr.Dataset:
    """The period as the provider gives it, loaded in memory (files opened and read)."""
    import xarray as xr

    got = provider.fetch_period(period, extent, params)
    if isinstance(got, xr.Dataset):
        return got.load()
    paths = [Path(os.fspath(p)) for p in got]
    if not paths:
        raise FetchError(f"period {pid}: the provider gave no file")
    try:
        with xr.open_mfdataset(paths, combine="by_coords") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise FetchError(f"period {pid}: cannot read {paths[0].name}: {exc}") from exc


def shaped(
    ds: xr.Dataset, template: Template, period: pd.Period, pid: str, shape: PeriodShape | None
) -> xr.Dataset:
    """``ds`` transformed, refused unless its times lie in the period and its variables
    and grid are the dataset's (``shape``; ``None`` for the first period)."""
    from arcodex.ingest._transforms import apply_transforms

    if "time" not in ds.dims:
        raise FetchError(f"period {pid}: the data has no time dimension")
    if ds.sizes["time"] == 0:
        raise FetchError(f"period {pid}: the data has no time step")
    times = ds["time"].values
    if times.size > 1 and not bool((times[1:] >= times[:-1]).all()):
        ds = ds.sortby("time")  # a copy of every variable: only when it is needed
        times = ds["time"].values
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    stamps = pd.DatetimeIndex(times)
    outside = stamps[(stamps < period.start_time) | (stamps > period.end_time)]
    if len(outside):
        raise FetchError(
            f"period {pid}: the data holds times outside the period ({outside[0]}); "
            "the provider gave another period"
        )
    if not stamps.is_unique:
        raise FetchError(f"period {pid}: the data repeats time steps")
    ds = apply_transforms(ds, template.transforms)
    if shape is not None:
        problem = shape.unlike(PeriodShape.of(ds))
        if problem:
            raise FetchError(f"period {pid}: {problem}")
    return ds


@dataclass
class PeriodShape:
    """What every period of a dataset shares: its variables, and its grid (each
    dimension but time, with its coordinate's values if it has one)."""

    variables: set[str]
    grid: dict[str, Any]

    @classmethod
    def of(cls, ds: xr.Dataset) -> PeriodShape:
        grid: dict[str, Any] = {}
        for dim, size in ds.sizes.items():
            if dim == "time":
                continue
            grid[str(dim)] = ds[dim].values if dim in ds.coords else int(size)
        return cls(set(map(str, ds.data_vars)), grid)

    @classmethod
    def of_product(cls, product: Product) -> PeriodShape:
        with product.open() as ds:
            return cls.of(ds)

    @classmethod
    def held(cls, product: Product, opened: Opened | None = None) -> tuple[PeriodShape, int]:
        """What the periods an Icechunk ``product`` holds share, and their time steps.

        Read through zarr: the arrays' metadata and the grid's coordinates, which is
        what :meth:`of` reads of the dataset xarray would open (its data variables are
        the arrays that are neither a dimension's coordinate nor named in a
        ``coordinates`` attribute). A coordinate xarray would decode (packed, masked,
        times) is read through xarray. ``opened``: the root, read already.
        """
        import zarr

        if opened is not None:
            group, arrays = opened.group, opened.arrays
        else:
            session = product.repository().readonly_session(branch=product.branch)
            group = zarr.open_group(session.store, path=product.group or "", mode="r")
            arrays = {str(n): a for n, a in group.members() if isinstance(a, zarr.Array)}
        dims: dict[str, int] = {}
        named = set(str(group.attrs.get("coordinates") or "").split())
        for array in arrays.values():
            names = getattr(array.metadata, "dimension_names", None) or ()
            dims.update((str(d), int(n)) for d, n in zip(names, array.shape, strict=False))
            named.update(str(array.attrs.get("coordinates") or "").split())
        variables = {n for n in arrays if n not in dims and n not in named}
        grid: dict[str, Any] = {}
        for dim, size in dims.items():
            if dim == "time":
                continue
            values = _plain_coordinate(arrays[dim]) if dim in arrays else int(size)
            if values is None:
                return cls.of_opened(product)
            grid[dim] = values
        return cls(variables, grid), dims.get("time", 0)

    @classmethod
    def of_opened(cls, product: Product) -> tuple[PeriodShape, int]:
        """:meth:`held` through xarray: the dataset opened, without indexes."""
        with product.open(indexes=False) as ds:
            return cls.of(ds), int(ds.sizes.get("time", 0))

    def unlike(self, other: PeriodShape) -> str | None:
        """Why ``other`` does not fit the dataset, or None."""
        import numpy as np

        if other.variables != self.variables:
            return (
                f"its variables {sorted(other.variables)} are not the dataset's "
                f"{sorted(self.variables)}"
            )
        if set(other.grid) != set(self.grid):
            return f"its dimensions {sorted(other.grid)} are not the dataset's {sorted(self.grid)}"
        for dim, mine in self.grid.items():
            theirs = other.grid[dim]
            if np.size(mine) != np.size(theirs) or np.ndim(mine) != np.ndim(theirs):
                return f"its {dim} has {np.size(theirs)} steps, the dataset's {np.size(mine)}"
            same = (
                np.allclose(mine, theirs)
                if np.issubdtype(np.asarray(mine).dtype, np.number)
                else np.array_equal(mine, theirs)
            )
            if not same:
                return f"its {dim} coordinate differs from the dataset's (another grid or extent)"
        return None


#: Attributes by which xarray would decode a coordinate's stored values into others.
_DECODING = ("scale_factor", "add_offset", "missing_value", "calendar", "dtype")


def _plain_coordinate(array: Any) -> Any:
    """A 1-D coordinate's values as xarray decodes them, when they are the stored ones
    (None: xarray would change them, read it through xarray)."""
    import numpy as np

    attrs = array.attrs
    if len(array.shape) != 1 or any(k in attrs for k in _DECODING):
        return None
    if " since " in str(attrs.get("units", "")) or array.dtype.kind not in "iuf":
        return None
    values = np.asarray(array[...])
    fill = attrs.get("_FillValue")
    if fill is not None:
        try:
            from xarray.backends.zarr import FillValueCoder

            decoded = FillValueCoder.decode(fill, array.dtype)
        except (ImportError, TypeError, ValueError):
            return None
        masked = np.isnan(values) if np.isnan(decoded) else values == decoded
        if masked.any():
            return None  # xarray masks them (and makes the values floats)
    return values
