"""One regular chunk grid along the concatenation dimension for virtual references.

A virtual product points at the sources' own chunks, and a Zarr array has one
chunk length along each dimension (a regular grid), so the sources must agree
on theirs. Monthly files of 28 to 31 steps often do not. What can be done:

- a variable stored uncompressed (HDF5 contiguous, or chunks without filters)
  holds its values as plain bytes in C order, so any slab of whole rows along
  the concatenation dim is a byte range of its own: such a source is
  referenced in chunks of the common length (one step when nothing else
  decides), whatever its number of steps;
- compressed chunks are taken as they are: they must have the common length,
  and every source but the last must fill whole chunks.

Anything else would need a rectilinear chunk grid, which the pinned zarr reads
only behind an experimental flag (and Zarr 2 kerchunk references cannot hold),
so it is refused before anything is written, naming the files and their chunk
lengths and pointing at ``--to zarr`` / ``--to icechunk``, which re-chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arcodex.errors import ConversionError

if TYPE_CHECKING:
    from arcodex.convert._plan import Plan
    from arcodex.convert._product import Product

__all__ = ["Layout", "concat_chunks", "layout", "plan_chunks", "product_chunks", "regrid"]


@dataclass(frozen=True)
class Layout:
    """How one source stores one variable along the concatenation dim."""

    steps: int
    axis: int
    chunks: tuple[int, ...]
    splittable: bool  # uncompressed bytes: slabs of any whole number of rows can be referenced
    codecs: str  # how the chunks are encoded (one product array has one encoding)

    @property
    def chunk(self) -> int:
        """The chunk length along the concat dim."""
        return self.chunks[self.axis]

    def other_chunks(self, length: int) -> tuple[int, ...]:
        """The chunk shape along the other dims once referenced in chunks of ``length``."""
        chunks = self.chunks
        if self.splittable and self.chunk != length:
            chunks = (1,) * self.axis + (length,) + chunks[self.axis + 1 :]
        return chunks[: self.axis] + chunks[self.axis + 1 :]


def layout(array: Any, axis: int) -> Layout | None:
    """The layout of a virtual array (None: not a reference, e.g. a loaded coordinate)."""
    if not hasattr(array, "manifest"):
        return None
    from virtualizarr.manifests.utils import manifest_chunk_shape

    chunks = tuple(int(c) for c in manifest_chunk_shape(array.metadata))
    codecs = ", ".join(_codec_name(c) for c in array.metadata.codecs)
    return Layout(int(array.shape[axis]), axis, chunks, _splittable(array), codecs)


def _codec_name(codec: Any) -> str:
    config: dict[str, Any] = codec.to_dict() if hasattr(codec, "to_dict") else {}
    name = str(config.get("name", type(codec).__name__)).removeprefix("numcodecs.")
    options: dict[str, Any] = dict(config.get("configuration") or {})
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if k != "elementsize")
    return f"{name}({shown})" if shown else name


def _splittable(array: Any) -> bool:
    import numpy as np
    from zarr.codecs import BytesCodec

    codecs = list(array.metadata.codecs)
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return False  # compressed, filtered or sharded: chunks are opaque
    if array.manifest._inlined:
        return False
    try:
        return np.dtype(array.dtype).kind in "biufcmM"
    except TypeError:
        return False


def concat_chunks(
    plan: Plan,
    layouts: Mapping[str, Sequence[Layout | None]],
    *,
    existing: Mapping[str, int] | None = None,
    after: int = 0,
) -> dict[str, int]:
    """The chunk length along the concat dim of each referenced variable.

    ``layouts[name]`` holds one entry per source of ``plan`` (in order);
    ``existing`` the chunk lengths of a product being updated, whose ``after``
    steps come before these sources.

    Raises:
        ConversionError: no regular grid fits a variable's sources (nothing is written yet).
    """
    dim = plan.concat_dim
    out: dict[str, int] = {}
    for name, per_source in layouts.items():
        found = [(i, item) for i, item in enumerate(per_source) if item is not None]
        if not found:
            continue
        fixed = [item.chunk for _, item in found if not item.splittable]
        length = (existing or {}).get(name) or (fixed[0] if fixed else 1)
        last = len(per_source) - 1
        fits = not (after and after % length)
        for i, item in found:
            if item.splittable:
                fits = fits and item.chunk % length == 0
            else:
                fits = fits and item.chunk == length
            fits = fits and (i == last or item.steps % length == 0)
        if not fits:
            raise ConversionError(_refusal(name, dim, plan, per_source, existing, after))
        _same_encoding(name, dim, plan, per_source, length)
        out[name] = length
    return out


def _same_encoding(
    name: str, dim: str, plan: Plan, per_source: Sequence[Layout | None], length: int
) -> None:
    """Refuse sources whose chunks of ``name`` are encoded or shaped otherwise (along the
    other dims) than the first's: one Zarr array has one of each."""
    found = [(s, item) for s, item in zip(plan.sources, per_source, strict=True) if item]
    first_source, first = found[0]
    for source, item in found[1:]:
        what = None
        if item.codecs != first.codecs:
            what = f"encoded {first.codecs} vs {item.codecs}"
        elif item.other_chunks(length) != first.other_chunks(length):
            what = f"chunked {first.chunks} vs {item.chunks}"
        if what is not None:
            raise ConversionError(
                f"virtual references cannot join {name} along {dim}: "
                f"{first_source.url.rsplit('/', 1)[-1]} and {source.url.rsplit('/', 1)[-1]} "
                f"store it differently ({what}); convert the archive with --to zarr or "
                "--to icechunk, which re-encode it"
            )


def _refusal(
    name: str,
    dim: str,
    plan: Plan,
    per_source: Sequence[Layout | None],
    existing: Mapping[str, int] | None,
    after: int,
) -> str:
    shown = []
    for source, item in zip(plan.sources, per_source, strict=True):
        if item is not None:
            what = "uncompressed" if item.splittable else f"chunks of {item.chunk}"
            shown.append(f"{source.url.rsplit('/', 1)[-1]}: {item.steps} steps, {what}")
    listing = "; ".join(shown[:6]) + (f"; and {len(shown) - 6} more" if len(shown) > 6 else "")
    before = ""
    if existing and name in existing and not all(per_source):
        before = f"the product: {after} steps, chunks of {existing[name]}; "
    return (
        f"virtual references cannot join {name} along {dim}: no one chunk length fits every "
        f"file, and compressed chunks cannot be split ({before}{listing}); "
        "convert the archive with --to zarr or --to icechunk, which re-chunk it"
    )


def plan_chunks(
    plan: Plan,
    parts: Mapping[str, Any],
    *,
    existing: Mapping[str, int] | None = None,
    after: int = 0,
) -> dict[str, int]:
    """:func:`concat_chunks` of the referenced variables of ``plan`` in the virtual datasets
    ``parts`` (by source URL; sources without one are taken to fit, as the product holds them)."""
    layouts: dict[str, list[Layout | None]] = {}
    for name, var in plan.variables.items():
        recoded = var.recode is not None and any(
            var.recode.needed(i) for i in range(len(plan.sources))
        )
        if not var.concat or var.grid is not None or recoded:
            continue  # loaded, not referenced
        axis = var.dims.index(plan.concat_dim)
        per_source: list[Layout | None] = []
        for source in plan.sources:
            part = parts.get(source.url)
            found = part.variables.get(name) if part is not None else None
            per_source.append(layout(found.data, axis) if found is not None else None)
        layouts[name] = per_source
    return concat_chunks(plan, layouts, existing=existing, after=after)


def product_chunks(product: Product, plan: Plan) -> dict[str, int]:
    """The chunk length along the concat dim of each of ``product``'s arrays along it."""
    import zarr

    from arcodex.convert._digest import product_store
    from arcodex.convert._product import _quiet

    with _quiet():
        root: Any = zarr.open_group(
            product_store(product), path=product.group or "", mode="r", use_consolidated=False
        )
        out: dict[str, int] = {}
        for name, var in plan.variables.items():
            if var.concat and name in root:
                out[name] = int(root[name].chunks[var.dims.index(plan.concat_dim)])
    return out


def regrid(vds: Any, dim: str, lengths: Mapping[str, int]) -> Any:
    """``vds`` with its uncompressed arrays referenced in chunks of ``lengths[name]`` along ``dim``."""
    import xarray as xr

    for name, length in lengths.items():
        if name not in vds.variables:
            continue
        var = vds.variables[name]
        axis = var.dims.index(dim)
        item = layout(var.data, axis)
        if item is None or item.chunk == length or not item.splittable:
            continue
        data = split(var.data, axis, length)
        vds[name] = xr.Variable(var.dims, data, attrs=var.attrs, encoding=var.encoding)
    return vds


def split(array: Any, axis: int, length: int) -> Any:
    """An uncompressed virtual array in chunks of ``length`` along ``axis`` (and of one
    along the axes before it, so that each chunk stays one contiguous byte range)."""
    import numpy as np
    from virtualizarr.manifests import ChunkManifest, ManifestArray
    from virtualizarr.manifests.utils import copy_and_replace_metadata, manifest_chunk_shape

    shape = tuple(int(n) for n in array.shape)
    chunks = tuple(int(c) for c in manifest_chunk_shape(array.metadata))
    itemsize = np.dtype(array.dtype).itemsize
    sub = (1,) * axis + (length,) + chunks[axis + 1 :]
    grid = tuple(math.ceil(n / s) for n, s in zip(shape, sub, strict=True))
    # Each new chunk's index, the old chunk holding it, and its place inside that chunk.
    index = np.indices(grid).reshape(len(grid), -1)
    per = [chunks[k] // sub[k] for k in range(len(grid))]
    old = tuple(index[k] // per[k] for k in range(len(grid)))
    inner = [index[k] % per[k] for k in range(len(grid))]
    strides = [math.prod(chunks[k + 1 :]) for k in range(len(grid))]
    elements = sum(inner[k] * sub[k] * strides[k] for k in range(axis + 1))
    manifest = array.manifest
    paths = manifest._paths[old].reshape(grid)
    offsets = (manifest._offsets[old] + np.asarray(elements, "u8") * itemsize).reshape(grid)
    lengths = np.full(grid, math.prod(sub) * itemsize, dtype="u8")
    missing = paths == ""
    offsets[missing] = 0
    lengths[missing] = 0
    new = ChunkManifest.from_arrays(
        paths=paths, offsets=offsets.astype("u8"), lengths=lengths, validate_paths=False
    )
    metadata = copy_and_replace_metadata(array.metadata, new_chunks=list(sub))
    return ManifestArray(chunkmanifest=new, metadata=metadata)
