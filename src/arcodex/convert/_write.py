"""Writing products: the layout (metadata) on the client, the chunks on Dask workers.

The layout is made by xarray (``to_zarr(compute=False)`` on a lazy template
of the raw variables), so products open with plain ``xr.open_zarr`` and
decode exactly as their sources do. The data never passes through xarray:
each task reads whole source chunks as stored (h5py, no CF decoding), puts
them together in memory and writes whole output chunks (or shards) with
zarr, so a task holds at most one block (bounded by a budget) and no two
tasks touch the same chunk.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.convert._plan import Block, Plan
from arcodex.convert._sources import SourceRef, open_raw
from arcodex.convert._target import Target
from arcodex.convert._times import TimeCode
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np

    from arcodex.convert._digest import ChunkDigest

__all__ = [
    "CODECS",
    "ReadSpec",
    "WriteOptions",
    "create_layout",
    "read_block",
    "run_tasks",
    "write_blocks",
]

CODECS = ("blosc-zstd", "zstd", "blosc-lz4", "zlib", "none")
#: The largest block one task holds in memory.
BLOCK_BUDGET = 256 * 2**20
#: Blocks are grouped into tasks of about this many bytes (fewer, larger tasks).
TASK_BYTES = 96 * 2**20

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class WriteOptions:
    """How chunks are encoded."""

    zarr_format: Literal[2, 3] = 3
    codec: str = "blosc-zstd"
    level: int | None = None
    shards: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValidationError(
                f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}"
            )
        if self.zarr_format not in (2, 3):
            raise ValidationError("--zarr-format must be 2 or 3")
        if self.shards and self.zarr_format == 2:
            raise ValidationError(
                "sharding needs Zarr format 3; drop --shards or use --zarr-format 3"
            )

    def compressors(self) -> list[Any]:
        level = self.level
        if self.zarr_format == 3:
            from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

            if self.codec == "zstd":
                return [ZstdCodec(level=3 if level is None else level)]
            if self.codec == "blosc-zstd":
                return [
                    BloscCodec(
                        cname="zstd", clevel=3 if level is None else level, shuffle="shuffle"
                    )
                ]
            if self.codec == "blosc-lz4":
                return [
                    BloscCodec(cname="lz4", clevel=5 if level is None else level, shuffle="shuffle")
                ]
            if self.codec == "zlib":
                return [GzipCodec(level=4 if level is None else level)]
            return []
        import numcodecs

        if self.codec == "zstd":
            return [numcodecs.Zstd(level=3 if level is None else level)]
        if self.codec == "blosc-zstd":
            return [numcodecs.Blosc(cname="zstd", clevel=3 if level is None else level, shuffle=1)]
        if self.codec == "blosc-lz4":
            return [numcodecs.Blosc(cname="lz4", clevel=5 if level is None else level, shuffle=1)]
        if self.codec == "zlib":
            return [numcodecs.Zlib(level=4 if level is None else level)]
        return []

    def to_dict(self) -> dict[str, Any]:
        return {
            "zarr_format": self.zarr_format,
            "codec": self.codec,
            "level": self.level,
            **({"shards": dict(self.shards)} if self.shards else {}),
        }


@dataclass(frozen=True)
class _VarRead:
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    recode: TimeCode | None
    grid: str | None


@dataclass(frozen=True)
class ReadSpec:
    """What workers need to read blocks: the sources and how each variable is read."""

    refs: tuple[SourceRef, ...]
    concat_dim: str
    units: str | None
    calendar: str | None
    variables: Mapping[str, _VarRead]
    grid: SourceRef | None = None

    @classmethod
    def of(cls, plan: Plan) -> ReadSpec:
        return cls(
            refs=tuple(plan.refs),
            concat_dim=plan.concat_dim,
            units=plan.concat_units,
            calendar=plan.calendar,
            variables={
                name: _VarRead(v.dims, v.shape, v.dtype, v.recode, v.grid)
                for name, v in plan.variables.items()
            },
            grid=plan.grid,
        )


def read_block(block: Block, spec: ReadSpec) -> np.ndarray:
    """The values of ``block``, as stored in the sources."""
    import numpy as np

    var = spec.variables[block.var]
    shape = tuple(s.stop - s.start for s in block.region)
    if var.grid is not None:
        assert spec.grid is not None
        # The plan checked the sizes; the grid file may add size-1 dims (NEMO's t).
        full = open_raw(spec.grid).read(var.grid, ()).reshape(var.shape)
        return np.ascontiguousarray(full[block.region])
    if spec.concat_dim not in var.dims:
        return open_raw(spec.refs[0]).read(block.var, block.region)
    t = var.dims.index(spec.concat_dim)
    out = np.empty(shape, dtype=np.dtype(var.dtype))
    for piece in block.pieces:
        src = list(block.region)
        src[t] = piece.src
        dst: list[slice] = [slice(None)] * len(shape)
        dst[t] = piece.dst
        ref = spec.refs[piece.source]
        if var.recode is None:
            # Decoded straight into the block where the reader can.
            open_raw(ref).read(block.var, tuple(src), out=out[tuple(dst)])
            continue
        values = open_raw(ref).read(block.var, tuple(src))
        out[tuple(dst)] = var.recode.encode(values, piece.source, f"{block.var} of {ref.name}")
    return out


# -- layout ------------------------------------------------------------------------------


def template(plan: Plan, options: WriteOptions) -> tuple[Any, dict[str, Any]]:
    """A lazy dataset with the product's raw variables, and its zarr encoding."""
    import dask.array as da
    import xarray as xr

    variables: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    for name, var in plan.variables.items():
        data = da.zeros(var.shape, dtype=var.dtype, chunks=var.shape or ())
        variables[name] = xr.Variable(var.dims, data, attrs=dict(var.attrs))
        enc: dict[str, Any] = {"chunks": var.chunks, "compressors": options.compressors()}
        if var.shards:
            enc["shards"] = var.shards
        if "_FillValue" not in var.attrs:
            # Otherwise xarray gives float variables a NaN fill value their sources lack.
            enc["_FillValue"] = None
        fill = missing_fill(var.attrs, var.dtype)
        if fill is not None and options.zarr_format == 3:
            # Zarr 3 keeps the fill value apart from the _FillValue attribute: a chunk
            # that is not there must read as missing, never as valid (packed) data.
            enc["fill_value"] = fill
        encoding[name] = enc
    ds = xr.Dataset(variables, attrs=dict(plan.attrs))
    # As in the sources read raw: only dimension variables are coordinates; the
    # `coordinates` and `bounds` attributes are kept as they are.
    ds = ds.set_coords([n for n in plan.variables if n in plan.dims])
    return ds, encoding


def missing_fill(attrs: Mapping[str, Any], dtype: str) -> Any:
    """The stored value that means "missing" (``_FillValue``, else ``missing_value``), or None."""
    import numpy as np

    for key in ("_FillValue", "missing_value"):
        value = attrs.get(key)
        if value is not None and dtype != "str":
            first = np.atleast_1d(np.asarray(value))
            if first.size:
                return np.asarray(first[0]).astype(np.dtype(dtype))[()]
    return None


def fill_attrs(plan: Plan, zarr_format: int) -> None:
    """Zarr 2 has a single fill value, which xarray reads as ``_FillValue``: a variable
    that marks missing data with ``missing_value`` only gets it as its ``_FillValue``, so
    that a chunk that is not there reads as missing."""
    if zarr_format != 2:
        return
    for var in plan.variables.values():
        if "_FillValue" not in var.attrs and var.grid is None:
            fill = missing_fill(var.attrs, var.dtype)
            if fill is not None:
                var.attrs["_FillValue"] = fill


def shard_shape(
    dims: Sequence[str], chunks: Sequence[int], shape: Sequence[int], shards: Mapping[str, int]
) -> tuple[int, ...]:
    out = []
    for dim, chunk, size in zip(dims, chunks, shape, strict=True):
        want = shards.get(dim, chunk)
        want = size if want == -1 else want
        if want % chunk:
            raise ValidationError(
                f"shard size {want} of {dim} is not a multiple of its chunk size {chunk}; fix --shards"
            )
        out.append(want)
    return tuple(out)


def apply_shards(plan: Plan, options: WriteOptions) -> None:
    """Set each variable's shard shape (the grid tasks write on) from the options."""
    if not options.shards:
        return
    for var in plan.variables.values():
        if var.dims:
            var.shards = shard_shape(var.dims, var.chunks, var.shape, options.shards)


def create_layout(
    store: Any,
    plan: Plan,
    options: WriteOptions,
    *,
    group: str | None = None,
    mode: Literal["w", "w-", "a"] = "w-",
) -> None:
    """Write the product's metadata and its concatenation coordinate."""
    import zarr

    apply_shards(plan, options)
    fill_attrs(plan, options.zarr_format)
    ds, encoding = template(plan, options)
    with warnings.catch_warnings():
        # Consolidated metadata is not part of the Zarr 3 spec; we write it on purpose.
        warnings.simplefilter("ignore", category=UserWarning)
        ds.to_zarr(
            store,
            group=group,
            mode=mode,
            compute=False,
            zarr_format=options.zarr_format,
            consolidated=False,
            encoding=encoding,
        )
    root: Any = zarr.open_group(
        store, path=group or "", mode="r+", zarr_format=options.zarr_format, use_consolidated=False
    )
    if plan.concat_dim in plan.variables:
        root[plan.concat_dim][:] = plan.concat_values


def consolidate(store: Any, zarr_format: int, group: str | None = None) -> None:
    """Consolidate the metadata of the product's group and of the store's root."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        for path in dict.fromkeys([group or None, None]):
            zarr.consolidate_metadata(store, path=path, zarr_format=zarr_format)  # type: ignore[arg-type]


# -- tasks ---------------------------------------------------------------------------------


def plan_blocks(
    plan: Plan, names: Iterable[str], start: int = 0, stop: int | None = None
) -> list[Block]:
    """Every block to write over concat ``[start, stop)``, skipping the concat coordinate."""
    blocks: list[Block] = []
    for name in names:
        var = plan.variables[name]
        if name == plan.concat_dim:
            continue
        if not var.concat and (start > 0 or stop is not None):
            continue
        itemsize = _itemsize(var.dtype)
        blocks.extend(plan.blocks(name, start, stop, budget=BLOCK_BUDGET, itemsize=itemsize))
    return blocks


def group_tasks(blocks: Sequence[Block], plan: Plan, workers: int) -> list[list[Block]]:
    """Blocks grouped so that every worker gets several tasks and none is huge."""
    total = sum(_block_bytes(b, plan) for b in blocks)
    per_task = max(1, min(TASK_BYTES, total // max(1, workers * 4)))
    tasks: list[list[Block]] = []
    current: list[Block] = []
    size = 0
    for block in blocks:
        nbytes = _block_bytes(block, plan)
        if current and size + nbytes > per_task:
            tasks.append(current)
            current, size = [], 0
        current.append(block)
        size += nbytes
    if current:
        tasks.append(current)
    return tasks


def _block_bytes(block: Block, plan: Plan) -> int:
    return block.nbytes_hint * _itemsize(plan.variables[block.var].dtype)


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype).itemsize) or 8
    except TypeError:
        return 8


#: zarr's synchronous codec pipeline: no coroutine per chunk. A task encodes on its
#: own thread; Dask runs one task per worker thread, so the cores stay busy.
_PIPELINE = {
    "codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline",
    "codec_pipeline.max_workers": 1,
}


def write_blocks(
    blocks: Sequence[Block], spec: ReadSpec, target: Target, group: str | None
) -> tuple[int, list[ChunkDigest]]:
    """Task: read and write ``blocks`` into a Zarr product; the bytes written and chunk digests."""
    import zarr

    with zarr.config.set(_PIPELINE):
        # Opened afresh by every task: an update changes the arrays' shapes between writes.
        root: Any = zarr.open_group(
            target.zarr_store(), path=group or "", mode="r+", use_consolidated=False
        )
        return _write_all(blocks, spec, root)


def write_blocks_icechunk(
    blocks: Sequence[Block], spec: ReadSpec, fork: Any, group: str | None
) -> tuple[int, Any, list[ChunkDigest]]:
    """Task: write ``blocks`` into a forked Icechunk session; the bytes, the fork, the digests."""
    import zarr

    with zarr.config.set(_PIPELINE):
        root: Any = zarr.open_group(fork.store, path=group or "", mode="r+", use_consolidated=False)
        written, digests = _write_all(blocks, spec, root)
        return written, fork, digests


def _write_all(blocks: Sequence[Block], spec: ReadSpec, root: Any) -> tuple[int, list[ChunkDigest]]:
    from arcodex.convert._digest import chunk_digests

    arrays: dict[str, Any] = {}
    written = 0
    digests: list[ChunkDigest] = []
    for block in blocks:
        arr = arrays.get(block.var)
        if arr is None:
            arr = arrays[block.var] = root[block.var]
        data = read_block(block, spec)
        written += data.nbytes
        if arr.shards is None and arr.shape:
            digests.extend(_write_chunks(arr, block, data))
            continue
        arr[block.region] = data
        # Hashed here, from the values read, so that the check proves every chunk stored.
        digests.extend(chunk_digests(block.var, block.region, data, arr))
    return written, digests


def _write_chunks(arr: Any, block: Block, data: np.ndarray) -> list[ChunkDigest]:
    """Write ``data`` (the block's values) into ``arr`` one chunk at a time; their digests.

    Each chunk is copied out of the block once; that copy is hashed (from the
    values read, so the check proves every chunk stored) and encoded. A chunk
    found to hold data goes to Zarr with ``write_empty_chunks`` set, so Zarr
    does not scan it again for fill values; the rare chunk of fill values only
    goes the usual way, and Zarr decides whether it is stored.
    """
    import numpy as np

    from arcodex.convert._digest import chunk_ranges, digest, is_fill

    shape = tuple(int(n) for n in arr.shape)
    chunks = tuple(int(c) for c in arr.chunks)
    fill = arr.fill_value
    stored = arr.with_config({"write_empty_chunks": True})
    out: list[ChunkDigest] = []
    for index, bounds in chunk_ranges(block.region, chunks):
        clipped = tuple(slice(b.start, min(b.stop, n)) for b, n in zip(bounds, shape, strict=True))
        part = tuple(
            slice(max(c.start, r.start), min(c.stop, r.stop))
            for c, r in zip(clipped, block.region, strict=True)
        )
        local = tuple(
            slice(p.start - r.start, p.stop - r.start)
            for p, r in zip(part, block.region, strict=True)
        )
        values = np.ascontiguousarray(data[local])
        if part != clipped:
            # Only part of the chunk is in the block (an update's first chunk): the rest
            # is in the product already, and the digest is of the whole chunk.
            arr[part] = values
            values = np.asarray(arr[clipped])
            out.append((block.var, index, digest(values), is_fill(values, fill)))
            continue
        empty = is_fill(values, fill)
        (arr if empty else stored)[clipped] = values
        out.append((block.var, index, digest(values), empty))
    return out


def run_tasks(
    client: Any,
    fn: Callable[..., Any],
    tasks: Sequence[Sequence[Block]],
    *args: Any,
    progress: Progress | None = None,
    total: int = 0,
) -> list[Any]:
    """Run ``fn(task, *args)`` for every task on the cluster; results in completion order."""
    from distributed import as_completed

    if not tasks:
        return []
    # Not hashed: an update scatters a spec per pass, and equal keys would cancel each other.
    shared = [
        client.scatter(a, broadcast=True, hash=False) if isinstance(a, ReadSpec) else a
        for a in args
    ]
    futures = client.map(fn, list(tasks), *[[a] * len(tasks) for a in shared], pure=False)
    results: list[Any] = []
    done = 0
    try:
        for future in as_completed(futures, loop=client.loop):
            result = future.result()
            results.append(result)
            done += result[0] if isinstance(result, tuple) else int(result)
            if progress is not None:
                progress(done, total)
    except BaseException:
        from arcodex.convert._cluster import cancel_and_wait

        cancel_and_wait(client, futures)
        raise
    return results


def task_total(tasks: Iterable[Sequence[Block]], plan: Plan) -> int:
    return sum(_block_bytes(b, plan) for task in tasks for b in task)


def chunks_of(plan: Plan, name: str, start: int, stop: int) -> Iterator[tuple[int, ...]]:
    """Chunk indices of ``name`` whose concat range touches ``[start, stop)``."""
    import itertools

    var = plan.variables[name]
    ranges = []
    for dim, size, chunk in zip(var.dims, var.shape, var.chunks, strict=True):
        n = math.ceil(size / chunk) if size else 0
        if dim == plan.concat_dim:
            ranges.append(range(start // chunk, math.ceil(stop / chunk)))
        else:
            ranges.append(range(n))
    return itertools.product(*ranges)
