"""Typed scalar values: parsing from text, ISO dates, metadata checks.

Shared by the query parser and by ``--meta key=value`` so that a value means
the same thing wherever a user types it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "DATE_RE",
    "JSONScalar",
    "check_metadata",
    "iso_to_epoch",
    "looks_like_date",
    "parse_iso_period",
    "parse_value",
    "to_epoch",
]

JSONScalar = str | int | float | bool | None

DATE_RE = re.compile(
    r"^(?P<y>[+-]?\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def looks_like_date(text: str) -> bool:
    """True for ISO 8601 dates of at least year-month (``2020-01``, ``2020-01-02T03:04Z``)."""
    return len(text) >= 7 and text[4:5] == "-" and DATE_RE.match(text) is not None


def parse_iso_period(text: str) -> tuple[datetime, datetime]:
    """The first instant of a (partial) ISO date and the first instant after it.

    ``2020`` is the whole year, ``2020-06`` the month, a full timestamp one
    instant (start == end). Naive times are UTC.
    """
    m = DATE_RE.match(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date (use e.g. 2020, 2020-06, 2020-06-30T12:00Z)"
        )
    year = int(m["y"])
    try:
        if m["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return start, datetime(year + 1, 1, 1, tzinfo=UTC)
        month = int(m["m"])
        if m["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, nxt
        day = int(m["d"])
        if m["H"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        tz = UTC
        if m["tz"] and m["tz"] != "Z":
            sign = 1 if m["tz"][0] == "+" else -1
            digits = m["tz"][1:].replace(":", "")
            tz_offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tz = timezone(sign * tz_offset)
        micro = round(float(m["f"]) * 1_000_000) if m["f"] else 0
        start = datetime(
            year,
            month,
            day,
            int(m["H"]),
            int(m["M"]),
            int(m["S"] or 0),
            min(micro, 999_999),
            tzinfo=tz,
        ).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from exc
    return start, start


def to_epoch(moment: datetime) -> float:
    """Seconds since 1970-01-01 UTC (naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH).total_seconds()


def iso_to_epoch(text: str) -> float | None:
    """Epoch seconds of the start of an ISO date string, or None if it is not one."""
    if not looks_like_date(text):
        return None
    try:
        return to_epoch(parse_iso_period(text)[0])
    except ValueError:
        return None


def parse_value(text: str) -> JSONScalar:
    """Type a value typed by a person: numbers, booleans, null; quotes force a string.

    ISO dates stay strings (metadata is JSON); queries recognise them as dates.
    """
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("null", "none"):
        return None
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text) or low in ("nan", "inf", "-inf"):
        value = float(text)
        if math.isfinite(value):
            return value
    return text


def check_metadata(value: Any, path: str = "metadata") -> Any:
    """Return ``value`` as plain JSON, or raise ValueError naming the offending path.

    Keys are non-empty strings without dots (dots separate query paths);
    dates become ISO strings; NaN and infinity are refused because JSON
    cannot carry them.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or "." in key:
                raise ValueError(
                    f"metadata key {key!r} at {path} must be a non-empty string without '.'"
                    " (nest dicts instead of dotted keys)"
                )
            out[key] = check_metadata(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [check_metadata(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"metadata value at {path} does not fit in 64 bits; store it as text")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"metadata value at {path} is {value}; JSON cannot store NaN or infinity"
            )
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    # numpy scalars and friends expose .item(); keep the core free of numpy.
    item_fn = getattr(value, "item", None)
    if callable(item_fn):
        return check_metadata(item_fn(), path)
    raise ValueError(
        f"metadata value at {path} has type {type(value).__name__}, which JSON cannot store"
    )
