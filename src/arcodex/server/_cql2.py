"""CQL2 filters as catalog queries: a disjunction of indexed branches.

A filter (CQL2 text or JSON, parsed by the ``cql2`` package) is rewritten into
disjunctive normal form; each branch is a conjunction the catalog backend
answers from its indexes: :class:`~arcodex.model.Condition` terms, one bbox,
one time range. Geometries other than boxes are also kept as *shapes*, checked
exactly on the candidates the bbox index returns. ``NOT`` is pushed down to the
comparisons; ``OR`` makes more branches. What cannot be rewritten this way is a
:class:`~arcodex.errors.QueryError` that names the operator.

Properties are item properties (``properties.`` may prefix them): ``id`` and
``collection`` are the record id, ``title`` and ``description`` record fields,
``arcodex:check`` the product check, ``datetime``/``start_datetime``/
``end_datetime`` the record's time range; any other dotted name is a metadata
path. A name no record can hold (``eo:cloud_cover``) is null everywhere, so a
comparison on it matches nothing and ``IS NULL`` matches everything.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from arcodex.errors import QueryError
from arcodex.model import Condition, TimeRange
from arcodex.model._values import parse_iso_period

if TYPE_CHECKING:
    from arcodex.catalog._config import ServerConfig

__all__ = ["Branch", "branches_for", "check_geometry", "parse_filter"]

#: Beyond this many OR branches a filter is refused rather than run as many queries.
MAX_BRANCHES = 32
#: The longest text an ordered comparison (<, >) takes: its expression grows as its square.
MAX_ORDERED_TEXT = 256

_NEGATE = {"=": "<>", "<>": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_OPS = {"=": "eq", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_RECORD_PROPERTIES = {
    "id": "id",
    "collection": "id",
    "arcodex:record": "id",
    "title": "title",
    "description": "description",
    "arcodex:kind": "kind",
    "arcodex:check": "convert.check",
    "start_datetime": "start_datetime",
    "end_datetime": "end_datetime",
}
_TEMPORAL = {"datetime", "start_datetime", "end_datetime"}
_SPATIAL = {"geometry", "bbox"}
_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")
_SUPPORTED = (
    "=, <>, <, <=, >, >=, AND, OR, NOT, LIKE, IN, BETWEEN, IS NULL, "
    "S_INTERSECTS(geometry, …) and T_INTERSECTS(datetime, …)"
)

BBox4 = tuple[float, float, float, float]


@dataclass(frozen=True)
class Branch:
    """One conjunction: index terms, boxes, a time range, and shapes checked exactly."""

    conditions: tuple[Condition, ...] = ()
    boxes: tuple[BBox4, ...] = ()
    time: tuple[datetime | None, datetime | None] | None = None
    shapes: tuple[Mapping[str, Any], ...] = field(default=())

    def time_range(self) -> TimeRange | None:
        return TimeRange(start=self.time[0], end=self.time[1]) if self.time else None

    def merge(self, other: Branch) -> Branch | None:
        """Both branches at once; None when they cannot both hold."""
        time = self.time
        if other.time is not None:
            if time is None:
                time = other.time
            else:
                starts = [t for t in (time[0], other.time[0]) if t is not None]
                ends = [t for t in (time[1], other.time[1]) if t is not None]
                time = (max(starts) if starts else None, min(ends) if ends else None)
                if time[0] and time[1] and time[0] > time[1]:
                    return None
        return Branch(
            conditions=(*self.conditions, *other.conditions),
            boxes=(*self.boxes, *other.boxes),
            time=time,
            shapes=(*self.shapes, *other.shapes),
        )


_TRUE = [Branch()]
_FALSE: list[Branch] = []


def parse_filter(
    expr: str | Mapping[str, Any], lang: str | None = None, limits: ServerConfig | None = None
) -> dict[str, Any]:
    """A CQL2 filter (text or JSON) as CQL2 JSON; QueryError if it does not parse.

    Its length and nesting are checked against ``limits`` (the server's
    settings) before the parser sees it, and its ``IN`` lists after.
    """
    import cql2

    from arcodex.catalog._config import ServerConfig
    from arcodex.server._limits import check_filter_text

    limits = limits or ServerConfig()
    text = expr if isinstance(expr, str) else json.dumps(expr)
    check_filter_text(text, limits, lang="cql2-json" if not isinstance(expr, str) else lang)
    try:
        if lang == "cql2-json" or not isinstance(expr, str) or text.lstrip().startswith("{"):
            parsed = cql2.parse_json(text)
        else:
            parsed = cql2.parse_text(text)
        result: dict[str, Any] = parsed.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise QueryError(
            f"the filter is not valid CQL2 ({' '.join(s.strip() for s in first[:6])[:300]}); "
            "see https://docs.ogc.org/is/21-065r2/21-065r2.html"
        ) from None
    _check_lists(result, limits.max_list)
    return result


def _check_lists(expr: Any, most: int) -> None:
    """Refuse an ``IN`` list longer than ``most`` values (walked without recursion)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            args = node.get("args")
            if str(node.get("op", "")).lower() == "in" and isinstance(args, list) and len(args) > 1:
                values = args[1]
                if isinstance(values, list) and len(values) > most:
                    raise QueryError(
                        f"an IN list has {len(values)} values, more than the server's {most} "
                        "(server.max_list); split the search"
                    )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def branches_for(expr: Mapping[str, Any] | bool) -> list[Branch]:
    """The branches (ORed) of a CQL2 JSON expression; [] matches nothing."""
    try:
        return _dnf(expr, negate=False)
    except QueryError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # Valid CQL2 with a shape the rewriting does not expect (an argument of the wrong kind).
        raise QueryError(
            f"the filter cannot be answered here ({type(exc).__name__}: {str(exc)[:120]}); "
            f"use {_SUPPORTED}"
        ) from None


def _dnf(node: Any, *, negate: bool) -> list[Branch]:
    if isinstance(node, bool):
        return _TRUE if node != negate else _FALSE
    if not isinstance(node, Mapping) or "op" not in node:
        raise QueryError(f"a filter term must be an operation, not {json.dumps(node)[:80]}")
    op = str(node["op"]).lower()
    args = list(node.get("args", []))
    if op == "not":
        return _dnf(args[0], negate=not negate)
    if op in ("and", "or"):
        parts = [_dnf(a, negate=negate) for a in args]
        if (op == "and") != negate:
            result = _TRUE
            for part in parts:
                result = _product(result, part)
            return result
        return _limit([b for part in parts for b in part])
    if op in _NEGATE:
        return _compare(op, args, negate=negate)
    if op == "like":
        return _like(args, negate=negate)
    if op == "in":
        return _in(args, negate=negate)
    if op == "between":
        low, high = (args[1], args[2]) if len(args) == 3 else tuple(args[1])
        both = {"op": "and", "args": [
            {"op": ">=", "args": [args[0], low]},
            {"op": "<=", "args": [args[0], high]},
        ]}  # fmt: skip
        return _dnf(both, negate=negate)
    if op == "isnull":
        target = _property(args[0])
        if target is None:
            return _FALSE if negate else _TRUE
        if target == "datetime":
            target = "start_datetime"
        return [Branch(conditions=(_condition(target, "exists" if negate else "missing"),))]
    if op == "s_intersects":
        return _spatial(args, negate=negate)
    if op == "t_intersects":
        return _temporal(args, negate=negate)
    raise QueryError(f"CQL2 operator {node['op']!r} is not supported here; use {_SUPPORTED}")


def _product(left: list[Branch], right: list[Branch]) -> list[Branch]:
    out = [m for a in left for b in right if (m := a.merge(b)) is not None]
    return _limit(out)


def _limit(branches: list[Branch]) -> list[Branch]:
    if len(branches) > MAX_BRANCHES:
        raise QueryError(
            f"the filter expands to more than {MAX_BRANCHES} alternatives (OR); simplify it"
        )
    return branches


def _property(arg: Any) -> str | None:
    """The catalog field a property names; 'datetime' for the time range; None if none can."""
    if not (isinstance(arg, Mapping) and "property" in arg):
        raise QueryError(
            f"expected a property name, got {json.dumps(arg)[:80]}; write PROPERTY op VALUE"
        )
    name = str(arg["property"]).removeprefix("properties.")
    if name == "datetime":
        return "datetime"
    if name in _RECORD_PROPERTIES:
        return _RECORD_PROPERTIES[name]
    if name in _SPATIAL:
        raise QueryError(f"compare the {name} with S_INTERSECTS, not with a comparison")
    return name if _PATH_RE.match(name) else None


def _literal(arg: Any) -> Any:
    if isinstance(arg, Mapping):
        if "timestamp" in arg:
            return str(arg["timestamp"])
        if "date" in arg:
            return str(arg["date"])
        if "property" in arg:
            raise QueryError("comparing two properties is not supported; compare with a value")
        raise QueryError(f"unsupported value {json.dumps(arg)[:80]} in the filter")
    if isinstance(arg, float) and arg.is_integer() and abs(arg) < 2**63:
        return int(arg)  # cql2 reads every number as a float; metadata years are ints
    if isinstance(arg, int) and not isinstance(arg, bool) and not -(2**63) <= arg < 2**63:
        return float(arg)  # beyond SQLite's integers, compared as the float it is near
    return arg


def _condition(name: str, op: str, value: Any = None) -> Condition:
    try:
        return Condition(field=name, op=op, value=value)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        msg = errors()[0]["msg"] if callable(errors) else str(exc)
        raise QueryError(
            f"bad filter term on {name}: {str(msg).removeprefix('Value error, ')}"
        ) from None


def _compare(op: str, args: list[Any], *, negate: bool) -> list[Branch]:
    if negate:
        op = _NEGATE[op]
    if isinstance(args[0], Mapping) and "property" in args[0]:
        prop, raw = args
    else:
        raw, prop = args
        op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
    name = _property(prop)
    if name is None:
        return _FALSE  # null compares to nothing, negated or not
    value = _literal(raw)
    if name == "datetime":
        return _datetime(op, value)
    if op in ("<", "<=", ">", ">=") and isinstance(value, str) and not _orderable(value):
        return [Branch(conditions=(_condition(name, "regex", _text_order(op, value)),))]
    return [Branch(conditions=(_condition(name, _OPS[op], value),))]


def _orderable(value: str) -> bool:
    try:
        Condition(field="x", op="lt", value=value)
    except ValueError:
        return False
    return True


def _text_order(op: str, value: str) -> str:
    """A regular expression matching the texts before (or after) ``value`` in code-point order.

    The backend orders numbers and dates only; text order is the alternatives
    "a proper prefix of value" and "value's first i characters, then a smaller one".
    """
    if len(value) > MAX_ORDERED_TEXT:
        # The expression grows with the square of the text's length.
        raise QueryError(
            f"text compared with <, <=, > or >= may have at most {MAX_ORDERED_TEXT} characters"
        )
    below = [re.escape(value[:i]) for i in range(len(value))]
    for i, char in enumerate(value):
        if ord(char) > 0:
            highest = re.escape(chr(ord(char) - 1))
            below.append(f"{re.escape(value[:i])}[\\x00-{highest}].*")
    lt = "|".join(below) or "(?!)"  # nothing is before the empty text
    le = f"{lt}|{re.escape(value)}"
    if op == "<":
        return f"^(?:{lt})$"
    if op == "<=":
        return f"^(?:{le})$"
    return f"^(?!(?:{le if op == '>' else lt})$)"


def _datetime(op: str, value: Any) -> list[Branch]:
    """A comparison with the item's datetime, read as its start/end range."""
    if not isinstance(value, str):
        raise QueryError(f"datetime compares with a TIMESTAMP or DATE, not {value!r}")
    if op == "=":
        return [Branch(time=_period(value))]
    if op == "<>":
        return [
            Branch(conditions=(_condition("end_datetime", "lt", value),)),
            Branch(conditions=(_condition("start_datetime", "gt", value),)),
        ]
    target = "start_datetime" if op in ("<", "<=") else "end_datetime"
    return [Branch(conditions=(_condition(target, _OPS[op], value),))]


def _period(text: Any) -> tuple[datetime, datetime]:
    """The first and last instants of an ISO date or date-time (a day, a second …)."""
    if not isinstance(text, str):
        raise QueryError(f"expected a TIMESTAMP or DATE in the filter, not {text!r}")
    try:
        first, after = parse_iso_period(text)
    except ValueError as exc:
        raise QueryError(f"bad date {text!r} in the filter: {exc}") from None
    return first, first if after == first else after - timedelta(microseconds=1)


def _like(args: list[Any], *, negate: bool) -> list[Branch]:
    name = _property(args[0])
    pattern = _literal(args[1])
    if name is None:
        return _FALSE
    if not isinstance(pattern, str) or name == "datetime":
        raise QueryError("LIKE compares a text property with a text pattern")
    regex = _like_regex(pattern)
    if negate:
        # A lookahead keeps the term indexed by the backend's regex support.
        return [Branch(conditions=(_condition(name, "regex", f"^(?!{regex}$)"),))]
    return [Branch(conditions=(_condition(name, "regex", f"^{regex}$"),))]


def _like_regex(pattern: str) -> str:
    """A LIKE pattern as a regular expression that matches in linear time, whatever the pattern.

    The plain translation (``%`` as ``.*``) backtracks exponentially on patterns such as
    ``%a%a%a%a%a%a%a%a%b`` (seconds per value at eight ``%``). Here the text between two
    ``%`` is found at its first occurrence and the match never reconsiders it (an atomic
    group), which is exact for LIKE: the leftmost place leaves the most room to the rest.
    """
    segments: list[list[str]] = [[]]
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            segments[-1].append(re.escape(next(chars, "\\")))
        elif char == "%":
            segments.append([])
        elif char == "_":
            segments[-1].append(".")
        else:
            segments[-1].append(re.escape(char))
    parts = ["".join(segment) for segment in segments]
    if len(parts) == 1:
        return parts[0]
    middle = "".join(f"(?>.*?{part})" for part in parts[1:-1] if part)
    return f"{parts[0]}{middle}.*{parts[-1]}"


def _in(args: list[Any], *, negate: bool) -> list[Branch]:
    if len(args) != 2 or not isinstance(args[1], list):
        raise QueryError("IN compares a property with a list of values: PROPERTY IN (a, b …)")
    name = _property(args[0])
    values = [_literal(v) for v in args[1]]
    if name is None or not values:
        return _FALSE
    if name == "datetime":
        raise QueryError("IN on datetime is not supported; use T_INTERSECTS")
    if negate:
        return [Branch(conditions=tuple(_condition(name, "ne", v) for v in values))]
    return [Branch(conditions=(_condition(name, "in", values),))]


def _spatial(args: list[Any], *, negate: bool) -> list[Branch]:
    if negate:
        raise QueryError("NOT S_INTERSECTS is not supported; search the area you want instead")
    prop, geom = (args[0], args[1]) if "property" in args[0] else (args[1], args[0])
    if str(prop.get("property", "")).removeprefix("properties.") not in _SPATIAL:
        raise QueryError("S_INTERSECTS compares the geometry property with a geometry")
    if isinstance(geom, Mapping) and "bbox" in geom:
        box = [float(v) for v in geom["bbox"]]
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        return [Branch(boxes=(_box(box),))]
    geom = check_geometry(geom)
    return [Branch(boxes=(geometry_bbox(geom),), shapes=(geom,))]


def _box(values: Sequence[float]) -> BBox4:
    if len(values) != 4:
        raise QueryError(f"a bbox has 4 or 6 numbers, not {len(values)}")
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def check_geometry(geom: Any) -> dict[str, Any]:
    """A GeoJSON geometry checked whole (types, positions, closed rings, finite numbers)."""
    from geojson_pydantic.geometries import Geometry
    from pydantic import TypeAdapter
    from pydantic import ValidationError as PydanticError

    try:
        parsed = TypeAdapter(Geometry).validate_python(geom)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise QueryError(
            f"the geometry is not valid GeoJSON ({where}: {first['msg']}); "
            "see https://datatracker.ietf.org/doc/html/rfc7946"
        ) from None
    checked: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_none=True))
    box = geometry_bbox(checked)
    if not all(math.isfinite(v) for v in box):
        raise QueryError("the geometry has coordinates that are not finite numbers")
    return checked


def geometry_bbox(geom: Mapping[str, Any]) -> BBox4:
    """The bounding box of a GeoJSON geometry (its coordinates' extremes)."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], int | float):
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
        else:
            for c in coords:
                walk(c)

    if geom.get("type") == "GeometryCollection":
        for part in geom.get("geometries", []):
            box = geometry_bbox(part)
            xs.extend((box[0], box[2]))
            ys.extend((box[1], box[3]))
    else:
        walk(geom.get("coordinates", []))
    if not xs:
        raise QueryError(f"the geometry {json.dumps(geom)[:80]} has no coordinates")
    return (min(xs), min(ys), max(xs), max(ys))


def _temporal(args: list[Any], *, negate: bool) -> list[Branch]:
    if negate:
        raise QueryError("NOT T_INTERSECTS is not supported; ask for the period you want instead")
    prop, value = (args[0], args[1]) if "property" in args[0] else (args[1], args[0])
    if str(prop.get("property", "")).removeprefix("properties.") not in _TEMPORAL:
        raise QueryError("T_INTERSECTS compares datetime with a TIMESTAMP, DATE or INTERVAL")
    if isinstance(value, Mapping) and "interval" in value:
        low, high = value["interval"]
        start = None if low in ("..", None) else _period(_literal(low))[0]
        end = None if high in ("..", None) else _period(_literal(high))[1]
        return [Branch(time=(start, end))]
    return [Branch(time=_period(_literal(value)))]
