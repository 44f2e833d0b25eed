"""The store protocol, the parameter models of its methods, and how bad parameters are refused.

A store is small on purpose (xcube's 17 abstract methods are the warning): five
methods to read (:meth:`DataStore.list_data_ids`, ``has_data``,
``describe_data``, ``search_data``, ``open_data``), two more for a writable one
(``write_data``, ``delete_data``), and ``params_schema(method)``, the JSON
Schema of each method's keyword parameters. Every method checks its parameters
against that same Pydantic model, so what the schema says is what is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import xarray as xr

    from arcodex.stores._descriptor import DatasetDescriptor

__all__ = [
    "METHODS",
    "DataStore",
    "DeleteParams",
    "DescribeParams",
    "ListParams",
    "OpenParams",
    "Params",
    "SearchParams",
    "StoreBase",
    "WritableDataStore",
    "WriteParams",
    "check_params",
]

Method = Literal[
    "list_data_ids", "describe_data", "search_data", "open_data", "write_data", "delete_data"
]
METHODS: tuple[str, ...] = (
    "list_data_ids",
    "describe_data",
    "search_data",
    "open_data",
    "write_data",
    "delete_data",
)

Bbox = tuple[float, float, float, float]
TimeRange = tuple[str | None, str | None]


class Params(BaseModel):
    """Base of every parameter model: unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ListParams(Params):
    include_attrs: list[str] | None = Field(
        None, description="Also give these attributes of each dataset (id, {name: value})."
    )


class DescribeParams(Params):
    pass


class SearchParams(Params):
    time: str | TimeRange | None = Field(
        None, description="'start/end' (either may be empty or '..') or [start, end]; overlap."
    )
    bbox: Bbox | None = Field(None, description="[west, south, east, north] in degrees; overlap.")
    variables: list[str] | None = Field(None, description="Datasets holding all these variables.")
    text: str | None = Field(None, description="Words in the id, title or attributes.")
    limit: int | None = Field(None, ge=1, description="At most this many datasets.")


class OpenParams(Params):
    variables: list[str] | None = Field(None, description="Data variables to keep.")
    bbox: Bbox | None = Field(None, description="[west, south, east, north] in degrees.")
    time: str | TimeRange | None = Field(None, description="[start, end] ISO times, or one.")
    chunks: dict[str, int] | Literal["auto"] | None = Field(
        None, description="Dask chunks; default: the store's own."
    )
    level: int | None = Field(None, ge=0, description="Resolution level (0: finest).")


class WriteParams(Params):
    replace: bool = Field(False, description="Replace data this store wrote under the id.")


class DeleteParams(Params):
    pass


def check_params[P: Params](model: type[P], params: Mapping[str, Any], where: str) -> P:
    """``params`` as ``model``, or one-line :class:`ValidationError` naming the parameter."""
    try:
        return model.model_validate(dict(params))
    except PydanticError as exc:
        errors = exc.errors()
        # An unknown name first: a misspelt parameter also shows as a missing one.
        first = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        loc = list(first.get("loc", ()))
        name = str(loc[0]) if loc else "?"
        # Positions only: a union's member names (``str``, ``tuple[...]``) say nothing to a user.
        items = [str(p) for p in loc[1:] if isinstance(p, int)]
        at = f" (item {'.'.join(items)})" if items else ""
        if first.get("type") == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise ValidationError(
                f"{where}: unknown parameter {name!r}; the parameters are: {known}"
            ) from None
        msg = " ".join(str(first.get("msg", exc)).removeprefix("Value error, ").split())
        raise ValidationError(
            f"{where}: parameter {name!r}{at}: {msg[:1].lower() + msg[1:]}; "
            "see its params_schema for what it takes"
        ) from None


@runtime_checkable
class DataStore(Protocol):
    """Uniform access to the datasets of one place (xcube's data store, smaller)."""

    kind: ClassVar[str]

    def params_schema(self, method: str) -> dict[str, Any]: ...

    def list_data_ids(self, **params: Any) -> list[Any]: ...

    def has_data(self, data_id: str) -> bool: ...

    def describe_data(self, data_id: str, **params: Any) -> DatasetDescriptor: ...

    def search_data(self, **params: Any) -> list[DatasetDescriptor]: ...

    def open_data(self, data_id: str, **params: Any) -> xr.Dataset: ...

    def close(self) -> None: ...


@runtime_checkable
class WritableDataStore(DataStore, Protocol):
    """A store that also writes and deletes (only what it wrote itself)."""

    def write_data(self, dataset: xr.Dataset, data_id: str, **params: Any) -> str: ...

    def delete_data(self, data_id: str, **params: Any) -> None: ...


class StoreBase:
    """What every built-in store shares: parameter checks, schemas, search over descriptors.

    A subclass sets :attr:`kind`, :attr:`Config` (its construction parameters) and
    may widen the per-method models in :attr:`method_params`.
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[Params]] = Params
    writable: bool = False
    method_params: ClassVar[dict[str, type[Params]]] = {
        "list_data_ids": ListParams,
        "describe_data": DescribeParams,
        "search_data": SearchParams,
        "open_data": OpenParams,
        "write_data": WriteParams,
        "delete_data": DeleteParams,
    }

    def __init__(self, **params: Any) -> None:
        self.config = check_params(self.Config, params, f"store {self.kind!r}")

    def __repr__(self) -> str:
        return f"<{self.kind} store {self.config.model_dump(exclude_none=True)}>"

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the store holds open (a catalog, connections)."""

    def params_schema(self, method: str) -> dict[str, Any]:
        """The JSON Schema of ``method``'s keyword parameters."""
        return self._model(method).model_json_schema()

    def _model(self, method: str) -> type[Params]:
        allowed = [m for m in METHODS if self.writable or m not in ("write_data", "delete_data")]
        if method not in allowed:
            raise ValidationError(
                f"store {self.kind!r} has no method {method!r}; it has: {', '.join(allowed)}"
            )
        return self.method_params[method]

    def _check(self, method: str, params: Mapping[str, Any]) -> Any:
        return check_params(self._model(method), params, f"{self.kind} store {method}")

    def _read_only(self) -> ValidationError:
        why = " (made with read_only=True)" if getattr(self.config, "read_only", False) else ""
        return ValidationError(
            f"the {self.kind} store is read-only{why}; write with a writable store "
            "(file, s3, memory or catalog)"
        )

    # -- search over descriptors (stores with an index override it) --------------------------

    def search_data(self, **params: Any) -> list[DatasetDescriptor]:
        """Descriptors of the datasets matching every filter given (see :class:`SearchParams`)."""
        from arcodex.stores._descriptor import matches

        wanted: SearchParams = self._check("search_data", params)
        out: list[DatasetDescriptor] = []
        for data_id in self.list_data_ids():
            described = self.describe_data(data_id)
            if matches(described, wanted):
                out.append(described)
                if wanted.limit is not None and len(out) >= wanted.limit:
                    break
        return out

    def write_data(self, dataset: xr.Dataset, data_id: str, **params: Any) -> str:
        """Write ``dataset`` under ``data_id`` (writable stores); returns the id to open it by."""
        raise self._read_only()

    def delete_data(self, data_id: str, **params: Any) -> None:
        """Remove a dataset the store wrote (writable stores)."""
        raise self._read_only()

    # Subclasses define these.
    def list_data_ids(self, **params: Any) -> list[Any]:
        raise NotImplementedError

    def describe_data(self, data_id: str, **params: Any) -> DatasetDescriptor:
        raise NotImplementedError
