"""``https``: read-only datasets (Zarr, NetCDF) served over HTTP(S), through fsspec's http.

The ids are found in the server's directory listings (as ``python -m
http.server``, nginx's autoindex or Apache give them), or given as ``data_ids``
for a server that lists nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from arcodex.errors import ValidationError
from arcodex.stores._base import Params
from arcodex.stores._fsspec import FsspecStore

__all__ = ["HttpsStore"]


class HttpsParams(Params):
    url: str = Field(pattern=r"^https?://", description="The base URL the datasets are under.")
    data_ids: list[str] | None = Field(
        None, description="The ids, for a server without directory listings."
    )


class HttpsStore(FsspecStore):
    """Zarr stores and NetCDF files under a base URL; read-only."""

    kind: ClassVar[str] = "https"
    Config: ClassVar[type[Params]] = HttpsParams
    writable: bool = False
    config: HttpsParams

    def _make_fs(self) -> Any:
        from fsspec.implementations.http import HTTPFileSystem

        return HTTPFileSystem()

    def _root(self) -> str:
        return self.config.url.rstrip("/")

    def _url(self, path: str) -> str:
        return path

    def _where(self) -> str:
        return f"the https store at {self._root()}"

    def _walk(self) -> list[str]:
        if self.config.data_ids is not None:
            return sorted(self.config.data_ids)
        try:
            return super()._walk()
        except OSError as exc:
            raise ValidationError(
                f"{self._root()} gives no directory listing ({exc}); pass data_ids=[…]"
            ) from exc

    def _exists(self, path: str) -> bool:
        if path.endswith(".zarr"):  # a directory: its metadata says it is there
            return any(super(HttpsStore, self)._exists(f"{path}/{m}") for m in _ZARR_META)
        return super()._exists(path)


_ZARR_META = ("zarr.json", ".zmetadata", ".zgroup")
