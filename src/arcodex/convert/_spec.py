"""One model for everything that defines a product: :class:`ConvertSpec`.

``convert(spec)`` and ``update(product, spec)`` take it; their keyword forms,
the CLI's flags, a ``--spec product.yaml`` file and (later) HTTP bodies and
group rows all build it. It holds names, never secrets: storage profiles by
name, and no storage options (those are runtime arguments of ``convert``).
The spec a product was made from is stored in its provenance and in the
operation that made it, so that the product can be made again from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from arcodex.convert._attrs import AttrFixes
from arcodex.convert._chunking import parse_chunks
from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.convert._product import ProductFormat

__all__ = ["IN_MEMORY", "ConvertSpec", "product_format"]

#: How an in-memory ``xarray.Dataset`` source is written down (it cannot be serialised).
IN_MEMORY = "<in-memory dataset>"

Codec = Literal["blosc-zstd", "zstd", "blosc-lz4", "zlib", "none"]


class ConvertSpec(BaseModel):
    """Everything that defines a product: what to read, what to make, where, and how.

    Build it from keywords, ``from_dict`` (a YAML/JSON file's content) or the CLI's
    flags; a bad value is one :class:`~arcodex.errors.ValidationError` naming the field.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    sources: Any = Field(
        description="Files, a glob, a directory, a manifest (CSV/YAML/TXT) or URLs; "
        "from Python also an in-memory xarray.Dataset (or a list of them).",
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        },
    )
    to: Literal["zarr", "icechunk", "virtual"] = Field(
        "zarr", description="zarr, icechunk, or virtual (references to the sources' chunks)."
    )
    format: Literal["icechunk", "kerchunk", "kerchunk-parquet"] = Field(
        "icechunk", description="For to=virtual: icechunk, kerchunk (JSON) or kerchunk-parquet."
    )
    dest: str | None = Field(
        None, description="Where to write (path or URL); default: the catalog's storage."
    )
    profile: str | None = Field(None, description="The catalog storage profile to write to.")
    key: str | None = Field(None, description="The product's key in that profile.")
    dest_profile: str | None = Field(
        None, description="The profile whose credentials write an s3:// dest."
    )
    source_profile: str | None = Field(
        None, description="The profile whose credentials read s3:// sources."
    )
    concat_dim: str | None = Field(
        None, description="The dimension the sources are joined along; default: detected."
    )
    variables: list[str] | None = Field(
        None, description="The variables to keep (their coordinates come along)."
    )
    chunks: dict[str, int] | None = Field(
        None, description="Chunk sizes by dimension (-1: the whole dimension)."
    )
    chunking: Literal["map", "timeseries", "balanced"] = Field(
        "balanced", description="How chunks are derived for the dimensions chunks leaves out."
    )
    chunk_mb: float = Field(8.0, gt=0, description="The size derived chunks aim at, in MB.")
    zarr_format: Literal[2, 3] = Field(3, description="Zarr format: 3 or 2.")
    codec: Codec = Field("blosc-zstd", description="The compression codec.")
    level: int | None = Field(None, description="The codec's level.")
    shards: dict[str, int] | None = Field(
        None, description="Shard sizes by dimension (Zarr 3), multiples of the chunks."
    )
    attrs: dict[str, Any] | None = Field(
        None,
        description="Attribute fixes: {global: {set, delete, rename, force}, "
        "variables: {NAME: {...}}}.",
    )
    grid: str | None = Field(None, description="A grid file holding replacement coordinates.")
    grid_coords: dict[str, str] | None = Field(
        None, description="Which product variable to replace with which grid variable."
    )
    group: str | None = Field(None, description="Write into this group of the store.")
    branch: str = Field("main", description="The Icechunk branch to commit to.")
    tag: str | None = Field(None, description="Tag the new Icechunk snapshot.")
    message: str | None = Field(None, description="The Icechunk commit message.")
    check: bool = Field(True, description="Check the product against its sources.")
    samples: int = Field(3, ge=0, description="Random sources whose values the check compares.")
    cluster: str | None = Field(
        None, description="local (default), threads, tcp://HOST:PORT, slurm or pbs."
    )
    workers: int | None = Field(None, ge=1, description="Workers of a local cluster.")
    threads: int | None = Field(None, ge=1, description="Threads per worker.")
    memory_limit: str | None = Field(None, description="Memory limit per worker.")
    title: str | None = Field(None, description="The record's title.")
    metadata: dict[str, Any] | None = Field(
        None, description="Metadata for the product's record, besides what is extracted."
    )
    tags: list[str] | None = Field(None, description="Tags for the product's record.")
    overwrite: bool = Field(False, description="Replace a product arcodex made at dest.")
    pyramid: int = Field(
        1, ge=1, description="Resolution levels to write (1: the data only; zarr, icechunk)."
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise ValidationError(_one_line(exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise ValidationError(_one_line(exc)) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConvertSpec:
        """The spec from its dict form (a YAML or JSON file's content)."""
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"a convert spec is a mapping of fields, not {type(data).__name__}; "
                "see `arcodex schema show convert`"
            )
        return cls.model_validate(dict(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ConvertSpec:
        """The spec in a YAML or JSON file."""
        import yaml

        file = Path(path)
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValidationError(f"cannot read the spec {file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            raise ValidationError(f"{file.name} is not YAML or JSON{line}; fix it") from None
        return cls.from_dict(data if data is not None else {})

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (an in-memory dataset is written as ``IN_MEMORY``)."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> ConvertSpec:
        """A copy with ``changes`` (validated as the fields are)."""
        return ConvertSpec(**{**self._fields(), **changes})

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    @property
    def product_format(self) -> ProductFormat:
        """The product's format: zarr, icechunk, virtual-icechunk, kerchunk, kerchunk-parquet."""
        return product_format(self.to, self.format)

    @property
    def in_memory(self) -> bool:
        """Whether the sources are in-memory datasets (not files)."""
        items = self.sources if isinstance(self.sources, list) else [self.sources]
        return any(not isinstance(s, str) for s in items)

    def attr_fixes(self) -> AttrFixes:
        return AttrFixes.from_dict(self.attrs or {})

    # -- validation ------------------------------------------------------------------

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            return _one_source(value)
        if _is_dataset(value):
            return value
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            items = [s if _is_dataset(s) else _one_source(s) for s in value]
            if not items:
                raise ValueError("no sources; give files, a glob, a directory or URLs")
            return items
        raise ValueError(
            f"expected files, a glob, a directory, a manifest or URLs, not {type(value).__name__}"
        )

    @field_validator("chunks", "shards", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if value is None or value == "" or value == {}:
            return None
        return parse_chunks(value)

    @field_validator("variables", "tags", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return list(value) or None if value is not None else None

    @field_validator("attrs", mode="before")
    @classmethod
    def _fixes(cls, value: Any) -> Any:
        if value is None:
            return None
        fixes = value if isinstance(value, AttrFixes) else AttrFixes.from_dict(value)
        return fixes.to_dict() or None

    @field_validator("pyramid", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        return 1 if value is None else value

    @field_validator("dest", "grid", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.to == "icechunk" and self.zarr_format == 2:
            raise ValueError(
                "Icechunk stores Zarr format 3 only; drop zarr_format 2 (--zarr-format 2)"
            )
        if self.shards and self.zarr_format == 2:
            raise ValueError("sharding needs Zarr format 3; drop shards or use zarr_format 3")
        if self.grid_coords and not self.grid:
            raise ValueError("grid_coords needs grid (the file holding those coordinates)")
        return self

    @field_serializer("sources")
    def _write_sources(self, value: Any) -> Any:
        if isinstance(value, list):
            return [s if isinstance(s, str) else IN_MEMORY for s in value]
        return value if isinstance(value, str) else IN_MEMORY


def product_format(to: str, format: str) -> ProductFormat:
    """The product format ``to`` and ``format`` make (refusing an unknown pair)."""
    if to == "zarr":
        return "zarr"
    if to == "icechunk":
        return "icechunk"
    if to == "virtual":
        if format == "icechunk":
            return "virtual-icechunk"
        if format in ("kerchunk", "kerchunk-parquet"):
            return format  # type: ignore[return-value]
        raise ValidationError(
            f"unknown virtual format {format!r}; use icechunk, kerchunk or kerchunk-parquet"
        )
    raise ValidationError(f"unknown target {to!r}; use zarr, icechunk or virtual")


def _one_source(value: Any) -> str:
    if not isinstance(value, str | os.PathLike):
        raise ValueError(f"a source is a path or URL, not {type(value).__name__}")
    text = os.fspath(value)
    if text == IN_MEMORY:
        raise ValueError(
            "this spec was made from an in-memory dataset; pass the dataset as sources"
        )
    return text


def _is_dataset(value: Any) -> bool:
    # Without importing xarray: a spec is built where no conversion runs.
    return type(value).__name__ == "Dataset" and type(value).__module__.startswith("xarray")


def _one_line(exc: pydantic.ValidationError) -> str:
    error = exc.errors()[0]
    where = "".join(f"{p}: " for p in [".".join(str(p) for p in error["loc"])] if p)
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # model_validate runs __init__, whose refusal (a ValueError) pydantic wraps once more.
    message = message.removeprefix("convert spec: ")
    if error["type"] == "extra_forbidden":
        message = "not a field of a convert spec (see `arcodex schema show convert`)"
    elif error["type"] == "missing":
        message = "required"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"convert spec: {where}{message}{more}"
