"""One query model for Python, the CLI and HTTP.

A :class:`Query` is a conjunction of :class:`Condition` terms plus full text,
a bounding box, a time range, sort keys, a page size and a cursor. The CLI
string form is parsed by :meth:`Query.parse`::

    site=MHD "year>=2020" kind=dataset tag=ch4 "title~Mace*" "institution~/^NOC/"
    "site=[MHD,TAC]" doi:exists doi:missing

Field names are metadata paths (``netcdf.attrs.institution``) unless they
name a record field (``id kind status title description tag created_at
updated_at created_by updated_by version schema_name schema_version``);
``metadata.title`` reaches a metadata key that shadows one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arcodex.errors import QueryError
from arcodex.model._values import JSONScalar, looks_like_date, parse_iso_period, parse_value

__all__ = [
    "RECORD_FIELDS",
    "BBox",
    "Condition",
    "FieldSummary",
    "Op",
    "Query",
    "SortKey",
    "TimeRange",
    "normalize_bbox",
]

Op = Literal["eq", "ne", "in", "lt", "le", "gt", "ge", "glob", "regex", "exists", "missing"]

#: Record attributes a condition may name directly (everything else is metadata).
RECORD_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "kind",
        "status",
        "title",
        "description",
        "tag",
        "tags",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "version",
        "schema_name",
        "schema_version",
    }
)

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")
_TERM_RE = re.compile(
    r"^(?P<field>[A-Za-z_][A-Za-z0-9_.\-]*?)\s*(?P<op>!=|>=|<=|=|>|<|~|:exists$|:missing$)(?P<value>.*)$",
    re.S,
)
_OPS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
_TERM_HELP = (
    "write FIELD=VALUE, FIELD!=VALUE, FIELD>=VALUE (also > < <=), FIELD=[A,B], "
    "FIELD~GLOB*, FIELD~/REGEX/, FIELD:exists or FIELD:missing"
)
#: Characters that start an operator: an unquoted value starting with one is a typo
#: (``site==MHD``, ``year=>2020``), which would otherwise match nothing, silently.
_OPERATOR_START = frozenset("=!<>~")
#: What a doubled or reversed operator most likely meant.
_MEANT = {"==": "=", "=>": ">=", "=<": "<=", "<>": "!=", "=!": "!=", "~=": "~", "=~": "~"}


class Condition(BaseModel):
    """One term: ``field op value``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Op = "eq"
    value: JSONScalar | list[JSONScalar] = None

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if not _FIELD_RE.match(value):
            raise ValueError(f"field {value!r} is not a dotted name like netcdf.attrs.institution")
        return value

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"'in' on {self.field} needs a non-empty list of values")
        elif isinstance(self.value, list):
            raise ValueError(f"a list value on {self.field} needs op 'in'")
        if self.op in ("lt", "le", "gt", "ge") and not _orderable(self.value):
            raise ValueError(
                f"{self.field} {self.op} needs a number or an ISO date, not {self.value!r}"
            )
        if self.op in ("glob", "regex") and not isinstance(self.value, str):
            raise ValueError(f"{self.op} on {self.field} needs a text pattern")
        if self.op == "regex":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"bad regular expression for {self.field}: {exc}") from exc
        return self

    @property
    def metadata_path(self) -> str | None:
        """The metadata path this term reads, or None for a record field."""
        if self.field.startswith("metadata."):
            return self.field[len("metadata.") :]
        if self.field in RECORD_FIELDS:
            return None
        return self.field

    def to_text(self) -> str:
        """The CLI form of this term."""
        if self.op in ("exists", "missing"):
            return f"{self.field}:{self.op}"
        if self.op == "glob":
            text = str(self.value)
            regex_like = len(text) >= 2 and text.startswith("/") and text.endswith("/")
            bare = text == text.strip() and text[:1] not in _OPERATOR_START
            plain = bare and not regex_like and not _quoted(text)
            return f"{self.field}~{text}" if plain else f'{self.field}~"{text}"'
        if self.op == "regex":
            return f"{self.field}~/{self.value}/"
        if self.op == "in":
            assert isinstance(self.value, list)
            return f"{self.field}=[{','.join(_format(v) for v in self.value)}]"
        symbol = {v: k for k, v in _OPS.items()}[self.op]
        return f"{self.field}{symbol}{_format(self.value)}"


def _orderable(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    if not (isinstance(value, str) and looks_like_date(value)):
        return False
    try:
        parse_iso_period(value)
    except ValueError:
        return False
    return True


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value if _plain(value) and not value.startswith("[") else f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _plain(value: str) -> bool:
    """Whether ``value`` reads back as itself without quotes (as a term's value)."""
    return (
        bool(value)
        and parse_value(value) == value
        and value == value.strip()
        and value[0] not in _OPERATOR_START
    )


def _quoted(raw: str) -> bool:
    return len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'"


def normalize_bbox(bbox: Sequence[float]) -> list[tuple[float, float, float, float]]:
    """Split a (west, south, east, north) box into boxes within -180..180.

    0–360 longitudes are shifted; a box whose west is east of its east crosses
    the antimeridian and becomes two boxes; a box 360 degrees wide or more
    covers every longitude.
    """
    west, south, east, north = (float(v) for v in bbox)
    if east - west >= 360 or (west <= -180 and east >= 180):
        return [(-180.0, south, 180.0, north)]
    if west > 180 or west < -180:
        west = (west + 180) % 360 - 180
    if east > 180 or east < -180:
        east = (east + 180) % 360 - 180
        if east == -180:
            east = 180.0
    if west <= east:
        return [(west, south, east, north)]
    return [(west, south, 180.0, north), (-180.0, south, east, north)]


class BBox(BaseModel):
    """A (west, south, east, north) box in WGS84 degrees; west > east crosses the antimeridian."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    west: float = Field(ge=-360, le=360)
    south: float = Field(ge=-90, le=90)
    east: float = Field(ge=-360, le=360)
    north: float = Field(ge=-90, le=90)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.south > self.north:
            raise ValueError(f"bbox south {self.south} is north of north {self.north}")
        return self

    @classmethod
    def parse(cls, text: str | Sequence[float]) -> BBox:
        """From ``"w,s,e,n"`` or a 4-sequence; QueryError if malformed."""
        try:
            parts = [float(p) for p in (text.split(",") if isinstance(text, str) else text)]
        except (TypeError, ValueError):
            parts = []
        if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
            raise QueryError(
                f"bad bbox {text!r}: write WEST,SOUTH,EAST,NORTH in degrees, e.g. -10,40,5,60"
            )
        try:
            return cls(west=parts[0], south=parts[1], east=parts[2], north=parts[3])
        except ValueError as exc:
            raise QueryError(f"bad bbox {text!r}: {_first_error(exc)}") from None

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """This box as one or two boxes within -180..180 (see :func:`normalize_bbox`)."""
        return normalize_bbox((self.west, self.south, self.east, self.north))


class TimeRange(BaseModel):
    """An inclusive time range; None on either side is open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"time range starts ({self.start}) after it ends ({self.end})")
        return self

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """``2020-01/2021-06``, ``2020/..``, ``../2021-06-30``, or one period like ``2020``."""
        start_text, sep, end_text = text.partition("/")
        try:
            start = end = None
            if start_text not in ("", ".."):
                start = parse_iso_period(start_text)[0]
            if not sep:
                first, after = parse_iso_period(start_text)
                end = _last_instant(first, after)
            elif end_text not in ("", ".."):
                first, after = parse_iso_period(end_text)
                end = _last_instant(first, after)
            return cls(start=start, end=end)
        except ValueError as exc:
            raise QueryError(
                f"bad time range {text!r}: {_first_error(exc)}; write START/END with ISO dates, "
                "e.g. 2020-01/2021-06 or 2020/.."
            ) from None


def _last_instant(first: datetime, after: datetime) -> datetime:
    return first if after == first else after - timedelta(microseconds=1)


class SortKey(BaseModel):
    """Sort by a record field or metadata path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    descending: bool = False

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if not _FIELD_RE.match(value):
            raise ValueError(f"sort field {value!r} is not a dotted name")
        return value


class Query(BaseModel):
    """What to find, how to order it and which page to return."""

    model_config = ConfigDict(extra="forbid")

    conditions: list[Condition] = Field(default_factory=list)
    text: str | None = None
    bbox: BBox | None = None
    time: TimeRange | None = None
    sort: list[SortKey] = Field(default_factory=list)
    limit: int | None = Field(default=100, ge=1)
    cursor: str | None = None

    @field_validator("text")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # A NUL is in no word, and SQLite's full-text parser reads it as the text's end.
        return value.replace("\x00", " ") if value else value

    @property
    def statuses(self) -> list[str] | None:
        """Statuses asked for explicitly; None means every status but ``deleted``."""
        for cond in self.conditions:
            if cond.field == "status" and cond.op in ("eq", "in"):
                return [
                    str(v) for v in (cond.value if isinstance(cond.value, list) else [cond.value])
                ]
        return None

    @classmethod
    def parse(
        cls,
        terms: Sequence[str] | str = (),
        *,
        text: str | None = None,
        bbox: str | Sequence[float] | None = None,
        time: str | None = None,
        sort: str | Sequence[str] | None = None,
        limit: int | None = 100,
        cursor: str | None = None,
    ) -> Query:
        """Build a query from the CLI string form; QueryError names the bad term."""
        if isinstance(terms, str):
            terms = terms.split()
        conditions = [parse_term(term) for term in terms]
        sort_keys: list[SortKey] = []
        if sort:
            for item in sort.split(",") if isinstance(sort, str) else sort:
                item = item.strip()
                if not item:
                    continue
                descending = item.startswith("-")
                name = item.lstrip("+-")
                try:
                    sort_keys.append(SortKey(field=name, descending=descending))
                except ValueError:
                    raise QueryError(
                        f"bad sort key {item!r}: write FIELD or -FIELD, e.g. -created_at"
                    ) from None
        if limit is not None and limit < 1:
            raise QueryError(f"bad limit {limit}: give a positive number of results")
        return cls(
            conditions=conditions,
            text=text or None,
            bbox=BBox.parse(bbox) if bbox is not None else None,
            time=TimeRange.parse(time) if time else None,
            sort=sort_keys,
            limit=limit,
            cursor=cursor,
        )

    def to_terms(self) -> list[str]:
        """The conditions in CLI form."""
        return [c.to_text() for c in self.conditions]


def parse_term(term: str) -> Condition:
    """One CLI term (``site=MHD``, ``year>=2020``, ``doi:exists`` …) as a Condition."""
    match = _TERM_RE.match(term.strip())
    if match is None:
        first = term.strip()[:1]
        missing = f"no field before {first!r}; " if first in _OPERATOR_START else ""
        raise QueryError(f"bad query term {term!r}: {missing}{_TERM_HELP}")
    field, symbol, raw = match["field"], match["op"], match["value"].lstrip()
    if field in ("tags",):
        field = "tag"
    _check_malformed(term, field, symbol, raw)
    try:
        if symbol in (":exists", ":missing"):
            return Condition(field=field, op=symbol[1:])
        if symbol == "~":
            if _quoted(raw):
                return Condition(field=field, op="glob", value=raw[1:-1])
            if len(raw) >= 2 and raw.startswith("/") and raw.endswith("/"):
                return Condition(field=field, op="regex", value=raw[1:-1])
            if not raw:
                raise ValueError("the pattern is empty")
            return Condition(field=field, op="glob", value=raw)
        if symbol == "=" and raw.startswith("[") and raw.endswith("]"):
            items = [parse_value(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
            return Condition(field=field, op="in", value=items)
        if raw == "":
            raise ValueError("the value is empty (quote it: FIELD='\"\"' for an empty string)")
        return Condition(field=field, op=_OPS[symbol], value=parse_value(raw))
    except ValueError as exc:
        raise QueryError(f"bad query term {term!r}: {_first_error(exc)}") from None


def _check_malformed(term: str, field: str, symbol: str, raw: str) -> None:
    """Refuse the typos that would parse as a value no record has (``site==MHD``).

    A value that starts with an operator character, a list after anything but
    ``=``, and an unclosed list are mistakes far more often than data; a value
    that really starts so can be quoted (``site='"=MHD"'``).
    """
    if symbol in (":exists", ":missing") or _quoted(raw):
        return
    if raw[:1] in _OPERATOR_START:
        typed = symbol + raw[0]
        meant = _MEANT.get(typed)
        quote = (
            f"; quote a value that starts with {raw[0]!r}: {field}{symbol}'\"{raw}\"'"
            if symbol in ("=", "!=", "~") and raw.isprintable()  # the hint stays one line
            else ""
        )
        raise QueryError(
            f"bad query term {term!r}: {typed!r} is not an operator"
            f"{f' (did you mean {meant!r}?)' if meant else ''}; "
            f"the operators are = != > >= < <= ~ :exists :missing{quote}"
        )
    if symbol in _OPS and raw.startswith("[") and not raw.endswith("]"):
        raise QueryError(f"bad query term {term!r}: the list is not closed; write FIELD=[A,B]")
    if symbol == "!=" and raw.startswith("[") and raw.endswith("]"):
        raise QueryError(
            f"bad query term {term!r}: a list goes with = only (FIELD=[A,B] is one of); "
            "for none of them write one FIELD!=VALUE term per value"
        )


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            msg = str(first.get("msg", exc))
            return msg.removeprefix("Value error, ")
        except (IndexError, TypeError):
            pass
    return str(exc)


class FieldSummary(BaseModel):
    """What the catalog has seen under one metadata path."""

    model_config = ConfigDict(extra="forbid")

    path: str
    types: list[str]
    count: int = Field(ge=0, description="records (not deleted) holding this path")
    examples: list[JSONScalar] = Field(default_factory=list)
