"""``file``: a directory of Zarr stores and NetCDF files on the local disk."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field

from arcodex.stores._base import Params
from arcodex.stores._fsspec import FsspecStore

__all__ = ["FileStore"]


class FileParams(Params):
    root: str = Field(description="The directory (created on the first write).")
    read_only: bool = Field(False, description="Refuse write_data and delete_data.")


class FileStore(FsspecStore):
    """Datasets (``*.zarr``, ``*.nc``) under a local directory."""

    kind: ClassVar[str] = "file"
    Config: ClassVar[type[Params]] = FileParams
    config: FileParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.writable = not self.config.read_only

    def _make_fs(self) -> Any:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(auto_mkdir=True)

    def _root(self) -> str:
        return os.path.abspath(os.path.expanduser(self.config.root)).replace(os.sep, "/")

    def _url(self, path: str) -> str:
        return path

    def _where(self) -> str:
        return f"the file store at {self.config.root}"

    def _zarr_store(self, path: str) -> Any:
        return path

    def _move(self, src: str, dst: str) -> None:
        os.replace(src, dst)  # one rename: the dataset is whole at either name, never half
