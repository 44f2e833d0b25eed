"""The bytes of published products, as read-only Zarr 3 stores: :func:`served_product`.

Every product format is served as a plain Zarr store, so a client needs no
storage options, no Icechunk and no kerchunk: Zarr directories (local or S3)
as they are; Icechunk repositories through a read-only session at the
published snapshot (or a tag, ``ID@TAG``); kerchunk references and virtual
Icechunk with the references resolved here. A store without consolidated
metadata gets it made on the fly (``.zmetadata`` for Zarr v2, the root
``zarr.json``'s ``consolidated_metadata`` for v3), since an HTTP client cannot
list directories.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import NotFoundError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.model import Record

__all__ = ["METADATA_KEYS", "ProductCache", "ServedProduct", "served_product"]

#: Keys that hold metadata (small JSON; gzipped on the wire, never cached as immutable).
METADATA_KEYS = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


@dataclass
class ServedProduct:
    """One opened product: its store and how its bytes may be cached."""

    store: Any  # zarr.abc.store.Store, read-only
    zarr_format: int
    #: Whether the bytes can never change (an Icechunk snapshot).
    immutable: bool
    #: What identifies this state of the product (snapshot id, or record version).
    version: str
    #: Metadata documents made here rather than read (consolidated metadata).
    synthesized: dict[str, bytes] = field(default_factory=dict)
    #: What the store raises for a key it cannot hold (Icechunk: one outside the Zarr 3
    #: key scheme, such as a v2 chunk key), which is an absent key to a client.
    bad_key: tuple[type[Exception], ...] = ()

    def etag(self, key: str, data: bytes | None = None) -> str:
        """A strong ETag of ``key``: of the snapshot and key; else, of a local file, its
        identity (inode, size and mtime in ns, as web servers make theirs: no read of the
        bytes again); else of the bytes."""
        digest = hashlib.sha256()
        if self.immutable or data is None:
            digest.update(f"{self.version}\0{key}".encode())
        elif (found := self.stat(key)) is not None:
            digest.update(f"{key}\0{found.st_ino}\0{found.st_size}\0{found.st_mtime_ns}".encode())
        else:
            digest.update(data)
        return f'"{digest.hexdigest()[:32]}"'

    def stat(self, key: str) -> Any:
        """``os.stat`` of ``key`` when the store is a local directory (None otherwise, or
        when it is absent): one system call where a store would take two thread hops."""
        path = self.local_path(key)
        if path is None:
            return None
        try:
            found = path.stat()
        except OSError:
            return None
        return found if stat.S_ISREG(found.st_mode) else None  # a directory is no key

    def local_path(self, key: str) -> Path | None:
        """The file of ``key`` when the store is a local directory (it may be absent)."""
        from zarr.storage import LocalStore

        if not isinstance(self.store, LocalStore) or key in self.synthesized:
            return None
        return Path(self.store.root) / key


class ProductCache:
    """Opened products by (record id, record version, tag): a request never re-opens one.

    The first requests of a product are many at once (a client reads every metadata
    key together); they wait for one opening rather than each making its own, whose
    S3 sessions would be dropped unclosed.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: dict[tuple[str, int, str | None], asyncio.Future[ServedProduct]] = {}

    async def get(self, catalog: Catalog, record: Record, tag: str | None) -> ServedProduct:
        key = (record.id, record.version, tag)
        found = self._items.get(key)
        if found is None:
            found = asyncio.ensure_future(served_product(catalog, record, tag))
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = found
        try:
            # Shielded: a client that goes away does not cancel the others' opening.
            return await asyncio.shield(found)
        except Exception:
            if self._items.get(key) is found:  # a failure is not kept: the next one retries
                del self._items[key]
            raise


def _product_of(catalog: Catalog, record: Record) -> Any:
    from arcodex.convert._access import source_options
    from arcodex.convert._locate import resolve_product
    from arcodex.server._published import sources_profile

    try:
        options = source_options(catalog, sources_profile(catalog, record), None)
        return resolve_product(record.id, catalog, None, options, None, "main")
    except Exception as exc:  # a product that cannot be reached is absent to clients
        raise NotFoundError(
            f"dataset {record.id!r} has no readable product; ask its owner to check it"
        ) from exc


def _session(product: Any, record: Record, tag: str | None) -> Any:
    """A read-only Icechunk session at ``tag``, else the published snapshot, else the branch."""
    access = record.metadata.get("access") or {}
    repo = product.repository()
    try:
        if tag:
            return repo.readonly_session(tag=tag)
        if access.get("snapshot"):
            return repo.readonly_session(snapshot_id=str(access["snapshot"]))
        return repo.readonly_session(branch=product.branch)
    except Exception as exc:  # an unknown tag or snapshot: as a missing dataset
        raise _missing(record, tag) from exc


def _missing(record: Record, tag: str | None) -> NotFoundError:
    at = f"@{tag}" if tag else ""
    return NotFoundError(f"no dataset {record.id}{at!s}; GET /datasets lists the datasets")


async def served_product(catalog: Catalog, record: Record, tag: str | None = None) -> ServedProduct:
    """Open the product of ``record`` (visible and published: the caller checked) read-only."""
    import anyio
    import zarr.storage

    # Locating a product and opening a repository block on storage (S3 round trips):
    # in a worker thread, so the other requests go on meanwhile.
    product = await anyio.to_thread.run_sync(_product_of, catalog, record)
    if product.format in ("icechunk", "virtual-icechunk"):
        session = await anyio.to_thread.run_sync(_session, product, record, tag)
        import icechunk

        served = ServedProduct(
            session.store, 3, True, str(session.snapshot_id), bad_key=(icechunk.InvalidInputError,)
        )
    elif tag:
        raise _missing(record, tag)
    elif product.format == "zarr":
        if product.target.is_local:
            store = product.target.zarr_store(read_only=True)
        else:
            store = zarr.storage.FsspecStore.from_url(
                product.target.url,
                storage_options=_own(product.target.storage_options),
                read_only=True,
            )
        fmt = 3 if await store.exists("zarr.json") else 2
        served = ServedProduct(store, fmt, False, f"{record.id}:{record.version}")
    else:
        import fsspec

        options = product._reference_options()
        for side in ("target_options", "remote_options"):
            if side in options:
                options[side] = _own(options[side])
        fs = fsspec.filesystem("reference", fo=product.target.url, asynchronous=True, **options)
        store = zarr.storage.FsspecStore(fs, read_only=True, path="")
        served = ServedProduct(store, 2, False, f"{record.id}:{record.version}")
    await _consolidate(served)
    return served


def _own(options: Any) -> dict[str, Any]:
    """fsspec options for a filesystem instance of the server's own event loop.

    fsspec shares instances between equal options, and an async S3 instance is bound to
    the loop it first ran in: locating the product (``Product.detect`` reads the root's
    attributes through zarr's synchronous API) leaves one bound to zarr's loop, and
    the server's loop then fails on it ("attached to a different loop").
    """
    return {**options, "skip_instance_cache": True}


async def read_key(served: ServedProduct, key: str) -> bytes | None:
    """The whole value of ``key`` (None if absent)."""
    from zarr.core.buffer import default_buffer_prototype

    if key in served.synthesized:
        return served.synthesized[key]
    path = served.local_path(key)
    if path is not None:  # one thread hop and no copy, where the store takes two and a copy
        import anyio

        try:
            return await anyio.to_thread.run_sync(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    try:
        buf = await served.store.get(key, prototype=default_buffer_prototype())
    except served.bad_key:
        return None
    return None if buf is None else bytes(buf.to_bytes())


async def _keys(store: Any, suffixes: tuple[str, ...]) -> list[str]:
    return sorted([k async for k in store.list() if k.rsplit("/", 1)[-1] in suffixes])


async def _consolidate(served: ServedProduct) -> None:
    """Make consolidated metadata where the store has none (clients cannot list over HTTP)."""
    if served.zarr_format == 2:
        if await served.store.exists(".zmetadata"):
            return
        meta: dict[str, Any] = {}
        for key in await _keys(served.store, (".zarray", ".zattrs", ".zgroup")):
            value = await read_key(served, key)
            if value is not None:
                meta[key] = json.loads(value)
        doc = {"zarr_consolidated_format": 1, "metadata": meta}
        served.synthesized[".zmetadata"] = json.dumps(doc).encode()
        return
    root = await read_key(served, "zarr.json")
    if root is None:
        return
    doc = json.loads(root)
    if doc.get("node_type") != "group" or doc.get("consolidated_metadata"):
        return
    members: dict[str, Any] = {}
    for key in await _keys(served.store, ("zarr.json",)):
        if key == "zarr.json":
            continue
        value = await read_key(served, key)
        if value is not None:
            member = json.loads(value)
            member.pop("consolidated_metadata", None)
            members[key[: -len("/zarr.json")]] = member
    doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": members}
    served.synthesized["zarr.json"] = json.dumps(doc).encode()
