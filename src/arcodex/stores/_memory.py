"""``memory``: datasets held in this process (fsspec's memory filesystem), for tests and
pipelines that pass data between steps."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import Field

from arcodex.stores._base import Params
from arcodex.stores._fsspec import FsspecStore

__all__ = ["MemoryStore"]


class MemoryParams(Params):
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Stores of one name share their datasets (in this process); default: a new one.",
    )


class MemoryStore(FsspecStore):
    """Datasets in memory, as Zarr, gone with the process."""

    kind: ClassVar[str] = "memory"
    Config: ClassVar[type[Params]] = MemoryParams
    config: MemoryParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._name = self.config.name or uuid.uuid4().hex

    def _make_fs(self) -> Any:
        from fsspec.implementations.memory import MemoryFileSystem

        return MemoryFileSystem()

    def _root(self) -> str:
        return f"/arcodex-stores/{self._name}"

    def _url(self, path: str) -> str:
        return f"memory://{path}"

    def _where(self) -> str:
        return f"the memory store {self._name!r}"
