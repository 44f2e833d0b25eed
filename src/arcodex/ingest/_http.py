"""``http``: periods downloaded over HTTP(S), from a URL template or a directory listing.

Params:
    url: A URL template, ``https://host/path/tas_{period}.nc`` (see
        :mod:`arcodex.ingest._names` for ``{period:%Y%m%d}``); a period whose URL
        answers 404 does not exist.
    listing: Instead of ``url``: a directory listing (an HTML index or plain text),
        whose links matching ``pattern`` are the periods' files.
    pattern: With ``listing``: the file name of a period (template or regex).
    timeout: Seconds to wait for a connection or a read (default 30).
    retries: Further attempts after a timeout, a cut transfer or a 5xx/429 (default 3),
        waiting ``backoff`` seconds (default 1), doubled each time.
    concurrency: How many candidate URLs are checked at once (default 8).
    cache: The download directory (default: a temporary one per provider).
    period: The period type; the engine sets it from the template.

Every download is checked before use: the HTTP status, Content-Length against
the bytes received, and that the file is NetCDF/HDF5 xarray can open (an HTML
error page, a JSON error, an empty or stub file, a truncated file are refused).
Messages name the period and the URL without its query string or user.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from arcodex.errors import ValidationError
from arcodex.ingest._cache import DownloadCache
from arcodex.ingest._clip import check_netcdf, open_period, probe_newest
from arcodex.ingest._names import PeriodNames, period_type_of, public_url
from arcodex.ingest._periods import PeriodType, parse_period, period_id
from arcodex.ingest._provider import FetchError, Grid

if TYPE_CHECKING:
    import httpx
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    from arcodex.ingest._model import Extent

__all__ = ["HttpProvider"]

_HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_MISSING = (404, 410)


class _Retry(Exception):
    """A failure worth another attempt (its text says what happened)."""


@dataclass(frozen=True)
class _Settings:
    url: str | None
    listing: str | None
    names: PeriodNames
    period_type: PeriodType
    timeout: float
    retries: int
    backoff: float
    concurrency: int
    cache: str | None


def _settings(params: dict[str, Any]) -> _Settings:
    period_type = period_type_of(params, "http")
    url, listing = params.get("url"), params.get("listing")
    if bool(url) == bool(listing):
        raise ValidationError(
            "the http provider needs params.url (a URL template with {period}) or "
            "params.listing (a directory listing URL, with params.pattern), not both"
        )
    if listing and not params.get("pattern"):
        raise ValidationError(
            "params.listing needs params.pattern: the file name of a period (tas_{period}.nc)"
        )
    try:
        return _Settings(
            url=str(url) if url else None,
            listing=str(listing) if listing else None,
            names=PeriodNames(str(url or params["pattern"]), period_type),
            period_type=period_type,
            timeout=float(params.get("timeout", 30.0)),
            retries=max(0, int(params.get("retries", 3))),
            backoff=max(0.0, float(params.get("backoff", 1.0))),
            concurrency=max(1, int(params.get("concurrency", 8))),
            cache=str(params["cache"]) if params.get("cache") else None,
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"bad http provider params: {exc}; timeout and backoff are seconds, "
            "retries and concurrency whole numbers"
        ) from exc


class HttpProvider:
    """The ``http`` provider (see the module's docstring for its params)."""

    name = "http"

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog
        self._caches: dict[str | None, DownloadCache] = {}
        self._listings: dict[str, dict[pd.Period, list[str]]] = {}
        self._lock = threading.Lock()

    # -- the protocol ------------------------------------------------------------------------

    def periods(self, start: pd.Period, end: pd.Period, params: dict[str, Any]) -> list[pd.Period]:
        """The periods from ``start`` to ``end`` whose file exists (not 404)."""
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        s = _settings(params)
        with self._client(s) as client:
            if s.listing:
                listed = self._listing(client, s, refresh=True)
                return sorted(p for p in listed if start <= p <= end)
            candidates = list(pd.period_range(start, end, freq=start.freq))
            with ThreadPoolExecutor(max_workers=s.concurrency) as pool:
                found = list(pool.map(lambda p: self._exists(client, s, p), candidates))
        return [p for p, there in zip(candidates, found, strict=True) if there]

    def probe(self, extent: Extent, params: dict[str, Any]) -> Grid:
        """The grid over ``extent`` of the period ``params.probe`` names, or of the newest
        period that fetches (of the last three a listing holds, or that a URL template
        has among the last 31 periods to now)."""
        s = _settings(params)
        if params.get("probe"):
            candidates = [parse_period(str(params["probe"]), s.period_type)]
        elif s.listing:
            with self._client(s) as client:
                candidates = list(self._listing(client, s))
            if not candidates:
                raise FetchError(
                    f"no link of {public_url(s.listing)} matches {s.names.pattern!r}; "
                    "check the listing URL and pattern"
                )
        else:
            import pandas as pd  # type: ignore[import-untyped, unused-ignore]

            # A template has no listing: look for the newest of the last 31 periods.
            now = parse_period(str(pd.Timestamp.now(tz="UTC").tz_localize(None)), s.period_type)
            candidates = self.periods(now - 30, now, params)
            if not candidates:
                raise ValidationError(
                    f"none of the last 31 periods exists at {public_url(s.url or '')}; "
                    "name one that does in params.probe (2020-01-01)"
                )
        return probe_newest(candidates, lambda p: self.fetch_period(p, extent, params))

    def fetch_period(self, period: pd.Period, extent: Extent, params: dict[str, Any]) -> xr.Dataset:
        """The period's file(s), downloaded (or found in the cache), checked and clipped."""
        s = _settings(params)
        pid = period_id(period, s.period_type)
        with self._client(s) as client:
            urls = self._urls(client, s, period)
            if not urls:
                raise FetchError(
                    f"period {pid}: no link of {public_url(s.listing or '')} matches "
                    f"{s.names.pattern!r}"
                )
            paths = [
                self._download(client, s, url, f"period {pid} ({public_url(url)})") for url in urls
            ]
        what = f"period {pid} ({public_url(urls[0])})" if len(urls) == 1 else f"period {pid}"
        return open_period(paths, period, extent, what)

    # -- steps ---------------------------------------------------------------------------------

    def _client(self, s: _Settings) -> httpx.Client:
        import httpx

        return httpx.Client(timeout=httpx.Timeout(s.timeout), follow_redirects=True)

    def _cache(self, s: _Settings) -> DownloadCache:
        with self._lock:
            if s.cache not in self._caches:
                self._caches[s.cache] = DownloadCache(s.cache, owner=self)
            return self._caches[s.cache]

    def _urls(self, client: httpx.Client, s: _Settings, period: pd.Period) -> list[str]:
        if s.url:
            return [s.names.render(period)]
        return self._listing(client, s).get(period, [])

    def _listing(
        self, client: httpx.Client, s: _Settings, *, refresh: bool = False
    ) -> dict[pd.Period, list[str]]:
        """The listing's links that name a period, by period (read once unless ``refresh``)."""
        import httpx

        assert s.listing is not None
        with self._lock:
            known = None if refresh else self._listings.get(s.listing)
        if known is not None:
            return known
        where = f"listing {public_url(s.listing)}"

        def read() -> str:
            try:
                response = client.get(s.listing)  # type: ignore[arg-type]
            except httpx.TransportError as exc:  # timeouts included
                raise _Retry(type(exc).__name__) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retry(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise FetchError(f"{where}: HTTP {response.status_code}")
            return response.text

        text = _with_retries(s, where, read)
        links = _HREF.findall(text) or text.split()
        found: dict[pd.Period, list[str]] = {}
        for link in links:
            url = str(httpx.URL(s.listing).join(link))
            name = unquote(url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
            period = s.names.period_of(name)
            if period is not None and url not in found.get(period, []):
                found.setdefault(period, []).append(url)
        found = {p: sorted(urls) for p, urls in found.items()}
        with self._lock:
            self._listings[s.listing] = found
        return found

    def _exists(self, client: httpx.Client, s: _Settings, period: pd.Period) -> bool:
        """Whether the period's URL holds something: not 404. A URL that cannot be reached
        counts as there, so that fetching it reports why."""
        url = s.names.render(period)
        if self._cache(s).path(url).exists():
            return True

        def head() -> bool:
            import httpx

            try:
                status = client.head(url).status_code
                if status in (405, 501):  # no HEAD: ask for the body, read none of it
                    with client.stream("GET", url) as streamed:
                        status = streamed.status_code
            except httpx.TransportError as exc:  # timeouts included
                raise _Retry(type(exc).__name__) from exc
            if status >= 500 or status == 429:
                raise _Retry(f"HTTP {status}")
            return status not in _MISSING

        try:
            return _with_retries(s, f"period {period_id(period, s.period_type)}", head)
        except FetchError:
            return True

    def _download(self, client: httpx.Client, s: _Settings, url: str, what: str) -> Path:
        """The checked local copy of ``url``: from the cache, or downloaded into it."""
        cache = self._cache(s)
        final = cache.path(url)
        if final.exists():
            return final

        def get() -> Path:
            partial = cache.partial(final)
            try:
                self._stream(client, url, partial, what)
                check_netcdf(partial, what)
                return cache.commit(partial, final)
            finally:
                partial.unlink(missing_ok=True)

        return _with_retries(s, what, get)

    @staticmethod
    def _stream(client: httpx.Client, url: str, partial: Path, what: str) -> None:
        import httpx

        received = 0
        expected: int | None = None
        try:
            with client.stream("GET", url) as response:
                status = response.status_code
                if status in _MISSING:
                    raise FetchError(f"{what}: no such file (HTTP {status})")
                if status >= 500 or status == 429:
                    raise _Retry(f"HTTP {status}")
                if status != 200:
                    raise FetchError(f"{what}: HTTP {status}")
                length = response.headers.get("content-length")
                expected = int(length) if length and length.isdigit() else None
                with open(partial, "wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        # Counted as it comes, so that a cut transfer says how much came.
                        received += len(chunk)
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            if expected is not None and received < expected:
                raise _Retry(
                    f"truncated: received {received} of {expected} bytes (Content-Length), "
                    f"the connection closed early ({type(exc).__name__})"
                ) from exc
            raise _Retry(f"transfer cut ({type(exc).__name__})") from exc
        if expected is not None and received != expected:
            raise _Retry(f"truncated: received {received} of {expected} bytes (Content-Length)")


def _with_retries[T](s: _Settings, what: str, attempt: Callable[[], T]) -> T:
    """``attempt()``, again after each :class:`_Retry`, waiting longer each time."""
    reason = ""
    for number in range(s.retries + 1):
        if number:
            time.sleep(s.backoff * 2 ** (number - 1))
        try:
            return attempt()
        except _Retry as exc:
            reason = str(exc)
    tries = f"{s.retries + 1} attempt{'s' if s.retries else ''}"
    raise FetchError(f"{what}: {reason} ({tries})")
