"""``reference``: kerchunk reference files (JSON, Parquet) under a root, opened through
fsspec's ``reference://`` filesystem; read-only (references are written by ``convert``)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field

from arcodex.stores._base import Params
from arcodex.stores._fsspec import FsspecStore

__all__ = ["ReferenceStore"]

_REFERENCES = ("data", "references")


class ReferenceParams(Params):
    root: str = Field(description="The directory or URL (file, http(s), s3) of the references.")
    remote_protocol: str | None = Field(
        None, description="The protocol of the referenced files (default: as each one says)."
    )
    remote_options: dict[str, Any] | None = Field(
        None, description="fsspec options to read the referenced files (no secrets)."
    )
    target_options: dict[str, Any] | None = Field(
        None, description="fsspec options to read the reference files themselves (no secrets)."
    )


class ReferenceStore(FsspecStore):
    """Virtual datasets: kerchunk references to chunks of other files."""

    kind: ClassVar[str] = "reference"
    Config: ClassVar[type[Params]] = ReferenceParams
    writable: bool = False
    config: ReferenceParams
    suffixes: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        ".json": ("application/json", _REFERENCES),
        ".parq": ("application/vnd.apache.parquet", _REFERENCES),
        ".parquet": ("application/vnd.apache.parquet", _REFERENCES),
    }

    def _protocol(self) -> str:
        root = self.config.root
        return root.split("://", 1)[0] if "://" in root else "file"

    def _make_fs(self) -> Any:
        import fsspec

        return fsspec.filesystem(self._protocol(), **(self.config.target_options or {}))

    def _root(self) -> str:
        root = self.config.root
        if self._protocol() == "file":
            return os.path.abspath(os.path.expanduser(root.removeprefix("file://"))).replace(
                os.sep, "/"
            )
        if self._protocol() in ("http", "https"):
            return root.rstrip("/")
        return root.split("://", 1)[1].rstrip("/")

    def _url(self, path: str) -> str:
        protocol = self._protocol()
        if protocol in ("file", "http", "https"):
            return path
        return f"{protocol}://{path}"

    def _where(self) -> str:
        return f"the reference store at {self.config.root}"

    def _storage_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.config.remote_protocol:
            options["remote_protocol"] = self.config.remote_protocol
        if self.config.remote_options:
            options["remote_options"] = self.config.remote_options
        if self.config.target_options:
            options["target_options"] = self.config.target_options
        return options
