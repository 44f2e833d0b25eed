"""Compiling a :class:`~arcodex.model.Query` into PostgreSQL SQL over the index tables.

Each term becomes a test on the candidate records ``r``: a semi-join
(``r.rid IN (SELECT rid FROM meta_txt …)``) or anti-join (``NOT EXISTS``) on a
side table, a GiST test on the extent columns, a GIN test on the text vector.
PostgreSQL's planner then picks the most selective index to drive the search,
which SQLite's compiler has to do by hand.

The semantics are SQLite's (:mod:`arcodex.backends._sqlite_query`), term for term.
"""

from __future__ import annotations

import base64
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from arcodex.backends._postgres_schema import KEY_CHARS
from arcodex.errors import QueryError
from arcodex.model import Condition, Query, looks_like_date, parse_iso_period, to_epoch

__all__ = [
    "Compiled",
    "compile_query",
    "encode_cursor",
    "fts_query",
    "glob_regex",
    "query_paths",
    "safe_text",
    "tsvector_literal",
]

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
_NUMBER_COLUMNS = {"version"}
_CMP = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
#: Positions and lexeme sizes a tsvector accepts.
_MAX_POS, _MAX_POSITIONS, _MAX_LEXEME = 16383, 255, 2046


def safe_text(value: str) -> str:
    """Text as PostgreSQL can hold it: NUL (which ``text`` refuses) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def key_of(value: str) -> str:
    """The index key of a text value."""
    return value[:KEY_CHARS]


# -- full text ----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_ASCII_SPACES = bytes(c if c in b"0123456789abcdefghijklmnopqrstuvwxyz" else 32 for c in range(256))


def _fold(word: str) -> str:
    """Case and diacritics folded away, as SQLite's unicode61 (remove_diacritics 2) does."""
    if not word.isascii():
        word = "".join(
            c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c)
        )
    return word.lower()


def words(text: str) -> list[str]:
    """The tokens of a text: runs of letters and digits, folded."""
    if text.isascii():
        # Every byte that is not a letter or digit becomes a space: 2-3x a regex's speed.
        return text.lower().encode().translate(_ASCII_SPACES).decode().split()
    return [_fold(w) for w in _WORD.findall(text)]


def _quote_lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(text: str) -> str:
    """A tsvector in its input syntax, with positions, built without a text search parser
    (so the database's locale cannot change what a word is). Tokens are letters and
    digits only, so they need no quoting."""
    tokens = words(text)
    if len(tokens) <= _MAX_POSITIONS and (not tokens or max(map(len, tokens)) * 4 <= _MAX_LEXEME):
        # The usual text (a record's title, description and values): no limit can be reached,
        # so positions are joined as they come (a quarter of a bulk add's time went here).
        joined: dict[str, str] = {}
        for i, word in enumerate(tokens, 1):
            known = joined.get(word)
            joined[word] = str(i) if known is None else known + "," + str(i)
        return " ".join([word + ":" + found for word, found in joined.items()])
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(tokens, 1):
        seen = positions.get(word)
        if seen is None:
            positions[word] = [i]
        elif len(seen) < _MAX_POSITIONS:
            seen.append(i)
    parts = []
    for word, found in positions.items():
        if len(word) * 4 > _MAX_LEXEME and len(word.encode()) > _MAX_LEXEME:
            continue
        if found[-1] > _MAX_POS:
            found = sorted({min(p, _MAX_POS) for p in found})
        parts.append(f"{word}:{','.join(map(str, found))}")
    literal = " ".join(parts)
    if len(literal) > 400_000:
        # A tsvector holds at most 1 MB; very long texts keep their words, not positions.
        literal = " ".join(w for w in positions)[:900_000].rsplit(" ", 1)[0]
    return literal


def fts_query(text: str) -> str:
    """User words as a tsquery: every word must appear; ``word*`` is a prefix; a word of
    several tokens (``ab-c``) is a phrase."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*")
        tokens = words(word.rstrip("*"))
        if not tokens:
            continue
        quoted = [_quote_lexeme(t) for t in tokens]
        if prefix:
            quoted[-1] += ":*"
        terms.append(quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")")
    if not terms:
        raise QueryError(f"bad text search {text!r}: give at least one word")
    return " & ".join(terms)


# -- patterns -----------------------------------------------------------------------------


def glob_regex(pattern: str) -> str:
    """SQLite GLOB (``*``, ``?``, ``[set]``, ``[^set]``, case-sensitive) as an anchored
    PostgreSQL regular expression."""
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
                    members.append(_escape(pattern[j]))
                j += 1
            if j >= len(pattern):
                return "(?!)"  # an unterminated set matches nothing
            out.append("[" + ("^" if negate else "") + "".join(members) + "]")
            i = j
        else:
            out.append(_escape(c))
        i += 1
    return "^(?:" + "".join(out) + ")$"


def _escape(c: str) -> str:
    # In PostgreSQL's AREs a backslash before a letter or digit starts an escape.
    return c if c.isalnum() or c == " " else "\\" + c


def _glob_prefix(pattern: str) -> str:
    """The literal text every match of a glob starts with."""
    out = []
    for c in pattern:
        if c in "*?[":
            break
        out.append(c)
    return "".join(out)


# -- the compiler ---------------------------------------------------------------------------


@dataclass
class Compiled:
    """A query as SQL: ``FROM … WHERE …`` text and params, and the ORDER BY."""

    source: str
    params: list[Any]
    order: str
    #: The sort components: expressions (without parameters), each ``(expr, descending)``,
    #: sorted nulls last; a cursor holds one value for each.
    sort_exprs: list[tuple[str, bool]]


@dataclass
class _Sql:
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.where.append(clause)
        self.params.extend(params)


def compile_query(query: Query, pids: dict[str, int]) -> Compiled:
    """The query's FROM/WHERE, ORDER BY and sort expressions (candidate records are ``r``)."""
    q = _Sql()
    if query.statuses is None:
        q.add("r.status <> 'deleted'")
    extent = _extent_prefilter(query)
    for cond in query.conditions:
        _condition(q, cond, pids, extent)
    if query.text:
        q.add("r.tsv @@ %s::tsquery", fts_query(query.text))
    if query.bbox is not None:
        _bbox(q, query.bbox.boxes())
    if query.time is not None:
        lo = to_epoch(query.time.start) if query.time.start is not None else None
        hi = to_epoch(query.time.end) if query.time.end is not None else None
        q.add("r.tr && float8range(%s, %s, '[]')", lo, hi)
    sort_exprs = [part for key in query.sort for part in _sort_parts(key.field, key.descending)]
    if query.cursor:
        _after_cursor(q, query.cursor, sort_exprs)
    order = ", ".join(f"{e} {'DESC' if d else 'ASC'} NULLS LAST" for e, d in sort_exprs)
    order = f"{order}, r.rid ASC" if order else "r.rid ASC"
    where = " AND ".join(q.where)
    return Compiled(
        f"FROM records r{' WHERE ' + where if where else ''}", q.params, order, sort_exprs
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sort_parts(name: str, descending: bool) -> list[tuple[str, bool]]:
    """The expressions a sort key orders by.

    A metadata value orders as SQLite orders what ``json_extract`` gives: numbers
    (booleans as 0 and 1) before text (lists and objects as their compact JSON
    text), text by code point, nulls last; descending, text before numbers. Hence
    two parts, a number and a text, each null where the value is not of its kind.
    The value is read from the document as ``json`` (not ``jsonb``), which keeps
    a list's or object's own text, key by key with ``->`` (a key never indexes into
    a list, as in SQLite's JSON paths).
    """
    if name in _RECORD_COLUMNS:
        return [(_RECORD_COLUMNS[name], descending)]
    parts = ["metadata", *name.removeprefix("metadata.").split(".")]
    value = "(r.doc::json" + "".join(f" -> {_literal(p)}" for p in parts) + ")"
    number = (
        f"(CASE json_typeof({value}) WHEN 'number' THEN ({value} #>> '{{}}')::numeric"
        f" WHEN 'boolean' THEN (CASE WHEN ({value})::text = 'true' THEN 1 ELSE 0 END)::numeric END)"
    )
    text = (
        f"(CASE json_typeof({value}) WHEN 'string' THEN ({value} #>> '{{}}')"
        f" WHEN 'array' THEN ({value})::text WHEN 'object' THEN ({value})::text END"
        ' COLLATE "C")'
    )
    if descending:
        return [(text, True), (number, True)]
    return [(number, False), (text, False)]


def _after_cursor(q: _Sql, cursor: str, sort_exprs: list[tuple[str, bool]]) -> None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        raw, last_rid = data["k"], data["r"]
        if not isinstance(raw, list) or len(raw) != len(sort_exprs):
            raise ValueError("cursor does not match the sort keys")
        if not _sql_int(last_rid):
            raise ValueError("cursor values are not ones this backend wrote")
        values = [_decode_value(v) for v in raw]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise QueryError(
            "bad cursor: it belongs to another query or was cut short; start again without --cursor"
        ) from exc
    params: list[Any] = []

    def after(i: int) -> str:
        if i == len(sort_exprs):
            params.append(last_rid)
            return "r.rid > %s"
        expr, desc = sort_exprs[i]
        value = values[i]
        if value is None:
            # Nulls sort last: after a null only nulls with a later tie-break follow.
            return f"({expr} IS NULL AND {after(i + 1)})"
        cmp = "<" if desc else ">"
        params.append(value)
        first = f"{expr} {cmp} %s"
        params.append(value)
        same = f"{expr} = %s"
        rest = after(i + 1)
        return f"({expr} IS NULL OR {first} OR ({same} AND {rest}))"

    clause = after(0)
    q.add(clause, *params)


def _decode_value(value: Any) -> Any:
    """A cursor value as the backend wrote it: text, a 64-bit integer, a finite float,
    a decimal number (``{"n": "1.5"}``) or null."""
    if value is None or isinstance(value, str):
        return safe_text(value) if isinstance(value, str) else None
    if isinstance(value, bool):
        raise ValueError("no booleans in cursors")
    if isinstance(value, int):
        if not _sql_int(value):
            raise ValueError("integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if isinstance(value, dict) and set(value) == {"n"} and isinstance(value["n"], str):
        try:
            number = Decimal(value["n"])
        except InvalidOperation as exc:
            raise ValueError("not a number") from exc
        if not number.is_finite():
            raise ValueError("not a finite number")
        return number
    raise ValueError("not a cursor value")


def _encode_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"n": str(value)}
    return value


def encode_cursor(row: Sequence[Any]) -> str:
    """A cursor after ``row`` (its rid, then its sort values)."""
    data = {"r": row[0], "k": [_encode_value(v) for v in row[1:]]}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _sql_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


# -- conditions ---------------------------------------------------------------------


def _present(pid: int) -> tuple[str, list[Any]]:
    return (
        "SELECT rid FROM meta_num WHERE pid = %s UNION ALL SELECT rid FROM meta_txt WHERE pid = %s",
        [pid, pid],
    )


def _within(q: _Sql, select: str, params: list[Any], *, negate: bool = False) -> None:
    if negate:
        q.add(f"NOT EXISTS (SELECT 1 FROM ({select}) AS x WHERE x.rid = r.rid)", *params)
    else:
        q.add(f"r.rid IN ({select})", *params)


#: Widening of a box's prefilter bounds: PostgreSQL's box operators compare with a
#: tolerance of 1e-6 (``EPSILON`` of its geometric types), the prefilter must not be stricter.
_BOX_SLACK = 1e-5


def _extent_prefilter(query: Query) -> tuple[str, list[Any]]:
    """Conditions on a text row's extent columns that every record matching the query's
    time and box passes (``""`` without either): a necessary test, never a sufficient one
    (the exact tests on ``records`` still apply), see ``_postgres_schema``."""
    tests: list[str] = []
    params: list[Any] = []
    if query.time is not None:
        if query.time.end is not None:
            tests.append("t0 <= %s::float4")
            params.append(to_epoch(query.time.end))
        if query.time.start is not None:
            tests.append("t1 >= %s::float4")
            params.append(to_epoch(query.time.start))
    if query.bbox is not None:
        boxes = _with_seam(query.bbox.boxes())
        tests += ["w <= %s::float4", "e >= %s::float4", "s <= %s::float4", "n >= %s::float4"]
        params += [
            max(b[2] for b in boxes) + _BOX_SLACK,
            min(b[0] for b in boxes) - _BOX_SLACK,
            max(b[3] for b in boxes) + _BOX_SLACK,
            min(b[1] for b in boxes) - _BOX_SLACK,
        ]
    return "".join(f" AND {t}" for t in tests), params


def _condition(
    q: _Sql, cond: Condition, pids: dict[str, int], extent: tuple[str, list[Any]] = ("", [])
) -> None:
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
        q.add("TRUE" if op in ("missing", "ne") else "FALSE")
        return
    if op in ("exists", "missing"):
        select, params = _present(pid)
        _within(q, select, params, negate=op == "missing")
        return
    if op in ("eq", "in", "ne"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        # Only a positive term may carry the extent's prefilter: under ``ne`` it would
        # turn records outside the extent into matches.
        tests = _value_tests(pid, values, extent if op != "ne" else ("", []))
        select = " UNION ALL ".join(s for s, _ in tests)
        params = [x for _, p in tests for x in p]
        _within(q, select, params, negate=op == "ne")
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
        _within(
            q,
            " UNION ALL ".join(
                f"SELECT rid FROM meta_num WHERE pid = %s AND typ = %s AND num {sym} %s"
                for _, sym, _ in ranges
            ),
            [x for typ, _, bound in ranges for x in (pid, typ, bound)],
        )
        return
    pattern = safe_text(str(cond.value))
    if op == "glob":
        select, params = _glob_select(
            "SELECT rid FROM meta_txt WHERE pid = %s", [pid], "k", "txt", pattern
        )
        _within(q, select, params)
    else:
        _within(q, "SELECT rid FROM meta_txt WHERE pid = %s AND txt ~ %s", [pid, pattern])


def _glob_select(
    select: str, params: list[Any], key: str, column: str, pattern: str
) -> tuple[str, list[Any]]:
    """``select`` narrowed to values matching a glob: through the key's B-tree when the
    pattern starts with literal text."""
    prefix = _glob_prefix(pattern)[:KEY_CHARS]
    out = [*params]
    if prefix:
        select += f" AND {key} >= %s AND {key} < %s"
        out += [prefix, prefix + "\U0010ffff"]
    select += f" AND {column} ~ %s"
    out.append(glob_regex(pattern))
    return select, out


def _tag_condition(q: _Sql, cond: Condition) -> None:
    op = cond.op
    if op in ("eq", "in", "ne"):
        values = [
            safe_text(str(v))
            for v in (cond.value if isinstance(cond.value, list) else [cond.value])
        ]
        if op == "ne":
            q.add(
                "NOT EXISTS (SELECT 1 FROM tags t WHERE t.rid = r.rid AND t.tag = ANY(%s))", values
            )
        else:
            q.add("r.rid IN (SELECT rid FROM tags WHERE tag = ANY(%s))", values)
    elif op in ("exists", "missing"):
        probe = "EXISTS (SELECT 1 FROM tags t WHERE t.rid = r.rid)"
        q.add(probe if op == "exists" else f"NOT {probe}")
    elif op in ("glob", "regex"):
        pattern = safe_text(str(cond.value))
        if op == "glob":
            select, params = _glob_select(
                "SELECT rid FROM tags WHERE TRUE", [], "tag", "tag", pattern
            )
        else:
            select, params = "SELECT rid FROM tags WHERE tag ~ %s", [pattern]
        _within(q, select, params)
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
            q.add(f"{column} {sym} %s", bound)
            return
        spans = [_epoch_bounds(str(v)) for v in values]
        test = " OR ".join(
            f"({column} >= %s AND {column} < %s)" if a != b else f"{column} = %s" for a, b in spans
        )
        flat = [x for a, b in spans for x in ((a, b) if a != b else (a,))]
        q.add(f"({test})" if op != "ne" else f"NOT ({test})", *flat)
        return
    if op == "exists":
        q.add(f"{column} IS NOT NULL")
        return
    if op == "missing":
        q.add(f"{column} IS NULL")
        return
    if op in ("glob", "regex"):
        pattern = safe_text(str(cond.value))
        if cond.field in _NUMBER_COLUMNS:
            column = f"({column})::text"
        if op == "glob":
            q.add(f"{column} ~ %s", glob_regex(pattern))
        else:
            q.add(f"{column} ~ %s", pattern)
        return
    if cond.field in _NUMBER_COLUMNS:
        _number_column(q, column, op, values)
        return
    # SQLite compares a text column with a number as text.
    texts = [_as_text(v) for v in values if v is not None]
    if op in ("eq", "in"):
        if texts:
            q.add(f"{column} = ANY(%s)", texts)
        else:
            q.add("FALSE")
    elif op == "ne":
        if texts:
            q.add(f"({column} IS NULL OR {column} <> %s)", texts[0])
        else:
            q.add("TRUE")
    else:
        q.add(f"{column} {_CMP[op]} %s", texts[0])


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return safe_text(str(value))


def _number_column(q: _Sql, column: str, op: str, values: list[Any]) -> None:
    """An integer column: numbers compare as numbers; text sorts after every number (SQLite)."""
    numbers = [
        (int(v) if isinstance(v, bool) else v)
        for v in values
        if isinstance(v, int | float) and not (isinstance(v, float) and not math.isfinite(v))
    ]
    if op in ("eq", "in"):
        if numbers:
            q.add(
                "(" + " OR ".join(f"{column} = %s" for _ in numbers) + ")",
                *[_number_param(n) for n in numbers],
            )
        else:
            q.add("FALSE")
    elif op == "ne":
        if numbers:
            q.add(f"{column} <> %s", _number_param(numbers[0]))
        else:
            q.add("TRUE")
    elif numbers:
        q.add(f"{column} {_CMP[op]} %s", _number_param(numbers[0]))
    else:
        q.add("TRUE" if op in ("lt", "le") else "FALSE")


def _number_param(value: int | float) -> Any:
    if isinstance(value, int) and not _sql_int(value):
        return Decimal(value)
    return value


#: A query box covering this share of the longitude-latitude plane or more is tested on
#: each candidate instead of through the boxes' GiST index (see ``_bbox``).
_WIDE_BOX = 0.01


def _bbox(q: _Sql, boxes: list[tuple[float, float, float, float]]) -> None:
    """Boxes meet when they share a point (closed boxes), the ±180 seam being one meridian.

    PostgreSQL judges every box overlap to keep 0.5 % of the rows (box columns have no
    statistics), whatever the box: for a wide box (a continent: a fifth of a catalog) it
    then intersects the GiST bitmaps of the whole catalog's boxes and times — 180,000
    rows at 1,000,000 records, half a second — where another term (``site=X``, whose
    index carries the extents) finds the candidates in milliseconds. So a wide box is
    written as a test the index cannot serve (``IS TRUE``), applied to the candidates
    the other terms find; a narrow one, which the index answers well, stays indexable."""
    tests: list[str] = []
    params: list[Any] = []
    pieces = _with_seam(boxes)
    area = sum(max(e - w, 0.0) * max(n - s, 0.0) for w, s, e, n in pieces) / (360.0 * 180.0)
    wide = " IS TRUE" if area >= _WIDE_BOX else ""
    for w, s, e, n in pieces:
        for column in ("r.b1", "r.b2"):
            tests.append(f"({column} && box(point(%s, %s), point(%s, %s))){wide}")
            params.extend([w, s, e, n])
    q.add("(" + " OR ".join(tests) + ")", *params)


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


def _year_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    return value


def query_paths(query: Query) -> list[str]:
    """The metadata paths a query's conditions name (their ids are looked up first)."""
    return [c.metadata_path for c in query.conditions if c.metadata_path]


def _epoch_bounds(value: str) -> tuple[float, float]:
    first, after = parse_iso_period(value)
    return to_epoch(first), to_epoch(after)


def _range_test(op: str, value: Any) -> tuple[str, str, float]:
    """Index kind, SQL operator and bound of a comparison (dates by whole periods)."""
    if not isinstance(value, str):
        return "n", _CMP[op], float(value)
    first, after = _epoch_bounds(value)
    if after != first and op == "gt":
        return "d", ">=", after
    if after != first and op == "le":
        return "d", "<", after
    return "d", _CMP[op], first


def _value_tests(
    pid: int, values: list[Any], extent: tuple[str, list[Any]] = ("", [])
) -> list[tuple[str, list[Any]]]:
    """Per value: a rid SELECT and its params (a date means its whole period); text values
    narrowed by ``extent``, the prefilter of the query's time and box."""
    narrow, bounds = extent
    tests: list[tuple[str, list[Any]]] = []
    num = "SELECT rid FROM meta_num WHERE pid = %s AND typ = %s AND num "
    for value in values:
        if isinstance(value, bool):
            tests.append((num + "= %s", [pid, "b", 1.0 if value else 0.0]))
        elif isinstance(value, int | float):
            tests.append((num + "= %s", [pid, "n", float(value)]))
            if isinstance(value, int) and 1000 <= value <= 9999:
                # A bare year compared with a date field means that year.
                first, after = _epoch_bounds(str(value))
                tests.append((num + ">= %s AND num < %s", [pid, "d", first, after]))
        elif value is None:
            tests.append(("SELECT rid FROM meta_num WHERE pid = %s AND typ = 'x'", [pid]))
        else:
            text = safe_text(str(value))
            if len(text) < KEY_CHARS:
                # A key shorter than its limit is the whole value: testing ``txt`` too would
                # only make the planner count the same condition twice (and misjudge it).
                tests.append(
                    (
                        f"SELECT rid FROM meta_txt WHERE pid = %s AND k = %s{narrow}",
                        [pid, text, *bounds],
                    )
                )
            else:
                tests.append(
                    (
                        f"SELECT rid FROM meta_txt WHERE pid = %s AND k = %s AND txt = %s{narrow}",
                        [pid, key_of(text), text, *bounds],
                    )
                )
            span = _date_span(text)
            if span is None:
                continue
            if span[0] == span[1]:
                tests.append((num + "= %s", [pid, "d", span[0]]))
            else:
                tests.append((num + ">= %s AND num < %s", [pid, "d", span[0], span[1]]))
    return tests


def _date_span(text: str, *, years: bool = False) -> tuple[float, float] | None:
    if not (looks_like_date(text) or (years and len(text) == 4 and text.isdigit())):
        return None
    try:
        return _epoch_bounds(text)
    except ValueError:
        return None
