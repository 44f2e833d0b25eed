"""``remote-zarr``: an existing Zarr or Icechunk store, registered without copying its data.

Params:
    url: The store: a local path (relative paths are under the catalog's root),
        ``s3://bucket/store.zarr``, ``https://host/store.zarr``, or an Icechunk
        repository (``*.icechunk``, or any local directory holding one).
    format: ``zarr`` or ``icechunk``, when the url does not say.
    branch: Of an Icechunk repository, the branch read (default ``main``).
    profile: The catalog's ``s3`` storage profile that reaches an ``s3://`` store.
    period: The period type; the engine sets it from the template.

The periods are the ones the store's time coordinate covers, read from the
store each time (so a sync sees what was appended). A fetched period is the
store's lazy selection of that period and extent: nothing is read or written
until the caller computes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import ArcodexError, ValidationError
from arcodex.ingest._clip import as_timestamps, check_coverage, clip, grid_of
from arcodex.ingest._names import period_type_of, public_url
from arcodex.ingest._periods import FREQUENCIES, period_id
from arcodex.ingest._provider import FetchError, Grid

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = ["RemoteZarrProvider"]

_MEDIA = {"zarr": "application/vnd+zarr", "icechunk": "application/vnd.icechunk"}


class RemoteZarrProvider:
    """The ``remote-zarr`` provider (see the module's docstring for its params)."""

    name = "remote-zarr"

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog

    # -- the protocol ------------------------------------------------------------------------

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        """The store's grid over ``extent`` (its whole time axis included)."""
        ds = self._open(params)
        return grid_of(clip(ds, extent, f"store {self._where(params)}"))

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        """The periods from ``start`` to ``end`` the store's time coordinate has steps in."""
        from arcodex.client._subset import find_time

        period_type = period_type_of(params, self.name)
        ds = self._open(params)
        try:
            values = ds[find_time(ds)].values
        except ArcodexError as exc:
            raise FetchError(f"store {self._where(params)}: {exc}") from exc
        try:
            stamps = as_timestamps(values)
        except (ValueError, TypeError) as exc:
            raise FetchError(f"store {self._where(params)}: time values are not dates") from exc
        found = set(stamps.to_period(FREQUENCIES[period_type]))
        return sorted(p for p in found if start <= p <= end)

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        """The store's lazy selection of ``period`` over ``extent`` (no data read)."""
        from arcodex.client._subset import subset

        what = f"period {period_id(period, period_type_of(params, self.name))} "
        what += f"(store {self._where(params)})"
        ds = self._open(params)
        try:
            cut = subset(
                ds,
                time=(period.start_time.isoformat(), period.end_time.isoformat()),
                bbox=extent.bbox,
            )
        except ArcodexError as exc:
            raise FetchError(f"{what}: cannot select it: {exc}") from exc
        check_coverage(cut, ds, period, extent, what)
        return cut

    # -- steps ---------------------------------------------------------------------------------

    def _url(self, params: dict[str, Any]) -> str:
        url = params.get("url")
        if not url:
            raise ValidationError(
                "the remote-zarr provider needs params.url: the Zarr store or Icechunk repository"
            )
        text = str(url)
        if "://" in text and not text.startswith("file://"):
            return text.rstrip("/")
        path = Path(text.removeprefix("file://")).expanduser()
        if not path.is_absolute():
            root = getattr(self.catalog, "root", None)
            path = (Path(root) if root is not None else Path.cwd()) / path
        return str(path)

    def _where(self, params: dict[str, Any]) -> str:
        return public_url(self._url(params)) if "://" in self._url(params) else self._url(params)

    def _format(self, url: str, params: dict[str, Any]) -> str:
        given = params.get("format")
        if given:
            if given not in _MEDIA:
                raise ValidationError(f"params.format is zarr or icechunk, not {given!r}")
            return str(given)
        if url.endswith(".icechunk"):
            return "icechunk"
        if "://" not in url:
            import icechunk

            try:
                if Path(url).is_dir() and icechunk.Repository.exists(
                    icechunk.local_filesystem_storage(url)
                ):
                    return "icechunk"
            except icechunk.IcechunkError:
                pass
        return "zarr"

    def _open(self, params: dict[str, Any]) -> xr.Dataset:
        """The store, opened lazily (again each call: a sync must see what was added)."""
        from arcodex.client import open_dataset

        url = self._url(params)
        kind = self._format(url, params)
        asset: dict[str, Any] = {"href": url, "type": _MEDIA[kind], "roles": ["data"]}
        profile = params.get("profile")
        if params.get("branch"):
            asset["icechunk:branch"] = str(params["branch"])
        if profile and url.startswith(("s3://", "s3a://")):
            options = self._s3_options(str(profile))
            asset["xarray:storage_options"] = options
            if kind == "icechunk":
                from arcodex.storage._access import icechunk_storage_config

                asset["icechunk:storage"] = icechunk_storage_config(url, options)
        try:
            return open_dataset(asset, profile=profile or None, catalog=self.catalog)
        except ArcodexError as exc:
            raise FetchError(f"store {self._where(params)}: {exc}") from exc

    def _s3_options(self, profile: str) -> dict[str, Any]:
        """The non-secret s3fs options of a catalog's ``s3`` profile (endpoint, region, style)."""
        profiles = getattr(getattr(self.catalog, "config", None), "profiles", None)
        if profiles is None or profile not in profiles:
            raise ValidationError(
                f"params.profile {profile!r} is not a storage profile of the provider's catalog"
            )
        config = profiles[profile]
        options: dict[str, Any] = {"anon": bool(getattr(config, "anonymous", False))}
        if getattr(config, "endpoint_url", None):
            options["endpoint_url"] = config.endpoint_url
        if getattr(config, "region", None):
            options["client_kwargs"] = {"region_name": config.region}
        if getattr(config, "path_style", False):
            options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        return options
