"""The catalog's event log: structured JSON Lines, one file per month.

Every event says who (user, session, host, pid, command), what (event,
level, message) and on what (operation, record, artifact), with the arcodex
version and, for failures, the exception's type, message and traceback.
Lines are appended under an exclusive lock, so concurrent processes never
interleave them. Known secret values are replaced by ``***`` before writing.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import sys
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arcodex import __version__
from arcodex.errors import StorageError, ValidationError
from arcodex.model import parse_iso_period
from arcodex.plugins import registry as plugin_registry

__all__ = ["LEVELS", "EventLog", "current_user"]

LEVELS = ("debug", "info", "warning", "error")
_SESSION = uuid.uuid4().hex[:12]


def current_user() -> str:
    """Who is acting: ``$ARCODEX_USER``, else the login name."""
    with suppress(Exception):
        return os.environ.get("ARCODEX_USER") or getpass.getuser()
    return "unknown"


class EventLog:
    """Append and query the events of one catalog (``state/logs/events-YYYY-MM.jsonl``)."""

    def __init__(
        self, directory: Path, *, secrets: Iterable[str] = (), user: str | None = None
    ) -> None:
        self.directory = directory
        self._dir = str(directory)
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
            "user": user or self.user,
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
        # A string path, and the directory made only when it is missing: per event, both
        # were a good part of its cost.
        path = os.path.join(self._dir, f"events-{now:%Y-%m}.jsonl")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            try:
                fd = os.open(path, flags, 0o640)
            except FileNotFoundError:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write the event log {path}: {exc.strerror or exc}") from exc
        return dict(json.loads(line))

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
        for entry in self._entries(lo, hi):
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

    def _entries(self, lo: datetime | None, hi: datetime | None) -> Iterator[dict[str, Any]]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("events-*.jsonl")):
            month = path.stem.removeprefix("events-")
            if (lo and month < f"{lo:%Y-%m}") or (hi and month > f"{hi:%Y-%m}"):
                continue
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line:
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            continue  # a line cut by a crash: skip it, keep reading


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
