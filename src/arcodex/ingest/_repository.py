"""Writing periods into the target Icechunk repository, one commit each.

The first period creates the arrays with the template's chunking; a later one
is appended along ``time`` (mid-chunk too: Icechunk rewrites the partial chunk
in the new snapshot); a period that fills a gap left by a failed one is
inserted in time order, the steps after it moved along in the same commit.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arcodex.convert._product import Product
from arcodex.errors import ConversionError

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "TIME",
    "Opened",
    "OpenedOnce",
    "Written",
    "creation_encoding",
    "open_for_append",
    "write_period",
    "write_steps",
]

TIME = "time"
#: One encoding of time for every period: a later one finer than the first still fits.
_TIME_ENCODING = {
    "units": "seconds since 1970-01-01",
    "calendar": "proleptic_gregorian",
    "dtype": "int64",
}


def creation_encoding(ds: xr.Dataset, chunks: Mapping[str, int] | None) -> dict[str, Any]:
    """The encoding the first period creates the arrays with: ``chunks`` by dimension
    (a dimension not named is one chunk; time, one chunk per period unless named)."""
    import numpy as np

    wanted = dict(chunks or {})
    encoding: dict[str, Any] = {}
    for name, var in ds.variables.items():
        if not var.dims:
            continue
        enc: dict[str, Any] = {
            "chunks": tuple(
                min(int(wanted.get(str(d), n)), n) if str(d) != TIME else int(wanted.get(TIME, n))
                for d, n in zip(var.dims, var.shape, strict=True)
            )
        }
        if name == TIME and np.issubdtype(var.dtype, np.datetime64):
            enc.update(_TIME_ENCODING)
        encoding[str(name)] = enc
    return encoding


@dataclass(frozen=True)
class OpenedOnce(Product):
    """A product whose repository is opened once, by the first :meth:`repository` (a
    repository serves any number of sessions): what a sync works on, which opened it
    again at each of its steps."""

    opened: list[Any] = field(default_factory=list, repr=False, compare=False)

    def repository(self, *, create: bool = False, config: Any = None) -> Any:
        if create or config is not None:
            return super().repository(create=create, config=config)
        if not self.opened:
            self.opened.append(super().repository())
        return self.opened[0]


@dataclass(frozen=True)
class Opened:
    """A writable session of a repository's branch, its root group and arrays read: what
    an append reads before it writes (the held periods' shape, the last step), read once
    for both (see :func:`open_for_append`)."""

    session: Any
    group: Any
    arrays: dict[str, Any]


#: The opened root of each session being written (by its id), for the append to find.
_ROOTS: dict[int, Opened] = {}


def open_for_append(product: Product) -> Opened:
    """A writable session of ``product``'s branch with its root read, for the next
    :func:`write_steps` (``opened=``): opened before the periods are fetched, so a
    commit made meanwhile by someone else fails the append instead of being built on."""
    import zarr

    session = product.repository().writable_session(product.branch)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        group = zarr.open_group(session.store, path=product.group or "", mode="r+")
        arrays = {str(n): a for n, a in group.members() if isinstance(a, zarr.Array)}
    return Opened(session, group, arrays)


@dataclass(frozen=True)
class Written:
    """A commit of periods: its snapshot, and whether it only appended time steps after
    the last (through zarr: the attributes and the arrays without time are as they were);
    ``root``: the session written in, read-only at the new snapshot now, when it was
    opened beforehand (:func:`open_for_append`)."""

    snapshot: str
    appended: bool
    root: Opened | None = None


def write_period(
    product: Product,
    ds: xr.Dataset,
    *,
    first: bool,
    chunks: Mapping[str, int] | None,
    message: str,
    metadata: dict[str, Any],
) -> str:
    """Write one period's (loaded) dataset and commit it; the new snapshot's id.

    ``first``: the repository holds no period yet, so the arrays are created.
    """
    written = write_steps(
        product, ds, first=first, chunks=chunks, message=message, metadata=metadata
    )
    return written.snapshot


def write_steps(
    product: Product,
    ds: xr.Dataset,
    *,
    first: bool,
    chunks: Mapping[str, int] | None,
    message: str,
    metadata: dict[str, Any],
    opened: Opened | None = None,
) -> Written:
    """:func:`write_period`, saying what the commit changed (see :class:`Written`);
    ``opened``: the session to write in (:func:`open_for_append`), else one is opened."""
    import icechunk
    from icechunk.xarray import to_icechunk

    if opened is not None and not first:
        session = opened.session
    else:
        repo = product.repository(create=not product.target.exists())
        session = repo.writable_session(product.branch)
    with warnings.catch_warnings():
        # Consolidated metadata is not part of Zarr 3; icechunk keeps its own.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        if first:
            to_icechunk(ds, session, mode="w", encoding=creation_encoding(ds, chunks))
            appended = False
        else:
            if opened is not None:
                _ROOTS[id(session)] = opened
            try:
                appended = _add(ds, session, to_icechunk)
            finally:
                _ROOTS.pop(id(session), None)
    try:
        snapshot = str(session.commit(message, metadata=metadata))
        return Written(snapshot, appended, opened if appended else None)
    except icechunk.ConflictError as exc:
        raise ConversionError(
            f"someone else committed to {product.target.url} meanwhile; run the ingestion again "
            f"({exc})"
        ) from exc


def _add(ds: xr.Dataset, session: Any, to_icechunk: Any) -> bool:
    """Append ``ds`` along time, or insert it where its times belong; whether it was
    appended through zarr (:func:`_append_arrays`)."""
    import numpy as np
    import xarray as xr
    import zarr

    opened = _ROOTS.get(id(session))
    if opened is not None and opened.session is session:
        group, arrays = opened.group, opened.arrays
    else:
        group = zarr.open_group(session.store, mode="r+")
        arrays = {name: node for name, node in group.members() if isinstance(node, zarr.Array)}
    last = _last_time(arrays.get(TIME))
    if last is None or ds[TIME].values[0] > last:
        if _append_arrays(ds, group, arrays):
            return True
        to_icechunk(ds, session, append_dim=TIME)
        return False
    # No index: the time axis alone is read, not every coordinate.
    existing = xr.open_zarr(
        session.store, consolidated=False, chunks=None, create_default_indexes=False
    )
    times = existing[TIME].values
    at = int(np.searchsorted(times, ds[TIME].values[0]))
    timed = [str(n) for n, v in existing.variables.items() if TIME in v.dims]
    tail = existing[timed].isel({TIME: slice(at, None)}).load().set_xindex(TIME)
    for var in tail.variables.values():
        var.encoding = {}
    new = ds[[n for n in timed if n in ds.variables and n != TIME]]
    combined = xr.concat(
        [new, tail], dim=TIME, data_vars="all", coords="minimal", compat="override", join="override"
    )
    steps = ds.sizes[TIME]
    to_icechunk(combined.isel({TIME: slice(-steps, None)}), session, append_dim=TIME)
    moved = combined.isel({TIME: slice(0, -steps)})
    region = slice(at, at + moved.sizes[TIME])
    to_icechunk(
        moved.drop_vars([n for n, v in moved.variables.items() if TIME not in v.dims]),
        session,
        region={TIME: region},
    )
    _write_times(session, moved[TIME].values, region)
    return False


def _last_time(array: Any) -> Any:
    """The last time step of the stored ``time`` array, decoded as xarray decodes it
    (None: none): the only chunk an append needs to read of the time axis."""
    from xarray.coding.times import decode_cf_datetime

    if array is None or not array.shape[0]:
        return None
    value = array[-1:]
    units, calendar = array.attrs.get("units"), array.attrs.get("calendar")
    if not units:
        return value[0]
    return decode_cf_datetime(value, str(units), str(calendar) if calendar else None)[0]


def _append_arrays(ds: xr.Dataset, group: Any, arrays: dict[str, Any]) -> bool:
    """Append ``ds``'s time steps to the stored arrays through zarr; False, with nothing
    written, when ``ds`` is not one this can write as xarray's append would.

    xarray's append (``to_icechunk(append_dim=...)``) opens every array again, decodes
    the stored variables and rewrites the arrays without time; here each variable with
    time is encoded exactly as xarray encodes an append (the stored variable's encoding,
    read from its attributes) and written after the last step, mid-chunk included (zarr
    rewrites the partial chunk). The arrays without time are left as stored: the
    period's grid was checked equal to the dataset's before (``shaped``), and any other
    variable without time must hold what is stored. Anything else (a variable the store
    lacks, other dimensions, other global attributes, another value of a variable without
    time) goes through xarray, which writes it over the stored one.
    """
    writes: list[tuple[Any, int, Any]] = []
    for name, var in ds.variables.items():
        array = arrays.get(str(name))
        if array is None or _dimension_names(array) != tuple(map(str, var.dims)):
            return False
        if TIME not in var.dims:
            if name not in var.dims and not _stored_as(str(name), var, array):
                return False  # xarray would write its new values over the stored ones
            continue
        axis = var.dims.index(TIME)
        if any(
            n != m for i, (n, m) in enumerate(zip(var.shape, array.shape, strict=True)) if i != axis
        ):
            return False
        encoded = _encoded_like(str(name), var, array)
        if encoded is None or encoded.dtype != array.dtype:
            return False
        writes.append((array, axis, encoded))
    if not writes or any(ds.sizes[TIME] != e.shape[a] for _, a, e in writes):
        return False
    if _plain(ds.attrs) != _plain(dict(group.attrs)):
        return False
    for array, axis, encoded in writes:
        start = array.shape[axis]
        shape = list(array.shape)
        shape[axis] = start + encoded.shape[axis]
        array.resize(tuple(shape))
        where = tuple(slice(start, None) if i == axis else slice(None) for i in range(len(shape)))
        array[where] = encoded
    return True


def _stored_as(name: str, var: Any, array: Any) -> bool:
    """Whether a variable without time (not a dimension's coordinate, whose values the
    period's check compared already) holds what is stored, once encoded as stored."""
    import numpy as np

    if tuple(var.shape) != tuple(array.shape):
        return False
    encoded = _encoded_like(name, var, array)
    if encoded is None or encoded.dtype != array.dtype:
        return False
    return bool(np.array_equal(encoded, array[...], equal_nan=encoded.dtype.kind in "fc"))


def _dimension_names(array: Any) -> tuple[str, ...] | None:
    names = getattr(array.metadata, "dimension_names", None)
    if names is None:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if names is None and not array.shape:
        return ()  # a scalar names no dimension
    return None if names is None else tuple(map(str, names))


def _encoded_like(name: str, var: Any, array: Any) -> Any:
    """``var``'s values encoded as the stored ``array`` holds its values (None: cannot
    tell; the caller lets xarray write)."""
    import numpy as np

    try:
        from xarray import Variable
        from xarray.backends.zarr import FillValueCoder, encode_zarr_variable
        from xarray.conventions import decode_cf_variable
    except ImportError:  # another xarray: its own append is used
        return None
    attrs = dict(array.attrs)
    if "_FillValue" in attrs:
        attrs["_FillValue"] = FillValueCoder.decode(attrs["_FillValue"], array.dtype)
    empty = np.empty(
        tuple(0 if d == TIME else n for d, n in zip(var.dims, array.shape, strict=True))
    )
    try:
        stored = decode_cf_variable(
            name, Variable(var.dims, empty.astype(array.dtype), attrs, {"dtype": array.dtype})
        )
        new = var.copy(deep=False)
        new.encoding = dict(stored.encoding)
        return np.asarray(encode_zarr_variable(new, name=name, zarr_format=3).values)
    except (ValueError, TypeError, OverflowError):  # xarray would say why; let it
        return None


def _plain(value: Any) -> Any:
    """``value`` as JSON holds it (NumPy values and tuples as Python's), for comparing
    attributes with those stored."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_times(session: Any, values: Any, region: slice) -> None:
    """The time steps of ``region`` (xarray's region writes leave an index coordinate as it was)."""
    import numpy as np
    import zarr
    from xarray.coding.times import encode_cf_datetime

    array: Any = zarr.open_group(session.store, mode="r+")[TIME]
    attrs = dict(array.attrs)
    if np.issubdtype(np.asarray(values).dtype, np.datetime64):
        units, calendar = attrs.get("units"), attrs.get("calendar")
        values, _, _ = encode_cf_datetime(
            values, str(units) if units else None, str(calendar) if calendar else None, array.dtype
        )
    array[region] = np.asarray(values, dtype=array.dtype)
