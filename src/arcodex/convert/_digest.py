"""Chunk digests: a fingerprint of every chunk's values, recorded while writing, checked whole.

While a product is written, each Dask task hashes the values of every chunk
it writes (xxh3-64 of the decoded chunk's bytes, exactly as read from the
sources) and notes the chunks that hold only the fill value (Zarr does not
store those). The client gathers them into a :class:`Digests` manifest,
kept in the product's provenance under ``digests``. ``check`` then lists
every stored chunk (or reference) of the product, reads every one in
parallel threads and compares: a changed, swapped, truncated, missing or
extra chunk fails with the variable and the chunk index named, on every
format (the product is read through Zarr, so virtual references are
followed to the source bytes they point at and decoded).

A manifest entry per variable is its chunk grid, one 8-byte digest per
chunk in C order and a bitmap of the empty chunks, base64-encoded. Stored
Zarr and Icechunk products also record the size in bytes of every stored
chunk (or shard): a damage that leaves every value readable, such as an
edge chunk cut short in its padding, still changes its size.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from arcodex.convert._product import Product

__all__ = [
    "ChunkDigest",
    "Digests",
    "chunk_digests",
    "digest",
    "verify_digests",
]

#: One chunk's digest as a task returns it: variable, chunk index, digest, all fill.
ChunkDigest = tuple[str, tuple[int, ...], int, bool]
_META = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
#: Reads of the check are grouped to about this many bytes (a bigger chunk is read alone,
#: straight into the array its digest is taken of).
_READ_BYTES = 4 * 2**20


def digest(values: np.ndarray) -> int:
    """xxh3-64 of the values' bytes in C order and native byte order (NaN payloads and
    signed zeros included): big-endian NetCDF3 values read through Zarr 2 references stay
    big-endian, the same values read from the file may not."""
    import numpy as np
    import xxhash

    values = np.asarray(values)
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return int(xxhash.xxh3_64_intdigest(np.ascontiguousarray(values).data))


def is_fill(values: np.ndarray, fill: Any) -> bool:
    """Whether every value is the fill value (a chunk Zarr leaves unstored)."""
    import numpy as np

    if values.dtype.kind in "OSUV":
        return False
    want = np.asarray(0 if fill is None else fill).astype(values.dtype)
    if values.size:
        # Nearly every chunk holds data: its first value tells, without a pass over it.
        first = values[(0,) * values.ndim]
        if not (first == want or (values.dtype.kind in "fc" and first != first and want != want)):
            return False
    if values.dtype.kind in "fc":
        return bool(np.array_equal(values, np.broadcast_to(want, values.shape), equal_nan=True))
    return bool(np.all(values == want))


def chunk_ranges(
    region: Sequence[slice], chunks: Sequence[int]
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """The chunks ``region`` touches: their index and their (unclipped) region."""
    spans = [
        range(sel.start // size, math.ceil(sel.stop / size)) if sel.stop > sel.start else range(0)
        for sel, size in zip(region, chunks, strict=True)
    ]
    for index in itertools.product(*spans):
        bounds = tuple(
            slice(i * size, (i + 1) * size) for i, size in zip(index, chunks, strict=True)
        )
        yield tuple(index), bounds


def chunk_digests(
    name: str,
    region: tuple[slice, ...],
    data: np.ndarray,
    arr: Any,
) -> list[ChunkDigest]:
    """Digests of the chunks of ``arr`` (a Zarr array) that the block ``data`` at ``region`` wrote.

    A chunk only partly inside the block (an update's first chunk) is read back
    whole from ``arr``, which holds its other part already.
    """
    shape = tuple(int(n) for n in arr.shape)
    chunks = tuple(int(c) for c in arr.chunks) if shape else ()
    out: list[ChunkDigest] = []
    if not shape:
        return [(name, (), digest(data), is_fill(data, arr.fill_value))]
    for index, bounds in chunk_ranges(region, chunks):
        clipped = tuple(slice(b.start, min(b.stop, n)) for b, n in zip(bounds, shape, strict=True))
        inside = all(
            c.start >= r.start and c.stop <= r.stop for c, r in zip(clipped, region, strict=True)
        )
        if inside:
            local = tuple(
                slice(c.start - r.start, c.stop - r.start)
                for c, r in zip(clipped, region, strict=True)
            )
            values = data[local]
        else:
            values = arr[clipped]
        out.append((name, index, digest(values), is_fill(values, arr.fill_value)))
    return out


# -- the manifest -----------------------------------------------------------------------


@dataclass
class _Entry:
    grid: tuple[int, ...]
    digests: Any  # np.ndarray of uint64, shape grid
    empty: Any  # np.ndarray of bool
    known: Any  # np.ndarray of bool: chunks with a digest
    #: Bytes of each stored chunk (shard) on the outer grid, 0 where none is stored;
    #: None where the product records no sizes (virtual, or an older arcodex).
    sizes: Any = None


@dataclass
class Digests:
    """The digest of every chunk of a product, by variable."""

    entries: dict[str, _Entry] = field(default_factory=dict)

    def grid(self, name: str, grid: Sequence[int]) -> None:
        """Declare (or grow) ``name``'s chunk grid, keeping the digests already known."""
        import numpy as np

        grid = tuple(int(g) for g in grid)
        old = self.entries.get(name)
        entry = _Entry(
            grid,
            np.zeros(grid, dtype="<u8"),
            np.zeros(grid, dtype=bool),
            np.zeros(grid, dtype=bool),
        )
        if old is not None and len(old.grid) == len(grid):
            common = tuple(slice(0, min(a, b)) for a, b in zip(old.grid, grid, strict=True))
            entry.digests[common] = old.digests[common]
            entry.empty[common] = old.empty[common]
            entry.known[common] = old.known[common]
        self.entries[name] = entry

    def add(self, items: Iterable[ChunkDigest]) -> None:
        for name, index, value, empty in items:
            entry = self.entries.get(name)
            if entry is None:
                continue
            entry.digests[index] = value
            entry.empty[index] = empty
            entry.known[index] = True

    def unknown(self) -> list[str]:
        """Variables with chunks that have no digest (written before digests were kept)."""
        return sorted(n for n, e in self.entries.items() if not bool(e.known.all()))

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {}
        for name, e in sorted(self.entries.items()):
            out[name] = {
                "grid": list(e.grid),
                "xxh3": _b64(e.digests.astype("<u8").tobytes()),
                "empty": _b64(np.packbits(e.empty.ravel()).tobytes()),
                **(
                    {}
                    if bool(e.known.all())
                    else {"known": _b64(np.packbits(e.known.ravel()).tobytes())}
                ),
                **(
                    {}
                    if e.sizes is None
                    else {
                        "outer": list(e.sizes.shape),
                        "bytes": _b64(e.sizes.astype("<u8").tobytes()),
                    }
                ),
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Digests:
        import numpy as np

        out = cls()
        for name, item in (data or {}).items():
            grid = tuple(int(g) for g in item["grid"])
            digests = np.frombuffer(_unb64(item["xxh3"]), dtype="<u8").reshape(grid).copy()

            sizes = None
            if "bytes" in item:
                outer = tuple(int(g) for g in item["outer"])
                sizes = np.frombuffer(_unb64(item["bytes"]), dtype="<u8").reshape(outer).copy()
            out.entries[name] = _Entry(
                grid,
                digests,
                _bits(item.get("empty"), grid, default=False),
                _bits(item.get("known"), grid, default=True),
                sizes,
            )
        return out


def _bits(text: str | None, grid: tuple[int, ...], *, default: bool) -> Any:
    import numpy as np

    if text is None:
        return np.full(grid, default, dtype=bool)
    raw = np.frombuffer(_unb64(text), dtype=np.uint8)
    return np.unpackbits(raw, count=math.prod(grid)).astype(bool).reshape(grid)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def record(plan_attrs: dict[str, Any], attr: str, digests: Digests) -> str:
    """The provenance JSON of ``plan_attrs[attr]`` with ``digests`` in it (also stored back)."""
    from arcodex.convert._plan import jsonable

    provenance = json.loads(plan_attrs.get(attr) or "{}")
    provenance["digests"] = digests.to_dict()
    text = json.dumps(jsonable(provenance), sort_keys=True)
    plan_attrs[attr] = text
    return text


def grids_of(root: Any, names: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """The chunk grid of every array ``names`` of the Zarr group ``root``."""
    out: dict[str, tuple[int, ...]] = {}
    for name in names:
        arr = root[name]
        out[name] = tuple(int(n) for n in arr.cdata_shape) if arr.shape else ()
    return out


def coordinate_digests(name: str, values: np.ndarray, arr: Any) -> list[ChunkDigest]:
    """Digests of an array written whole on the client (the concatenation coordinate)."""
    import numpy as np

    values = np.asarray(
        values,
        dtype=arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else arr.dtype,
    )
    region = tuple(slice(0, int(n)) for n in arr.shape)
    return chunk_digests(name, region, values, arr)


def digests_on(
    name: str, region: tuple[slice, ...], data: np.ndarray, chunks: Sequence[int], fill: Any
) -> list[ChunkDigest]:
    """Digests of the chunks (of shape ``chunks``) that ``data``, covering ``region``, holds."""
    if not region:
        return [(name, (), digest(data), is_fill(data, fill))]
    out: list[ChunkDigest] = []
    for index, bounds in chunk_ranges(region, chunks):
        local = tuple(
            slice(max(b.start, r.start) - r.start, min(b.stop, r.stop) - r.start)
            for b, r in zip(bounds, region, strict=True)
        )
        values = data[local]
        out.append((name, index, digest(values), is_fill(values, fill)))
    return out


# -- verifying ----------------------------------------------------------------------------


def record_sizes(root: Any, digests: Digests) -> None:
    """Note the size of every stored chunk (shard) of ``root``'s arrays in ``digests``."""
    import numpy as np

    store = root.store
    prefix = f"{root.path.strip('/')}/" if root.path else ""
    listed = _list_keys(store, prefix)
    names = [n for n in digests.entries if n in root]
    sizes = _stored_sizes(store, prefix, {n: listed.get(f"{prefix}{n}", set()) for n in names})
    for name in names:
        arr = root[name]
        table = np.zeros(outer_grid(arr), dtype="<u8")
        for key, index in outer_keys(arr).items():
            table[index] = sizes[name].get(key, 0)
        digests.entries[name].sizes = table


def _stored_sizes(
    store: Any, prefix: str, keys: Mapping[str, set[str]]
) -> dict[str, dict[str, int]]:
    """The size of each stored chunk key, by array name."""
    import asyncio

    from zarr.core.sync import sync

    pairs = [(name, key) for name, found in keys.items() for key in sorted(found)]

    async def measure() -> list[int]:
        return list(await asyncio.gather(*(store.getsize(f"{prefix}{n}/{k}") for n, k in pairs)))

    out: dict[str, dict[str, int]] = {name: {} for name in keys}
    for (name, key), size in zip(pairs, sync(measure()) if pairs else [], strict=True):
        out[name][key] = int(size)
    return out


def outer_grid(arr: Any) -> tuple[int, ...]:
    """The grid of ``arr``'s stored keys: its chunks, or its shards when sharded."""
    shape = tuple(int(n) for n in arr.shape)
    outer = tuple(int(s) for s in (arr.shards or arr.chunks)) if shape else ()
    return tuple(math.ceil(n / s) for n, s in zip(shape, outer, strict=True))


def outer_keys(arr: Any) -> dict[str, tuple[int, ...]]:
    """Every stored key of ``arr`` (a chunk, or a shard when sharded) and its index."""
    return {
        arr.metadata.encode_chunk_key(i): i for i in itertools.product(*map(range, outer_grid(arr)))
    }


def product_store(product: Product) -> Any:
    """A read-only Zarr store of ``product`` (virtual references followed)."""
    if product.format == "zarr":
        return product.target.zarr_store(read_only=True)
    if product.format in ("icechunk", "virtual-icechunk"):
        from arcodex.convert._product import _quiet

        with _quiet():
            return product.repository().readonly_session(branch=product.branch).store
    import fsspec
    import zarr.storage

    fs = fsspec.filesystem(
        "reference", fo=product.target.url, asynchronous=True, **product._reference_options()
    )
    return zarr.storage.FsspecStore(fs, read_only=True, path="")


@dataclass
class Verdict:
    """What the digest check found."""

    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks: int = 0
    stored: int = 0
    empty: int = 0
    variables: int = 0


def verify_digests(
    product: Product, recorded: Mapping[str, Any], *, threads: int | None = None
) -> Verdict:
    """Read every chunk of ``product`` and compare it with the digests ``recorded``."""
    import zarr

    from arcodex.convert._product import _quiet

    verdict = Verdict()
    digests = Digests.from_dict(recorded)
    try:
        store = product_store(product)
        with _quiet():
            root: Any = zarr.open_group(
                store, path=product.group or "", mode="r", use_consolidated=False
            )
    except Exception as exc:
        verdict.reasons.append(f"the product's chunks cannot be listed: {_one_line(exc)}")
        return verdict
    prefix = f"{product.group.strip('/')}/" if product.group else ""
    listed = _list_keys(store, prefix)
    sized = [n for n, e in digests.entries.items() if e.sizes is not None]
    try:
        sizes = _stored_sizes(store, prefix, {n: listed.get(f"{prefix}{n}", set()) for n in sized})
    except Exception as exc:
        verdict.reasons.append(
            f"the sizes of the product's chunks cannot be read: {_one_line(exc)}"
        )
        sizes = {}
    jobs: list[tuple[str, Any, tuple[slice, ...], list[tuple[int, ...]]]] = []
    for name, entry in sorted(digests.entries.items()):
        try:
            arr = root[name]
        except KeyError:
            continue  # the structure check names missing variables
        verdict.variables += 1
        grid = tuple(int(n) for n in arr.cdata_shape) if arr.shape else ()
        if grid != entry.grid:
            verdict.reasons.append(
                f"{name} has a chunk grid of {grid}, but {entry.grid} were written"
            )
            continue
        keys = listed.get(f"{prefix}{name}", set())
        keys |= _unlisted(store, f"{prefix}{name}", set(outer_keys(arr)) - keys)
        if name in sizes:
            _compare_sizes(name, arr, entry, sizes[name], verdict)
        jobs.extend(_plan_reads(name, arr, entry, keys, verdict))
    workers = threads or min(32, 2 * (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for found in pool.map(lambda job: _read_and_compare(job, digests), jobs):
            verdict.reasons.extend(found)
    unknown = digests.unknown()
    if unknown:
        verdict.warnings.append(
            f"no digest is recorded for some chunks of {', '.join(unknown)} "
            "(written by an older arcodex); those were not verified — convert anew to cover them"
        )
    return verdict


def _list_keys(store: Any, prefix: str) -> dict[str, set[str]]:
    """Stored chunk keys, relative to their array, by array path."""
    from zarr.core.sync import sync

    fs = getattr(store, "fs", None)
    if fs is not None:  # s3fs keeps listings; one made before the last write would be stale
        fs.invalidate_cache()

    async def collect() -> list[str]:
        return [k async for k in store.list_prefix(prefix)]

    out: dict[str, set[str]] = {}
    for key in sync(collect()):
        parts = key.split("/")
        if parts[-1] in _META:
            continue
        # v3 keys: <array>/c/i/j…; v2 keys: <array>/i.j…
        if "c" in parts:
            at = parts.index("c")
            array, rest = "/".join(parts[:at]), "/".join(parts[at:])
        else:
            array, rest = "/".join(parts[:-1]), parts[-1]
        out.setdefault(array, set()).add(rest)
    return out


def _unlisted(store: Any, array: str, candidates: set[str]) -> set[str]:
    """The ``candidates`` that exist though the listing left them out (a Parquet reference
    store does not list inlined chunks)."""
    import asyncio

    from zarr.core.sync import sync

    names = sorted(candidates)

    async def probe() -> list[bool]:
        return list(await asyncio.gather(*(store.exists(f"{array}/{k}") for k in names)))

    return {k for k, found in zip(names, sync(probe()) if names else [], strict=True) if found}


def _compare_sizes(
    name: str, arr: Any, entry: _Entry, sizes: Mapping[str, int], verdict: Verdict
) -> None:
    """Stored chunks whose size is not the size written (cut short, grown or replaced)."""
    wrong = []
    for key, index in outer_keys(arr).items():
        if key not in sizes:
            continue  # missing chunks are named by the reads
        inside = all(i < n for i, n in zip(index, entry.sizes.shape, strict=True))
        written = int(entry.sizes[index]) if inside else 0
        if written and sizes[key] != written:
            wrong.append(f"{_idx(index)} is {sizes[key]} bytes where {written} were written")
    if wrong:
        verdict.reasons.append(
            f"{name} chunk{'s' if len(wrong) > 1 else ''} "
            + ", ".join(wrong[:5])
            + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
            + " (truncated or replaced)"
        )


def _plan_reads(
    name: str, arr: Any, entry: _Entry, keys: set[str], verdict: Verdict
) -> Iterator[tuple[str, Any, tuple[slice, ...], list[tuple[int, ...]]]]:
    """Reads of the stored chunks of ``arr``; missing and extra chunks go into ``verdict``."""
    shape = tuple(int(n) for n in arr.shape)
    chunks = tuple(int(c) for c in arr.chunks) if shape else ()
    outer = tuple(int(s) for s in (arr.shards or arr.chunks)) if shape else ()
    expected = outer_keys(arr)
    extra = sorted(keys - set(expected))
    if extra:
        verdict.reasons.append(
            f"{name} holds {len(extra)} chunk(s) that were never written: "
            + ", ".join(extra[:5])
            + (" …" if len(extra) > 5 else "")
        )
    verdict.chunks += math.prod(entry.grid)
    verdict.empty += int(entry.empty.sum())
    missing: list[tuple[int, ...]] = []
    per = [s // c for s, c in zip(outer, chunks, strict=True)]
    stored: list[tuple[int, ...]] = []
    for key, index in expected.items():
        inner = list(
            itertools.product(
                *(
                    range(i * p, min((i + 1) * p, g))
                    for i, p, g in zip(index, per, entry.grid, strict=True)
                )
            )
        )
        if key in keys:
            stored.append(index)
            continue
        missing.extend(i for i in inner if entry.known[i] and not entry.empty[i])
    if missing:
        verdict.reasons.append(
            f"{name} chunk{'s' if len(missing) > 1 else ''} "
            + ", ".join(_idx(i) for i in missing[:5])
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " missing from the product (they held data, not only fill values)"
        )
    verdict.stored += len(stored)
    # Group stored outer chunks along the last axes into reads of about _READ_BYTES.
    itemsize = max(1, int(getattr(arr.dtype, "itemsize", 0) or _itemsize(arr)))
    per_read = max(1, _READ_BYTES // max(1, math.prod(outer) * itemsize))
    for group in _batches(stored, per_read):
        lo = [min(ix[d] for ix in group) for d in range(len(outer))]
        hi = [max(ix[d] for ix in group) + 1 for d in range(len(outer))]
        region = tuple(
            slice(a * s, min(b * s, n)) for a, b, s, n in zip(lo, hi, outer, shape, strict=True)
        )
        yield name, arr, region, group


def _itemsize(arr: Any) -> int:
    import numpy as np

    try:
        return int(np.dtype(arr.dtype.to_native_dtype()).itemsize)
    except (AttributeError, TypeError):
        return 8


def _batches(indices: list[tuple[int, ...]], size: int) -> Iterator[list[tuple[int, ...]]]:
    """Runs of outer chunks that differ only in the last index (a contiguous box each)."""
    run: list[tuple[int, ...]] = []
    for index in sorted(indices):
        if run and (index[:-1] != run[-1][:-1] or index[-1] != run[-1][-1] + 1 or len(run) >= size):
            yield run
            run = []
        run.append(index)
    if run:
        yield run


def _read_and_compare(
    job: tuple[str, Any, tuple[slice, ...], list[tuple[int, ...]]], digests: Digests
) -> list[str]:
    name, arr, region, _ = job
    entry = digests.entries[name]
    try:
        data = arr[region] if region else arr[()]
    except Exception as exc:
        return [f"{name} chunks at {_where(region)} cannot be read: {_one_line(exc)}"]
    import numpy as np

    data = np.asarray(data)
    chunks = tuple(int(c) for c in arr.chunks) if region else ()
    found: list[str] = []
    for _, index, value, _empty in digests_on(name, region, data, chunks, arr.fill_value):
        if not entry.known[index]:
            continue
        if value != int(entry.digests[index]):
            found.append(
                f"{name} chunk {_idx(index)} differs from what was written "
                "(changed, moved or truncated)"
            )
    return found


def _idx(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in index) + ")"


def _where(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
