"""``s3``: periods held by objects under an S3 prefix, read through a storage profile.

Params:
    url: ``s3://bucket/prefix/tas_{period}.nc``: the prefix up to the first field
        is listed, and each key's rest is matched against the template (see
        :mod:`arcodex.ingest._names`). Or ``s3://bucket/prefix/`` with ``pattern``.
    pattern: With a prefix ``url``: a period's name below it (template or regex).
    profile: The catalog's ``s3`` storage profile whose endpoint, region and
        credentials (from the variables or file it names) reach the bucket;
        without one, s3fs reads the standard AWS variables.
    cache: The download directory (default: a temporary one per provider).
    period: The period type; the engine sets it from the template.

Objects are downloaded to the cache under a temporary name, their size checked
against the listing's, their content checked as the ``http`` provider does, then
renamed into place. No credential reaches a message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import ArcodexError, ValidationError
from arcodex.ingest._cache import DownloadCache
from arcodex.ingest._clip import check_netcdf, open_period, probe_newest
from arcodex.ingest._names import PeriodNames, period_type_of
from arcodex.ingest._periods import PeriodType, period_id
from arcodex.ingest._provider import FetchError, Grid

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = ["S3Provider"]


@dataclass(frozen=True)
class _Settings:
    prefix: str  # bucket/prefix, no scheme, no trailing slash
    names: PeriodNames
    period_type: PeriodType
    profile: str | None
    cache: str | None


def _settings(params: dict[str, Any]) -> _Settings:
    period_type = period_type_of(params, "s3")
    url = str(params.get("url") or "")
    if not url.startswith(("s3://", "s3a://")):
        raise ValidationError(
            f"the s3 provider needs params.url as s3://bucket/prefix/tas_{{period}}.nc, not {url!r}"
        )
    path = url.split("://", 1)[1]
    if params.get("pattern"):
        prefix, pattern = path.rstrip("/"), str(params["pattern"])
    else:
        head = path.split("{", 1)[0] if "(?P<period>" not in path else path
        prefix = head.rsplit("/", 1)[0] if "/" in head else head
        pattern = path[len(prefix) :].lstrip("/")
    if not prefix.strip("/"):
        raise ValidationError(f"params.url {url!r} names no bucket; write s3://bucket/prefix/...")
    return _Settings(
        prefix=prefix.strip("/"),
        names=PeriodNames(pattern, period_type),
        period_type=period_type,
        profile=str(params["profile"]) if params.get("profile") else None,
        cache=str(params["cache"]) if params.get("cache") else None,
    )


class S3Provider:
    """The ``s3`` provider (see the module's docstring for its params)."""

    name = "s3"

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog
        self._filesystems: dict[str | None, Any] = {}
        self._caches: dict[str | None, DownloadCache] = {}
        self._listings: dict[tuple[str | None, str, str], dict[pd.Period, list[tuple[str, int]]]]
        self._listings = {}
        self._lock = threading.Lock()

    # -- the protocol ------------------------------------------------------------------------

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        """The periods from ``start`` to ``end`` that have an object under the prefix."""
        listed = self._listing(_settings(params), refresh=True)
        return sorted(p for p in listed if start <= p <= end)

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        """The grid over ``extent`` of the newest period under the prefix that fetches."""
        s = _settings(params)
        listed = self._listing(s)
        if not listed:
            raise FetchError(
                f"no object under s3://{s.prefix}/ matches {s.names.pattern!r}; "
                "check the template's provider url"
            )
        return probe_newest(list(listed), lambda p: self.fetch_period(p, extent, params))

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        """The period's object(s), downloaded (or found in the cache), checked and clipped."""
        s = _settings(params)
        pid = period_id(period, s.period_type)
        objects = self._listing(s).get(period) or self._listing(s, refresh=True).get(period)
        if not objects:
            raise FetchError(
                f"period {pid}: no object under s3://{s.prefix}/ matches {s.names.pattern!r}"
            )
        paths = [
            self._download(s, key, size, f"period {pid} (s3://{key})") for key, size in objects
        ]
        what = f"period {pid} (s3://{objects[0][0]})" if len(objects) == 1 else f"period {pid}"
        return open_period(paths, period, extent, what)

    # -- steps ---------------------------------------------------------------------------------

    def _fs(self, s: _Settings) -> Any:
        with self._lock:
            if s.profile not in self._filesystems:
                self._filesystems[s.profile] = self._open_fs(s.profile)
            return self._filesystems[s.profile]

    def _open_fs(self, profile: str | None) -> Any:
        if profile is None:
            import s3fs

            return s3fs.S3FileSystem(skip_instance_cache=True)
        if self.catalog is None or not hasattr(self.catalog, "storage"):
            raise ValidationError(
                f"params.profile {profile!r} is a catalog's storage profile; "
                "give the provider the catalog"
            )
        store = self.catalog.storage(profile)
        if getattr(store, "protocol", None) != "s3":
            raise ValidationError(f"storage profile {profile!r} is not an s3 profile; name one")
        return store.fs

    def _cache(self, s: _Settings) -> DownloadCache:
        with self._lock:
            if s.cache not in self._caches:
                self._caches[s.cache] = DownloadCache(s.cache, owner=self)
            return self._caches[s.cache]

    def _listing(
        self, s: _Settings, *, refresh: bool = False
    ) -> dict[pd.Period, list[tuple[str, int]]]:
        """The objects under the prefix that name a period, by period, with their sizes."""
        memo = (s.profile, s.prefix, s.names.pattern)
        with self._lock:
            known = None if refresh else self._listings.get(memo)
        if known is not None:
            return known
        fs = self._fs(s)
        with self._errors(s, f"s3://{s.prefix}/", "list"):
            found = fs.find(s.prefix, detail=True)
        listed: dict[pd.Period, list[tuple[str, int]]] = {}
        for key, info in found.items():
            rest = key.lstrip("/")[len(s.prefix) :].lstrip("/")
            period = s.names.period_of(rest)
            if period is not None and info.get("type", "file") == "file":
                listed.setdefault(period, []).append((key.lstrip("/"), int(info.get("size") or 0)))
        listed = {p: sorted(objects) for p, objects in listed.items()}
        with self._lock:
            self._listings[memo] = listed
        return listed

    def _download(self, s: _Settings, key: str, size: int, what: str) -> Path:
        cache = self._cache(s)
        final = cache.path(f"s3://{key}")
        if final.exists():
            return final
        partial = cache.partial(final)
        try:
            with self._errors(s, what, "download"):
                self._fs(s).get_file(key, str(partial))
            got = partial.stat().st_size
            if got != size:
                raise FetchError(f"{what}: truncated: received {got} of {size} bytes")
            check_netcdf(partial, what)
            return cache.commit(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    def _errors(self, s: _Settings, what: str, action: str) -> _Translate:
        profiles = getattr(getattr(self.catalog, "config", None), "profiles", None) or {}
        return _Translate(s, what, action, profiles.get(s.profile) if s.profile else None)


class _Translate:
    """S3 failures as one line: credentials as an AuthError naming what to set, the rest
    as a FetchError; neither carries a secret (only the error's type and S3's code)."""

    def __init__(self, s: _Settings, what: str, action: str, config: Any) -> None:
        self.s, self.what, self.action, self.config = s, what, action, config

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, ArcodexError):
            return
        from arcodex.storage._access import access_error, credential_failure

        failure = credential_failure(exc)
        if failure is not None:
            raise access_error(
                f"s3://{self.s.prefix}/",
                failure,
                self.s.profile,
                self.config,
                option="params.profile",
            ) from exc
        if isinstance(exc, FileNotFoundError):
            raise FetchError(f"{self.what}: no such object or bucket") from exc
        raise FetchError(f"{self.what}: could not {self.action}: {type(exc).__name__}") from exc
