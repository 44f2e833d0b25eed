"""The catalog's event log: structured JSON Lines, one file per month (or, for a
catalog whose backend keeps its operation state, rows of its database).

Every event says who (user, session, host, pid, command), what (event,
level, message) and on what (operation, record, artifact), with the arcodex
version and, for failures, the exception's type, message and traceback.
Where they go is an :class:`~arcodex.catalog._opstate.EventStore`; known secret
values are replaced by ``***`` before it sees them.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arcodex import __version__
from arcodex.catalog._opstate import EventStore, FileEvents
from arcodex.errors import ValidationError
from arcodex.model import parse_iso_period
from arcodex.plugins import registry as plugin_registry

__all__ = ["LEVELS", "EventLog", "acting_user", "current_user"]

LEVELS = ("debug", "info", "warning", "error")
_SESSION = uuid.uuid4().hex[:12]


#: The user a request acts for (set by the server for each authenticated request).
_ACTING: ContextVar[str | None] = ContextVar("arcodex_acting_user", default=None)


@contextmanager
def acting_user(name: str | None) -> Iterator[None]:
    """Inside this block, ``name`` (when given) is :func:`current_user` and the user of events.

    The server wraps each authenticated request in it, so that the operations and
    events a request causes are its user's, not the server process's login.
    """
    token = _ACTING.set(name)
    try:
        yield
    finally:
        _ACTING.reset(token)


def current_user() -> str:
    """Who is acting: the request's user (:func:`acting_user`), ``$ARCODEX_USER``, else the login name."""
    acting = _ACTING.get()
    if acting:
        return acting
    with suppress(Exception):
        return os.environ.get("ARCODEX_USER") or getpass.getuser()
    return "unknown"


class EventLog:
    """Append and query the events of one catalog (``state/logs/events-YYYY-MM.jsonl``)."""

    def __init__(
        self,
        directory: Path,
        *,
        secrets: Iterable[str] = (),
        user: str | None = None,
        store: EventStore | None = None,
    ) -> None:
        self.directory = directory
        self.store: EventStore = store if store is not None else FileEvents(directory)
        self.user = user
        self._muted = 0
        # Short strings would redact ordinary words; real secrets are longer.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        self._plugins_reported: set[str] = set()

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Write nothing while inside (a dry run leaves the log as it was)."""
        self._muted += 1
        try:
            yield
        finally:
            self._muted -= 1

    def emit(
        self,
        event: str,
        message: str,
        *,
        level: str = "info",
        operation_id: str | None = None,
        record_id: str | None = None,
        artifact_id: str | None = None,
        user: str | None = None,
        error: BaseException | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Write one event and return it as written (after those of plugins loaded since the last)."""
        plugins = plugin_registry()
        if plugins.discovered:
            self._report_plugins()
        now = datetime.now(UTC)
        entry: dict[str, Any] = {
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "level": level,
            "event": event,
            "message": message,
            "operation_id": operation_id,
            "record_id": record_id,
            "artifact_id": artifact_id,
            "user": user or self.user or _ACTING.get(),
            "session": _SESSION,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": " ".join(sys.argv[:1] + sys.argv[1:2]) if sys.argv else None,
            "versions": {"arcodex": __version__},
        }
        loaded = plugins.loaded_versions()
        if loaded:
            entry["plugins"] = loaded
        if error is not None:
            entry["exc_type"] = type(error).__name__
            entry["exc_message"] = str(error)
            entry["traceback"] = "".join(
                traceback.format_exception(type(error), error, error.__traceback__)
            )
        entry.update(fields)
        line = self._redact(json.dumps(entry, default=str, ensure_ascii=False))
        if self._muted:
            return dict(json.loads(line))
        written = json.loads(line)
        self.store.write(written, line)
        return dict(written)

    def _report_plugins(self) -> None:
        """One event per plugin this process has loaded or failed to load, once per log."""
        for plugin in plugin_registry().plugins(discover=False):
            version: dict[str, Any] = {
                "plugin": plugin.name,
                "dist": plugin.dist,
                "plugin_version": plugin.version,
            }
            for line in plugin.refused:
                if line not in self._plugins_reported:
                    self._plugins_reported.add(line)
                    self.emit("plugin.refused", line, level="warning", **version)
            if plugin.name in self._plugins_reported or plugin.status == "disabled":
                continue
            self._plugins_reported.add(plugin.name)
            if plugin.status == "failed":
                self.emit("plugin.failed", plugin.error or "", level="warning", **version)
            else:
                self.emit(
                    "plugin.loaded",
                    f"plugin {plugin.name!r} loaded: "
                    + (
                        ", ".join(f"{k} {', '.join(v)}" for k, v in plugin.registered.items())
                        or "nothing registered"
                    ),
                    level="debug",
                    registered=plugin.registered,
                    **version,
                )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def query(
        self,
        *,
        user: str | None = None,
        record: str | None = None,
        operation: str | None = None,
        level: str | None = None,
        event: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events matching every filter given, oldest first (the last ``limit`` of them).

        ``level`` is a minimum (``warning`` includes errors); ``event`` may end
        in ``*`` to match a prefix; ``since``/``until`` take ISO dates or periods.
        """
        if level is not None and level not in LEVELS:
            raise ValidationError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        lo = _period(since)[0] if since else None
        hi = _period(until)[1] if until else None
        min_level = LEVELS.index(level) if level else 0
        out: list[dict[str, Any]] = []
        for entry in self.store.entries(lo, hi):
            try:
                stamp = datetime.fromisoformat(str(entry.get("timestamp")))
            except ValueError:
                continue
            if (lo and stamp < lo) or (hi and stamp > hi):
                continue
            if user and entry.get("user") != user:
                continue
            if record and not str(entry.get("record_id") or "").startswith(record):
                continue
            if operation and not str(entry.get("operation_id") or "").startswith(operation):
                continue
            if LEVELS.index(entry.get("level", "info")) < min_level:
                continue
            if event and not _event_matches(str(entry.get("event", "")), event):
                continue
            out.append(entry)
        return out[-limit:] if limit else out


def _event_matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _period(text: str) -> tuple[datetime, datetime]:
    """First and last instant of an ISO date or period (``2026-11`` is all of November)."""
    try:
        first, after = parse_iso_period(text)
    except ValueError:
        raise ValidationError(
            f"bad time {text!r}; give an ISO date such as 2026-11 or 2026-11-22T10:00Z"
        ) from None
    return first, (after - timedelta(microseconds=1) if after != first else first)
