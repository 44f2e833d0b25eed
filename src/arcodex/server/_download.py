"""``GET /datasets/{id}/download``: a subset of a dataset as NetCDF or CSV.

The dataset is opened lazily with the Python API (:func:`arcodex.convert._locate`),
subset by variables, a lon/lat box (0–360 longitudes too, and boxes across the
antimeridian) and a time interval, and its size estimated from the selection
before anything is read: above ``server.download_max_bytes`` the answer is 413.
CSV is written in slices of time, so memory stays bounded; NetCDF is written to
a temporary file, streamed in blocks and removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Query, Request
from starlette.responses import StreamingResponse

from arcodex.errors import ArcodexError, QueryError
from arcodex.server._identity import principal_of
from arcodex.server._published import open_served, visible_dataset

if TYPE_CHECKING:
    from fastapi import APIRouter

    from arcodex.catalog import Catalog

__all__ = ["TooLarge", "add_download", "select"]

#: Rows of CSV made at a time (bounds the memory of a CSV download).
CSV_ROWS = 50_000
#: Bytes of a NetCDF file sent at a time.
BLOCK = 1 << 20
_LON = ("lon", "longitude", "x")
_LAT = ("lat", "latitude", "y")


class TooLarge(ArcodexError):
    """The selection is larger than the server sends at once (HTTP 413)."""


def _coord(ds: Any, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in ds.coords and ds[n].ndim == 1), None)


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(p) for p in text.split(","))
    except ValueError:
        raise QueryError(f"bbox={text!r}: give W,S,E,N in degrees, like -10,40,5,50") from None
    if not (-90 <= south <= north <= 90) or not all(-360 <= v <= 360 for v in (west, east)):
        raise QueryError(f"bbox={text!r}: need -90 <= S <= N <= 90 and -360 <= W, E <= 360")
    return west, south, east, north


def _time(text: str) -> tuple[Any, Any]:
    import numpy as np

    start, sep, end = text.partition("/")
    if not sep:
        end = start
    try:
        bounds = [
            np.datetime64(v.rstrip("Z")) if v not in ("", "..") else None for v in (start, end)
        ]
    except ValueError:
        raise QueryError(f"time={text!r}: give START/END as ISO dates (.. for open)") from None
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise QueryError(f"time={text!r}: it starts after it ends")
    return bounds[0], bounds[1]


def select(
    ds: Any, variables: str | None = None, bbox: str | None = None, time: str | None = None
) -> Any:
    """The part of ``ds`` the download parameters ask for (lazy; QueryError if they cannot)."""
    import numpy as np

    if variables:
        names = [v.strip() for v in variables.split(",") if v.strip()]
        unknown = [v for v in names if v not in ds.data_vars]
        if unknown or not names:
            raise QueryError(
                f"variables={variables!r}: no variable {', '.join(unknown) or '(none)'}; "
                f"this dataset has {', '.join(sorted(map(str, ds.data_vars)))}"
            )
        ds = ds[names]
    if bbox:
        west, south, east, north = _bbox(bbox)
        lon, lat = _coord(ds, _LON), _coord(ds, _LAT)
        if lon is None or lat is None:
            raise QueryError("bbox: this dataset has no 1-D lon/lat coordinates to select on")
        lons = np.asarray(ds[lon].values, dtype=float)
        if lons.max(initial=-np.inf) > 180:  # 0–360 longitudes: put the box in the same frame
            west, east, lons = west % 360, east % 360, lons % 360
        else:
            west, east = (((v + 180) % 360) - 180 if v != 180 else v for v in (west, east))
        inside = (
            (lons >= west) & (lons <= east) if west <= east else (lons >= west) | (lons <= east)
        )
        lats = np.asarray(ds[lat].values, dtype=float)
        ds = ds.isel(
            {lon: np.nonzero(inside)[0], lat: np.nonzero((lats >= south) & (lats <= north))[0]}
        )
    if time:
        if "time" not in ds.coords:
            raise QueryError("time: this dataset has no time coordinate")
        start, end = _time(time)
        ds = ds.sel(time=slice(start, end))
    return ds


def _estimate(ds: Any) -> int:
    return int(sum(var.nbytes for var in ds.variables.values()))


def _csv(ds: Any, stack: ExitStack) -> Iterator[bytes]:
    try:
        dims = [d for d in ds.dims if d != "time"]
        per_step = int(max(1, _product([ds.sizes[d] for d in dims])))
        steps = ds.sizes.get("time", 1)
        step = max(1, CSV_ROWS // per_step)
        for i, first in enumerate(range(0, steps, step)):
            part = ds.isel(time=slice(first, first + step)) if "time" in ds.dims else ds
            frame = part.load().to_dataframe().reset_index()
            yield frame.to_csv(index=False, header=i == 0).encode()
            if "time" not in ds.dims:
                break
    finally:
        stack.close()


def _product(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _netcdf(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                yield block
    finally:
        os.unlink(path)


def add_download(router: APIRouter, catalog: Catalog, *, max_bytes: int) -> None:
    """Add ``/{dataset_id}/download`` to the datasets ``router``."""

    @router.get(
        "/{dataset_id}/download",
        summary="A subset as NetCDF or CSV",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-netcdf": {}, "text/csv": {}}}},
    )
    def download(
        request: Request,
        dataset_id: str,
        variables: str | None = Query(None, description="comma-separated variable names"),
        bbox: str | None = Query(None, description="W,S,E,N in degrees"),
        time: str | None = Query(None, description="START/END (ISO dates, .. for open)"),
        format: Literal["netcdf", "csv"] = Query("netcdf"),
    ) -> StreamingResponse:
        record = visible_dataset(catalog, dataset_id, principal_of(request))
        stack = ExitStack()
        try:
            ds = select(open_served(stack, catalog, record), variables, bbox, time)
            size = _estimate(ds)
            if size > max_bytes:
                raise TooLarge(
                    f"the selection is about {size:,} bytes, over this server's "
                    f"{max_bytes:,} (server.download_max_bytes); ask for fewer variables, "
                    "a smaller bbox or a shorter time"
                )
            name = "".join(c if c.isalnum() or c in "-_." else "-" for c in record.id)
            if format == "csv":
                body: Iterator[bytes] = _csv(ds, stack)
                media, suffix = "text/csv", "csv"
            else:
                handle, path = tempfile.mkstemp(suffix=".nc", prefix="arcodex-download-")
                os.close(handle)
                try:
                    ds.load().to_netcdf(path)
                except BaseException:
                    os.unlink(path)
                    raise
                finally:
                    stack.close()
                body = _netcdf(path)
                media, suffix = "application/x-netcdf", "nc"
        except BaseException:
            stack.close()
            raise
        return StreamingResponse(
            body,
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{name}.{suffix}"',
                "X-Estimated-Bytes": str(size),
            },
        )
