"""Spatial and temporal extents as STAC wants them.

Bounding boxes are (west, south, east, north) in WGS84 degrees with
longitudes in [-180, 180]; a box crossing the antimeridian keeps west > east
(STAC and RFC 7946), and its geometry is a MultiPolygon split at ±180.
Datetimes are RFC 3339 in UTC with a ``Z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from arcodex.errors import ValidationError

__all__ = ["bbox_geometry", "normalise_bbox", "rfc3339"]


def _lon(value: float) -> float:
    """A longitude in [-180, 180] (180 stays 180)."""
    if -180.0 <= value <= 180.0:
        return float(value)
    wrapped = ((value + 180.0) % 360.0) - 180.0
    return 180.0 if wrapped == -180.0 and value > 0 else wrapped


def normalise_bbox(bbox: Sequence[float]) -> list[float]:
    """(west, south, east, north) in WGS84 with longitudes in [-180, 180].

    0–360 boxes are folded; a box that spans all longitudes becomes [-180, 180];
    a box crossing the antimeridian keeps west > east.
    """
    if len(bbox) != 4:
        raise ValidationError(f"a bbox has 4 numbers (west, south, east, north), not {len(bbox)}")
    west, south, east, north = (float(v) for v in bbox)
    if south > north:
        raise ValidationError(f"bbox south {south} is north of its north {north}")
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise ValidationError(f"bbox latitudes must lie in [-90, 90]: {south}, {north}")
    if east - west >= 360.0:
        return [-180.0, south, 180.0, north]
    # Folding both edges is enough: a 0–360 box over 180 comes out with west > east.
    return [_lon(west), south, _lon(east), north]


def bbox_geometry(bbox: Sequence[float]) -> dict[str, Any]:
    """The GeoJSON geometry of a normalised bbox (a MultiPolygon when it crosses ±180)."""
    west, south, east, north = bbox

    def ring(w: float, e: float) -> list[list[float]]:
        return [[w, south], [e, south], [e, north], [w, north], [w, south]]

    if west <= east:
        return {"type": "Polygon", "coordinates": [ring(west, east)]}
    return {
        "type": "MultiPolygon",
        "coordinates": [[ring(west, 180.0)], [ring(-180.0, east)]],
    }


def rfc3339(value: Any) -> str | None:
    """An RFC 3339 UTC timestamp from a datetime, cftime date or ISO text (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{value!r} is not an ISO 8601 date") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        # cftime dates: calendars without a Gregorian equivalent keep their fields.
        moment = datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
