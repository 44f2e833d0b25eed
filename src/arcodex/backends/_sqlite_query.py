"""Compiling a :class:`~arcodex.model.Query` into SQLite SQL over the index tables.

Each term becomes a test on the candidate records ``r``. The first
equality-like term (or full text, or the extent) *drives* the search: its
rid set is read from an index and every other term is checked against those
candidates, so no search reads JSON documents or scans the records table
when any indexed term is given.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from arcodex.errors import QueryError
from arcodex.model import Condition, Query, looks_like_date, parse_iso_period, to_epoch

__all__ = ["compile_query", "encode_cursor", "query_paths", "regexp"]

_RECORD_COLUMNS = {
    "id": "r.id",
    "kind": "r.kind",
    "status": "r.status",
    "title": "r.title",
    "description": "r.description",
    "created_by": "r.created_by",
    "updated_by": "r.updated_by",
    "schema_name": "r.schema_name",
    "schema_version": "r.schema_version",
    "version": "r.version",
    "created_at": "r.created_at",
    "updated_at": "r.updated_at",
}
_TIME_COLUMNS = {"created_at", "updated_at"}
_CMP = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regexp(pattern: str, value: Any) -> bool:
    return value is not None and _compiled(pattern).search(str(value)) is not None


def _fts_expression(text: str) -> str:
    """User words as an FTS5 query: every word must appear; ``word*`` is a prefix."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*")
        core = word.rstrip("*").replace('"', '""')
        if not core.strip():
            continue
        terms.append(f'"{core}"' + ("*" if prefix else ""))
    if not terms:
        raise QueryError(f"bad text search {text!r}: give at least one word")
    return " AND ".join(terms)


def _epoch_bounds(value: str) -> tuple[float, float]:
    """First instant and the instant after an ISO period (equal for a full timestamp)."""
    first, after = parse_iso_period(value)
    return to_epoch(first), to_epoch(after)


#: Counts the rows of a SELECT (which carries its own LIMIT); the backend runs it.
Estimator = Callable[[str, Sequence[Any]], int]
#: Estimates stop counting here: enough to tell a selective term from a broad one.
ESTIMATE_CAP = 1000
#: A driving term with at most this many rids is cheap enough; no need to look further.
CHEAP_DRIVER = 200


@dataclass
class _Option:
    """A term that can drive the search: its rid SELECT, and its test on a candidate."""

    select: str
    params: list[Any]
    test: str
    test_params: list[Any]
    unique: bool
    #: A cheaper SELECT returning about as many rows, for estimating.
    estimate: tuple[str, list[Any]] | None = None


@dataclass
class _Sql:
    """A WHERE clause under construction."""

    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    options: list[_Option] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.where.append(clause)
        self.params.extend(params)

    def option(
        self,
        select: str,
        params: Sequence[Any],
        test: str,
        test_params: Sequence[Any],
        *,
        unique: bool = True,
        estimate: tuple[str, list[Any]] | None = None,
    ) -> None:
        """A term that either drives the search (``select``, returning each rid once
        unless ``unique`` is False) or checks candidates (``test``)."""
        self.options.append(
            _Option(select, list(params), test, list(test_params), unique, estimate)
        )

    def within(self, rid_select: str, *params: Any) -> None:
        """Keep records whose rid ``rid_select`` returns (possibly more than once)."""
        # As a test, SQLite runs the uncorrelated IN subquery once and probes its result.
        self.option(rid_select, params, f"r.rid IN ({rid_select})", params, unique=False)

    def choose(self, estimate: Estimator | None) -> _Option | None:
        """The driving term: the one with the fewest rids; the others become tests."""
        if not self.options:
            return None
        best = 0
        if estimate is not None and len(self.options) > 1:
            # Terms are estimated in order, each only up to the best count so far,
            # and a term selective enough to be cheap ends the search for better.
            cap = ESTIMATE_CAP
            for i, opt in enumerate(self.options):
                select, params = opt.estimate or (opt.select, opt.params)
                count = estimate(f"{select} LIMIT {cap}", params)
                if count < cap:
                    best, cap = i, count
                if cap <= CHEAP_DRIVER:
                    break
        for i, opt in enumerate(self.options):
            if i != best:
                self.add(opt.test, *opt.test_params)
        return self.options[best]


def compile_query(
    query: Query, pids: dict[str, int], estimate: Estimator | None = None
) -> tuple[str, list[Any], str, list[tuple[str, bool]]]:
    """FROM/WHERE text and params, ORDER BY text, and the sort expressions.

    The candidate records are ``r``; the driving term's rids are joined as
    ``d``, so an index that yields rids in order streams the first page
    without reading every match.

    ``estimate`` lets the most selective term drive; without it the first
    equality-like term does.
    """
    q = _Sql()
    statuses = query.statuses
    if statuses is None:
        q.add("r.status != 'deleted'")
    # Equality-like terms drive the search: they are usually the most selective.
    ordered = sorted(query.conditions, key=lambda c: c.op not in ("eq", "in"))
    for cond in ordered:
        _condition(q, cond, pids)
    if query.text:
        expr = _fts_expression(query.text)
        select = "SELECT rowid AS rid FROM fts WHERE fts MATCH ?"
        q.option(select, [expr], f"r.rid IN ({select})", [expr])
    if query.bbox is not None or query.time is not None:
        _extent(q, query.bbox.boxes() if query.bbox else None, query.time)
    # Sort expressions carry no parameters (column names and integer path ids
    # only), so the same text can appear in SELECT, WHERE and ORDER BY.
    sort_exprs = [(_sort_expr(key.field, pids), key.descending) for key in query.sort]
    if query.cursor:
        _after_cursor(q, query.cursor, sort_exprs)
    order = ", ".join(f"({e}) IS NULL, ({e}) {'DESC' if d else 'ASC'}" for e, d in sort_exprs)
    driver = q.choose(estimate)
    rid = "d.rid" if driver is not None else "r.rid"
    order = f"{order}, {rid} ASC" if order else f"{rid} ASC"
    where = " AND ".join(q.where)
    where = f" WHERE {where}" if where else ""
    if driver is None:
        return f"FROM records r{where}", list(q.params), order, sort_exprs
    select = driver.select if driver.unique else f"SELECT DISTINCT rid FROM ({driver.select})"
    source = f"FROM ({select}) AS d JOIN records r ON r.rid = d.rid"
    return f"{source}{where}", driver.params + q.params, order, sort_exprs


def _sort_expr(name: str, pids: dict[str, int]) -> str:
    if name in _RECORD_COLUMNS:
        return _RECORD_COLUMNS[name]
    # Field names are validated dotted identifiers, so quoting them is safe.
    path = "".join(f'."{part}"' for part in name.removeprefix("metadata.").split("."))
    return f"(SELECT json_extract(doc, '$.metadata{path}') FROM docs WHERE rid = r.rid)"


def _after_cursor(q: _Sql, cursor: str, sort_exprs: list[tuple[str, bool]]) -> None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        values, last_rid = data["k"], data["r"]
        if not isinstance(values, list) or len(values) != len(sort_exprs):
            raise ValueError("cursor does not match the sort keys")
        # A forged cursor must not reach SQLite with values it cannot bind.
        if not _sql_int(last_rid) or not all(_cursor_value(v) for v in values):
            raise ValueError("cursor values are not ones this backend wrote")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise QueryError(
            "bad cursor: it belongs to another query or was cut short; start again without --cursor"
        ) from exc
    params: list[Any] = []

    def after(i: int) -> str:
        if i == len(sort_exprs):
            params.append(last_rid)
            return "r.rid > ?"
        expr, desc = sort_exprs[i]
        value = values[i]
        if value is None:
            # Nulls sort last: after a null only nulls with a later tie-break follow.
            return f"(({expr}) IS NULL AND {after(i + 1)})"
        cmp = "<" if desc else ">"
        params.append(value)
        first = f"({expr}) {cmp} ?"
        params.append(value)
        same = f"({expr}) = ?"
        rest = after(i + 1)
        return f"(({expr}) IS NULL OR {first} OR ({same} AND {rest}))"

    clause = after(0)
    q.add(clause, *params)


# -- conditions ---------------------------------------------------------------------


def _condition(q: _Sql, cond: Condition, pids: dict[str, int]) -> None:
    if cond.field in ("tag", "tags"):
        _tag_condition(q, cond)
        return
    path = cond.metadata_path
    if path is None:
        _column_condition(q, cond)
        return
    pid = pids.get(path)
    op = cond.op
    if pid is None:
        # Nobody ever stored this path: only negative terms can match.
        q.add("1" if op in ("missing", "ne") else "0")
        return
    if op in ("exists", "missing"):
        present = (
            "SELECT rid FROM meta_num WHERE pid = ? UNION SELECT rid FROM meta_txt WHERE pid = ?"
        )
        if op == "exists":
            q.within(present, pid, pid)
        else:
            q.add(f"r.rid NOT IN ({present})", pid, pid)
        return
    if op in ("eq", "in", "ne"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        tests = _value_tests(pid, values)
        params = [x for _, _, p in tests for x in p]
        probe = "(" + " OR ".join(probe for _, probe, _ in tests) + ")"
        if op == "ne":
            q.add(f"NOT {probe}", *params)
        else:
            q.option(" UNION ".join(select for select, _, _ in tests), params, probe, params)
        return
    if op in ("lt", "le", "gt", "ge"):
        ranges = [_range_test(op, cond.value)]
        if (
            isinstance(cond.value, int)
            and not isinstance(cond.value, bool)
            and 1000 <= cond.value <= 9999
        ):
            # A bare year compared with a date field means that year ("start_datetime>=2021").
            ranges.append(_range_test(op, str(cond.value)))
        q.within(
            " UNION ".join(
                f"SELECT rid FROM meta_num WHERE pid = ? AND typ = ? AND num {sym} ?"
                for _, sym, _ in ranges
            ),
            *[x for typ, _, bound in ranges for x in (pid, typ, bound)],
        )
        return
    test = "txt GLOB ?" if op == "glob" else "regexp(?, txt)"
    q.within(f"SELECT rid FROM meta_txt WHERE pid = ? AND {test}", pid, cond.value)


def _tag_condition(q: _Sql, cond: Condition) -> None:
    op = cond.op
    if op in ("eq", "in", "ne"):
        values = [str(v) for v in (cond.value if isinstance(cond.value, list) else [cond.value])]
        marks = ",".join("?" * len(values))
        probe = f"EXISTS (SELECT 1 FROM tags WHERE rid = r.rid AND tag IN ({marks}))"
        if op == "ne":
            q.add(f"NOT {probe}", *values)
        else:
            # A record holding several of the values has a row for each.
            q.option(
                f"SELECT rid FROM tags WHERE tag IN ({marks})",
                values,
                probe,
                values,
                unique=len(set(values)) == 1,
            )
    elif op in ("exists", "missing"):
        probe = "EXISTS (SELECT 1 FROM tags WHERE rid = r.rid)"
        q.add(probe if op == "exists" else f"NOT {probe}")
    elif op in ("glob", "regex"):
        test = "tag GLOB ?" if op == "glob" else "regexp(?, tag)"
        q.within(f"SELECT rid FROM tags WHERE {test}", cond.value)
    else:
        raise QueryError(
            f"bad query term {cond.to_text()!r}: tags compare with =, !=, ~ or :exists"
        )


def _column_condition(q: _Sql, cond: Condition) -> None:
    column = _RECORD_COLUMNS[cond.field]
    op = cond.op
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    if cond.field in _TIME_COLUMNS:
        # A bare year means that year, as it does for date metadata.
        values = [_year_text(v) for v in values]
        cond = cond.model_copy(update={"value": values if op == "in" else values[0]})
    if cond.field in _TIME_COLUMNS and op not in ("exists", "missing"):
        if not all(isinstance(v, str) and _date_span(v, years=True) is not None for v in values):
            raise QueryError(
                f"bad query term {cond.to_text()!r}: {cond.field} compares with ISO dates"
            )
        if op in ("lt", "le", "gt", "ge"):
            _, sym, bound = _range_test(op, cond.value)
            q.add(f"{column} {sym} ?", bound)
            return
        spans = [_epoch_bounds(str(v)) for v in values]
        test = " OR ".join(
            f"({column} >= ? AND {column} < ?)" if a != b else f"{column} = ?" for a, b in spans
        )
        flat = [x for a, b in spans for x in ((a, b) if a != b else (a,))]
        q.add(f"({test})" if op != "ne" else f"NOT ({test})", *flat)
        return
    if op == "exists":
        q.add(f"{column} IS NOT NULL")
    elif op == "missing":
        q.add(f"{column} IS NULL")
    elif op in ("eq", "in"):
        marks = ",".join("?" * len(values))
        q.add(f"{column} IN ({marks})", *values)
    elif op == "ne":
        q.add(f"({column} IS NULL OR {column} != ?)", values[0])
    elif op in ("lt", "le", "gt", "ge"):
        q.add(f"{column} {_CMP[op]} ?", cond.value)
    elif op == "glob":
        q.add(f"{column} GLOB ?", cond.value)
    else:
        q.add(f"regexp(?, {column})", cond.value)


def _with_seam(
    boxes: list[tuple[float, float, float, float]],
) -> list[tuple[float, float, float, float]]:
    """Longitudes -180 and 180 are one meridian: a box touching one touches the other."""
    extra = []
    for w, s, e, n in boxes:
        if w == -180.0 and e < 180.0:
            extra.append((180.0, s, 180.0, n))
        if e == 180.0 and w > -180.0:
            extra.append((-180.0, s, -180.0, n))
    return boxes + extra


def _extent(q: _Sql, boxes: list[tuple[float, float, float, float]] | None, time: Any) -> None:
    """Bbox intersection and time overlap.

    Driving, the R*Tree finds candidates (it stores 32-bit bounds rounded
    outwards, so its exact ``+`` columns decide); otherwise the exact extent
    columns of the record row decide, which costs nothing extra.
    """
    tree: list[str] = []
    coarse: list[str] = []  # the R*Tree bounds alone, to estimate with
    coarse_params: list[Any] = []
    row: list[str] = []
    tree_params: list[Any] = []
    row_params: list[Any] = []
    if boxes:
        boxes = _with_seam(boxes)
        tree_or = []
        row_or = []
        for w, _, e, _ in boxes:
            tree_or.append("(minx <= ? AND maxx >= ? AND w <= ? AND e >= ?)")
            tree_params.extend([e, w, e, w])
            row_or.append("(r.bw <= ? AND r.be >= ?) OR (r.bw2 <= ? AND r.be2 >= ?)")
            row_params.extend([e, w, e, w])
        south, north = boxes[0][1], boxes[0][3]
        tree.append("(" + " OR ".join(tree_or) + ")")
        tree.append("miny <= ? AND maxy >= ? AND s <= ? AND n >= ?")
        tree_params.extend([north, south, north, south])
        coarse.append(f"({' OR '.join('(minx <= ? AND maxx >= ?)' for _ in boxes)})")
        coarse_params.extend(x for w, _, e, _ in boxes for x in (e, w))
        coarse.append("miny <= ? AND maxy >= ?")
        coarse_params.extend([north, south])
        row.append("(" + " OR ".join(row_or) + ")")
        row.append("r.bs <= ? AND r.bn >= ?")
        row_params.extend([north, south])
    if time is not None:
        lo = to_epoch(time.start) if time.start is not None else -math.inf
        hi = to_epoch(time.end) if time.end is not None else math.inf
        tree.append("tmin <= ? AND tmax >= ? AND t0 <= ? AND t1 >= ?")
        tree_params.extend([hi, lo, hi, lo])
        coarse.append("tmin <= ? AND tmax >= ?")
        coarse_params.extend([hi, lo])
        row.append("r.t0 <= ? AND r.t1 >= ?")
        row_params.extend([hi, lo])
    q.option(
        f"SELECT DISTINCT id >> 1 AS rid FROM extent WHERE {' AND '.join(tree)}",
        tree_params,
        " AND ".join(row),
        row_params,
        estimate=(f"SELECT id FROM extent WHERE {' AND '.join(coarse)}", coarse_params),
    )


def _year_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    return value


def query_paths(query: Query) -> list[str]:
    """The metadata paths a query names (their ids are looked up before compiling)."""
    paths = [c.metadata_path for c in query.conditions if c.metadata_path]
    paths += [s.field.removeprefix("metadata.") for s in query.sort if _is_meta(s.field)]
    return paths


def _is_meta(name: str) -> bool:
    return name.startswith("metadata.") or name not in _RECORD_COLUMNS


def _range_test(op: str, value: Any) -> tuple[str, str, float]:
    """Index kind, SQL operator and bound of a comparison.

    Dates compare by whole periods: ``>2020`` is after all of 2020 and
    ``<=2020-06`` includes all of June.
    """
    if not isinstance(value, str):
        return "n", _CMP[op], float(value)
    first, after = _epoch_bounds(value)
    if after != first and op == "gt":
        return "d", ">=", after
    if after != first and op == "le":
        return "d", "<", after
    return "d", _CMP[op], first


def _value_tests(pid: int, values: list[Any]) -> list[tuple[str, str, list[Any]]]:
    """Per value: a rid SELECT, a test on candidate ``r`` and their params.

    A date value means its whole period (``obs=2020-06`` is any time in June
    2020), as in comparisons.
    """
    tests: list[tuple[str, str, list[Any]]] = []

    def exact(table: str, where: str, params: list[Any]) -> None:
        tests.append(
            (
                f"SELECT rid FROM {table} WHERE {where}",
                f"EXISTS (SELECT 1 FROM {table} WHERE {where} AND rid = r.rid)",
                params,
            )
        )

    for value in values:
        if isinstance(value, bool):
            exact("meta_num", "pid = ? AND typ = 'b' AND num = ?", [pid, 1.0 if value else 0.0])
        elif isinstance(value, int | float):
            exact("meta_num", "pid = ? AND typ = 'n' AND num = ?", [pid, float(value)])
            if isinstance(value, int) and 1000 <= value <= 9999:
                # A bare year compared with a date field means that year.
                first, after = _epoch_bounds(str(value))
                select = (
                    "SELECT rid FROM meta_num WHERE pid = ? AND typ = 'd' AND num >= ? AND num < ?"
                )
                tests.append((select, f"r.rid IN ({select})", [pid, first, after]))
        elif value is None:
            exact("meta_num", "pid = ? AND typ = 'x'", [pid])
        else:
            text = str(value)
            exact("meta_txt", "pid = ? AND txt = ?", [pid, text])
            span = _date_span(text)
            if span is None:
                continue
            if span[0] == span[1]:
                exact("meta_num", "pid = ? AND typ = 'd' AND num = ?", [pid, span[0]])
            else:
                select = (
                    "SELECT rid FROM meta_num WHERE pid = ? AND typ = 'd' AND num >= ? AND num < ?"
                )
                tests.append((select, f"r.rid IN ({select})", [pid, span[0], span[1]]))
    return tests


def _date_span(text: str, *, years: bool = False) -> tuple[float, float] | None:
    """Epoch bounds of an ISO date's period; ``years`` also reads ``2020`` as a year."""
    if not (looks_like_date(text) or (years and len(text) == 4 and text.isdigit())):
        return None
    try:
        return _epoch_bounds(text)
    except ValueError:
        return None


def _sql_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _cursor_value(value: Any) -> bool:
    """A sort key value as SQLite returned it: text, a 64-bit integer, a finite float or null."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str) or _sql_int(value)


def encode_cursor(row: Sequence[Any]) -> str:
    data = {"r": row[0], "k": list(row[1:])}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
