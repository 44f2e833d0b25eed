"""Time values re-encoded for the product: the concatenation coordinate and its companions.

Sources of one archive may count time from different epochs or in different
units (``days since 2000-01-01`` in one file, ``hours since 2010-01-01`` in
the next). Every time-valued variable along the concatenation dimension — the
coordinate itself, the variables its CF ``bounds`` and ``climatology``
attributes name, and any other variable with time units — is decoded per
source (CF units and calendar, with cftime) and encoded again in the units the
product declares for it, so that the product decodes to the sources' dates.
A calendar correction re-creates each date, field by field, in the new
calendar; a date that does not exist there is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arcodex.errors import ConversionError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TimeCode", "calendar_name", "decode", "in_calendar", "is_time_units", "time_fields"]


def is_time_units(units: Any) -> bool:
    """Whether ``units`` are CF time units (``<unit> since <date>``)."""
    return isinstance(units, str) and " since " in units


def calendar_name(name: Any) -> str:
    """The canonical name of a CF calendar (``gregorian`` is ``standard``, and so on)."""
    text = str(name or "standard").lower()
    aliases = {"gregorian": "standard", "365_day": "noleap", "366_day": "all_leap"}
    return aliases.get(text, text)


def decode(values: np.ndarray, units: str, calendar: str) -> np.ndarray:
    """Numbers as cftime dates (an object array of the same shape)."""
    import cftime
    import numpy as np

    dates = cftime.num2date(
        np.asarray(values), units, calendar or "standard", only_use_cftime_datetimes=True
    )
    return np.asarray(dates, dtype=object).reshape(np.shape(values))


def in_calendar(dates: np.ndarray, calendar: str, where: str) -> np.ndarray:
    """``dates`` re-created with the same fields in ``calendar`` (refused when one does not exist)."""
    import cftime
    import numpy as np

    out = np.empty(dates.shape, dtype=object)
    flat, target = dates.reshape(-1), out.reshape(-1)
    for i, d in enumerate(flat):
        try:
            target[i] = cftime.datetime(
                d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, calendar=calendar
            )
        except ValueError:
            raise ConversionError(
                f"{where} holds {d.isoformat()}, which the {calendar} calendar lacks; "
                "keep the sources' calendar"
            ) from None
    return out


def time_fields(value: Any) -> tuple[int, ...]:
    """A date's fields, comparable across calendars."""
    return (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


@dataclass(frozen=True)
class TimeCode:
    """How one time-valued variable is re-encoded: from each source's units to the product's."""

    #: The (units, calendar) of each source, in the plan's order.
    sources: tuple[tuple[str, str], ...]
    units: str
    calendar: str
    #: Stored values that mean "missing" (left as they are).
    fill: tuple[float, ...] = ()

    @classmethod
    def of(
        cls,
        per_source: Sequence[tuple[Any, Any]],
        units: str,
        calendar: str,
        attrs: Mapping[str, Any],
    ) -> TimeCode:
        import numpy as np

        fill: list[float] = []
        for key in ("_FillValue", "missing_value"):
            if attrs.get(key) is not None:
                fill.extend(float(v) for v in np.atleast_1d(np.asarray(attrs[key], dtype=float)))
        return cls(
            sources=tuple((str(u), calendar_name(c)) for u, c in per_source),
            units=units,
            calendar=calendar_name(calendar),
            fill=tuple(fill),
        )

    def needed(self, source: int) -> bool:
        return self.sources[source] != (self.units, self.calendar)

    def missing(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` hold no time (fill values, NaN)."""
        import numpy as np

        mask = np.zeros(values.shape, dtype=bool)
        if values.dtype.kind in "fc":
            mask |= np.isnan(values)
        for fill in self.fill:
            mask |= values == fill
        return mask

    def encode(self, values: np.ndarray, source: int, where: str) -> np.ndarray:
        """Values of ``source`` in the product's units and calendar (same dtype)."""
        import cftime
        import numpy as np

        if not self.needed(source):
            return values
        units, calendar = self.sources[source]
        mask = self.missing(values)
        valid = values[~mask]
        dates = decode(valid, units, calendar)
        if calendar != self.calendar:
            dates = in_calendar(dates, self.calendar, where)
        numbers = np.asarray(cftime.date2num(dates, self.units, self.calendar), dtype="f8")
        if values.dtype.kind in "iu" and not np.all(np.mod(numbers, 1) == 0):
            raise ConversionError(
                f"{where} cannot be written in {self.units!r} as whole numbers; "
                "convert with units that fit every source"
            )
        out = values.copy()
        out[~mask] = numbers.astype(values.dtype)
        return out
