"""Groups and STAC settings reloaded while the server runs, without a restart.

What a request answers from the catalog's records (datasets, their publication
and visibility, their STAC documents) is read per request, so publishing or
updating a dataset shows at once. Two things are read once and kept: the
Collections that gather records (``stac_collections`` in ``arcodex.yaml``, and
``collection`` records) and the STAC defaults. :class:`Reloader` looks, at most
once per ``interval`` seconds and only when requests come, whether
``arcodex.yaml`` or the ``collection`` records changed, and if so reads them
again. A file that no longer parses is reported in the log and ignored, so a
half-saved edit never takes the service down. Other settings (limits, proxies,
authentication) are read at start: restart the server to change them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from arcodex.catalog import Catalog
    from arcodex.server._documents import DocumentCache

__all__ = ["ReloadMiddleware", "Reloader"]

logger = logging.getLogger("arcodex.server")


class Reloader:
    """Reads groups and STAC defaults again when their sources changed."""

    def __init__(self, catalog: Catalog, cache: DocumentCache, *, interval: float = 2.0) -> None:
        self.catalog = catalog
        self.cache = cache
        self.interval = interval
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._signature = self.signature()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def signature(self) -> tuple[Any, ...]:
        """What changes when the configuration or a ``collection`` record changes."""
        from arcodex.catalog._config import CONFIG_FILE
        from arcodex.model import Condition, Query, SortKey

        try:
            st = (self.catalog.root / CONFIG_FILE).stat()
            file: tuple[int, ...] = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            file = ()
        collections = [Condition(field="kind", value="collection")]
        newest = self.catalog.search(
            Query(
                conditions=collections,
                sort=[SortKey(field="updated_at", descending=True)],
                limit=1,
            )
        ).records
        return (
            file,
            self.catalog.count(Query(conditions=collections, limit=None)),
            newest[0].updated_at.isoformat() if newest else "",
        )

    def check(self) -> bool:
        """Reload if something changed (one caller at a time); whether it reloaded."""
        if not self._lock.acquire(blocking=False):
            return False  # another request is looking already
        try:
            self._last = time.monotonic()
            signature = self.signature()
            if signature == self._signature:
                return False
            self._reload()
            self._signature = signature
            return True
        finally:
            self._lock.release()

    def _reload(self) -> None:
        from arcodex.catalog._config import load_config
        from arcodex.errors import ValidationError

        try:
            config = load_config(self.catalog.root)
        except ValidationError as exc:
            logger.warning("arcodex.yaml changed but is not valid, so it is ignored: %s", exc)
            config = self.catalog.config
        # Only the settings documents and groups are made from; the rest is read at start.
        self.catalog.config = self.catalog.config.model_copy(
            update={
                "stac_collections": config.stac_collections,
                "stac_defaults": config.stac_defaults,
            }
        )
        self.cache.reset()
        logger.info("groups and STAC settings reloaded")


class ReloadMiddleware:
    """ASGI middleware: before a request, let the :class:`Reloader` look if it is due."""

    def __init__(self, app: ASGIApp, reloader: Reloader) -> None:
        self.app = app
        self.reloader = reloader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.reloader.due():
            from anyio import to_thread

            await to_thread.run_sync(self.reloader.check)
        await self.app(scope, receive, send)
