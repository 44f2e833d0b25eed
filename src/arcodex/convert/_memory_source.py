"""An ``xarray.Dataset`` as a conversion source, as zappend takes one.

The dataset is encoded as xarray would write it to a file (``cf_encoder``:
times to numbers with units, fill values, packing from its encoding), and
from then on it is a source like a file: scanned into a :class:`SourceScan`,
read raw a block at a time, written and checked against its own values. A
Dask-backed dataset stays lazy: a block is computed (the slice of its graph
that block needs, on the worker's own thread) only when it is written or
checked, never the whole dataset at once.

The dataset reaches the workers inside its :class:`SourceRef` (pickled: an
in-memory dataset is copied to each worker once per write, a Dask-backed
one as its graph). Its URL is ``dataset://<digest>/<variables>-dataset``: no
path, a digest of its values (Dask's token), so that the same dataset given again
is the same source, and an update with it changes nothing.

An update needs every source the product holds planned again; the earlier
in-memory sources are gone, so their steps are read back from the product
(values as stored) in their place (:func:`product_source`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arcodex.convert._product import PROVENANCE_ATTR
from arcodex.convert._sources import (
    _STATIC_HASH_LIMIT,
    DATASET_SCHEME,
    SourceRef,
    SourceScan,
    VarScan,
    _detect,
    _time_companions,
    resolve_sources,
)
from arcodex.errors import ConversionError, ValidationError

if TYPE_CHECKING:
    import numpy as np

    from arcodex.convert._product import Product

__all__ = ["DatasetSource", "is_dataset", "product_source", "resolve"]


def is_dataset(value: Any) -> bool:
    """Whether ``value`` is an ``xarray.Dataset`` (without importing xarray for a path)."""
    if isinstance(value, str | bytes) or not hasattr(value, "data_vars"):
        return False
    import xarray as xr

    return isinstance(value, xr.Dataset)


def resolve(spec: Any, storage_options: Mapping[str, Any] | None = None) -> list[SourceRef]:
    """The sources of ``spec``: an ``xarray.Dataset`` (or a list of them), else files."""
    items = spec if isinstance(spec, list | tuple) else [spec]
    if items and all(is_dataset(i) for i in items):
        return [DatasetSource(ds).ref() for ds in items]
    if any(is_dataset(i) for i in items):
        raise ValidationError("give either datasets or files as sources, not both")
    return resolve_sources(spec, storage_options)


class DatasetSource:
    """One ``xarray.Dataset`` as a source (see the module docstring)."""

    def __init__(
        self,
        ds: Any,
        *,
        encoded: bool = False,
        fingerprint: tuple[int, str] | None = None,
        url: str | None = None,
    ) -> None:
        self.ds = ds
        #: ``ds`` holds values as stored already (a product opened raw): no encoding.
        self.encoded = encoded
        self._fingerprint = fingerprint
        self._url = url
        self._variables: dict[str, Any] | None = None
        self._attrs: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The encoded variables are made again where they are needed.
        return {**self.__dict__, "_variables": None, "_attrs": {}}

    def ref(self) -> SourceRef:
        return SourceRef(
            self._url or f"{DATASET_SCHEME}{self.token()[:16]}/{self.name()}", dataset=self
        )

    def name(self) -> str:
        """What messages and a product's default key call it: its variables' names."""
        import re

        names = "-".join(str(n) for n in list(self.ds.data_vars)[:3])
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{names}-dataset" if names else "dataset")

    def token(self) -> str:
        import dask.base

        return str(dask.base.tokenize(self.ds))

    # -- what it holds, as stored --------------------------------------------------------

    def variables(self) -> dict[str, Any]:
        """The dataset's variables encoded as a file would store them (still lazy)."""
        if self._variables is None:
            if self.encoded:
                self._variables = {str(k): v for k, v in self.ds.variables.items()}
                self._attrs = {k: v for k, v in self.ds.attrs.items() if k != PROVENANCE_ATTR}
            else:
                from xarray.conventions import cf_encoder

                try:
                    variables, attrs = cf_encoder(dict(self.ds.variables), dict(self.ds.attrs))
                except (ValueError, TypeError) as exc:
                    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    raise ValidationError(
                        f"the dataset cannot be encoded for storage: {text}; fix its encoding"
                    ) from exc
                self._variables = {str(k): v for k, v in variables.items()}
                self._attrs = dict(attrs)
        return self._variables

    def fingerprint(self) -> tuple[int, str]:
        if self._fingerprint is None:
            size = sum(int(v.nbytes) for v in self.variables().values())
            self._fingerprint = (size, f"{size}:{self.token()}")
        return self._fingerprint

    def scan(self, ref: SourceRef, concat_dim: str | None) -> SourceScan:
        """The dataset summarised as :func:`scan_source` summarises a file."""
        import numpy as np

        variables = self.variables()
        found: dict[str, VarScan] = {}
        for name, var in variables.items():
            dtype = np.dtype(var.dtype)
            chunks = getattr(var, "chunks", None)
            found[name] = VarScan(
                dims=tuple(str(d) for d in var.dims),
                shape=tuple(int(n) for n in var.shape),
                dtype=dtype.str if dtype.kind not in "OSU" else "str",
                attrs=dict(var.attrs),
                chunks=tuple(int(c[0]) for c in chunks) if chunks and var.ndim else None,
            )
        dims = {str(k): int(v) for k, v in self.ds.sizes.items()}
        unlimited = tuple(self.ds.encoding.get("unlimited_dims", ()))
        size, fingerprint = self.fingerprint()
        dim = concat_dim or _detect(found, unlimited, dims)
        scan = SourceScan(
            ref=ref,
            size=size,
            fingerprint=fingerprint,
            dims=dims,
            unlimited=unlimited,
            variables=found,
            attrs=dict(self._attrs),
            concat_dim=dim,
        )
        if dim is not None and dim in found:
            scan.concat_values = self._values(dim, ())
            scan.concat_attrs = dict(found[dim].attrs)
            for name in _time_companions(found, dim):
                scan.times[name] = self._values(name, ())
        for name, info in found.items():
            if (dim is None or dim not in info.dims) and info.dtype != "str" and name != dim:
                nbytes = math.prod(info.shape) * np.dtype(info.dtype).itemsize
                if nbytes <= _STATIC_HASH_LIMIT:
                    values = np.ascontiguousarray(self._values(name, ()))
                    info.digest = hashlib.sha1(values.tobytes()).hexdigest()
        return scan

    def reader(self) -> DatasetReader:
        return DatasetReader(self)

    def _values(self, name: str, selection: tuple[slice, ...]) -> np.ndarray:
        import numpy as np

        data = self.variables()[name].data
        if selection:
            data = data[selection]
        if hasattr(data, "dask"):
            # This task's own thread: the worker's other threads run the other tasks.
            data = data.compute(scheduler="sync")
        return np.asarray(data)


class DatasetReader:
    """Raw values of a dataset source, a selection at a time (the :class:`Reader` of a file)."""

    def __init__(self, source: DatasetSource) -> None:
        self.source = source

    def read(
        self, name: str, selection: tuple[slice, ...], out: np.ndarray | None = None
    ) -> np.ndarray:
        try:
            values = self.source._values(name, selection)
        except ConversionError:
            raise
        except Exception as exc:
            where = ", ".join(f"{s.start}:{s.stop}" for s in selection)
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConversionError(
                f"cannot compute {name}[{where}] of the dataset: {text}; check the dataset's graph"
            ) from exc
        if out is not None:
            out[...] = values
            return out
        return values

    def close(self) -> None:
        """Nothing to close: the dataset belongs to its caller."""


def product_source(product: Product, recorded: Mapping[str, Any], dim: str) -> SourceScan:
    """An earlier in-memory source of ``product``, read back from the product (values as
    stored) over the steps it recorded, as it was recorded (URL, fingerprint)."""
    start, length = int(recorded["start"]), int(recorded["length"])
    ds = product.open(raw=True, chunks={})
    part = ds.isel({dim: slice(start, start + length)})
    source = DatasetSource(
        part,
        encoded=True,
        fingerprint=(int(recorded.get("size") or 0), str(recorded["fingerprint"])),
        url=str(recorded["url"]),
    )
    return source.scan(source.ref(), dim)


def dataset_names(urls: Sequence[str]) -> list[str]:
    """The in-memory sources among ``urls``."""
    return [u for u in urls if u.startswith(DATASET_SCHEME)]
