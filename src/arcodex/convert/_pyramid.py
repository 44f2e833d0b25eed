"""Multi-level products (``convert --pyramid N``): the Zarr multiscales layout.

Level 0 is the product at full resolution, written and checked as any
product, in group ``0``; level ``k`` (group ``"k"``) is level 0 coarsened
``2**k`` times along the spatial dims with a NaN-skipping mean of the
decoded values (coordinates averaged the same way, trailing cells that do
not fill a window dropped; bounds of the spatial coordinates left out: a
mean of bounds is no bound). Each level is made from level 0, not from the
level above, so that it *is* level 0 coarsened (a mean of means is not a
mean where values are missing), which is what the check compares.

The root group's attributes hold ``multiscales`` (the zarr-conventions
multiscales ``layout``: each level's ``asset``, ``derived_from``, scale
``transform`` and ``resampling_method``; arcodex adds each level's
``shape`` and ``resolution``), and the record's metadata the same as
``levels``.

The levels are computed with Dask's threads in this process (they read
level 0 back from the product, never the sources): a level is at most a
quarter of level 0, and Icechunk takes a session's writes from one
process without forking it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.convert._product import PROVENANCE_ATTR
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.convert._product import Product
    from arcodex.convert._write import WriteOptions

__all__ = [
    "LEVEL_ATTR",
    "at_level",
    "check_levels",
    "levels_of",
    "product_layout",
    "pyramid_group",
    "refuse_update",
    "write_pyramid",
]

LEVEL_ATTR = "multiscales"
_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/multiscales/blob/v1/README.md",
    "uuid": "d35379db-88df-4056-af3a-620245f8e347",
    "name": "multiscales",
    "description": "Multiscale layout of zarr datasets",
}
#: The check compares windows of at most this many cells a side of each level.
_SAMPLE = 256
_X = ("x", "lon", "longitude", "nav_lon", "xc", "rlon", "i")
_Y = ("y", "lat", "latitude", "nav_lat", "yc", "rlat", "j")


def pyramid_group(levels: int | None, fmt: str, group: str | None) -> str | None:
    """The group level 0 is written to (``"0"``), after refusing what cannot have levels."""
    if not levels:
        return group
    if levels < 1 or levels > 16:
        raise ValidationError(f"--pyramid takes 1 to 16 levels, not {levels}")
    if fmt not in ("zarr", "icechunk"):
        raise ValidationError(
            "virtual products cannot have levels (they are references to the sources); "
            "use --to zarr or --to icechunk with --pyramid"
        )
    if group:
        raise ValidationError("--pyramid writes its levels as the store's groups; drop --group")
    return "0"


def spatial_dims(ds: Any, concat_dim: str | None) -> list[str]:
    """The (y, x) dims levels are coarsened along: by CF axis, else by name, else the last two."""
    found: dict[str, str] = {}
    for name in ds.variables:
        var = ds.variables[name]
        axis = str(var.attrs.get("axis", "")).upper()
        if var.ndim == 1 and axis in ("X", "Y") and var.dims[0] != concat_dim:
            found.setdefault(axis, str(var.dims[0]))
    for dim in ds.dims:
        lower = str(dim).lower()
        if lower in _X:
            found.setdefault("X", str(dim))
        elif lower in _Y:
            found.setdefault("Y", str(dim))
    if "X" in found and "Y" in found:
        return [found["Y"], found["X"]]
    widest = max((v for v in ds.data_vars.values()), key=lambda v: v.ndim, default=None)
    dims = [str(d) for d in (widest.dims if widest is not None else ()) if d != concat_dim]
    if len(dims) < 2:
        raise ValidationError(
            "the product has no two spatial dims to coarsen; convert it without --pyramid"
        )
    return dims[-2:]


def coarsen_level(ds: Any, dims: Sequence[str], factor: int) -> Any:
    """``ds`` coarsened ``factor`` times along ``dims`` (NaN-skipping mean, trimmed)."""
    drop = set()
    for dim in dims:
        if dim in ds.variables:
            drop.update(str(ds[dim].attrs.get("bounds", "")).split())
    ds = ds.drop_vars([n for n in drop if n in ds.variables])
    for dim in dims:
        if dim in ds.variables:
            ds[dim].attrs.pop("bounds", None)
    windows = {d: factor for d in dims if ds.sizes.get(d, 0) >= factor}
    if len(windows) < len(dims):
        raise ValidationError(
            f"the product is too small for {int(math.log2(factor)) + 1} levels "
            f"({', '.join(f'{d}={ds.sizes[d]}' for d in dims)}); ask for fewer --pyramid levels"
        )
    if any(ds[v].chunks for v in ds.data_vars):
        # Whole windows in every Dask chunk: coarsening then never reshapes across chunks.
        ds = ds.chunk({d: max(factor, (_chunk(ds, d) // factor) * factor) for d in windows})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN windows: NaN
        return ds.coarsen(windows, boundary="trim", coord_func="mean").mean(keep_attrs=True)


def _chunk(ds: Any, dim: str) -> int:
    for var in ds.data_vars.values():
        if dim in var.dims and var.chunks:
            return int(var.chunks[var.dims.index(dim)][0])
    return int(ds.sizes[dim])


def _resolution(ds: Any, dim: str, factor: int) -> float | int:
    import numpy as np

    if dim in ds.coords and ds[dim].ndim == 1 and ds.sizes[dim] > 1:
        values = np.asarray(ds[dim].values, dtype="float64")
        return float(abs(values[-1] - values[0]) / (len(values) - 1)) * factor
    return factor


def _encoding(level: Any, base: Any, options: WriteOptions) -> tuple[Any, dict[str, Any]]:
    """The level rechunked like level 0 (clipped), and its Zarr encoding."""
    sizes: dict[str, int] = {}
    for var in base.data_vars.values():
        for dim, chunk in zip(var.dims, var.encoding.get("chunks") or var.shape, strict=False):
            sizes.setdefault(str(dim), int(chunk))
    chunks = {d: min(n, int(level.sizes[d])) for d, n in sizes.items() if d in level.dims}
    level = level.chunk(chunks)
    encoding: dict[str, Any] = {}
    for name, var in level.variables.items():
        enc: dict[str, Any] = {
            "chunks": tuple(
                chunks.get(str(d), int(n)) for d, n in zip(var.dims, var.shape, strict=True)
            )
        }
        if var.dtype.kind in "fc" or name in level.data_vars:
            enc["compressors"] = options.compressors()
        old = base[name].encoding if name in base.variables else {}
        for key in ("units", "calendar", "dtype"):
            if key in old and var.dtype.kind == "M":
                enc[key] = old[key]
        var.encoding = {}
        encoding[str(name)] = enc
    return level, encoding


def write_pyramid(
    product: Product, levels: int, options: WriteOptions, message: str | None = None
) -> str | None:
    """Write levels ``1 .. levels-1`` beside level 0 and the root's ``multiscales``;
    the new Icechunk snapshot (None for Zarr)."""
    import dask
    import xarray as xr
    import zarr

    from arcodex.convert._product import _quiet

    repo = session = None
    if product.format == "icechunk":
        repo = product.repository()
        session = repo.writable_session(product.branch)
        store = session.store
    else:
        store = product.target.zarr_store()
    with _quiet(), dask.config.set(scheduler="threads"):
        base = xr.open_zarr(store, group="0", consolidated=False, chunks={})
        concat = _concat_dim(base)
        dims = spatial_dims(base, concat)
        layout = [_layout_item(base, dims, 0)]
        for k in range(1, levels):
            level, encoding = _encoding(coarsen_level(base, dims, 2**k), base, options)
            level.attrs = {key: v for key, v in base.attrs.items() if key != PROVENANCE_ATTR}
            if session is not None:
                from icechunk.xarray import to_icechunk

                to_icechunk(level, session, group=str(k), mode="w-", encoding=encoding)
            else:
                level.to_zarr(
                    store,
                    group=str(k),
                    mode="w-",
                    consolidated=False,
                    zarr_format=options.zarr_format,
                    encoding=encoding,
                )
            layout.append(_layout_item(level, dims, k, base))
        root: Any = zarr.open_group(store, path="", mode="r+", use_consolidated=False)
        root.attrs[LEVEL_ATTR] = {"layout": layout, "resampling_method": "average", "dims": dims}
        root.attrs["zarr_conventions"] = [_CONVENTION]
    if session is None:
        from arcodex.convert._write import consolidate

        consolidate(store, options.zarr_format, None)
        return None
    from arcodex.convert._writers import commit

    return commit(repo, session, message or f"arcodex convert: {levels} levels")


def _concat_dim(ds: Any) -> str | None:
    import json

    try:
        found = json.loads(ds.attrs.get(PROVENANCE_ATTR) or "{}").get("concat_dim")
    except (TypeError, ValueError, AttributeError):
        return None
    return str(found) if found else None


def _layout_item(ds: Any, dims: Sequence[str], k: int, base: Any = None) -> dict[str, Any]:
    factor = 2**k
    item: dict[str, Any] = {"asset": str(k)}
    if k:
        item["derived_from"] = "0"
        item["resampling_method"] = "average"
    item["transform"] = {"scale": [float(factor)] * len(dims)}
    item["shape"] = {d: int(ds.sizes[d]) for d in dims}
    item["resolution"] = {d: _resolution(base if base is not None else ds, d, factor) for d in dims}
    return item


def product_layout(product: Product) -> dict[str, Any] | None:
    """The root's ``multiscales`` of a multi-level product (its level 0 is group ``0``)."""
    if product.group != "0" or product.format not in ("zarr", "icechunk"):
        return None
    layout = product.root_attrs().get(LEVEL_ATTR)
    return layout if isinstance(layout, dict) and layout.get("layout") else None


def at_level(product: Product, level: int) -> Product:
    """The product's level ``level`` (0: full resolution)."""
    layout = product_layout(product)
    assets = [str(item["asset"]) for item in (layout or {}).get("layout", [])]
    if not assets:
        if level == 0:
            return product
        raise ValidationError(
            f"{product.target.url} has one level only; convert it with --pyramid N for more"
        )
    if not 0 <= level < len(assets):
        raise ValidationError(
            f"{product.target.url} has levels 0 to {len(assets) - 1}, not {level}; pick one of them"
        )
    return dataclasses.replace(product, group=assets[level])


def refuse_update(product: Product) -> None:
    """An update would leave the coarser levels behind level 0: refused, nothing written."""
    layout = product_layout(product)
    if layout:
        raise ValidationError(
            f"{product.target.url} has {len(layout['layout'])} levels, and updates append to "
            "level 0 only; convert the archive anew with --pyramid to add steps"
        )


def levels_of(layout: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The record's ``levels``: each level's number, group, spatial shape and resolution."""
    if not layout:
        return []
    return [
        {
            "level": int(item["asset"]),
            "path": str(item["asset"]),
            "shape": dict(item.get("shape", {})),
            "resolution": dict(item.get("resolution", {})),
        }
        for item in layout.get("layout", [])
    ]


def check_levels(
    product: Product, layout: Mapping[str, Any], seed: int, samples: int = 3
) -> tuple[list[str], dict[str, Any]]:
    """Each level's shape, and a sample of its values against level 0 coarsened; the
    reasons it fails and what was checked."""
    import numpy as np

    def open_group_ds(product: Product, group: str) -> Any:
        return dataclasses.replace(product, group=group).open(chunks={})

    reasons: list[str] = []
    items = list(layout.get("layout", []))
    dims = list(layout.get("dims", []))
    base = open_group_ds(product, "0")
    concat = _concat_dim(base)
    rng = random.Random(seed)
    compared = 0
    for item in items[1:]:
        k = int(item["asset"])
        factor = 2**k
        try:
            level = open_group_ds(product, str(k))
        except Exception as exc:
            reasons.append(f"level {k} cannot be opened: {exc}")
            continue
        want = {d: base.sizes[d] // factor for d in dims}
        got = {d: int(level.sizes.get(d, -1)) for d in dims}
        if got != want:
            reasons.append(f"level {k} has shape {got}, not {want} (level 0 coarsened {factor}x)")
            continue
        steps = int(base.sizes.get(concat, 0)) if concat else 0
        picks = sorted({0, steps - 1, rng.randrange(steps)}) if steps else [None]
        for name in level.data_vars:
            if name not in base.data_vars or not set(dims) <= set(base[name].dims):
                continue
            for i in picks[: samples + 2]:
                sel: dict[str, slice] = {}
                if i is not None and concat is not None and concat in base[name].dims:
                    sel[concat] = slice(i, i + 1)
                # One window of at most _SAMPLE cells a side, somewhere in the level.
                coarse, fine = dict(sel), dict(sel)
                for dim in dims:
                    n = min(_SAMPLE, want[dim])
                    start = rng.randrange(want[dim] - n + 1)
                    coarse[dim] = slice(start, start + n)
                    fine[dim] = slice(start * factor, (start + n) * factor)
                expected = coarsen_level(base[[name]].isel(fine), dims, factor)[name].values
                actual = level[name].isel(coarse).values
                compared += 1
                if expected.shape != actual.shape or not np.allclose(
                    actual, expected, rtol=1e-6, atol=0, equal_nan=True
                ):
                    where = f" at {concat}={i}" if sel else ""
                    reasons.append(
                        f"level {k}: {name}{where} is not level 0 coarsened {factor}x; "
                        "convert the product anew"
                    )
                    break
    return reasons, {"levels": len(items), "level_samples": compared}
