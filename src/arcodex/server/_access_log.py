"""JSON access logs: one line per request on the ``arcodex.access`` logger.

``arcodex serve --access-log json`` turns uvicorn's text access log off and
this one on. A line holds what a log pipeline needs to answer "who asked what,
how did it go, how long did it take"::

    {"time": "2026-12-03T10:00:00.123Z", "method": "GET", "path": "/stac/search",
     "query": "limit=10", "status": 200, "bytes": 5120, "duration_ms": 12.4,
     "client": "10.0.0.7", "user": "alice"}

Credentials never reach it: headers are not logged, and the values of query
parameters whose names say they carry one (``token``, ``key``, ``password``,
``secret``, ``signature``, ``credential``…) are replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ACCESS_LOGGER",
    "LOG_LEVELS",
    "AccessLog",
    "JsonFormatter",
    "log_config",
    "redact_query",
]

ACCESS_LOGGER = "arcodex.access"
_SECRET_WORDS = ("token", "key", "password", "passwd", "secret", "signature", "credential", "auth")

#: The log levels ``arcodex serve --log-level`` takes (uvicorn's).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
ACCESS_LOGS = ("text", "json", "off")

logger = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (the server's own lines, beside the access lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_config(access_log: str, log_level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with :data:`ACCESS_LOGGER` on when ``access_log``
    is ``json`` (then the server's other lines are JSON too)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    from arcodex.errors import ValidationError

    if access_log not in ACCESS_LOGS:
        raise ValidationError(f"--access-log {access_log!r}: give one of {', '.join(ACCESS_LOGS)}")
    if log_level.lower() not in LOG_LEVELS:
        raise ValidationError(f"--log-level {log_level!r}: give one of {', '.join(LOG_LEVELS)}")
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["arcodex_line"] = {"format": "%(message)s"}
    config["formatters"]["arcodex_json"] = {"()": f"{__name__}.JsonFormatter"}
    config["handlers"]["arcodex_access"] = {
        "formatter": "arcodex_line",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    json_lines = access_log == "json"
    config["loggers"][ACCESS_LOGGER] = {
        "handlers": ["arcodex_access"],
        "level": "INFO" if json_lines else "WARNING",
        "propagate": False,
    }
    if json_lines:
        config["handlers"]["default"]["formatter"] = "arcodex_json"
        config["loggers"]["arcodex"] = {
            "handlers": ["default"],
            "level": "INFO",
            "propagate": False,
        }
    return config


def redact_query(query: str) -> str:
    """``query`` with the values of parameters named like credentials replaced by ``***``."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k, "***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in pairs]
    )


class AccessLog:
    """ASGI middleware writing one JSON line per HTTP request, when its logger is enabled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # The routes' request.state is this dict: the user the auth middleware found is here.
        state = scope.setdefault("state", {})
        seen: dict[str, int] = {"status": 500, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            logger.info(json.dumps(_line(scope, state, seen, start), ensure_ascii=False))


def _line(
    scope: Scope, state: dict[str, Any], seen: dict[str, int], start: float
) -> dict[str, Any]:
    principal = state.get("principal")
    client = scope.get("client")
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "method": scope.get("method"),
        "path": scope.get("path"),  # with the proxy's prefix (RootPath puts it there)
        "query": redact_query(scope.get("query_string", b"").decode("latin-1")),
        "status": seen["status"],
        "bytes": seen["bytes"],
        "duration_ms": round((time.perf_counter() - start) * 1000, 2),
        "client": client[0] if client else None,
        "user": getattr(principal, "name", None),
    }
