"""Sources of a conversion: where they are, how to open them, what they hold.

A source spec is a list of paths or URLs, a glob, a directory, or a manifest
file (CSV with a ``path`` or ``url`` column, or YAML: a list, or a mapping
with ``sources:``). ``s3://``/``https://`` URLs are read through fsspec with
the storage options of a profile (credentials stay in memory, never in a
record, log or error message).

:func:`scan_source` runs on Dask workers: it opens one file and returns a
:class:`SourceScan`, a small picklable summary (dims, variables with raw
dtypes and attributes, chunking, the concatenation coordinate's values).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from arcodex.errors import ArcodexError, ConversionError, PluginError, ValidationError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DATASET_SCHEME",
    "InMemory",
    "SourceRef",
    "SourceScan",
    "VarScan",
    "open_raw",
    "resolve_sources",
    "scan_source",
]

_NETCDF_SUFFIXES = (".nc", ".nc4", ".h5", ".hdf5", ".he5", ".hdf", ".cdf", ".netcdf")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_REMOTE = ("s3://", "gs://", "gcs://", "az://", "abfs://", "http://", "https://", "memory://")
#: Static variables up to this size are hashed at scan time, so that a
#: difference between sources is reported instead of silently taking the first.
_STATIC_HASH_LIMIT = 64 * 2**20
#: The URL scheme of an in-memory ``xarray.Dataset`` source (no path: a digest of it).
DATASET_SCHEME = "dataset://"


class Reader(Protocol):
    """Reads raw (still encoded) values of one source."""

    def read(
        self, name: str, selection: tuple[slice, ...], out: np.ndarray | None = None
    ) -> np.ndarray: ...

    def close(self) -> None: ...


class InMemory(Protocol):
    """A source that is no file (an ``xarray.Dataset``): it scans and reads itself.

    Implemented in :mod:`arcodex.convert._memory_source`; travels to the workers
    inside its :class:`SourceRef` (pickled).
    """

    def scan(self, ref: SourceRef, concat_dim: str | None) -> SourceScan: ...

    def reader(self) -> Reader: ...

    def fingerprint(self) -> tuple[int, str]: ...


@dataclass(frozen=True)
class SourceRef:
    """One source: a local path or a URL (plus the fsspec options to read it), or an
    in-memory dataset (``dataset``, with a ``dataset://`` URL naming its digest)."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    dataset: InMemory | None = field(default=None, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        return not self.url.startswith((*_REMOTE, DATASET_SCHEME))

    @property
    def in_memory(self) -> bool:
        return self.url.startswith(DATASET_SCHEME)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url


@dataclass
class VarScan:
    """One variable of one source, as stored (no CF decoding)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: dict[str, Any]
    chunks: tuple[int, ...] | None
    digest: str | None = None  # of the raw bytes, for variables without the concat dim


@dataclass
class SourceScan:
    """What one source holds."""

    ref: SourceRef
    size: int
    fingerprint: str  # size and modification time (or ETag): changes when the file does
    dims: dict[str, int]
    unlimited: tuple[str, ...]
    variables: dict[str, VarScan]
    attrs: dict[str, Any]
    concat_dim: str | None = None
    concat_values: np.ndarray | None = None  # raw, as stored
    concat_attrs: dict[str, Any] = field(default_factory=dict)
    #: Raw values of the coordinate's bounds and other time-valued variables along it.
    times: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def length(self, dim: str) -> int:
        return self.dims.get(dim, 0)


def resolve_sources(
    spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    storage_options: Mapping[str, Any] | None = None,
) -> list[SourceRef]:
    """Expand a source spec into files (deduplicated, in the order given).

    Raises:
        ValidationError: nothing matches, or a named file does not exist.
    """
    options = dict(storage_options or {})
    items = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    if not items:
        raise ValidationError("no sources given; pass files, a glob, a directory or a manifest")
    refs: list[SourceRef] = []
    for item in items:
        refs.extend(_expand(os.fspath(item), options))
    seen: set[str] = set()
    unique = [r for r in refs if not (r.url in seen or seen.add(r.url))]  # type: ignore[func-returns-value]
    if not unique:
        raise ValidationError(f"no source files match {items[0]!s}; check the path or glob")
    return unique


def _expand(item: str, options: dict[str, Any]) -> Iterator[SourceRef]:
    scheme = _plugin_scheme(item)
    if scheme is not None:
        for resolved in _resolve_plugin_source(item, scheme, options):
            if _plugin_scheme(resolved) is not None:
                raise PluginError(
                    f"the {scheme}:// source kind resolved {item} to {resolved}, another "
                    "plugin URL; a resolver must give paths or fsspec URLs"
                )
            yield from _expand(resolved, options)
        return
    if item.startswith(_REMOTE):
        if any(c in item for c in "*?["):
            _fs, _, paths = _fsspec_paths(item, options)
            protocol = item.split("://", 1)[0]
            for p in sorted(paths):
                yield SourceRef(f"{protocol}://{p}", options)
        else:
            yield SourceRef(item, options)
        return
    path = Path(item).expanduser()
    if any(c in item for c in "*?["):
        matches = sorted(glob.glob(str(path), recursive=True))
        for m in matches:
            if Path(m).is_file():
                yield SourceRef(str(Path(m).resolve()))
        return
    if path.is_dir():
        files = sorted(
            f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in _NETCDF_SUFFIXES
        )
        if not files:
            raise ValidationError(f"directory {path} holds no NetCDF/HDF5 files")
        for found in files:
            yield SourceRef(str(found.resolve()))
        return
    if not path.exists():
        raise ValidationError(f"source {item} does not exist; check the path")
    if path.suffix.lower() in (".csv", ".yaml", ".yml", ".txt"):
        base = path.parent
        for entry in _manifest(path):
            resolved = entry if entry.startswith(_REMOTE) else str((base / entry).expanduser())
            yield from _expand(resolved, options)
        return
    yield SourceRef(str(path.resolve()))


def _plugin_scheme(item: str) -> str | None:
    """The scheme of a URL that no built-in source reads (a plugin's source kind may)."""
    match = _SCHEME.match(item)
    if match is None or item.startswith(_REMOTE):
        return None
    return match[1].lower()


def _resolve_plugin_source(item: str, scheme: str, options: dict[str, Any]) -> list[str]:
    from arcodex.plugins import registry

    registry().reserve("source_kind", (p.split(":", 1)[0] for p in _REMOTE))
    kinds = registry().source_kinds()
    resolver = kinds.get(scheme)
    if not callable(resolver):
        built_in = ", ".join(p.split(":", 1)[0] for p in _REMOTE)
        plugins = f"; from plugins: {', '.join(sorted(kinds))}" if kinds else ""
        raise ValidationError(
            f"source {item}: nothing reads {scheme}:// URLs (built in: {built_in}{plugins}); "
            "install the plugin that provides it, or check the URL"
        )
    try:
        found = resolver(item, dict(options))
        resolved = [os.fspath(p) for p in found]
    except ArcodexError:
        raise
    except Exception as exc:
        raise PluginError(
            f"source {item}: plugin {registry().owner('source_kind', scheme)!r} failed to "
            f"resolve it: {type(exc).__name__}: {exc}"
        ) from exc
    if not resolved:
        raise ValidationError(f"source {item} resolved to no files; check the URL")
    return resolved


def _manifest(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        column = next((c for c in ("path", "url", "file", "source") if rows and c in rows[0]), None)
        if column is None:
            raise ValidationError(
                f"manifest {path.name} needs a 'path' or 'url' column (found {', '.join(rows[0]) if rows else 'no rows'})"
            )
        return [r[column].strip() for r in rows if r[column].strip()]
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    import yaml

    data = yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("sources")
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ValidationError(
            f"manifest {path.name} must be a list of paths, or a mapping with a 'sources' list"
        )
    return data


def _fsspec_paths(url: str, options: Mapping[str, Any]) -> tuple[Any, str, list[str]]:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - the s3 extra is part of 'all'
        raise ConversionError(
            "reading remote sources needs fsspec: pip install 'arcodex[s3]'"
        ) from exc
    fs, path = fsspec.core.url_to_fs(url, **dict(options))
    return fs, path, list(fs.glob(path))


# -- opening ---------------------------------------------------------------------------

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: The netCDF-C library is not thread safe: every call into it holds this lock
#: (h5py, used for HDF5 files, has its own).
NETCDF_LOCK = threading.RLock()


class RawFile:
    """A source opened for reading raw (still encoded) values."""

    def __init__(self, ref: SourceRef) -> None:
        self.ref = ref
        self._fh: Any = None
        if ref.is_local:
            with open(ref.url, "rb") as fh:
                magic = fh.read(8)
        else:
            import fsspec

            self._fh = fsspec.open(ref.url, "rb", **dict(ref.storage_options)).open()
            magic = self._fh.read(8)
            self._fh.seek(0)
        self.hdf5 = magic == _HDF5_MAGIC
        if self.hdf5:
            import h5py  # type: ignore[import-untyped,unused-ignore]

            # A small chunk cache: every slab is read once, so caching only costs memory.
            self.h5: Any = h5py.File(self._fh or ref.url, "r", rdcc_nbytes=2**20)
            self._chunked: dict[str, Any] = {}
        else:
            if self._fh is not None:
                raise ConversionError(
                    f"{ref.url} is not HDF5/NetCDF4; remote NetCDF3 files are not supported, copy them locally first"
                )
            import netCDF4

            with NETCDF_LOCK:
                self.nc: Any = netCDF4.Dataset(ref.url, "r")
                self.nc.set_auto_maskandscale(False)
                self.nc.set_always_mask(False)

    def read(
        self, name: str, selection: tuple[slice, ...], out: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw values of ``name`` (into ``out`` when given, of the selection's shape);
        a chunk that cannot be decoded is a ConversionError naming it."""
        try:
            values = self._read(name, selection, out)
            if out is not None and values is not out:
                out[...] = values
                return out
            return values
        except (OSError, RuntimeError, ValueError) as exc:
            where = ", ".join(f"{s.start}:{s.stop}" for s in selection)
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConversionError(
                f"cannot read {name}[{where}] from {self.ref.url}: {text}; the file may be "
                "damaged — restore it from a good copy, or leave it out"
            ) from exc

    def _read(self, name: str, selection: tuple[slice, ...], out: np.ndarray | None) -> np.ndarray:
        import numpy as np

        if self.hdf5:
            dset = self.h5[name]
            if dset.shape == () or not selection:
                return np.asarray(dset[()])
            reader = self._chunk_reader(name, dset)
            if reader is not None:
                return reader.read(selection, out)  # type: ignore[no-any-return]
            return np.asarray(dset[selection])
        with NETCDF_LOCK:
            var = self.nc.variables[name]
            return np.asarray(var[selection] if selection else var[...])

    def _chunk_reader(self, name: str, dset: Any) -> Any:
        """Decodes ``name``'s chunks here when its filters are deflate (+ shuffle), else None."""
        if name not in self._chunked:
            from arcodex.convert._hdf5 import ChunkReader, fast_inflate

            self._chunked[name] = ChunkReader.of(dset) if fast_inflate() else None
        return self._chunked[name]

    def close(self) -> None:
        try:
            if self.hdf5:
                self.h5.close()
            else:
                with NETCDF_LOCK:
                    self.nc.close()
        finally:
            if self._fh is not None:
                self._fh.close()


class _OpenFiles:
    """A few files kept open per thread, closed least-recently-used first.

    Per thread, not per process: a file one thread is reading must not be closed under
    it by another making room (conversions of a group run in threads of one process,
    and threaded Dask workers share theirs).
    """

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._local = threading.local()

    @property
    def files(self) -> dict[str, Reader]:
        files: dict[str, Reader] | None = getattr(self._local, "files", None)
        if files is None:
            files = self._local.files = {}
        return files

    def get(self, ref: SourceRef) -> Reader:
        found = self.files.pop(ref.url, None)
        if found is None:
            found = ref.dataset.reader() if ref.dataset is not None else RawFile(ref)
        self.files[ref.url] = found
        while len(self.files) > self.limit:
            oldest = next(iter(self.files))
            self.files.pop(oldest).close()
        return found

    def forget(self, url: str) -> None:
        found = self.files.pop(url, None)
        if found is not None:
            found.close()


_open_files = _OpenFiles()


def open_raw(ref: SourceRef) -> Reader:
    """The raw reader of ``ref``, shared within this thread."""
    try:
        return _open_files.get(ref)
    except FileNotFoundError as exc:
        raise ConversionError(f"source {ref.url} is gone; check the path") from exc
    except OSError as exc:
        raise ConversionError(f"cannot open source {ref.url}: {exc}") from exc


# -- scanning --------------------------------------------------------------------------


def scan_source(ref: SourceRef, concat_dim: str | None = None) -> SourceScan:
    """Summarise one source (runs on a worker; h5netcdf or netCDF4 only, no xarray)."""
    import numpy as np

    if ref.dataset is not None:
        return ref.dataset.scan(ref, concat_dim)
    try:
        size, fingerprint = _fingerprint(ref)
        handle: Any = None
        if ref.is_local:
            hdf5 = hdf5_magic(ref.url)
        else:
            import fsspec

            handle = fsspec.open(ref.url, "rb", **dict(ref.storage_options)).open()
            hdf5 = handle.read(8) == _HDF5_MAGIC
            handle.seek(0)
        if hdf5:
            import h5netcdf

            nc: Any = h5netcdf.File(handle or ref.url, "r", phony_dims="access")
        elif ref.is_local:
            import netCDF4

            NETCDF_LOCK.acquire()
            try:
                nc = netCDF4.Dataset(ref.url, "r")
                nc.set_auto_maskandscale(False)
            except BaseException:
                NETCDF_LOCK.release()
                raise
        else:
            raise ConversionError(
                f"{ref.url} is not HDF5/NetCDF4; remote NetCDF3 files are not supported, copy them locally first"
            )
    except ConversionError:
        raise
    except FileNotFoundError as exc:
        raise ConversionError(f"source {ref.url} does not exist; check the path") from exc
    except Exception as exc:
        raise ConversionError(f"cannot read source {ref.url}: {exc}") from exc
    try:
        dims = {str(k): int(v.size) for k, v in nc.dimensions.items()}
        unlimited = tuple(str(k) for k, v in nc.dimensions.items() if v.isunlimited())
        variables: dict[str, VarScan] = {}
        for name, var in nc.variables.items():
            attrs = _attrs(var.attrs) if hdf5 else {k: var.getncattr(k) for k in var.ncattrs()}
            chunks = var.chunks if hdf5 else var.chunking()
            dtype = np.dtype(var.dtype) if not isinstance(var.dtype, type) else np.dtype(object)
            variables[str(name)] = VarScan(
                dims=tuple(str(d) for d in var.dimensions),
                shape=tuple(int(n) for n in var.shape),
                dtype=dtype.str if dtype.kind not in "OSU" else "str",
                attrs=attrs,
                chunks=tuple(int(c) for c in chunks) if isinstance(chunks, tuple | list) else None,
            )
        attrs = _attrs(nc.attrs) if hdf5 else {k: nc.getncattr(k) for k in nc.ncattrs()}
        dim = concat_dim or _detect(variables, unlimited, dims)
        scan = SourceScan(
            ref=ref,
            size=size,
            fingerprint=fingerprint,
            dims=dims,
            unlimited=unlimited,
            variables=variables,
            attrs=attrs,
            concat_dim=dim,
        )
        if dim is not None and dim in variables:
            scan.concat_values = np.asarray(nc.variables[dim][...])
            scan.concat_attrs = dict(variables[dim].attrs)
            for name in _time_companions(variables, dim):
                scan.times[name] = np.asarray(nc.variables[name][...])
        for name, info in variables.items():
            if (dim is None or dim not in info.dims) and info.dtype != "str" and name != dim:
                nbytes = int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize
                if nbytes <= _STATIC_HASH_LIMIT:
                    values = np.ascontiguousarray(nc.variables[name][...])
                    info.digest = hashlib.sha1(values.tobytes()).hexdigest()
    except Exception as exc:
        raise ConversionError(f"cannot read source {ref.url}: {exc}") from exc
    finally:
        nc.close()
        if not hdf5:
            NETCDF_LOCK.release()
        if handle is not None:
            handle.close()
    return scan


def _time_companions(variables: Mapping[str, VarScan], dim: str) -> list[str]:
    """The bounds of the concatenation coordinate and other variables along it with time units."""
    named: set[str] = set()
    for key in ("bounds", "climatology"):
        named.update(str(variables[dim].attrs.get(key, "")).split())
    return [
        name
        for name, info in variables.items()
        if name != dim
        and dim in info.dims
        and (name in named or " since " in str(info.attrs.get("units", "")))
        and math.prod(info.shape) * 8 <= _STATIC_HASH_LIMIT
    ]


def _attrs(raw: Any) -> dict[str, Any]:
    """HDF5 attributes as netCDF4 reads them: byte strings decoded, fill values as stored."""
    import numpy as np

    out: dict[str, Any] = {}
    for key in raw:
        value = raw[key]
        if key not in ("_FillValue", "missing_value"):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, np.ndarray) and value.dtype.kind in "SO":
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        out[str(key)] = value
    return out


def _detect(
    variables: Mapping[str, VarScan], unlimited: Sequence[str], dims: Mapping[str, int]
) -> str | None:
    for info in variables.values():
        if len(info.dims) == 1 and (
            str(info.attrs.get("axis", "")).upper() == "T"
            or info.attrs.get("standard_name") == "time"
        ):
            return info.dims[0]
    for name in unlimited:
        return str(name)
    for name in ("time", "time_counter", "t"):
        if name in dims:
            return name
    return None


def _fingerprint(ref: SourceRef) -> tuple[int, str]:
    if ref.dataset is not None:
        return ref.dataset.fingerprint()
    if ref.in_memory:
        # The dataset was in the memory of the process that converted it.
        raise FileNotFoundError(f"{ref.url} was an in-memory dataset")
    if ref.is_local:
        st = os.stat(ref.url)
        return st.st_size, f"{st.st_size}:{st.st_mtime_ns}"
    import fsspec

    fs, path = fsspec.core.url_to_fs(ref.url, **dict(ref.storage_options))
    info = fs.info(path)
    tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
    size = int(info.get("size") or 0)
    return size, f"{size}:{str(tag).strip(chr(34))}"


def hdf5_magic(path: str | os.PathLike[str]) -> bool:
    """Whether a local file is HDF5 (NetCDF4) rather than NetCDF3."""
    with open(path, "rb") as fh:
        return fh.read(8) == _HDF5_MAGIC
