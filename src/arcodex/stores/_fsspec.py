"""A directory of datasets on any fsspec filesystem: what the file, s3, memory, https and
reference stores share.

Data ids are paths relative to the store's root, ending in a suffix that says
how the dataset opens (``.zarr``, ``.nc``; references: ``.json``, ``.parq``).
Opening goes through :func:`arcodex.client.open_dataset`, the one open path of
arcodex, given the dataset as an asset. Writing puts the new dataset beside
its id (a staging name), and swaps it in only once it is complete; deleting
removes only what carries the mark a store writes (:data:`WRITTEN_BY`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from arcodex.errors import ConflictError, NotFoundError, StorageError, ValidationError
from arcodex.stores._base import OpenParams, StoreBase
from arcodex.stores._descriptor import (
    WRITTEN_BY,
    DatasetDescriptor,
    describe_dataset,
    multiscale_levels,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FsspecStore"]

#: Suffix -> (asset media type, roles) for the client's open path.
DATASET_SUFFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    ".zarr": ("application/vnd+zarr", ("data",)),
    ".nc": ("application/netcdf", ("data",)),
    ".nc4": ("application/netcdf", ("data",)),
    ".h5": ("application/netcdf", ("data",)),
}
#: Names a write in progress (or an old dataset being swapped out) has; never listed.
_STAGING = ".arcodex-staging-"
_OLD = ".arcodex-old-"


class FsspecStore(StoreBase):
    """Datasets under a root on an fsspec filesystem (subclasses say which and how)."""

    suffixes: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = DATASET_SUFFIXES
    writable: bool = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._fs: Any = None

    # -- what a subclass defines -------------------------------------------------------------

    def _make_fs(self) -> Any:
        raise NotImplementedError

    def _root(self) -> str:
        """The root as the filesystem names paths (no protocol)."""
        raise NotImplementedError

    def _url(self, path: str) -> str:
        """A path of the filesystem as a URL the client opens."""
        raise NotImplementedError

    def _storage_options(self) -> dict[str, Any]:
        """fsspec options to open a dataset (never a secret: those come from the environment)."""
        return {}

    def _where(self) -> str:
        """The store as its messages name it."""
        return f"the {self.kind} store at {self._url(self._root())}"

    # -- listing -------------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    def _path(self, data_id: str) -> str:
        parts = data_id.replace("\\", "/").split("/")
        if not data_id or data_id.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValidationError(
                f"data id {data_id!r} is not a relative path inside the store; "
                "give one as list_data_ids gives them (e.g. dir/name.zarr)"
            )
        return self._root().rstrip("/") + "/" + "/".join(parts)

    def _suffix(self, data_id: str) -> str:
        for suffix in self.suffixes:
            if data_id.lower().endswith(suffix):
                return suffix
        raise ValidationError(
            f"data id {data_id!r} does not end in one of {', '.join(self.suffixes)}; "
            "name it with the suffix of its format"
        )

    def _walk(self) -> list[str]:
        root = self._root().rstrip("/")
        found: list[str] = []
        pending = [root]
        while pending:
            here = pending.pop()
            try:
                entries = self.fs.ls(here, detail=True)
            except FileNotFoundError:
                continue
            for entry in entries:
                name = str(entry["name"]).rstrip("/")
                base = name.rsplit("/", 1)[-1]
                if _STAGING in base or _OLD in base or base.startswith("."):
                    continue
                rel = _relative(name, root)
                if rel is None:
                    continue
                if any(base.lower().endswith(s) for s in self.suffixes):
                    found.append(rel)
                elif entry.get("type") == "directory":
                    pending.append(name)
        return sorted(found)

    def list_data_ids(self, **params: Any) -> list[Any]:
        """The data ids under the root; with ``include_attrs`` (id, {name: value}) pairs."""
        wanted = self._check("list_data_ids", params)
        ids = self._walk()
        if not wanted.include_attrs:
            return ids
        out = []
        for data_id in ids:
            attrs = self.describe_data(data_id).attrs
            out.append((data_id, {k: attrs.get(k) for k in wanted.include_attrs}))
        return out

    def has_data(self, data_id: str) -> bool:
        try:
            path = self._path(data_id)
            self._suffix(data_id)
        except ValidationError:
            return False
        return bool(self._exists(path))

    def _exists(self, path: str) -> bool:
        try:
            return bool(self.fs.exists(path))
        except (OSError, ValueError):
            return False

    def _need(self, data_id: str) -> str:
        path = self._path(data_id)
        if not self._exists(path):
            raise NotFoundError(
                f"no data {data_id!r} in {self._where()}; "
                f"run `arcodex store list {self.kind} …` to list the ids"
            )
        self._suffix(data_id)
        return path

    # -- describing and opening -------------------------------------------------------------

    def _asset(
        self, data_id: str, group: str | None = None, *, metadata_only: bool = False
    ) -> dict[str, Any]:
        media, roles = self.suffixes[self._suffix(data_id)]
        asset: dict[str, Any] = {
            "href": self._url(self._path(data_id)),
            "type": media,
            "roles": list(roles),
        }
        options = self._storage_options()
        if options:
            asset["xarray:storage_options"] = options
        open_kwargs: dict[str, Any] = {}
        if group is not None:
            open_kwargs["group"] = group
        if metadata_only:  # xarray's lazy arrays, no Dask graph: describing reads no chunk
            open_kwargs["chunks"] = None
        if open_kwargs:
            asset["xarray:open_kwargs"] = open_kwargs
        return asset

    def _open(
        self,
        data_id: str,
        *,
        group: str | None = None,
        chunks: Any = None,
        metadata_only: bool = False,
        **subset: Any,
    ) -> xr.Dataset:
        from arcodex.client import open_dataset

        self._need(data_id)
        asset = self._asset(data_id, group, metadata_only=metadata_only)
        return open_dataset(asset, chunks=chunks, **subset)

    def _levels(self, data_id: str, ds: xr.Dataset) -> list[str]:
        return multiscale_levels(ds.attrs) if not ds.data_vars else []

    def describe_data(self, data_id: str, **params: Any) -> DatasetDescriptor:
        """The dataset's descriptor, from its metadata and 1-D coordinates (no data read)."""
        self._check("describe_data", params)
        with self._open(data_id, metadata_only=True) as ds:
            levels = self._levels(data_id, ds)
            if not levels:
                return describe_dataset(ds, data_id, self.kind)
        with self._open(data_id, group=levels[0], metadata_only=True) as finest:
            return describe_dataset(finest, data_id, self.kind, levels=levels)

    def open_data(self, data_id: str, **params: Any) -> xr.Dataset:
        """The dataset, lazily (Dask), subset as ``params`` say (see :class:`OpenParams`)."""
        wanted: OpenParams = self._check("open_data", params)
        group = None
        if wanted.level is not None:
            with self._open(data_id, metadata_only=True) as root:
                levels = self._levels(data_id, root)
            if wanted.level >= max(len(levels), 1):
                raise ValidationError(
                    f"{data_id} has {max(len(levels), 1)} level(s); "
                    f"ask for level 0 to {max(len(levels), 1) - 1}"
                )
            group = levels[wanted.level] if levels else None
        return self._open(
            data_id,
            group=group,
            chunks=wanted.chunks,
            variables=wanted.variables,
            bbox=wanted.bbox,
            time=wanted.time,
        )

    # -- writing -----------------------------------------------------------------------------

    def write_data(self, dataset: xr.Dataset, data_id: str, **params: Any) -> str:
        """Write ``dataset`` under ``data_id``; returns the id.

        With ``replace`` an existing dataset this store wrote is replaced: the new
        one is written beside it and swapped in only once complete.

        Raises:
            ConflictError: If something is there (and ``replace`` is not given, or the store
                did not write it).
        """
        if not self.writable:
            raise self._read_only()
        wanted = self._check("write_data", params)
        path = self._path(data_id)
        suffix = self._suffix(data_id)
        existed = self._exists(path)
        if existed and not wanted.replace:
            raise ConflictError(
                f"{data_id!r} already exists in {self._where()}; pass replace=True to replace it"
            )
        if existed and not self._written_here(data_id):
            raise ConflictError(
                f"an arcodex store did not write {data_id!r} in {self._where()}, so it is "
                "never replaced; remove it yourself or choose another id"
            )
        head, _, base = path.rpartition("/")
        staging = f"{head}/.{base}{_STAGING}{uuid.uuid4().hex[:8]}{suffix}"
        try:
            self._write(dataset, staging, suffix)
        except BaseException:
            self._remove(staging)
            raise
        self._swap(staging, path, existed)
        return data_id

    def _write(self, dataset: xr.Dataset, path: str, suffix: str) -> None:
        ds = dataset.copy()
        ds.attrs[WRITTEN_BY] = f"written by arcodex.stores ({self.kind})"
        for var in ds.variables.values():
            for key in ("chunks", "preferred_chunks", "compressor", "compressors", "filters"):
                var.encoding.pop(key, None)
            for key in ("shards", "zlib", "complevel", "contiguous", "chunksizes", "source"):
                var.encoding.pop(key, None)
        try:
            if suffix == ".zarr":
                with warnings.catch_warnings():
                    # Consolidated metadata is not in the Zarr 3 spec; readers over HTTP need it.
                    warnings.filterwarnings("ignore", "Consolidated metadata")
                    ds.to_zarr(self._zarr_store(path), mode="w-", consolidated=True)
            else:
                self._write_netcdf(ds, path)
        except OSError as exc:
            raise StorageError(f"cannot write to {self._where()}: {exc}") from exc

    def _zarr_store(self, path: str) -> Any:
        import zarr.storage

        return zarr.storage.FsspecStore.from_url(
            self._url(path), storage_options=self._storage_options() or None
        )

    def _write_netcdf(self, ds: xr.Dataset, path: str) -> None:
        with tempfile.TemporaryDirectory(prefix="arcodex-store-") as tmp:
            local = os.path.join(tmp, "data.nc")
            ds.to_netcdf(local)
            self.fs.put_file(local, path)

    def _swap(self, staging: str, path: str, existed: bool) -> None:
        if not existed:
            self._move(staging, path)
            return
        head, _, base = path.rpartition("/")
        old = f"{head}/.{base}{_OLD}{uuid.uuid4().hex[:8]}"
        self._move(path, old)
        try:
            self._move(staging, path)
        except BaseException:
            self._move(old, path)  # the old dataset back: nothing lost
            raise
        self._remove(old)

    def _move(self, src: str, dst: str) -> None:
        """Move a file or a tree; on object stores a copy of each object, then the removal."""
        if not self.fs.isdir(src):
            self.fs.mv(src, dst)
            return
        files = self.fs.find(src)
        self.fs.copy(files, [dst + f[len(src) :] for f in files])
        self.fs.rm(src, recursive=True)

    def _remove(self, path: str) -> None:
        if self._exists(path):
            self.fs.rm(path, recursive=True)

    def _written_here(self, data_id: str) -> bool:
        try:
            with self._open(data_id, metadata_only=True) as ds:
                return WRITTEN_BY in ds.attrs
        except (ValidationError, StorageError, NotFoundError):
            return False

    def delete_data(self, data_id: str, **params: Any) -> None:
        """Remove a dataset this store wrote (never anything else).

        Raises:
            NotFoundError: If there is no such dataset.
            ConflictError: If an arcodex store did not write it.
        """
        if not self.writable:
            raise self._read_only()
        self._check("delete_data", params)
        path = self._need(data_id)
        if not self._written_here(data_id):
            raise ConflictError(
                f"an arcodex store did not write {data_id!r} in {self._where()}, so it is "
                "never deleted; remove it yourself if you mean to"
            )
        self.fs.rm(path, recursive=True)


def _relative(name: str, root: str) -> str | None:
    if root and name.startswith(root + "/"):
        return name[len(root) + 1 :]
    if not root:
        return name.lstrip("/")
    return None
