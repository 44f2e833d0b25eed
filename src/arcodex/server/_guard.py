"""ASGI middleware that bounds a request before the app reads it.

:class:`RequestGuard` refuses a body larger than ``server.max_body_bytes``
(413, from ``Content-Length`` or while it streams in), and a JSON body that is
too deep, not JSON, holds numbers a float cannot, or is not an object (400),
so that no parser behind it ever sees such a body. :class:`TrustedProxies`
drops ``Forwarded`` and ``X-Forwarded-*`` headers unless the peer is one of
``server.forwarded_allow_ips``, then applies uvicorn's own handling of
``X-Forwarded-For``/``-Proto`` for the peers it trusts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arcodex.errors import QueryError
from arcodex.server._errors import error_response
from arcodex.server._limits import load_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping, Sequence

    from arcodex.catalog._config import ServerConfig

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["RequestGuard", "RootPath", "TrustedProxies"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class _TooLarge(Exception):
    pass


class RequestGuard:
    """Bounds every request body (size, and for JSON: depth, syntax, numbers, an object)."""

    def __init__(self, app: ASGIApp, limits: ServerConfig) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        most = self.limits.max_body_bytes
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        declared = headers.get(b"content-length", b"").strip()
        if declared and (not declared.isdigit() or int(declared) > most):
            await self._refuse(scope, send, 413, "PayloadTooLarge", self._too_large(declared))
            return
        try:
            body = await self._read(receive, most)
        except _TooLarge:
            await self._refuse(scope, send, 413, "PayloadTooLarge", self._too_large(b"more"))
            return
        kind = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if body.strip() and (kind == b"application/json" or kind.endswith(b"+json")):
            try:
                value = load_json(body, self.limits)
            except QueryError as exc:
                await self._refuse(scope, send, 400, "InvalidParameterValue", str(exc))
                return
            if not isinstance(value, dict):
                what = type(value).__name__ if value is not None else "null"
                await self._refuse(
                    scope,
                    send,
                    400,
                    "InvalidParameterValue",
                    f"the body is a JSON {what}; send a JSON object",
                )
                return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: bytes) -> str:
        return (
            f"the body ({size.decode('latin1')[:20]} bytes) is larger than the server's "
            f"{self.limits.max_body_bytes} (server.max_body_bytes); send less"
        )

    @staticmethod
    async def _read(receive: Receive, most: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > most:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, code: str, text: str) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await error_response(status, code, text)(scope, nothing, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RootPath:
    """Serve under a reverse proxy's path prefix (``--root-path /arcodex``), whether the proxy
    passes the prefix on or strips it: the request path is made to hold it (as the ASGI
    spec has it, and uvicorn's own ``--root-path`` does), so that routes match without it
    and every link the app builds from the request's URL carries it."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root_path and scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if path != self.root_path and not path.startswith(self.root_path + "/"):
                scope["path"] = self.root_path + path
                if scope.get("raw_path") is not None:
                    scope["raw_path"] = self.root_path.encode() + scope["raw_path"]
            scope["root_path"] = self.root_path
        await self.app(scope, receive, send)


class TrustedProxies:
    """Forwarded headers count only from trusted proxies (``--forwarded-allow-ips``)."""

    def __init__(self, app: ASGIApp, trusted: Sequence[str]) -> None:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app = app
        # uvicorn's middleware reads X-Forwarded-For and -Proto for the peers it trusts.
        proxied = ProxyHeadersMiddleware(app, trusted_hosts=list(trusted))  # type: ignore[arg-type]
        self.proxied: ASGIApp = proxied  # type: ignore[assignment]  # uvicorn types its scopes narrower
        self.trusted: Any = proxied.trusted_hosts if trusted else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else None
        if self.trusted is not None and peer in self.trusted:
            await self.proxied(scope, receive, send)
            return
        headers = scope.get("headers", ())
        kept = [(k, v) for k, v in headers if not _forwarding(k)]
        if len(kept) != len(headers):
            scope = {**scope, "headers": kept}
        await self.app(scope, receive, send)


def _forwarding(name: bytes) -> bool:
    name = name.lower()
    return name == b"forwarded" or name.startswith(b"x-forwarded-")
