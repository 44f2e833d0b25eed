"""Periods: the unit a dataset is ingested, validated and synced in.

A period is a :class:`pandas.Period` of the template's period type (hourly,
daily, monthly, yearly); its id is the text users write (``2020``,
``2020-03``, ``2020-03-05``, ``2020-03-05T06``) and what a cursor records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

__all__ = ["FREQUENCIES", "PeriodType", "parse_period", "period_id", "period_range"]

PeriodType = Literal["hourly", "daily", "monthly", "yearly"]

#: The pandas frequency of each period type.
FREQUENCIES: dict[str, str] = {"hourly": "h", "daily": "D", "monthly": "M", "yearly": "Y"}
_FORMATS = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}


def parse_period(text: str, period_type: PeriodType) -> pd.Period:
    """The period of ``period_type`` that ``text`` (an id, or any time inside it) falls in."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    try:
        moment = pd.Timestamp(str(text))
        if pd.isna(moment):  # "", "NaT" and "nan" parse as no time at all
            raise ValueError("not a time")
        return pd.Period(moment, freq=FREQUENCIES[period_type])
    except (ValueError, TypeError, KeyError) as exc:
        example = _FORMATS.get(period_type, "%Y-%m-%d").replace("%", "")
        raise ValidationError(
            f"bad {period_type} period {text!r}; write a date such as {example}"
        ) from exc


def period_id(period: pd.Period, period_type: PeriodType) -> str:
    """The id of ``period``: ``2020-03`` for a month, ``2020-03-05T06`` for an hour."""
    return str(period.start_time.strftime(_FORMATS[period_type]))


def period_range(start: str, end: str, period_type: PeriodType) -> list[pd.Period]:
    """The periods from the one holding ``start`` to the one holding ``end``, both included."""
    first, last = parse_period(start, period_type), parse_period(end, period_type)
    if last < first:
        raise ValidationError(f"end {end!r} is before start {start!r}; swap them")
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    return list(pd.period_range(first, last, freq=FREQUENCIES[period_type]))
