"""The plan of a conversion: what the product holds and where each piece comes from.

Rules (documented in the README):

- Sources are ordered by the values of their concatenation coordinate, never
  by name. Overlapping or duplicated steps are refused.
- The concatenation coordinate is decoded in each source (CF units and
  calendar, with cftime) and encoded again with the first source's units,
  so files written with different epochs line up. Its bounds (the variables
  its ``bounds``/``climatology`` attributes name) and every other variable
  with time units along the concatenation dim are re-encoded the same way
  (see :mod:`arcodex.convert._times`).
- Attribute fixes of the time axis' ``units`` or ``calendar`` re-encode its
  values (and its bounds') so that they decode to the same dates; deleting or
  renaming its ``units`` is refused.
- A variable must be in every source, with the same dims (other than the
  concatenation dim), dtype and packing (``scale_factor``, ``add_offset``,
  ``_FillValue``, ``missing_value``, ``units``); otherwise the plan is refused
  and the message names the variable and the files. ``--variables`` selects.
- Variables without the concatenation dimension are taken from the first
  source; if another source holds different values, the plan warns.
- Attributes that differ between sources keep the first source's value and
  are collected, per source, in ``varying_attrs`` (and the product's
  ``arcodex_varying_attrs`` attribute): nothing is dropped silently.
- Values are copied as stored (packed integers stay packed, fill values stay
  fill values), so products are bit-for-bit faithful and decode as the
  sources do.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arcodex.convert._attrs import GLOBAL, AttrFix, AttrFixes
from arcodex.convert._chunking import ChunkPattern, derive_chunks
from arcodex.convert._gaps import concat_gaps
from arcodex.convert._sources import SourceRef, SourceScan
from arcodex.convert._times import TimeCode, calendar_name, in_calendar, is_time_units
from arcodex.errors import ConversionError, ValidationError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Block", "Piece", "Plan", "PlannedSource", "PlannedVar", "build_plan", "jsonable"]

_PACKING = ("scale_factor", "add_offset", "_FillValue", "missing_value", "units", "calendar")


@dataclass
class PlannedSource:
    """One source's place along the concatenation dimension."""

    url: str
    fingerprint: str
    size: int
    start: int
    length: int
    first: str
    last: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PlannedVar:
    """One variable of the product."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: dict[str, Any]
    chunks: tuple[int, ...]
    concat: bool
    grid: str | None = None  # read from the grid file's variable of this name
    recode: TimeCode | None = None  # time values, re-encoded with the product's units
    shards: tuple[int, ...] | None = None  # the write grid when sharded

    @property
    def write_grid(self) -> tuple[int, ...]:
        return self.shards or self.chunks

    def to_dict(self) -> dict[str, Any]:
        return {
            "dims": list(self.dims),
            "shape": list(self.shape),
            "dtype": self.dtype,
            "chunks": list(self.chunks),
            "concat": self.concat,
            **({"grid": self.grid} if self.grid else {}),
        }


@dataclass
class Piece:
    """Part of a block read from one source: its slice along the concat dim."""

    source: int
    src: slice
    dst: slice


@dataclass
class Block:
    """One unit of writing: a region of one variable, made of whole output chunks."""

    var: str
    region: tuple[slice, ...]
    pieces: list[Piece]

    @property
    def nbytes_hint(self) -> int:
        return math.prod(s.stop - s.start for s in self.region)


@dataclass
class Plan:
    """The layout of a product and the provenance of every part of it."""

    concat_dim: str
    refs: list[SourceRef]
    sources: list[PlannedSource]
    dims: dict[str, int]
    variables: dict[str, PlannedVar]
    attrs: dict[str, Any]
    concat_values: Any  # np.ndarray, encoded with the product's units
    concat_units: str | None
    calendar: str | None
    varying_attrs: dict[str, list[Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    grid: SourceRef | None = None
    fixes: AttrFixes = field(default_factory=AttrFixes)
    scans: list[SourceScan] = field(default_factory=list, repr=False)
    #: Virtual datasets already made while scanning, by source URL (virtual targets).
    virtual_parts: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The chunk length along the concat dim of each referenced variable (virtual targets).
    virtual_chunks: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def length(self) -> int:
        return self.dims[self.concat_dim]

    def time_range(self) -> tuple[str | None, str | None]:
        if not self.sources:
            return None, None
        return self.sources[0].first, self.sources[-1].last

    def blocks(
        self,
        name: str,
        start: int = 0,
        stop: int | None = None,
        *,
        budget: int = 256 * 2**20,
        itemsize: int = 4,
    ) -> Iterator[Block]:
        """The blocks that write ``name`` over concat ``[start, stop)`` (whole chunks, disjoint)."""
        var = self.variables[name]
        grid = var.write_grid
        t = var.dims.index(self.concat_dim) if var.concat else None
        steps: list[int] = []
        source_chunks = _source_chunks(self.scans, name)
        for i, (size, chunk) in enumerate(zip(var.shape, grid, strict=True)):
            if i == t:
                steps.append(chunk)
                continue
            # Cover whole source chunks, so that no source chunk is decoded twice.
            src = source_chunks[i] if source_chunks else size
            steps.append(min(size, chunk * max(1, math.ceil(src / chunk))))
        # Stay within the memory budget by splitting the largest non-concat dim on chunk lines.
        while math.prod(steps) * itemsize > budget:
            candidates = [i for i in range(len(steps)) if i != t and steps[i] > grid[i]]
            if not candidates:
                break
            i = max(candidates, key=lambda j: steps[j] // grid[j])
            steps[i] = max(grid[i], (steps[i] // grid[i] // 2) * grid[i])
        ranges = []
        for i, (size, step) in enumerate(zip(var.shape, steps, strict=True)):
            if i == t:
                end = size if stop is None else min(stop, size)
                first = (start // step) * step
                bounds = [(max(a, start), min(a + step, end)) for a in range(first, end, step)]
            else:
                bounds = [(a, min(a + step, size)) for a in range(0, size, step)]
            ranges.append(bounds)
        for combo in _product(ranges):
            yield self.block(name, tuple(slice(a, b) for a, b in combo))

    def block(self, name: str, region: tuple[slice, ...]) -> Block:
        """The block of ``name`` over ``region``, with the source pieces it reads."""
        var = self.variables[name]
        if not var.concat:
            return Block(name, region, [Piece(0, slice(None), slice(None))])
        t = var.dims.index(self.concat_dim)
        lo, hi = region[t].start, region[t].stop
        pieces = [
            Piece(
                i,
                slice(max(lo, s.start) - s.start, min(hi, s.start + s.length) - s.start),
                slice(max(lo, s.start) - lo, min(hi, s.start + s.length) - lo),
            )
            for i, s in enumerate(self.sources)
            if s.start < hi and s.start + s.length > lo
        ]
        return Block(name, region, pieces)

    def summary(self) -> dict[str, Any]:
        """The plan as JSON (stored in the product's record and operation)."""
        first, last = self.time_range()
        return {
            "concat_dim": self.concat_dim,
            "dims": dict(self.dims),
            "variables": {k: v.to_dict() for k, v in self.variables.items()},
            "sources": [s.to_dict() for s in self.sources],
            "concat_units": self.concat_units,
            "calendar": self.calendar,
            "first": first,
            "last": last,
            "attr_fixes": self.fixes.to_dict(),
            **({"varying_attrs": jsonable(self.varying_attrs)} if self.varying_attrs else {}),
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            **({"grid": self.grid.url} if self.grid else {}),
        }


def _product(ranges: list[list[tuple[int, int]]]) -> Iterator[tuple[tuple[int, int], ...]]:
    import itertools

    return itertools.product(*ranges)


def _source_chunks(scans: Sequence[SourceScan], name: str) -> tuple[int, ...] | None:
    if not scans or name not in scans[0].variables:
        return None
    return scans[0].variables[name].chunks


def build_plan(
    scans: Sequence[SourceScan],
    *,
    concat_dim: str | None = None,
    variables: Sequence[str] | None = None,
    chunks: Mapping[str, int] | None = None,
    chunking: ChunkPattern = "balanced",
    chunk_mb: float = 8.0,
    fixes: AttrFixes | None = None,
    grid: SourceScan | None = None,
    grid_coords: Mapping[str, str] | None = None,
    concat_units: str | None = None,
) -> Plan:
    """Check that the sources fit together and lay out the product.

    ``concat_units`` encodes the concatenation coordinate (default: the first source's units).
    """
    import numpy as np

    if not scans:
        raise ValidationError("no sources to convert")
    fixes = fixes or AttrFixes()
    dim = concat_dim or scans[0].concat_dim
    if dim is None:
        raise ValidationError(
            f"cannot tell the dimension to concatenate {scans[0].ref.name} along; pass --concat-dim"
        )
    for scan in scans:
        if dim not in scan.dims:
            known = ", ".join(scan.dims) or "none"
            raise ValidationError(
                f"{scan.ref.name} has no dimension {dim!r} (it has {known}); pass --concat-dim"
            )
    first_attrs = scans[0].concat_attrs
    fixed_units, fixed_calendar, keep_calendar = _time_fix(
        fixes.targets.get(dim), dim, first_attrs, concat_units
    )
    units, calendar, encoded, decoded = _concat_values(scans, dim, fixed_units, fixed_calendar)
    order = sorted(range(len(scans)), key=lambda i: _sort_key(decoded[i]))
    scans = [scans[i] for i in order]
    encoded = [encoded[i] for i in order]
    decoded = [decoded[i] for i in order]
    _check_order(scans, decoded)

    first = scans[0]
    names = _select(first, dim, variables)
    for scan in scans[1:]:
        missing = [n for n in names if n not in scan.variables]
        if missing:
            raise ConversionError(
                f"{scan.ref.name} lacks {', '.join(missing)} that {first.ref.name} has; "
                "select common variables with --variables"
            )
        extra = [n for n in scan.variables if n not in first.variables and variables is None]
        if extra:
            raise ConversionError(
                f"{scan.ref.name} has {', '.join(extra)} that {first.ref.name} lacks; "
                "select common variables with --variables"
            )
    sources: list[PlannedSource] = []
    offset = 0
    for scan, values in zip(scans, decoded, strict=True):
        n = scan.dims[dim]
        sources.append(
            PlannedSource(
                url=scan.ref.url,
                fingerprint=scan.fingerprint,
                size=scan.size,
                start=offset,
                length=n,
                first=_label(values[0]) if n else "",
                last=_label(values[-1]) if n else "",
            )
        )
        offset += n
    dims = dict(first.dims.items())
    dims[dim] = offset
    warnings: list[str] = []
    varying: dict[str, list[Any]] = {}
    planned: dict[str, PlannedVar] = {}
    per_file = first.dims[dim]
    grid_coords = dict(grid_coords or {})
    times = _time_variables(first, dim, names) if units is not None else set()
    for name in names:
        info = first.variables[name]
        is_concat = dim in info.dims
        for scan in scans[1:]:
            other = scan.variables[name]
            _check_compatible(name, dim, first, scan, info, other, warnings)
        for key in sorted({k for s in scans for k in s.variables[name].attrs}):
            values = [s.variables[name].attrs.get(key) for s in scans]
            if any(not _same(values[0], v) for v in values[1:]) and not (
                (name == dim or name in times) and key == "units"
            ):
                varying[f"{name}:{key}"] = values
        shape = tuple(dims[d] for d in info.dims)
        chunk_shape = derive_chunks(
            info.dims,
            shape,
            _itemsize(info.dtype),
            dim,
            pattern=chunking,
            chunk_mb=chunk_mb,
            steps_per_file=per_file,
            explicit=chunks,
        )
        attrs = fixes.apply(
            name, info.attrs, known={k for s in scans for k in s.variables[name].attrs}
        )
        recode = None
        if name == dim and units is not None:
            attrs["units"] = units
            if calendar is not None and keep_calendar:
                attrs["calendar"] = calendar
        elif name in times:
            assert units is not None and calendar is not None
            _time_fix(fixes.targets.get(name), name, info.attrs, None, companion=True)
            recode = _time_code(scans, name, attrs, units, calendar)
        planned[name] = PlannedVar(
            name=name,
            dims=info.dims,
            shape=shape,
            dtype=info.dtype,
            attrs=attrs,
            chunks=chunk_shape,
            concat=is_concat,
            recode=recode,
        )
    for target in fixes.variables():
        if target not in planned:
            raise ValidationError(
                f"attribute fix names variable {target!r}, which the product does not hold; "
                f"variables: {', '.join(planned)}"
            )
    grid_ref = None
    if grid_coords:
        if grid is None:
            raise ValidationError("--coords needs --grid FILE with the replacement coordinates")
        grid_ref = grid.ref
        for target, source in grid_coords.items():
            if target not in planned:
                raise ValidationError(
                    f"--coords replaces {target!r}, which the product does not hold; variables: {', '.join(planned)}"
                )
            if source not in grid.variables:
                raise ValidationError(
                    f"grid file {grid.ref.name} has no variable {source!r}; it has {', '.join(grid.variables)}"
                )
            want = planned[target].shape
            got = tuple(s for s in grid.variables[source].shape if s != 1)
            if got != tuple(s for s in want if s != 1):
                raise ValidationError(
                    f"grid variable {source} has shape {got}, but {target} has {want}; check --coords"
                )
            planned[target].grid = source
            planned[target].dtype = grid.variables[source].dtype
            planned[target].attrs = {
                k: v for k, v in planned[target].attrs.items() if k not in ("_FillValue",)
            }
    attrs = fixes.apply(GLOBAL, first.attrs, known={k for s in scans for k in s.attrs})
    for key in sorted({k for s in scans for k in s.attrs}):
        values = [s.attrs.get(key) for s in scans]
        if any(not _same(values[0], v) for v in values[1:]):
            varying[key] = values
    varying = _fixed_varying(varying, fixes)
    if varying:
        attrs["arcodex_varying_attrs"] = json.dumps(
            {k: jsonable(v) for k, v in varying.items()}, sort_keys=True
        )
    concat_values = np.concatenate(encoded) if encoded else np.array([])
    if first.concat_values is not None:
        warnings.extend(concat_gaps(dim, decoded))
    return Plan(
        concat_dim=dim,
        refs=[s.ref for s in scans],
        sources=sources,
        dims=dims,
        variables=planned,
        attrs=attrs,
        concat_values=concat_values,
        concat_units=units,
        calendar=calendar,
        varying_attrs=varying,
        warnings=warnings,
        grid=grid_ref,
        fixes=fixes,
        scans=list(scans),
    )


def _select(first: SourceScan, dim: str, variables: Sequence[str] | None) -> list[str]:
    names = list(first.variables)
    if variables is None:
        return names
    unknown = [v for v in variables if v not in first.variables]
    if unknown:
        raise ValidationError(
            f"no variable {', '.join(unknown)} in {first.ref.name}; it has {', '.join(names)}"
        )
    keep: set[str] = set(variables)
    # Coordinates, bounds and grid mappings of the chosen variables come along.
    pending = list(variables)
    while pending:
        info = first.variables[pending.pop()]
        wanted = set(info.dims)
        wanted.update(str(info.attrs.get("coordinates", "")).split())
        for key in ("bounds", "grid_mapping", "climatology"):
            wanted.update(str(info.attrs.get(key, "")).split())
        for name in wanted:
            if name in first.variables and name not in keep:
                keep.add(name)
                pending.append(name)
    return [n for n in names if n in keep]


def _check_compatible(
    name: str,
    dim: str,
    first: SourceScan,
    scan: SourceScan,
    info: Any,
    other: Any,
    warnings: list[str],
) -> None:
    where = f"{name} in {first.ref.name} and {scan.ref.name}"
    if info.dims != other.dims:
        raise ConversionError(
            f"{where} have different dims ({', '.join(info.dims)} vs {', '.join(other.dims)})"
        )
    fixed = [
        (d, a, b)
        for d, a, b in zip(info.dims, info.shape, other.shape, strict=True)
        if d != dim and a != b
    ]
    if fixed:
        d, a, b = fixed[0]
        raise ConversionError(f"{where} differ along {d} ({a} vs {b}); only {dim} may differ")
    if info.dtype != other.dtype:
        raise ConversionError(f"{where} are stored as {info.dtype} vs {other.dtype}")
    if name != dim:
        for key in _PACKING:
            a, b = info.attrs.get(key), other.attrs.get(key)
            if key == "calendar" and a is not None and b is not None:
                a, b = calendar_name(a), calendar_name(b)
            if not _same(a, b) and not (dim in info.dims and key == "units" and _time_units(a)):
                raise ConversionError(
                    f"{where} are packed differently ({key} {jsonable(a)} vs {jsonable(b)}); "
                    "convert them separately"
                )
    if dim not in info.dims and info.digest and other.digest and info.digest != other.digest:
        warnings.append(
            f"{name} (no {dim} dimension) differs between {first.ref.name} and {scan.ref.name}; "
            f"the product holds {first.ref.name}'s values"
        )


def _concat_values(
    scans: Sequence[SourceScan],
    dim: str,
    target_units: str | None = None,
    target_calendar: str | None = None,
) -> tuple[str | None, str | None, list[np.ndarray], list[Sequence[Any]]]:
    """Each source's concat values, encoded with the first's units (or ``target_units``
    and ``target_calendar``), and decoded for ordering."""
    import numpy as np

    first = scans[0]
    units = target_units or first.concat_attrs.get("units")
    if first.concat_values is None:
        # No coordinate variable: positions only, in the given order.
        out, offset = [], 0
        for scan in scans:
            n = scan.dims[dim]
            out.append(np.arange(offset, offset + n))
            offset += n
        return None, None, out, [list(v) for v in out]
    if not _time_units(units):
        values = [np.asarray(s.concat_values) for s in scans]
        for scan in scans[1:]:
            if scan.concat_attrs.get("units") != units:
                raise ConversionError(
                    f"{dim} is in {scan.concat_attrs.get('units')!r} in {scan.ref.name} but {units!r} in {first.ref.name}"
                )
        return None, None, values, [v.tolist() for v in values]
    import cftime

    calendar = str(first.concat_attrs.get("calendar", "standard"))
    target = target_calendar or calendar
    encoded: list[np.ndarray] = []
    decoded: list[Sequence[Any]] = []
    for scan in scans:
        cal = str(scan.concat_attrs.get("calendar", "standard"))
        if calendar_name(cal) != calendar_name(calendar):
            raise ConversionError(
                f"{scan.ref.name} uses the {cal} calendar but {first.ref.name} uses {calendar}; "
                "sources must share a calendar"
            )
        raw = np.asarray(scan.concat_values)
        dates = cftime.num2date(
            raw, scan.concat_attrs.get("units"), cal, only_use_cftime_datetimes=True
        )
        dates = np.atleast_1d(dates)
        if scan.concat_attrs.get("units") == units and calendar_name(target) == calendar_name(cal):
            recoded = raw
        else:
            if calendar_name(target) != calendar_name(cal):
                dates = in_calendar(dates, target, f"{dim} of {scan.ref.name}")
            try:
                recoded = np.asarray(cftime.date2num(dates, units, target))
            except ValueError as exc:
                raise ValidationError(
                    f"cannot write {dim} in {units!r} ({target}): {exc}"
                ) from None
            if raw.dtype.kind in "iu" and not np.all(np.mod(recoded, 1) == 0):
                raise ConversionError(
                    f"{dim} of {scan.ref.name} cannot be written in {units!r} as whole numbers"
                )
            recoded = recoded.astype(raw.dtype)
        encoded.append(recoded)
        decoded.append(list(np.atleast_1d(dates)))
    return str(units), target, encoded, decoded


def _check_order(scans: Sequence[SourceScan], decoded: Sequence[Sequence[Any]]) -> None:
    for scan, values in zip(scans, decoded, strict=True):
        for a, b in itertools.pairwise(values):
            if not b > a:
                raise ConversionError(
                    f"{scan.ref.name} has {_label(b)} after {_label(a)}: its steps must increase"
                )
    for (sa, va), (sb, vb) in zip(
        zip(scans, decoded, strict=True), list(zip(scans, decoded, strict=True))[1:], strict=False
    ):
        if va and vb and not vb[0] > va[-1]:
            raise ConversionError(
                f"{sb.ref.name} starts at {_label(vb[0])}, not after the end of {sa.ref.name} "
                f"({_label(va[-1])}): the sources overlap; remove the duplicate"
            )


def _sort_key(values: Sequence[Any]) -> Any:
    return values[0] if len(values) else float("inf")


_time_units = is_time_units
_CALENDARS = {
    "standard",
    "gregorian",
    "proleptic_gregorian",
    "noleap",
    "365_day",
    "all_leap",
    "366_day",
    "360_day",
    "julian",
}


def _time_fix(
    fix: AttrFix | None,
    name: str,
    attrs: Mapping[str, Any],
    units: str | None,
    *,
    companion: bool = False,
) -> tuple[str | None, str | None, bool]:
    """The units and calendar a time variable gets from its fixes, and whether it keeps a
    calendar attribute; fixes that would change what its values mean are refused."""
    units = units or attrs.get("units")
    if fix is None or not (_time_units(attrs.get("units")) or companion):
        return units, None, True
    for key in ("units", "calendar"):
        if key in fix.rename or key in fix.rename.values():
            raise ValidationError(
                f"cannot rename {name}:{key}: its values would no longer decode as times; "
                f"set {name}:{key} instead (the values are re-encoded)"
            )
    if "units" in fix.delete and not companion:
        raise ValidationError(
            f"cannot delete {name}:units: its values would no longer decode as times; "
            f"set {name}:units to other time units instead"
        )
    if "units" in fix.set:
        if not _time_units(fix.set["units"]):
            raise ValidationError(
                f"{name}:units={fix.set['units']!r} are no time units; "
                "give '<unit> since <date>' (the values are re-encoded)"
            )
        units = str(fix.set["units"])
    calendar: str | None = None
    if "calendar" in fix.delete:
        calendar = "standard"
    if "calendar" in fix.set:
        calendar = str(fix.set["calendar"])
        if calendar.lower() not in _CALENDARS:
            raise ValidationError(
                f"{name}:calendar={calendar!r} is no CF calendar; use one of "
                f"{', '.join(sorted(_CALENDARS))}"
            )
    return units, calendar, "calendar" not in fix.delete


def _time_variables(first: SourceScan, dim: str, names: Sequence[str]) -> set[str]:
    """Time-valued variables along ``dim`` besides the coordinate: its bounds and any with
    time units."""
    coord = first.variables.get(dim)
    named: set[str] = set()
    if coord is not None:
        for key in ("bounds", "climatology"):
            named.update(str(coord.attrs.get(key, "")).split())
    out = set()
    for name in names:
        info = first.variables[name]
        if (
            name != dim
            and dim in info.dims
            and (name in named or _time_units(info.attrs.get("units")))
        ):
            out.add(name)
    return out


def _time_code(
    scans: Sequence[SourceScan], name: str, attrs: Mapping[str, Any], units: str, calendar: str
) -> TimeCode | None:
    """How ``name`` is re-encoded: its own time units, or else its coordinate's (CF bounds)."""
    per_source = []
    for scan in scans:
        own = scan.variables[name].attrs
        src_units = own.get("units") if _time_units(own.get("units")) else None
        src_units = src_units or scan.concat_attrs.get("units")
        if not _time_units(src_units):
            return None
        cal = own.get("calendar") or scan.concat_attrs.get("calendar") or "standard"
        per_source.append((src_units, cal))
    target = str(attrs["units"]) if _time_units(attrs.get("units")) else units
    return TimeCode.of(per_source, target, str(attrs.get("calendar") or calendar), attrs)


def _fixed_varying(varying: dict[str, list[Any]], fixes: AttrFixes) -> dict[str, list[Any]]:
    """``varying`` without the attributes the fixes delete, under the names they rename to."""
    out = dict(varying)
    for target, fix in fixes.targets.items():
        prefix = f"{target}:" if target != GLOBAL else ""
        for key in fix.delete:
            out.pop(prefix + key, None)
        for old, new in fix.rename.items():
            if prefix + old in out:
                out[prefix + new] = out.pop(prefix + old)
    return out


def _label(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if hasattr(value, "item"):
        return str(value.item())
    return str(value)


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype).itemsize) or 8
    except TypeError:
        return 8


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if a is None or b is None:
        return a is b
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    except TypeError:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def jsonable(value: Any) -> Any:
    """Attribute values as plain JSON (numpy scalars and arrays become numbers and lists)."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(value.item())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
