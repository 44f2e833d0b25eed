"""Gaps in the concatenation axis: periods that neither the product nor its sources hold.

The expected step is the median spacing of the steps. Steps of about a month
or a year are counted in calendar months (so February, or a leap year, is no
gap); other steps are compared as durations (cftime dates, any calendar) or
plain numbers. A spacing of more than one and a half expected steps is a gap,
named by the steps on either side: ``time: gap between 2020-01-03 and
2020-01-05 (expected step 1 day)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

__all__ = ["concat_gaps"]

#: At most this many gaps are named; the rest are counted.
_SHOWN = 5
_DAY = 86400.0


def concat_gaps(dim: str, decoded: Sequence[Sequence[Any]]) -> list[str]:
    """One warning per gap between the steps ``decoded`` (per source, in order), or none."""
    import statistics

    values = [v for part in decoded for v in part]
    if len(values) < 3:
        return []
    if not hasattr(values[0], "year"):
        return []  # not times: depths or positions need not be evenly spaced
    seconds = [_seconds(b - a) for a, b in itertools.pairwise(values)]
    step = statistics.median(seconds)
    if step <= 0:
        return []
    if 27 * _DAY <= step <= 370 * _DAY:
        months = [_month(b) - _month(a) for a, b in itertools.pairwise(values)]
        expected_months = max(1, round(statistics.median(months)))
        spans = [m / expected_months for m in months]
        label = _months_label(expected_months)
    else:
        spans = [s / step for s in seconds]
        label = _duration_label(step)
    gaps = [i for i, span in enumerate(spans) if span > 1.5]
    out = [
        f"{dim}: gap between {_label(values[i])} and {_label(values[i + 1])} (expected step {label})"
        for i in gaps[:_SHOWN]
    ]
    if len(gaps) > _SHOWN:
        out.append(f"{dim}: {len(gaps) - _SHOWN} more gaps (expected step {label})")
    return out


def _seconds(delta: Any) -> float:
    return float(delta.total_seconds()) if hasattr(delta, "total_seconds") else float(delta)


def _month(value: Any) -> int:
    return int(value.year) * 12 + int(value.month) - 1


def _months_label(months: int) -> str:
    if months % 12 == 0:
        years = months // 12
        return f"{years} year" + ("s" if years > 1 else "")
    return f"{months} month" + ("s" if months > 1 else "")


def _duration_label(seconds: float) -> str:
    for size, unit in ((_DAY, "day"), (3600.0, "hour"), (60.0, "minute"), (1.0, "second")):
        if seconds >= size and (seconds / size).is_integer():
            n = int(seconds / size)
            return f"{n} {unit}" + ("s" if n > 1 else "")
    return f"{seconds:g} seconds"


def _label(value: Any) -> str:
    if hasattr(value, "hour") and hasattr(value, "isoformat"):
        if (value.hour, value.minute, value.second) == (0, 0, 0) and not getattr(
            value, "microsecond", 0
        ):
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        return str(value.isoformat())
    return str(value)
