"""Read a Zarr array's chunks a Dask block at a time, decoding in the Dask thread.

Virtual products (kerchunk references, virtual Icechunk) point at the
sources' own chunks: many small compressed byte ranges, usually zlib with
shuffle. zarr-python reads them one coroutine per chunk on its single event
loop and hands the decoding to a thread pool shared by the whole process, so a
read stays near one core. Here each Dask block fetches the raw bytes of all its
chunks in one go (local files referenced by kerchunk with ``os.pread`` in the
calling thread, anything else through the zarr store), then decodes them in
the Dask worker thread itself, the last codec straight into the block, with
libdeflate (imagecodecs) for zlib where it is installed. libdeflate releases
the GIL, so Dask's threads decode in parallel, and no process-wide setting
changes. Arrays whose codecs this module does not know keep zarr's own path.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    import zarr

__all__ = ["ChunkReader", "read_chunks_directly"]


def read_chunks_directly(ds: xr.Dataset, group: zarr.Group) -> xr.Dataset:
    """``ds`` with each Dask-backed variable that :class:`ChunkReader` can read swapped for one.

    ``ds`` must be opened without CF decoding (``decode_cf=False``): the
    reader returns the stored values, and the caller decodes afterwards, as
    xarray would have. The Dask chunks stay those of ``ds``.
    """
    import dask.array as da
    import zarr

    swapped: dict[str, Any] = {}
    for name, variable in ds.variables.items():
        data = variable.data
        if not isinstance(data, da.Array) or name in ds.indexes or variable.ndim == 0:
            continue
        try:
            array = group[str(name)]
        except KeyError:
            continue
        reader = ChunkReader.for_array(array) if isinstance(array, zarr.Array) else None
        if reader is None or reader.shape != variable.shape or reader.dtype != data.dtype:
            continue
        read = da.from_array(  # type: ignore[no-untyped-call]
            reader,
            chunks=data.chunks,
            name=f"arcodex-read-{name}-{uuid.uuid4().hex}",
            asarray=False,
            lock=False,
            meta=np.empty((0,) * variable.ndim, dtype=reader.dtype),
        )
        swapped[str(name)] = variable.copy(deep=False, data=read)
    if not swapped:
        return ds
    coords = {k: v for k, v in swapped.items() if k in ds.coords}
    data_vars = {k: v for k, v in swapped.items() if k not in ds.coords}
    return ds.assign_coords(coords).assign(data_vars)


@dataclass(frozen=True, eq=False)
class ChunkReader:
    """An array-like over one Zarr array that reads whole regions chunk by chunk.

    Indexing with a tuple of slices (what ``dask.array.from_array`` does) fetches
    the raw bytes of every chunk the region touches in one go, decodes them with
    ``decoders`` (numcodecs-like, bytes to bytes, in order), the last one
    straight into the region when the chunk fills a contiguous part of it.
    """

    store: Any
    prefix: str
    encode_key: Callable[[tuple[int, ...]], str]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    stored: np.dtype[Any]
    dtype: np.dtype[Any]
    order: str
    fill_value: Any
    decoders: tuple[Any, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @classmethod
    def for_array(cls, array: zarr.Array[Any]) -> ChunkReader | None:
        """A reader for ``array``, or None when its layout or codecs are not ones it knows."""
        meta = array.metadata
        dtype = np.dtype(array.dtype)
        if dtype.hasobject or dtype.kind in "OUSV" or not array.shape:
            return None
        chunks = tuple(int(c) for c in array.chunks)
        if getattr(meta, "zarr_format", None) == 2:
            found = _v2_codecs(meta, dtype)
        else:
            found = _v3_codecs(meta, dtype)
        if found is None or len(chunks) != len(array.shape):
            return None
        stored, order, decoders = found
        fill = meta.fill_value
        if fill is None:
            fill = dtype.type(0)
        path = array.path.strip("/")
        size = int(np.prod(chunks)) * stored.itemsize
        return cls(
            store=array.store,
            prefix=f"{path}/" if path else "",
            encode_key=meta.encode_chunk_key,
            shape=tuple(int(n) for n in array.shape),
            chunks=chunks,
            stored=stored,
            dtype=dtype,
            order=order,
            fill_value=fill,
            decoders=tuple(_fast(d, size) for d in decoders),
        )

    def __getitem__(self, key: tuple[slice, ...] | slice) -> np.ndarray[Any, Any]:
        region = key if isinstance(key, tuple) else (key,)
        region = region + (slice(None),) * (self.ndim - len(region))
        ranges = [range(*s.indices(n)) for s, n in zip(region, self.shape, strict=True)]
        if any(r.step != 1 for r in ranges):
            lows = [min(r) if r else 0 for r in ranges]
            box = tuple(
                slice(lo, max(r) + 1 if r else lo) for lo, r in zip(lows, ranges, strict=True)
            )
            picks = [np.asarray(r, dtype=np.intp) - lo for lo, r in zip(lows, ranges, strict=True)]
            return self[box][np.ix_(*picks)]
        starts = [r.start for r in ranges]
        stops = [max(r.start, r.stop) for r in ranges]
        out = np.empty([b - a for a, b in zip(starts, stops, strict=True)], dtype=self.dtype)
        if out.size == 0:
            return out
        grid = [
            range(a // c, -(-b // c)) for a, b, c in zip(starts, stops, self.chunks, strict=True)
        ]
        coords = list(itertools.product(*grid))
        raw = _fetch(self.store, [self.prefix + self.encode_key(c) for c in coords])
        direct = self.stored == self.dtype and self.order == "C"
        for coord, data in zip(coords, raw, strict=True):
            inner, outer, full = [], [], True
            for i, a, b, c in zip(coord, starts, stops, self.chunks, strict=True):
                lo, hi = max(a, i * c), min(b, (i + 1) * c)
                inner.append(slice(lo - i * c, hi - i * c))
                outer.append(slice(lo - a, hi - a))
                full = full and hi - lo == c
            target = out[tuple(outer)]
            if data is None:
                target[...] = self.fill_value
            elif direct and full and target.flags.c_contiguous:
                self._decode(data, target)
            else:
                target[...] = self._decode(data)[tuple(inner)]
        return out

    def _decode(
        self, data: Any, target: np.ndarray[Any, Any] | None = None
    ) -> np.ndarray[Any, Any]:
        """One chunk's values; decoded into ``target`` (a whole chunk's room) when given."""
        *head, last = self.decoders or (None,)
        for decoder in head:
            data = decoder.decode(data)
        if target is not None:
            room = target.reshape(-1).view(np.uint8)
            if last is None:
                room[...] = np.frombuffer(data, dtype=np.uint8)
            else:
                last.decode(data, out=room)
            return target
        if last is not None:
            data = last.decode(data)
        flat = np.frombuffer(data, dtype=np.uint8).view(self.stored)
        return flat.reshape(self.chunks, order=self.order)  # type: ignore[call-overload,no-any-return]


def _fetch(store: Any, keys: Sequence[str]) -> list[Any]:
    """The raw bytes of ``keys`` in ``store`` (None where missing).

    References to local files are read here, in the calling thread; the rest
    through the store, concurrently on zarr's event loop.
    """
    found: list[Any] = [None] * len(keys)
    remote: list[int] = []
    references = getattr(getattr(store, "fs", None), "_cat_common", None)
    root = str(getattr(store, "path", "") or "").strip("/")
    files: dict[str, int] = {}
    try:
        for n, key in enumerate(keys):
            where = f"{root}/{key}" if root else key
            local = _local_reference(store.fs, references, where) if references else False
            if local is None:
                continue
            if isinstance(local, bool):
                remote.append(n)
            elif isinstance(local, bytes):
                found[n] = local
            else:
                path, start, stop = local
                if path not in files:
                    files[path] = os.open(path, os.O_RDONLY)
                found[n] = os.pread(files[path], stop - start, start)
    finally:
        for fd in files.values():
            os.close(fd)
    if remote:
        from zarr.core.sync import sync

        got = sync(_get_all(store, [keys[n] for n in remote]))
        for n, data in zip(remote, got, strict=True):
            found[n] = data
    return found


def _local_reference(
    fs: Any, references: Callable[[str], Any], key: str
) -> tuple[str, int, int] | bytes | bool | None:
    """Where a kerchunk reference points, if it is read here: inline bytes or a local range.

    None for a missing chunk, False for one the store must fetch.
    """
    from fsspec.core import split_protocol
    from fsspec.implementations.local import LocalFileSystem

    try:
        part, start, stop = references(key)
    except FileNotFoundError:
        return None
    if isinstance(part, bytes):
        return part
    protocol, _ = split_protocol(part)
    target = fs.fss.get(protocol)
    target = getattr(target, "sync_fs", target)
    if not isinstance(target, LocalFileSystem) or start is None or stop is None:
        return False
    if not hasattr(os, "pread"):  # Windows: through the store
        return False
    return str(target._strip_protocol(part)), int(start), int(stop)


async def _get_all(store: Any, keys: Sequence[str]) -> list[Any]:
    import zarr
    from zarr.core.buffer import default_buffer_prototype

    prototype = default_buffer_prototype()
    limit = asyncio.Semaphore(int(zarr.config.get("async.concurrency") or 10))

    async def get(key: str) -> Any:
        async with limit:
            found = await store.get(key, prototype=prototype)
        return None if found is None else found.as_numpy_array()

    return list(await asyncio.gather(*(get(k) for k in keys)))


# -- codecs ------------------------------------------------------------------------------------


def _v2_codecs(meta: Any, dtype: np.dtype[Any]) -> tuple[np.dtype[Any], str, list[Any]] | None:
    """Zarr v2: the compressor, then the filters in reverse; chunks hold ``meta.dtype``."""
    decoders: list[Any] = []
    if meta.compressor is not None:
        decoders.append(meta.compressor)
    decoders.extend(reversed(meta.filters or ()))
    if not all(_bytes_to_bytes(d) for d in decoders):
        return None
    stored = np.dtype(meta.dtype.to_native_dtype())
    if stored.newbyteorder("=") != dtype.newbyteorder("="):
        return None
    return stored, str(meta.order), decoders


def _v3_codecs(meta: Any, dtype: np.dtype[Any]) -> tuple[np.dtype[Any], str, list[Any]] | None:
    """Zarr v3: only ``bytes`` then bytes-to-bytes numcodecs (what virtual products carry)."""
    from zarr.codecs import BytesCodec, GzipCodec

    try:
        from zarr.codecs.numcodecs._codecs import _NumcodecsBytesBytesCodec
    except ImportError:  # another zarr: its own path
        return None

    codecs = list(meta.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    decoders: list[Any] = []
    for codec in reversed(codecs[1:]):
        if isinstance(codec, _NumcodecsBytesBytesCodec):
            decoders.append(codec._codec)
        elif isinstance(codec, GzipCodec):
            import numcodecs

            decoders.append(numcodecs.GZip(level=codec.level))
        else:
            return None
    endian = str(getattr(codecs[0].endian, "value", codecs[0].endian))
    stored = dtype.newbyteorder("<" if endian == "little" else ">" if endian == "big" else "=")
    return stored, "C", decoders


def _bytes_to_bytes(codec: Any) -> bool:
    """Whether a numcodecs codec maps bytes to the bytes of the same array (not a dtype change)."""
    return getattr(codec, "codec_id", None) in _BYTES_TO_BYTES


_BYTES_TO_BYTES = {"zlib", "gzip", "shuffle", "zstd", "blosc", "lz4", "bz2", "lzma"}


def _fast(codec: Any, size: int) -> Any:
    """``codec``, or libdeflate's decoder in its place for zlib when imagecodecs has it."""
    if getattr(codec, "codec_id", None) == "zlib":
        try:
            import imagecodecs
        except ImportError:
            return codec
        if getattr(getattr(imagecodecs, "DEFLATE", None), "available", False):
            return _Libdeflate(size)
    return codec


class _Libdeflate:
    """zlib decoding with libdeflate, which releases the GIL and is about 1.7x zlib's speed."""

    codec_id = "zlib"

    def __init__(self, size: int) -> None:
        self.size = size  # a whole chunk's bytes, the room libdeflate decodes into

    def decode(self, data: Any, out: Any = None) -> Any:
        import imagecodecs

        try:
            return imagecodecs.deflate_decode(data, out=self.size if out is None else out)
        except imagecodecs.DeflateError:
            # Not a whole chunk's size (or not zlib): the reference decoder decides.
            import zlib

            decoded = zlib.decompress(data)
            if out is None:
                return decoded
            np.copyto(out, np.frombuffer(decoded, dtype=np.uint8))
            return out
