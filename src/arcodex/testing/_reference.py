"""A brute-force Python reading of the documented query semantics.

The contract's property tests compare a backend's answers with these
functions over random records and queries. They favour being obviously
right over being fast: every record is checked against every term.

The text search part assumes ASCII words (letters and digits separated by
anything else), which is what the contract's strategies generate.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from arcodex.model import (
    RECORD_FIELDS,
    Condition,
    FieldSummary,
    Query,
    Record,
    parse_iso_period,
    to_epoch,
)
from arcodex.model._values import DATE_RE

__all__ = [
    "UNDEFINED",
    "compare_for_sort",
    "order_problems",
    "reference_fields",
    "reference_lon_contains",
    "reference_matches",
    "reference_search",
    "sort_value",
    "sqlite_glob",
]

_TEXT_COLUMNS = frozenset(
    {
        "id",
        "kind",
        "status",
        "title",
        "description",
        "created_by",
        "updated_by",
        "schema_name",
        "schema_version",
    }
)
_TIME_COLUMNS = frozenset({"created_at", "updated_at"})
_MICROSECOND = timedelta(microseconds=1)
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


# -- values at a metadata path ------------------------------------------------------------


def _expand(value: Any) -> Iterator[Any]:
    """A value and, for lists, every element at any depth (lists are transparent)."""
    yield value
    if isinstance(value, list):
        for item in value:
            yield from _expand(item)


#: Top-level keys whose list is an extent (indexed in space), not metadata values.
_OPAQUE_LISTS = frozenset({"bbox"})


def nodes_at(metadata: dict[str, Any], path: str) -> list[Any]:
    """Every value found at a dotted path; list elements count as values of the list's path."""
    if path in _OPAQUE_LISTS:
        return [metadata[path]] if path in metadata else []
    nodes: list[Any] = [metadata]
    for part in path.split("."):
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and part in node:
                found.extend(_expand(node[part]))
        nodes = found
    return nodes


def _scalars(nodes: Sequence[Any]) -> list[Any]:
    return [n for n in nodes if not isinstance(n, dict | list)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _date_start(value: Any) -> datetime | None:
    """The first instant of a stored string if it is an ISO date of at least year-month."""
    if not isinstance(value, str) or len(value) < 7 or value[4] != "-" or not DATE_RE.match(value):
        return None
    try:
        return parse_iso_period(value)[0]
    except ValueError:
        return None


def _period(text: str) -> tuple[datetime, datetime]:
    """First instant and the instant after a period (equal for a full timestamp)."""
    return parse_iso_period(text)


def _in_period(moment: datetime, period: tuple[datetime, datetime]) -> bool:
    first, after = period
    return moment == first if first == after else first <= moment < after


def _compare_moment(moment: datetime, op: str, period: tuple[datetime, datetime]) -> bool:
    """Dates compare by whole periods: ``>2020`` is after all of 2020."""
    first, after = period
    if first == after:
        after = first + _MICROSECOND
        if op == "gt":
            return moment > first
        if op == "le":
            return moment <= first
    return {
        "lt": moment < first,
        "le": moment < after,
        "gt": moment >= after,
        "ge": moment >= first,
    }[op]


def _year_text(value: Any) -> str | None:
    """A bare 4-digit integer compared with a date means that year."""
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    return None


def _date_query_period(value: Any) -> tuple[datetime, datetime] | None:
    if isinstance(value, str) and _date_start(value) is not None:
        return _period(value)
    year = _year_text(value)
    return _period(year) if year is not None else None


# -- metadata conditions -----------------------------------------------------------------


def _scalar_eq(stored: Any, wanted: Any) -> bool:
    """Whether one stored scalar equals one query value.

    Booleans equal booleans only; numbers compare as numbers; a date (or a
    bare year) in the query matches stored dates that start within its period,
    so that ``d=2020-06`` agrees with ``d>=2020-06 d<=2020-06``.
    """
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and wanted == stored
    if wanted is None:
        return stored is None
    if _is_number(wanted) and _is_number(stored) and float(stored) == float(wanted):
        return True
    if isinstance(wanted, str) and isinstance(stored, str) and stored == wanted:
        return True
    period = _date_query_period(wanted)
    start = _date_start(stored)
    return period is not None and start is not None and _in_period(start, period)


def _scalar_order(stored: Any, op: str, bound: Any) -> bool:
    if _is_number(bound) and _is_number(stored):
        return bool(_ORDER[op](stored, bound))
    period = _date_query_period(bound)
    start = _date_start(stored)
    return period is not None and start is not None and _compare_moment(start, op, period)


def sqlite_glob(pattern: str) -> re.Pattern[str]:
    """SQLite GLOB as a Python regex: ``*``, ``?``, ``[set]``, ``[^set]``, case-sensitive."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            negate = j < len(pattern) and pattern[j] == "^"
            if negate:
                j += 1
            members = []
            if j < len(pattern) and pattern[j] == "]":
                members.append("\\]")
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                if pattern[j] == "-" and members and j + 1 < len(pattern) and pattern[j + 1] != "]":
                    members.append("-")
                else:
                    members.append(re.escape(pattern[j]))
                j += 1
            if j >= len(pattern):
                return re.compile(r"(?!)")  # an unterminated set matches nothing
            out.append("[" + ("^" if negate else "") + "".join(members) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def _metadata_condition(record: Record, path: str, cond: Condition) -> bool:
    nodes = nodes_at(record.metadata, path)
    op = cond.op
    if op == "exists":
        return bool(nodes)
    if op == "missing":
        return not nodes
    scalars = _scalars(nodes)
    if op in ("eq", "in", "ne"):
        wanted = cond.value if isinstance(cond.value, list) else [cond.value]
        hit = any(_scalar_eq(s, w) for s in scalars for w in wanted)
        return not hit if op == "ne" else hit
    if op in ("lt", "le", "gt", "ge"):
        return any(_scalar_order(s, op, cond.value) for s in scalars)
    texts = [s for s in scalars if isinstance(s, str)]
    if op == "glob":
        pattern = sqlite_glob(str(cond.value))
        return any(pattern.fullmatch(t) for t in texts)
    regex = re.compile(str(cond.value))
    return any(regex.search(t) for t in texts)


# -- record field conditions -------------------------------------------------------------


def _column_condition(record: Record, cond: Condition) -> bool:
    name = "tag" if cond.field == "tags" else cond.field
    op = cond.op
    wanted = cond.value if isinstance(cond.value, list) else [cond.value]
    if name == "tag":
        tags = record.tags
        if op == "exists":
            return bool(tags)
        if op == "missing":
            return not tags
        if op in ("eq", "in", "ne"):
            hit = any(tag == str(w) for tag in tags for w in wanted)
            return not hit if op == "ne" else hit
        if op == "glob":
            return any(sqlite_glob(str(cond.value)).fullmatch(t) for t in tags)
        if op == "regex":
            return any(re.search(str(cond.value), t) for t in tags)
        raise ValueError(f"tags do not support {op}")
    value = getattr(record, name)
    if op == "exists":
        return value is not None
    if op == "missing":
        return value is None
    if name in _TIME_COLUMNS:
        moment = value
        periods = [_date_query_period(w) for w in wanted]
        if any(p is None for p in periods):
            raise ValueError(f"{name} compares with dates")
        if op in ("eq", "in", "ne"):
            hit = any(_in_period(moment, p) for p in periods if p is not None)
            return not hit if op == "ne" else hit
        if op in ("lt", "le", "gt", "ge"):
            period = periods[0]
            assert period is not None
            return _compare_moment(moment, op, period)
        raise ValueError(f"{name} does not support {op}")
    if op in ("eq", "in"):
        return value is not None and any(value == w for w in wanted)
    if op == "ne":
        return value is None or value != wanted[0]
    if value is None:
        return False
    if op in ("lt", "le", "gt", "ge"):
        return bool(_ORDER[op](value, cond.value))
    if op == "glob":
        return sqlite_glob(str(cond.value)).fullmatch(str(value)) is not None
    return re.search(str(cond.value), str(value)) is not None


def _condition(record: Record, cond: Condition) -> bool:
    path = cond.metadata_path
    if path is None:
        return _column_condition(record, cond)
    return _metadata_condition(record, path, cond)


# -- text, space and time -------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text)]


def _record_words(record: Record) -> set[str]:
    texts = [record.title or "", record.description or "", *record.tags]

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    texts.extend(strings(record.metadata))
    return {w for t in texts for w in _words(t)}


def _text_matches(record: Record, text: str) -> bool:
    words = _record_words(record)
    for term in text.split():
        prefix = term.endswith("*")
        parts = _words(term.rstrip("*"))
        if not parts:
            continue
        if len(parts) > 1:
            raise ValueError("the reference handles single-word terms only")
        word = parts[0]
        if prefix:
            if not any(w.startswith(word) for w in words):
                return False
        elif word not in words:
            return False
    return True


def _arc(west: float, east: float) -> tuple[Fraction, Fraction] | None:
    """A longitude range as (start, width) on the circle; None when it covers every longitude."""
    w, e = Fraction(west), Fraction(east)
    if e - w >= 360:
        return None
    return w % 360, (e - w) % 360


def reference_lon_contains(west: float, east: float, lon: float) -> bool:
    """Whether longitude ``lon`` lies in the range going east from ``west`` to ``east``."""
    arc = _arc(west, east)
    if arc is None:
        return True
    start, width = arc
    return (Fraction(lon) - start) % 360 <= width


def _arcs_meet(a: tuple[Fraction, Fraction] | None, b: tuple[Fraction, Fraction] | None) -> bool:
    if a is None or b is None:
        return True
    (sa, wa), (sb, wb) = a, b
    return (sb - sa) % 360 <= wa or (sa - sb) % 360 <= wb


def _bbox_matches(record: Record, query_bbox: Sequence[float]) -> bool:
    bbox = record.metadata.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return False
    w, s, e, n = (float(v) for v in bbox)
    qw, qs, qe, qn = (float(v) for v in query_bbox)
    if s > qn or n < qs:
        return False
    return _arcs_meet(_arc(w, e), _arc(qw, qe))


def record_time_extent(record: Record) -> tuple[datetime, datetime] | None:
    """First and last instant a record covers, from STAC-style metadata."""
    meta = record.metadata
    start_text = meta.get("start_datetime") or meta.get("datetime")
    end_text = meta.get("end_datetime") or meta.get("datetime") or start_text
    if not isinstance(start_text, str) or not isinstance(end_text, str):
        return None
    start = parse_iso_period(start_text)[0]
    first, after = parse_iso_period(end_text)
    end = first if first == after else after - _MICROSECOND
    return start, max(start, end)


def _time_matches(record: Record, start: datetime | None, end: datetime | None) -> bool:
    extent = record_time_extent(record)
    if extent is None:
        return False
    lo, hi = extent
    return (end is None or lo <= end) and (start is None or hi >= start)


# -- the whole query ---------------------------------------------------------------------------


def reference_matches(record: Record, query: Query) -> bool:
    """Whether ``record`` matches every part of ``query`` (sort, limit and cursor aside)."""
    statuses = query.statuses
    if statuses is None and record.status == "deleted":
        return False
    if not all(_condition(record, c) for c in query.conditions):
        return False
    if query.text and not _text_matches(record, query.text):
        return False
    if query.bbox is not None:
        box = query.bbox
        if not _bbox_matches(record, (box.west, box.south, box.east, box.north)):
            return False
    return query.time is None or _time_matches(record, query.time.start, query.time.end)


class _Undefined:
    """A sort value whose place the documented semantics leave open."""


UNDEFINED = _Undefined()


def _strict_value(metadata: dict[str, Any], path: str) -> Any:
    """The value at a dotted path without looking into lists; None when absent (a path
    through a list finds nothing: a key never indexes into a list)."""
    node: Any = metadata
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def sort_value(record: Record, field: str) -> Any:
    """What a record sorts by for ``field``: a value, None (sorts last) or UNDEFINED.

    Record fields sort by value. A metadata path sorts by the scalar found
    there (a path through a list finds none); lists and objects have no place
    the reference checks (the contract's own tests pin it: their compact JSON
    text, among strings).
    """
    if field in RECORD_FIELDS and field not in ("tag", "tags"):
        value = getattr(record, field)
        return to_epoch(value) if isinstance(value, datetime) else value
    value = _strict_value(record.metadata, field.removeprefix("metadata."))
    if isinstance(value, list | dict):
        return UNDEFINED
    return value


def _compare_values(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 when the semantics order ``a`` and ``b`` (non-null); None when they leave it open.

    Numbers compare as numbers, booleans as the numbers 0 and 1 (``true`` ties with
    ``1``), every number before every text, text by code point (dates too: two
    dates in different forms sort by their text).
    """
    if a is UNDEFINED or b is UNDEFINED:
        return None
    a, b = (int(v) if isinstance(v, bool) else v for v in (a, b))
    if _is_number(a) and _is_number(b):
        return int((a > b) - (a < b))
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if _is_number(a) and isinstance(b, str):
        return -1
    if isinstance(a, str) and _is_number(b):
        return 1
    return None


def compare_for_sort(a: Record, b: Record, query: Query) -> int | None:
    """How the query's sort keys order two records: -1, 0 (a tie), 1, or None when left open."""
    for key in query.sort:
        va, vb = sort_value(a, key.field), sort_value(b, key.field)
        if va is None or vb is None:
            if va is None and vb is None:
                continue
            if va is UNDEFINED or vb is UNDEFINED:
                return None
            return 1 if va is None else -1
        c = _compare_values(va, vb)
        if c is None:
            return None
        if c:
            return -c if key.descending else c
    return 0


def reference_search(records: Sequence[Record], query: Query) -> list[str]:
    """Ids of the records matching ``query``, in insertion order (sort keys aside)."""
    return [r.id for r in records if reference_matches(r, query)]


def order_problems(records: Sequence[Record], query: Query, ids: Sequence[str]) -> list[str]:
    """Pairs of results (given in result order) that the query's sort puts the other way round.

    Ties come in insertion order (the order of ``records``).
    """
    position = {r.id: i for i, r in enumerate(records)}
    by_id = {r.id: r for r in records}
    problems = []
    for i, first in enumerate(ids):
        for second in ids[i + 1 :]:
            c = compare_for_sort(by_id[first], by_id[second], query)
            if c is None:
                continue
            if c > 0 or (c == 0 and position[first] > position[second]):
                problems.append(f"{first} before {second}")
    return problems


def _stat_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "date" if _date_start(value) is not None else "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _paths(value: Any, path: str, in_list: bool, out: dict[str, set[str]]) -> None:
    if isinstance(value, list):
        if not in_list:
            out.setdefault(path, set()).add("array")
        if path in _OPAQUE_LISTS:
            return
        for item in value:
            _paths(item, path, True, out)
        return
    out.setdefault(path, set()).add(_stat_type(value))
    if isinstance(value, dict):
        for key, item in value.items():
            _paths(item, f"{path}.{key}", False, out)


def reference_fields(records: Sequence[Record]) -> dict[str, FieldSummary]:
    """Path -> summary (types and count; no examples) over the records that are not deleted."""
    types: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for record in records:
        if record.status == "deleted":
            continue
        seen: dict[str, set[str]] = {}
        for key, value in record.metadata.items():
            _paths(value, key, False, seen)
        for path, kinds in seen.items():
            types.setdefault(path, set()).update(kinds)
            counts[path] = counts.get(path, 0) + 1
    return {
        path: FieldSummary(path=path, types=sorted(kinds), count=counts[path])
        for path, kinds in types.items()
    }
