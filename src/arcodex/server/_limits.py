"""Bounds on what a request may hold, checked by cheap scans before any parser runs.

The parsers behind the API recurse: Python's ``json`` (a ``RecursionError``
past ~1,000 levels) and the ``cql2`` Rust parser (a stack overflow that kills
the whole process past a few thousand). So the nesting of a text is measured
first, in one linear pass that recurses into nothing, and a text too deep is
refused before it reaches them. Numbers too large for a float (``1e400``) and
``NaN``/``Infinity`` are refused when JSON is read, not found later as ``inf``.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from arcodex.errors import QueryError

if TYPE_CHECKING:
    from arcodex.catalog._config import ServerConfig

__all__ = ["check_filter_text", "cql2_text_depth", "json_depth", "load_json"]

_TOKEN = re.compile(
    r"(?P<text>'(?:[^']|'')*'?)"
    r'|(?P<name>"[^"]*"?)'
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<word>[A-Za-z_][\w:.]*)"
    r"|(?P<op><>|<=|>=|!=|\S)"
)
_COMPARISONS = frozenset(("=", "<>", "!=", "<", "<=", ">", ">="))
_WORD_COMPARISONS = frozenset(("LIKE", "BETWEEN", "IN", "IS"))
_ARITHMETIC = frozenset("+*/%^")
_BEFORE_SIGN = frozenset(("", "(", "[", ",", *_COMPARISONS))
_WKT = frozenset(
    {
        "POINT",
        "LINESTRING",
        "POLYGON",
        "MULTIPOINT",
        "MULTILINESTRING",
        "MULTIPOLYGON",
        "GEOMETRYCOLLECTION",
        "BBOX",
    }
)


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text (brackets in strings skipped)."""
    data = text.encode() if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def cql2_text_depth(text: str) -> int:
    """How deep a CQL2 text can nest once parsed: brackets, plus every operator that nests.

    The deepest bracket nesting, plus one for each ``NOT``, arithmetic operator,
    minus that is not a number's sign, and comparison chained onto another
    (``1 = 1 = 1``): each makes one more level in the parser, with or without
    brackets. A sign is a ``-`` before digits inside a geometry
    (``POLYGON((-10 -5, …))``) or after ``(``, ``,`` or a comparison.
    """
    depth = deepest = operators = 0
    chained = 0  # comparisons since the last AND, OR, comma or bracket
    geometry_at = 0  # the bracket depth a WKT geometry opened at; 0 outside geometries
    previous = ""
    for match in _TOKEN.finditer(text):
        token, kind = match.group(), match.lastgroup
        upper = token.upper()
        if kind == "word" and upper == "NOT":
            operators += 1
        elif kind == "word" and upper in ("AND", "OR"):
            chained = 0
        elif (kind == "word" and upper in _WORD_COMPARISONS) or token in _COMPARISONS:
            chained += 1
            operators += chained > 1
        elif token in ("(", "["):
            if token == "(" and not geometry_at and previous.upper() in _WKT:
                geometry_at = depth + 1
            depth += 1
            deepest = max(deepest, depth)
            chained = 0
        elif token in (")", "]"):
            geometry_at = 0 if depth == geometry_at else geometry_at
            depth -= 1
            chained = 0
        elif token == ",":
            chained = 0
        elif token in _ARITHMETIC:
            operators += 1
        elif token == "-":
            number = text[match.end() : match.end() + 1]
            sign = (number.isdigit() or number == ".") and (geometry_at or previous in _BEFORE_SIGN)
            operators += not sign
        previous = token
    return deepest + operators


def check_filter_text(text: str, limits: ServerConfig, *, lang: str | None = None) -> None:
    """Refuse a filter text longer or deeper than the server's bounds (before parsing it)."""
    if len(text) > limits.max_filter_length:
        raise QueryError(
            f"the filter has {len(text)} characters, more than the server's "
            f"{limits.max_filter_length} (server.max_filter_length); simplify it"
        )
    is_json = lang == "cql2-json" or text.lstrip().startswith("{")
    depth = json_depth(text) if is_json else cql2_text_depth(text)
    if depth > limits.max_depth:
        raise QueryError(
            f"the filter nests {depth} levels deep, more than the server's {limits.max_depth} "
            "(server.max_depth); simplify it"
        )


def _refuse_constant(name: str) -> Any:
    raise QueryError(f"{name} is not a JSON number; send finite numbers")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise QueryError(f"the number {text[:40]} is too large; send numbers a float can hold")
    return value


def load_json(text: str | bytes, limits: ServerConfig, *, what: str = "the body") -> Any:
    """JSON text as Python values, refused (QueryError) when too deep, malformed or not finite."""
    depth = json_depth(text)
    if depth > limits.max_depth:
        raise QueryError(
            f"{what} nests {depth} levels deep, more than the server's {limits.max_depth} "
            "(server.max_depth); simplify it"
        )
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QueryError(f"{what} is not JSON ({exc}); send a JSON object") from None
