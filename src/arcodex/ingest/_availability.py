"""Availability: which periods a provider can be asked for now.

A period is available once its publication lag has passed after its end
(``lag``: a pandas offset such as ``5D`` or ``36h``) and if it starts no later
than the template's ``cutoff`` (a date after which the dataset has no periods).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    from arcodex.ingest._model import Availability

__all__ = ["available"]


def available(
    periods: Sequence[pd.Period], availability: Availability, now: datetime | pd.Timestamp
) -> list[pd.Period]:
    """The ``periods`` that can be fetched at ``now``, in their order.

    A period ends where the next begins; it is available when that moment plus
    the lag is not after ``now``, and when it starts on or before the cutoff.
    ``now`` without a time zone is UTC.
    """
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    from pandas.tseries.frequencies import to_offset  # type: ignore[import-untyped, unused-ignore]

    try:
        lag = to_offset(availability.lag)
    except ValueError as exc:
        raise ValidationError(
            f"bad availability lag {availability.lag!r}; write a pandas offset such as 5D or 36h"
        ) from exc
    instant = pd.Timestamp(now)
    if instant.tzinfo is not None:
        instant = instant.tz_convert("UTC").tz_localize(None)
    cutoff = None
    if availability.cutoff is not None:
        try:
            cutoff = pd.Timestamp(availability.cutoff)
        except ValueError as exc:
            raise ValidationError(
                f"bad availability cutoff {availability.cutoff!r}; write a date such as 2024-12-31"
            ) from exc
        if cutoff.tzinfo is not None:
            cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    kept = []
    for period in periods:
        if cutoff is not None and period.start_time > cutoff:
            continue
        if (period + 1).start_time + lag > instant:
            continue
        kept.append(period)
    return kept
