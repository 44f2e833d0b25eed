"""Is a product faithful to its sources?

Five checks, on the values as stored (no CF decoding, so packing and fill
values are compared too):

- **sources**: each recorded source is still there with the fingerprint it had;
- **chunks**: every chunk of the product is read and its digest compared with
  the one recorded while writing (:mod:`arcodex.convert._digest`), so any
  changed, moved, missing or extra chunk is named;

- **structure**: every planned variable is there with its dims, shape, dtype
  and attributes (including the corrections asked for), and nothing else;
- **coverage**: the concatenation coordinate equals the sources' steps, each
  exactly once and in order (decoded with cftime, whatever the calendar);
- **values**: NaN-aware exact equality of the first, last and some random
  sources' first and last steps and one random block (the sample drawn afresh
  each run, its seed reported), and of every variable without the
  concatenation dimension; with ``full``, of every value.

The result is ``pass``, ``warn`` (faithful, with something to know, such as
a static variable that differs between sources) or ``fail``, with reasons.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.convert._plan import Plan, jsonable
from arcodex.convert._product import PROVENANCE_ATTR, Product
from arcodex.convert._sources import DATASET_SCHEME

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CheckReport", "check_product"]

Status = Literal["pass", "warn", "fail"]
#: Variables without the concat dimension are compared whole up to this size.
_WHOLE_LIMIT = 64 * 2**20
#: ``--full`` compares blocks of about this size.
_FULL_BLOCK = 32 * 2**20


@dataclass
class CheckReport:
    """The verdict on a product, with the reasons."""

    status: Status
    product: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "product": self.product,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "checked": jsonable(self.checked),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckReport:
        return cls(
            status=data["status"],
            product=data["product"],
            reasons=list(data.get("reasons", [])),
            warnings=list(data.get("warnings", [])),
            checked=dict(data.get("checked", {})),
            seconds=float(data.get("seconds", 0.0)),
        )

    def _repr_html_(self) -> str:
        from arcodex._html import Raw, badge, box, code, esc, pairs, section, table

        verdict = {"pass": "faithful", "warn": "faithful, with warnings", "fail": "NOT faithful"}
        heading = (
            f'<span style="font-size:1.3em">{badge(self.status.upper())}</span> '
            f"{verdict.get(self.status, '')} · {code(self.product, 400)} · {self.seconds:.2f} s"
        )
        findings = [("fail", r) for r in self.reasons] + [("warn", w) for w in self.warnings]
        summary = {k: v for k, v in self.checked.items() if isinstance(v, int | float | bool | str)}
        return box(
            "CheckReport",
            heading,
            section(
                "Findings",
                table(
                    ("severity", "message"),
                    ((badge(level), Raw(esc(message, 1000))) for level, message in findings),
                    total=len(findings),
                    what="findings",
                )
                if findings
                else "<p>none</p>",
                len(findings),
            ),
            section("Checked", pairs(summary, what="counts") if summary else ""),
        )


class _Failures:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.limit = 50

    def add(self, reason: str) -> None:
        if len(self.reasons) < self.limit:
            self.reasons.append(reason)


def check_product(
    product: Product,
    plan: Plan | None,
    *,
    samples: int = 3,
    seed: int | None = None,
    full: bool = False,
    recorded: Sequence[Mapping[str, Any]] | None = None,
) -> CheckReport:
    """Compare ``product`` with the sources ``plan`` describes, and every chunk with its digest.

    Args:
        product: The product.
        plan: The plan of its sources as they are now (None: they cannot all be read;
            only the digests and the fingerprints are checked).
        samples: Random sources whose values are compared (besides the first and last).
        seed: Seeds the sample (default: a fresh one, reported as ``checked["seed"]``).
        full: Compare every value with the sources, not a sample.
        recorded: The sources the product records (url, fingerprint); default the plan's.
    """
    started = time.perf_counter()
    failures = _Failures()
    warnings = list(plan.warnings) if plan is not None else []
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    checked: dict[str, Any] = {
        "variables": 0,
        "steps": 0,
        "blocks": 0,
        "sources_sampled": [],
        "seed": seed,
        "full": full,
    }
    if recorded is None and plan is not None:
        recorded = [s.to_dict() for s in plan.sources]
    for reason in source_changes(recorded or [], product.source_options):
        failures.add(reason)
    try:
        ds = product.open(raw=True)
    except Exception as exc:
        return CheckReport(
            "fail",
            product.target.url,
            [*failures.reasons, f"the product cannot be opened: {exc}"],
            warnings,
            checked,
            time.perf_counter() - started,
        )
    with ds:
        provenance = _provenance(ds.attrs.get(PROVENANCE_ATTR))
        if plan is not None:
            _structure(ds, plan, failures, checked)
            _coverage(ds, plan, failures, checked)
            _decoded_times(ds, plan, failures)
            if not failures.reasons:
                _values(ds, plan, failures, checked, samples=samples, seed=seed)
                if full:
                    _all_values(ds, plan, failures, checked)
    _digests(product, provenance, failures, warnings, checked)
    _levels(product, failures, checked, seed, samples)
    status: Status = "fail" if failures.reasons else ("warn" if warnings else "pass")
    return CheckReport(
        status,
        product.target.url,
        failures.reasons,
        warnings,
        checked,
        time.perf_counter() - started,
    )


def _levels(
    product: Product, failures: _Failures, checked: dict[str, Any], seed: int, samples: int
) -> None:
    """The coarser levels of a multi-level product, against its level 0."""
    from arcodex.convert._pyramid import check_levels, product_layout

    layout = product_layout(product)
    if layout is None:
        return
    reasons, info = check_levels(product, layout, seed, samples)
    for reason in reasons:
        failures.add(reason)
    checked.update(info)


def _provenance(text: Any) -> dict[str, Any]:
    import json

    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def source_changes(recorded: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> list[str]:
    """The recorded sources that are gone or changed since (their fingerprint differs)."""
    from arcodex.convert._sources import SourceRef, _fingerprint

    gone: list[str] = []
    changed: list[str] = []
    for source in recorded:
        url = str(source.get("url", ""))
        if not url or not source.get("fingerprint") or url.startswith(DATASET_SCHEME):
            # An in-memory dataset is gone once converted: its chunks' digests vouch for it.
            continue
        try:
            _, now = _fingerprint(SourceRef(url, options if "://" in url else {}))
        except FileNotFoundError:
            gone.append(url)
            continue
        except OSError as exc:
            gone.append(f"{url} ({exc})")
            continue
        if now != source["fingerprint"]:
            changed.append(url)
    reasons = []
    if gone:
        reasons.append(
            f"{len(gone)} source(s) of the product are missing: {_names(gone)}; "
            "restore them, or convert the archive anew"
        )
    if changed:
        reasons.append(
            f"{len(changed)} source(s) changed since the product was made: {_names(changed)}; "
            "run `arcodex update` with them, or convert anew"
        )
    return reasons


def _names(urls: Sequence[str]) -> str:
    shown = ", ".join(urls[:5])
    return shown + (f" and {len(urls) - 5} more" if len(urls) > 5 else "")


def _digests(
    product: Product,
    provenance: Mapping[str, Any],
    failures: _Failures,
    warnings: list[str],
    checked: dict[str, Any],
) -> None:
    from arcodex.convert._digest import verify_digests

    recorded = provenance.get("digests")
    if not recorded:
        warnings.append(
            "the product records no chunk digests (made by an older arcodex): only a sample "
            "was compared; convert it anew, or run `arcodex check --full`"
        )
        return
    verdict = verify_digests(product, recorded)
    for reason in verdict.reasons:
        failures.add(reason)
    warnings.extend(verdict.warnings)
    checked["chunks"] = verdict.chunks
    checked["chunks_stored"] = verdict.stored
    checked["chunks_empty"] = verdict.empty


def _all_values(ds: Any, plan: Plan, failures: _Failures, checked: dict[str, Any]) -> None:
    """Every value of every variable against the sources, a block at a time, in threads."""
    from concurrent.futures import ThreadPoolExecutor

    from arcodex.convert._write import ReadSpec, _itemsize, read_block

    spec = ReadSpec.of(plan)
    jobs = [
        (name, block.region)
        for name, var in plan.variables.items()
        if name != plan.concat_dim
        for block in plan.blocks(name, budget=_FULL_BLOCK, itemsize=_itemsize(var.dtype))
    ]

    def one(job: tuple[str, tuple[slice, ...]]) -> None:
        _compare(ds, plan, spec, job[0], job[1], failures, read_block)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, jobs))
    checked["blocks"] += len(jobs)
    checked["values"] = "all"


def _structure(ds: Any, plan: Plan, failures: _Failures, checked: dict[str, Any]) -> None:
    import numpy as np

    for name, var in plan.variables.items():
        if name not in ds.variables:
            failures.add(f"variable {name} is missing from the product")
            continue
        got = ds.variables[name]
        checked["variables"] += 1
        if tuple(got.dims) != var.dims:
            failures.add(f"{name} has dims {tuple(got.dims)}, its sources {var.dims}")
        if tuple(got.shape) != var.shape:
            failures.add(f"{name} has shape {tuple(got.shape)}, expected {var.shape}")
        if np.dtype(got.dtype) != np.dtype(var.dtype):
            failures.add(f"{name} is stored as {got.dtype}, its sources as {var.dtype}")
        _attrs(f"{name}", got.attrs, var.attrs, failures)
    extra = [str(n) for n in ds.variables if n not in plan.variables]
    if extra:
        failures.add(f"the product holds variables its sources lack: {', '.join(sorted(extra))}")
    product_attrs = {k: v for k, v in ds.attrs.items() if k != PROVENANCE_ATTR}
    planned = {k: v for k, v in plan.attrs.items() if k != PROVENANCE_ATTR}
    _attrs("global", product_attrs, planned, failures)


def _attrs(
    where: str, got: Mapping[str, Any], want: Mapping[str, Any], failures: _Failures
) -> None:
    a, b = _norm(got), _norm(want)
    for key in sorted(set(a) | set(b)):
        if key not in a:
            failures.add(f"{where} attribute {key} is missing (expected {_short(b[key])})")
        elif key not in b:
            failures.add(f"{where} attribute {key} should not be there (found {_short(a[key])})")
        elif not _equal_attr(a[key], b[key]):
            failures.add(f"{where} attribute {key} is {_short(a[key])}, expected {_short(b[key])}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _norm(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): jsonable(v) for k, v in attrs.items() if k != "_ARRAY_DIMENSIONS"}


def _equal_attr(a: Any, b: Any) -> bool:
    if isinstance(a, list) and len(a) == 1 and not isinstance(b, list):
        a = a[0]
    if isinstance(b, list) and len(b) == 1 and not isinstance(a, list):
        b = b[0]
    if _is_nan(a) or _is_nan(b):
        return _is_nan(a) and _is_nan(b)  # NaN fill values equal NaN, however spelt
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def _is_nan(value: Any) -> bool:
    """NaN as a number, or as JSON attributes spell it (``"nan"``, ``"NaN"``)."""
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and value.lower() == "nan"


def _coverage(ds: Any, plan: Plan, failures: _Failures, checked: dict[str, Any]) -> None:
    import numpy as np

    dim = plan.concat_dim
    if dim not in ds.variables:
        if ds.sizes.get(dim) != plan.length:
            failures.add(
                f"the product has {ds.sizes.get(dim)} steps along {dim}, its sources {plan.length}"
            )
        return
    values = np.asarray(ds.variables[dim].values)
    got = _decode(values, ds.variables[dim].attrs)
    expected = _decode(
        np.asarray(plan.concat_values), {"units": plan.concat_units, "calendar": plan.calendar}
    )
    checked["steps"] = len(got)
    if len(got) != len(expected):
        missing = len(expected) - len(got)
        failures.add(
            f"the product has {len(got)} steps along {dim}, its sources {len(expected)}"
            + (f" ({missing} missing)" if missing > 0 else f" ({-missing} too many)")
        )
    for source in plan.sources:
        part = got[source.start : source.start + source.length]
        want = expected[source.start : source.start + source.length]
        if len(part) != len(want) or any(x != y for x, y in zip(part, want, strict=True)):
            failures.add(
                f"steps {source.start}-{source.start + source.length - 1} of {dim} do not match "
                f"{source.url.rsplit('/', 1)[-1]} ({source.first} to {source.last}): missing, moved or reordered"
            )
    for i, (x, y) in enumerate(itertools.pairwise(got)):
        if not y > x:
            failures.add(f"{dim} does not increase at step {i + 1} ({_label(x)} then {_label(y)})")
            break


def _decoded_times(ds: Any, plan: Plan, failures: _Failures) -> None:
    """The time coordinate and its bounds decode (CF: bounds inherit the coordinate's units
    and calendar) to the dates the sources decode to, each source with its own units."""
    import numpy as np

    from arcodex.convert._sources import open_raw
    from arcodex.convert._times import decode, is_time_units, time_fields

    dim = plan.concat_dim
    if dim not in ds.variables or not plan.scans or not is_time_units(plan.concat_units):
        return
    names = [dim, *(n for n, v in plan.variables.items() if v.recode is not None)]
    coord = ds.variables[dim].attrs
    for name in names:
        if name not in ds.variables:
            continue
        attrs = ds.variables[name].attrs
        units = attrs.get("units") if is_time_units(attrs.get("units")) else coord.get("units")
        calendar = str(attrs.get("calendar") or coord.get("calendar") or "standard")
        raw = np.asarray(ds.variables[name].values)
        try:
            got = decode(raw, str(units), calendar)
        except (TypeError, ValueError) as exc:
            failures.add(f"{name} does not decode as times ({units!r}, {calendar}): {exc}")
            continue
        recode = plan.variables[name].recode if name != dim else None
        t = plan.variables[name].dims.index(dim)
        for i, (scan, source) in enumerate(zip(plan.scans, plan.sources, strict=True)):
            if name == dim:
                values = scan.concat_values
                src_units, src_cal = (
                    scan.concat_attrs.get("units"),
                    scan.concat_attrs.get("calendar"),
                )
            else:
                values = scan.times.get(name)
                if values is None:
                    values = open_raw(scan.ref).read(name, ())
                assert recode is not None
                src_units, src_cal = recode.sources[i]
            if values is None or not source.length:
                continue
            values = np.asarray(values)
            want = decode(values, str(src_units), str(src_cal or "standard"))
            if got.shape[t] < source.start + source.length:
                continue  # the coverage check names missing steps
            part = np.take(got, range(source.start, source.start + source.length), axis=t)
            if part.shape != want.shape:
                continue
            mask = recode.missing(values) if recode is not None else np.zeros(values.shape, bool)
            bad = [
                (w, g)
                for w, g, m in zip(
                    want.reshape(-1), part.reshape(-1), mask.reshape(-1), strict=True
                )
                if not m and time_fields(w) != time_fields(g)
            ]
            if bad:
                w, g = bad[0]
                failures.add(
                    f"{name} of {source.url.rsplit('/', 1)[-1]} decodes to {g.isoformat()} where "
                    f"its source decodes to {w.isoformat()} ({len(bad)} values differ)"
                )


def _decode(values: np.ndarray, attrs: Mapping[str, Any]) -> list[Any]:
    units = attrs.get("units")
    if isinstance(units, str) and " since " in units:
        import cftime
        import numpy as np

        dates = cftime.num2date(
            values, units, str(attrs.get("calendar") or "standard"), only_use_cftime_datetimes=True
        )
        return list(np.atleast_1d(dates)) if hasattr(dates, "__len__") else [dates]
    return list(values.tolist())


def _label(value: Any) -> str:
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


def _values(
    ds: Any,
    plan: Plan,
    failures: _Failures,
    checked: dict[str, Any],
    *,
    samples: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    n = len(plan.sources)
    picks = sorted({0, n - 1, *rng.sample(range(n), min(samples, n))})
    checked["sources_sampled"] = [plan.sources[i].url.rsplit("/", 1)[-1] for i in picks]
    from arcodex.convert._write import ReadSpec, read_block

    spec = ReadSpec.of(plan)
    for name, var in plan.variables.items():
        if name == plan.concat_dim:
            continue
        if not var.concat:
            for region in _static_regions(var.shape, var.dtype):
                _compare(ds, plan, spec, name, region, failures, read_block)
                checked["blocks"] += 1
            continue
        t = var.dims.index(plan.concat_dim)
        for i in picks:
            source = plan.sources[i]
            if source.length == 0:
                continue
            regions: list[tuple[slice, ...]] = []
            for step in sorted({source.start, source.start + source.length - 1}):
                edge = [slice(0, s) for s in var.shape]
                edge[t] = slice(step, step + 1)
                regions.append(tuple(edge))
            block: list[slice] = []
            for j, (size, chunk) in enumerate(zip(var.shape, var.chunks, strict=True)):
                lo, hi = (source.start, source.start + source.length) if j == t else (0, size)
                start = rng.randrange(lo, max(lo + 1, hi - min(chunk, hi - lo) + 1))
                block.append(slice(start, min(hi, start + chunk)))
            regions.append(tuple(block))
            # The edges and the block of one source lie in the same product chunks: read
            # them from the product once (when that slab is small enough), not per region.
            # An in-memory dataset is one source spanning the whole product: its slab would
            # be the product itself.
            in_memory = source.url.startswith(DATASET_SCHEME)
            slab = None if in_memory else _source_slab(ds, name, var, t, source, regions)
            for region in regions:
                _compare(ds, plan, spec, name, region, failures, read_block, slab=slab)
                checked["blocks"] += 1


def _static_regions(shape: Sequence[int], dtype: str) -> list[tuple[slice, ...]]:
    import math

    import numpy as np

    if math.prod(shape) * np.dtype(dtype if dtype != "str" else "O").itemsize <= _WHOLE_LIMIT:
        return [tuple(slice(0, s) for s in shape)]
    regions = []
    for i, size in enumerate(shape):
        for edge in (slice(0, 1), slice(size - 1, size)):
            region = [slice(0, s) for s in shape]
            region[i] = edge
            regions.append(tuple(region))
    return regions


_SLAB_LIMIT = 256 * 2**20


def _source_slab(
    ds: Any, name: str, var: Any, t: int, source: Any, regions: Sequence[tuple[slice, ...]]
) -> tuple[tuple[slice, ...], Any] | None:
    """The product's values over the box holding ``regions`` (one source's steps), or
    None when that box is too big to hold (each region is then read on its own)."""
    import math

    import numpy as np

    box = tuple(
        slice(min(r[j].start for r in regions), max(r[j].stop for r in regions))
        for j in range(len(var.shape))
    )
    itemsize = np.dtype(var.dtype if var.dtype != "str" else "O").itemsize
    if math.prod(s.stop - s.start for s in box) * itemsize > _SLAB_LIMIT:
        return None
    try:
        return box, np.asarray(ds.variables[name][box].values)
    except Exception:  # read region by region, so the failure names the region
        return None


def _compare(
    ds: Any,
    plan: Plan,
    spec: Any,
    name: str,
    region: tuple[slice, ...],
    failures: _Failures,
    read_block: Any,
    *,
    slab: tuple[tuple[slice, ...], Any] | None = None,
) -> None:
    import numpy as np

    from arcodex.errors import ConversionError

    try:
        want = read_block(plan.block(name, region), spec)
    except ConversionError as exc:
        failures.add(str(exc))
        return
    try:
        if slab is not None:
            box, values = slab
            got = values[
                tuple(
                    slice(r.start - b.start, r.stop - b.start)
                    for r, b in zip(region, box, strict=True)
                )
            ]
        else:
            got = np.asarray(ds.variables[name][region].values)
    except Exception as exc:
        failures.add(f"{name}{_where(region)} cannot be read from the product: {exc}")
        return
    if got.shape != want.shape:
        failures.add(f"{name}{_where(region)} has shape {got.shape}, its source {want.shape}")
        return
    equal_nan = want.dtype.kind in "fc"
    if not np.array_equal(got, want, equal_nan=equal_nan):
        diff = int(
            np.sum(
                ~((got == want) | ((got != got) & (want != want)) if equal_nan else (got == want))
            )
        )
        failures.add(f"{name}{_where(region)} differs from its sources in {diff} values")


def _where(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


def close_sources(plan: Plan) -> None:
    """Close the files the check opened (they may be replaced later)."""
    from arcodex.convert._sources import _open_files

    for ref in plan.refs:
        _open_files.forget(ref.url)
