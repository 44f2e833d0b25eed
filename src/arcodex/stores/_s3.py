"""``s3``: datasets under a bucket and prefix of any S3-compatible endpoint (s3fs).

Credentials never are parameters: they come from the environment (the
``AWS_*`` variables, ``AWS_PROFILE``) or from a catalog's storage profile, and
reach neither descriptors nor messages.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from arcodex.stores._base import Params
from arcodex.stores._fsspec import FsspecStore

__all__ = ["S3Store"]


class S3Params(Params):
    bucket: str = Field(min_length=3, description="The bucket.")
    prefix: str = Field("", description="The key prefix the datasets are under.")
    endpoint_url: str | None = Field(None, description="An S3-compatible endpoint (default: AWS).")
    region: str | None = None
    path_style: bool = Field(False, description="Address buckets by path (MinIO, Ceph, moto).")
    anon: bool = Field(False, description="Read public data without credentials.")
    profile: str | None = Field(None, description="Use this catalog storage profile's credentials.")
    catalog: str | None = Field(None, description="The catalog that defines profile.")
    read_only: bool = False


class S3Store(FsspecStore):
    """Datasets (``*.zarr``, ``*.nc``) under ``s3://bucket/prefix``."""

    kind: ClassVar[str] = "s3"
    Config: ClassVar[type[Params]] = S3Params
    config: S3Params

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.writable = not self.config.read_only

    def _storage_options(self) -> dict[str, Any]:
        c = self.config
        options: dict[str, Any] = {"anon": c.anon}
        if c.endpoint_url:
            options["endpoint_url"] = c.endpoint_url
        if c.region:
            options["client_kwargs"] = {"region_name": c.region}
        if c.path_style:
            options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        return options

    def _secret_options(self) -> dict[str, Any]:
        if self.config.profile is None:
            return {}
        from arcodex.client._access import resolve_access

        return resolve_access(self.config.profile, self.config.catalog).s3fs()

    def _make_fs(self) -> Any:
        import s3fs

        # No listings cache: the store writes through zarr's own filesystem too.
        return s3fs.S3FileSystem(
            **self._storage_options(),
            **self._secret_options(),
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def _root(self) -> str:
        return "/".join(p for p in (self.config.bucket, self.config.prefix.strip("/")) if p)

    def _url(self, path: str) -> str:
        return f"s3://{path}"

    def _zarr_store(self, path: str) -> Any:
        import zarr.storage

        options = {**self._storage_options(), **self._secret_options(), "asynchronous": True}
        return zarr.storage.FsspecStore.from_url(self._url(path), storage_options=options)

    def _open(self, data_id: str, **kwargs: Any) -> Any:
        if self.config.profile is None:
            return super()._open(data_id, **kwargs)
        from arcodex.client import open_dataset

        self._need(data_id)
        group = kwargs.pop("group", None)
        metadata_only = kwargs.pop("metadata_only", False)
        return open_dataset(
            self._asset(data_id, group, metadata_only=metadata_only),
            profile=self.config.profile,
            catalog=self.config.catalog,
            **kwargs,
        )
