"""A product: its format, where it lives, and how to open it.

Every product carries its provenance (the sources with their fingerprints
and places, the parameters of the conversion) as the root attribute
``arcodex_provenance``, so ``update`` and ``check`` work with or without a
catalog.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from arcodex.convert._target import Target, container_credentials
from arcodex.errors import ConversionError, NotFoundError, ValidationError

__all__ = ["FORMATS", "MEDIA_TYPES", "PROVENANCE_ATTR", "Product", "ProductFormat"]

ProductFormat = Literal["zarr", "icechunk", "virtual-icechunk", "kerchunk", "kerchunk-parquet"]
FORMATS: tuple[str, ...] = ("zarr", "icechunk", "virtual-icechunk", "kerchunk", "kerchunk-parquet")
MEDIA_TYPES = {
    "zarr": "application/vnd+zarr",
    "icechunk": "application/vnd.icechunk",
    "virtual-icechunk": "application/vnd.icechunk",
    "kerchunk": "application/json",
    "kerchunk-parquet": "application/vnd.apache.parquet",
}
PROVENANCE_ATTR = "arcodex_provenance"


@dataclass(frozen=True)
class Product:
    """A converted product."""

    format: ProductFormat
    target: Target
    group: str | None = None
    branch: str = "main"
    containers: tuple[str, ...] = ()  # virtual chunk container prefixes (virtual-icechunk)
    source_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            **self.target.describe(),
            **({"group": self.group} if self.group else {}),
            **({"branch": self.branch} if "icechunk" in self.format else {}),
            **({"containers": list(self.containers)} if self.containers else {}),
        }

    @classmethod
    def detect(
        cls,
        dest: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
        branch: str = "main",
        source_options: Mapping[str, Any] | None = None,
    ) -> Product:
        """Recognise a product from its location (Zarr store, Icechunk repository, references)."""
        target = Target.of(dest, storage_options)
        if not target.exists():
            raise NotFoundError(
                f"no product at {target.url}; check the path or run `arcodex convert`"
            )
        fs, path = target.fs()
        name = target.url.rsplit("/", 1)[-1]
        if name.endswith(".json") and not fs.isdir(path):
            with fs.open(path, "rb") as fh:
                refs = json.load(fh).get("refs", {})
            containers = _reference_containers(refs.get(".zattrs"))
            return cls("kerchunk", target, group, branch, containers, source_options or {})
        if fs.isdir(path) and fs.exists(f"{path}/.zmetadata") and not fs.exists(f"{path}/.zgroup"):
            with fs.open(f"{path}/.zmetadata", "rb") as fh:
                meta = json.load(fh).get("metadata", {})
            containers = _reference_containers(meta.get(".zattrs"))
            return cls("kerchunk-parquet", target, group, branch, containers, source_options or {})
        if _is_repository(target):
            fmt: ProductFormat = "icechunk"
            product = cls(fmt, target, group, branch, source_options=source_options or {})
            config = product._repo_config()
            if config is not None and config.virtual_chunk_containers:
                prefixes = tuple(sorted(config.virtual_chunk_containers))
                return cls(
                    "virtual-icechunk", target, group, branch, prefixes, source_options or {}
                )
            return product if group else product._at_level_zero()
        if fs.exists(f"{path}/zarr.json") or fs.exists(f"{path}/.zgroup"):
            product = cls("zarr", target, group, branch, source_options=source_options or {})
            return product if group else product._at_level_zero()
        raise ValidationError(
            f"{target.url} is not a Zarr store, Icechunk repository or kerchunk reference file"
        )

    def root_attrs(self) -> dict[str, Any]:
        """The attributes of the store's root group (Zarr and Icechunk products; else empty)."""
        import zarr

        if self.format == "zarr":
            store = self.target.zarr_store(read_only=True)
        elif self.format == "icechunk":
            try:
                store = self.repository().readonly_session(branch=self.branch).store
            except Exception:  # a probe: a missing branch is reported when the product is opened
                return {}
        else:
            return {}
        with _quiet():
            try:
                return dict(zarr.open_group(store, path="", mode="r").attrs)
            except Exception:  # a probe: whatever keeps the root from opening, opening says
                return {}

    def _at_level_zero(self) -> Product:
        """A multi-level product (``convert --pyramid``) is its level 0, unless told otherwise."""
        layout = self.root_attrs().get("multiscales")
        items = layout.get("layout") if isinstance(layout, dict) else None
        if not items:
            return self
        return dataclasses.replace(self, group=str(items[0]["asset"]))

    # -- icechunk ----------------------------------------------------------------------

    def _repo_config(self) -> Any:
        import icechunk

        with _quiet():
            return icechunk.Repository.fetch_config(self.target.icechunk_storage())

    def credentials(self) -> Any:
        """Authorisation of the virtual chunk containers (from the source storage options)."""
        return container_credentials(self.containers, self.source_options)

    def repository(self, *, create: bool = False, config: Any = None) -> Any:
        import icechunk

        storage = self.target.icechunk_storage()
        with _quiet():
            try:
                if create:
                    return icechunk.Repository.create(
                        storage, config=config, authorize_virtual_chunk_access=self.credentials()
                    )
                return icechunk.Repository.open(
                    storage, authorize_virtual_chunk_access=self.credentials()
                )
            except icechunk.IcechunkError as exc:
                raise ConversionError(
                    f"cannot open the Icechunk repository {self.target.url}: {exc}"
                ) from exc

    # -- opening -------------------------------------------------------------------------

    def open(
        self,
        *,
        raw: bool = False,
        chunks: Any = None,
        snapshot: str | None = None,
        indexes: bool = True,
    ) -> Any:
        """The product as an ``xarray.Dataset`` (``raw``: values as stored, no CF decoding;
        ``indexes=False``: no coordinate is read until asked for, none is indexed)."""
        import xarray as xr

        kwargs: dict[str, Any] = {"decode_cf": False} if raw else {}
        if chunks is not None:
            kwargs["chunks"] = chunks
        if not indexes:
            kwargs["create_default_indexes"] = False
        with _quiet():
            if self.format == "zarr":
                return xr.open_zarr(
                    self.target.zarr_store(read_only=True),
                    group=self.group,
                    consolidated=None,
                    **({"chunks": None} | kwargs),
                )
            if self.format in ("icechunk", "virtual-icechunk"):
                repo = self.repository()
                session = (
                    repo.readonly_session(snapshot_id=snapshot)
                    if snapshot
                    else repo.readonly_session(branch=self.branch)
                )
                return xr.open_zarr(
                    session.store,
                    group=self.group,
                    consolidated=False,
                    **({"chunks": None} | kwargs),
                )
            import fsspec
            import zarr.storage

            # zarr reads through an asynchronous filesystem; build it so, remote side included.
            fs = fsspec.filesystem(
                "reference", fo=self.target.url, asynchronous=True, **self._reference_options()
            )
            return xr.open_zarr(
                zarr.storage.FsspecStore(fs, read_only=True, path=""),
                group=self.group,
                consolidated=False,
                zarr_format=2,
                **({"chunks": None} | kwargs),
            )

    def _reference_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        protocol = _protocol(self.containers)
        if protocol:
            options["remote_protocol"] = protocol
        if protocol and protocol != "file":
            options["remote_options"] = {**self.source_options, "asynchronous": True}
        if not self.target.is_local:
            options["target_options"] = dict(self.target.storage_options)
        return options

    def provenance(self) -> dict[str, Any]:
        """The provenance stored in the product (empty if it was not made by arcodex)."""
        ds = self.open(raw=True)
        with ds:
            text = ds.attrs.get(PROVENANCE_ATTR)
        if not text:
            return {}
        try:
            data: dict[str, Any] = json.loads(text)
        except ValueError:
            return {}
        return data


def _reference_containers(zattrs: Any) -> tuple[str, ...]:
    """The source locations of kerchunk references, from their arcodex provenance."""
    if isinstance(zattrs, str):
        zattrs = json.loads(zattrs)
    try:
        provenance = json.loads(zattrs[PROVENANCE_ATTR])
        urls = [s["url"] for s in provenance["sources"]]
    except (KeyError, TypeError, ValueError):
        return ("file://",)
    protocols = sorted({u.split("://", 1)[0] if "://" in u else "file" for u in urls})
    return tuple(f"{p}://" for p in protocols)


def _is_repository(target: Target) -> bool:
    try:
        import icechunk
    except ImportError:
        return False
    with _quiet():
        try:
            return bool(icechunk.Repository.exists(target.icechunk_storage()))
        except (icechunk.IcechunkError, ValidationError):
            return False


def _protocol(containers: tuple[str, ...]) -> str | None:
    for prefix in containers:
        return prefix.split("://", 1)[0]
    return None


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # Consolidated metadata is not part of the Zarr 3 spec; arcodex writes it on purpose.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield
